package rawsqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime/debug"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// Error is an SQLite error: its result code and message.
type Error struct {
	Code int // the extended result code
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s (%d)", e.Msg, e.Code) }

// Conn is one read-only connection. It must not be used by two goroutines
// at once.
type Conn struct {
	tls  *libc.TLS
	db   uintptr
	file uintptr // the unix VFS's structure of a mapped file (see mapFile)
	// mapBase is the process's shared resident pages when the file was
	// mapped, or after the last trim (see trim).
	mapBase int64
}

// busyTimeout is how long a statement waits for a lock another connection
// holds (a recorder checkpointing the file being read) before it fails.
const busyTimeout = 5000 // ms

// URI is the read-only SQLite URI of the file at path, for Open and for
// database/sql. The path is made absolute and percent-encoded, so that '?',
// '#', '%' and spaces in a file name are part of the name and not URI
// syntax; an absolute path also keeps a name starting with "//" from being
// read as a URI authority. With immutable, SQLite neither locks the file nor
// reads a -wal: for a file in a read-only directory that has none.
func URI(path string, immutable bool) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	if filepath.VolumeName(abs) != "" { // Windows: file:///C:/...
		u.Path = "/" + u.Path
	}
	q := "?mode=ro"
	if immutable {
		q += "&immutable=1"
	}
	return u.String() + q, nil
}

// Open opens the SQLite URI name (file:...?mode=ro...) read-only.
func Open(name string) (_ *Conn, err error) {
	c := &Conn{tls: libc.NewTLS()}
	defer func() { // last: the frees below still need the TLS
		if err != nil {
			c.Close()
		}
	}()
	cname, err := cBytes(c.tls, append([]byte(name), 0))
	if err != nil {
		return nil, err
	}
	defer sqlite3.Xsqlite3_free(c.tls, cname)
	pdb := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	rc := sqlite3.Xsqlite3_open_v2(c.tls, cname, pdb, sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_URI, 0)
	c.db = *(*uintptr)(cPtr(pdb))
	if rc != sqlite3.SQLITE_OK {
		return nil, c.err(rc)
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, busyTimeout)
	return c, nil
}

// err is the error of the last call that returned rc.
func (c *Conn) err(rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if m := libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db)); m != "" {
			msg = m
		}
	}
	return &Error{Code: int(rc), Msg: msg}
}

// Close closes the connection (after its statements).
func (c *Conn) Close() error {
	var err error
	if c.db != 0 {
		if rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db); rc != sqlite3.SQLITE_OK {
			err = c.err(rc)
		}
		c.db = 0
	}
	if c.tls != nil {
		c.tls.Close()
		c.tls = nil
	}
	return err
}

// Stmt is a prepared statement being stepped.
type Stmt struct {
	c    *Conn
	st   uintptr
	cols int
	// bound are the C copies of text and blob arguments, freed by Close.
	bound []uintptr
}

// Query prepares q and binds args, in order: any value database/sql takes
// as an argument except a time.Time.
func (c *Conn) Query(q string, args ...any) (_ *Stmt, err error) {
	cq, err := cBytes(c.tls, append([]byte(q), 0))
	if err != nil {
		return nil, err
	}
	defer sqlite3.Xsqlite3_free(c.tls, cq)
	pst := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, cq, -1, pst, 0); rc != sqlite3.SQLITE_OK {
		return nil, c.err(rc)
	}
	s := &Stmt{c: c, st: *(*uintptr)(cPtr(pst))}
	if s.st == 0 {
		return nil, errors.New("empty statement")
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	s.cols = int(sqlite3.Xsqlite3_column_count(c.tls, s.st))
	if n := int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, s.st)); n != len(args) {
		return nil, fmt.Errorf("statement has %d parameters, %d arguments given", n, len(args))
	}
	for i, a := range args {
		if err := s.bind(int32(i+1), a); err != nil {
			return nil, fmt.Errorf("argument %d: %w", i+1, err)
		}
	}
	return s, nil
}

func (s *Stmt) bind(i int32, a any) error {
	v, err := driver.DefaultParameterConverter.ConvertValue(a)
	if err != nil {
		return fmt.Errorf("cannot bind a %T: %w", a, err)
	}
	t := s.c.tls
	var rc int32
	switch v := v.(type) {
	case nil:
		rc = sqlite3.Xsqlite3_bind_null(t, s.st, i)
	case int64:
		rc = sqlite3.Xsqlite3_bind_int64(t, s.st, i, v)
	case float64:
		rc = sqlite3.Xsqlite3_bind_double(t, s.st, i, v)
	case bool:
		b := int64(0)
		if v {
			b = 1
		}
		rc = sqlite3.Xsqlite3_bind_int64(t, s.st, i, b)
	case string:
		p, err := s.copyIn([]byte(v))
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_text(t, s.st, i, p, int32(len(v)), 0)
	case []byte:
		if v == nil {
			rc = sqlite3.Xsqlite3_bind_null(t, s.st, i)
			break
		}
		p, err := s.copyIn(v)
		if err != nil {
			return err
		}
		rc = sqlite3.Xsqlite3_bind_blob(t, s.st, i, p, int32(len(v)), 0)
	default:
		return fmt.Errorf("cannot bind a %T", a)
	}
	if rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// copyIn copies b to C memory that lives until Close (SQLite keeps the
// pointer of a static binding).
func (s *Stmt) copyIn(b []byte) (uintptr, error) {
	p, err := cBytes(s.c.tls, b)
	if err == nil {
		s.bound = append(s.bound, p)
	}
	return p, err
}

// cPtr is the address p of C memory (libc's or SQLite's allocator, never
// the Go heap) as a pointer. Read through the variable, so that vet's
// uintptr check does not take it for a Go pointer kept in a uintptr.
func cPtr(p uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&p))
}

// cBytes copies b to memory from sqlite3_malloc64 (freed with
// sqlite3_free).
func cBytes(tls *libc.TLS, b []byte) (uintptr, error) {
	p := sqlite3.Xsqlite3_malloc64(tls, uint64(max(len(b), 1)))
	if p == 0 {
		return 0, errors.New("sqlite: out of memory")
	}
	copy(unsafe.Slice((*byte)(cPtr(p)), len(b)), b)
	return p, nil
}

// Columns is how many columns a row has.
func (s *Stmt) Columns() int { return s.cols }

// Next steps to the next row: false at the end or with an error.
func (s *Stmt) Next() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.st); rc {
	case sqlite3.SQLITE_ROW:
		return true, nil
	case sqlite3.SQLITE_DONE:
		return false, nil
	default:
		return false, s.c.err(rc)
	}
}

// Null tells whether column i of the row is NULL.
func (s *Stmt) Null(i int) bool {
	return sqlite3.Xsqlite3_column_type(s.c.tls, s.st, int32(i)) == sqlite3.SQLITE_NULL
}

// Int64 is column i as an integer (0 for NULL; text and reals converted as
// SQLite converts them).
func (s *Stmt) Int64(i int) int64 {
	return sqlite3.Xsqlite3_column_int64(s.c.tls, s.st, int32(i))
}

// NullInt64 is column i as an integer, Valid false for NULL.
func (s *Stmt) NullInt64(i int) sql.NullInt64 {
	if s.Null(i) {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: s.Int64(i), Valid: true}
}

// View is column i's bytes as text, valid until the next call of Next or
// Close: nil for NULL, empty but not nil for empty text.
func (s *Stmt) View(i int) []byte {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.st, int32(i))
	if p == 0 {
		return nil
	}
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.st, int32(i))
	return unsafe.Slice((*byte)(cPtr(p)), n)
}

// Blob is a copy of column i's bytes (nil for NULL or empty).
func (s *Stmt) Blob(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(s.c.tls, s.st, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.st, int32(i))
	if p == 0 || n == 0 {
		return nil
	}
	return append([]byte(nil), unsafe.Slice((*byte)(cPtr(p)), n)...)
}

// Close finalizes the statement.
func (s *Stmt) Close() {
	if s.st != 0 {
		// finalize returns the error of the last step again: that one was
		// reported by Next already.
		sqlite3.Xsqlite3_finalize(s.c.tls, s.st)
		s.st = 0
	}
	for _, p := range s.bound {
		sqlite3.Xsqlite3_free(s.c.tls, p)
	}
	s.bound = nil
}

// Exec runs q, a statement without rows (a PRAGMA), to its end.
func (c *Conn) Exec(q string) error {
	s, err := c.Query(q)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		ok, err := s.Next()
		if err != nil || !ok {
			return err
		}
	}
}

// Each runs q with args on a new connection to name and calls each for
// every row, until the end, an error of each, or ctx's end (looked at
// every 256 rows: a row of these streams takes microseconds). started
// gets the error of opening and preparing, or nil, before the first row.
//
// With mapped, the file is read through a memory map where that is
// supported (64-bit Linux; see mapFile), and the map's resident pages are
// dropped whenever they grew past a budget (see trim), looked at every 256
// rows. Why: SQLite here is built with
// SQLITE_ENABLE_MEMORY_MANAGEMENT, so every page any statement touches goes
// through one page cache for the whole process, under one lock. A stream's
// two connections, each stepped on its own core, spent more on that lock
// than the second core gave; with one of them reading through a map, the
// lock is the other's alone. A fault in the map, the file
// truncated while it is read, is returned as an error instead of crashing
// the program; the connection is then left open, as SQLite was stopped
// where it cannot clean up.
func Each(ctx context.Context, name, q string, args []any, mapped bool, started chan<- error, each func(*Stmt) error) (err error) {
	c, err := Open(name)
	if err != nil {
		started <- err
		return err
	}
	if mapped = mapped && c.mapFile(); mapped {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	}
	var s *Stmt
	defer func() {
		if p := recover(); p != nil {
			// SetPanicOnFault's panics carry the faulting address: one
			// in the map is the file's; any other is a bug, and goes on.
			if a, ok := p.(interface{ Addr() uintptr }); !ok || !mapped || !c.inMap(a.Addr()) {
				panic(p)
			}
			err = fmt.Errorf("reading the file failed (was it truncated while it was read?): %v", p)
			return
		}
		if s != nil {
			s.Close()
		}
		c.Close()
	}()
	s, err = c.Query(q, args...)
	started <- err
	if err != nil {
		return err
	}
	for n := 1; ; n++ {
		if n%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			c.trim()
		}
		ok, err := s.Next()
		if err != nil || !ok {
			return err
		}
		if err := each(s); err != nil {
			return err
		}
	}
}
