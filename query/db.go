package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dnsrec/dnsrec/internal/rawsqlite"
	"github.com/dnsrec/dnsrec/schema"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// ErrNoFile means an evidence file named on the command line does not exist.
// Open checks for it itself: SQLite would otherwise report a vaguer error, or,
// with a careless DSN, create an empty database where the evidence should be.
var ErrNoFile = errors.New("no such file")

// ErrWALUnreadable means the file has a -wal beside it that SQLite cannot
// read without creating or writing its -shm, typically because the directory
// is read-only. Falling back to immutable mode would silently ignore every
// transaction still in the -wal, so Open refuses instead.
var ErrWALUnreadable = errors.New("has a -wal file that cannot be read in this directory without writing its -shm; copy the .db and its -wal into a writable directory")

// DB is a set of evidence files opened read-only, one per recorded host.
// Queries run against every file and merge their rows.
type DB struct {
	files []*file
}

// file is one opened evidence file.
type file struct {
	path      string // as the user gave it, for messages
	db        *sql.DB
	immutable bool // opened with immutable=1: no -wal, and mode=ro alone could not open it
	version   int  // schema version (PRAGMA user_version)
	hadWAL    bool // a -wal was beside the file before it was opened
	dict      *dicts
}

// Open opens the evidence files at paths read-only and checks that each is a
// dnsrec database this build understands. On error nothing stays open.
func Open(ctx context.Context, paths []string) (_ *DB, err error) {
	if len(paths) == 0 {
		return nil, errors.New("no database given")
	}
	d := &DB{}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.Close())
		}
	}()
	seen := make([]os.FileInfo, 0, len(paths))
	for _, p := range paths {
		fi, err := stat(p)
		if err != nil {
			return nil, err
		}
		// The same file twice would double every count without any hint.
		for i, prev := range seen {
			if os.SameFile(fi, prev) {
				return nil, fmt.Errorf("open %s: same file as %s, given twice", p, paths[i])
			}
		}
		seen = append(seen, fi)
		f, err := openFile(ctx, p)
		if err != nil {
			return nil, err
		}
		d.files = append(d.files, f)
	}
	return d, nil
}

// Close closes every file.
func (d *DB) Close() error {
	var errs []error
	for _, f := range d.files {
		if f.dict != nil {
			f.dict.close()
			f.dict = nil
		}
		if err := f.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", f.path, err))
		}
	}
	d.files = nil
	return errors.Join(errs...)
}

// Warnings says what a reader should know about the files before trusting
// their answers: a recording that never stopped cleanly (killed, or still
// running) may have its newest messages in a -wal beside the file, and a
// copy without that -wal lacks them. A filtered recording (record --domain
// and the like) holds only what its filters let through. A file whose
// sessions cannot be read is an error: its warnings would be missing.
func (d *DB) Warnings(ctx context.Context) ([]string, error) {
	var out []string
	for _, f := range d.files {
		if f.version >= 4 {
			var filters sql.NullString
			if err := f.db.QueryRowContext(ctx, `SELECT group_concat(DISTINCT filters) FROM sessions WHERE filters IS NOT NULL`).Scan(&filters); err != nil {
				return out, fmt.Errorf("%s: read the recording's filters: %w", f.path, err)
			}
			if filters.Valid {
				out = append(out, fmt.Sprintf("%s: a filtered recording (%s): messages outside the filters were never stored, so an absence here proves nothing", f.path, filters.String))
			}
		}
		var open int
		if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions WHERE stopped_ns IS NULL`).Scan(&open); err != nil {
			return out, fmt.Errorf("%s: read whether the recording stopped: %w", f.path, err)
		}
		if open == 0 {
			continue
		}
		if f.hadWAL {
			out = append(out, fmt.Sprintf("%s: the recording did not stop cleanly (killed, or still running); reading it with its -wal", f.path))
		} else {
			out = append(out, fmt.Sprintf("%s: the recording did not stop cleanly (killed, or still running) and there is no %s-wal beside it: messages the recorder had not checkpointed are missing from this copy; copy the -wal with the file", f.path, filepath.Base(f.path)))
		}
	}
	return out, nil
}

// CheckVersion tells, with ErrOldSchema, whether a file is older than
// schema version min: for a command that refuses such a file before it
// writes anything.
func (d *DB) CheckVersion(min int) error {
	for _, f := range d.files {
		if f.version < min {
			return fmt.Errorf("%s: %w", f.path, ErrOldSchema)
		}
	}
	return nil
}

// RecorderVersion is the dnsrec version that recorded session of the
// file opened as path (as Message.File names it), "" when unknown.
func (d *DB) RecorderVersion(ctx context.Context, path string, session int64) (string, error) {
	var v sql.NullString
	for _, f := range d.files {
		if f.path != path {
			continue
		}
		err := f.db.QueryRowContext(ctx, `SELECT version FROM sessions WHERE id = ?`, session).Scan(&v)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("%s: session %d: %w", path, session, err)
		}
	}
	return v.String, nil
}

// Paths returns the files in the order they were given to Open.
func (d *DB) Paths() []string {
	ps := make([]string, len(d.files))
	for i, f := range d.files {
		ps[i] = f.path
	}
	return ps
}

func stat(path string) (os.FileInfo, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("open %s: %w", path, ErrNoFile)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("open %s: is a directory", path)
	}
	// SQLite would say "unable to open database file (14)"; say why.
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrPermission) {
		return nil, fmt.Errorf("open %s: %w: this user cannot read it (run dnsrec query as a user who can, or copy the file and its -wal somewhere readable)", path, fs.ErrPermission)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	f.Close()
	return fi, nil
}

func openFile(ctx context.Context, path string) (*file, error) {
	// Opening a WAL-mode file creates an empty -wal: look before.
	_, werr := os.Lstat(path + "-wal")
	f, err := openMode(ctx, path, false)
	if err == nil {
		f.hadWAL = werr == nil
		return f, nil
	}
	// mode=ro fails on a WAL-mode file when SQLite can create neither the
	// -wal nor the -shm (read-only directory or file system). immutable=1
	// skips locking and the WAL altogether, which is exact when there is no
	// -wal, and wrong when there is one: its transactions would be ignored.
	if !retryImmutable(err) {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, werr := os.Lstat(path + "-wal"); !errors.Is(werr, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w (%w)", path, ErrWALUnreadable, err)
	}
	f, ierr := openMode(ctx, path, true)
	if ierr != nil {
		return nil, fmt.Errorf("open %s: %w", path, errors.Join(err, fmt.Errorf("immutable: %w", ierr)))
	}
	return f, nil
}

// retryImmutable tells whether a mode=ro failure is one that immutable mode
// can get around: SQLite could not open or create a file beside the database.
// Anything else (not a database, foreign schema) would fail the same way.
func retryImmutable(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff { // primary result code; extended codes add detail in the high bits
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
		return true
	}
	return false
}

func openMode(ctx context.Context, path string, immutable bool) (_ *file, err error) {
	name, err := rawsqlite.URI(path, immutable)
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", name)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, db.Close())
		}
	}()
	// schema.Check is the first statement, so it also surfaces open errors
	// (sql.Open itself connects lazily).
	if err := schema.Check(ctx, db); err != nil {
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB {
			return nil, fmt.Errorf("%w: not an SQLite file", schema.ErrForeign)
		}
		return nil, err
	}
	_, version, err := schema.Stamp(ctx, db)
	if err != nil {
		return nil, err
	}
	return &file{path: path, db: db, immutable: immutable, version: version}, nil
}
