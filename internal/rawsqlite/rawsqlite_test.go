package rawsqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// testDB makes a small file with the driver and returns its read-only URI.
func testDB(t *testing.T) (path, uri string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "t e%st#.db") // URI syntax in the name
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`CREATE TABLE t(id INTEGER PRIMARY KEY, n INTEGER, s TEXT, b BLOB)`,
		`INSERT INTO t VALUES (1, 42, 'höst.example', x'00ff10'), (2, NULL, '', NULL), (3, -9007199254740993, NULL, x'')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return path, (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String()
}

func TestQueryColumns(t *testing.T) {
	path, uri := testDB(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := c.Query(`SELECT id, n, s, b FROM t WHERE id >= ? AND s IS NOT ? ORDER BY id`, int64(1), "nothing")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		id, n int64
		nNull bool
		s     string
		sNull bool
		b     []byte
		bNull bool
	}
	var got []row
	for {
		ok, err := s.Next()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if s.Columns() != 4 {
			t.Fatalf("%d columns", s.Columns())
		}
		v := s.View(2)
		got = append(got, row{id: s.Int64(0), n: s.Int64(1), nNull: s.Null(1), s: string(v), sNull: v == nil, b: s.Blob(3), bNull: s.Null(3)})
	}
	s.Close()
	want := []row{
		{id: 1, n: 42, s: "höst.example", b: []byte{0, 0xff, 0x10}},
		{id: 2, nNull: true, s: "", bNull: true},
		{id: 3, n: -9007199254740993, sNull: true}, // NULL IS NOT 'nothing'; an empty blob is nil
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.id != w.id || g.n != w.n || g.nNull != w.nNull || g.s != w.s || g.sNull != w.sNull || !bytes.Equal(g.b, w.b) || g.bNull != w.bNull {
			t.Errorf("row %d: got %+v, want %+v", i, g, w)
		}
	}
	// NULL text is nil; empty text is empty but not nil.
	s, err = c.Query(`SELECT s, n FROM t WHERE id = ?`, 3)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Next(); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if s.View(0) != nil || s.Int64(1) != -9007199254740993 {
		t.Errorf("row 3: view %q, n %d", s.View(0), s.Int64(1))
	}
	s.Close()
	s, err = c.Query(`SELECT s FROM t WHERE id = 2`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Next(); !ok || err != nil || s.View(0) == nil {
		t.Errorf("empty text: ok %v err %v view %v", ok, err, s.View(0))
	}
	s.Close()

	// Writes are refused, and the file is unchanged.
	s, err = c.Query(`DELETE FROM t`)
	if err == nil {
		_, err = s.Next()
		s.Close()
	}
	var se *Error
	if !errors.As(err, &se) || se.Code&0xff != 8 /* SQLITE_READONLY */ || !strings.Contains(se.Msg, "readonly") {
		t.Errorf("DELETE on a read-only connection: %v", err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the file changed")
	}
}

func TestQueryErrors(t *testing.T) {
	_, uri := testDB(t)
	c, err := Open(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct {
		q    string
		args []any
		want string
	}{
		{`SELEC 1`, nil, `near "SELEC": syntax error`},
		{`SELECT * FROM nope`, nil, "no such table: nope"},
		{`SELECT ?`, nil, "statement has 1 parameters, 0 arguments given"},
		{`SELECT ?`, []any{struct{}{}}, "argument 1: cannot bind a struct {}"},
		{``, nil, "empty statement"},
	} {
		s, err := c.Query(tc.q, tc.args...)
		if err == nil {
			s.Close()
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.q, err, tc.want)
		}
	}
	if _, err := Open("file:" + filepath.Join(t.TempDir(), "missing.db") + "?mode=ro"); err == nil || !strings.Contains(err.Error(), "unable to open") {
		t.Errorf("missing file: %v", err)
	}
}

func TestEach(t *testing.T) {
	_, uri := testDB(t)
	started := make(chan error, 1)
	var ids []int64
	err := Each(context.Background(), uri, `SELECT id FROM t ORDER BY id DESC`, nil, false, started, func(s *Stmt) error {
		ids = append(ids, s.Int64(0))
		return nil
	})
	if serr := <-started; err != nil || serr != nil || len(ids) != 3 || ids[0] != 3 {
		t.Errorf("Each: %v (started: %v), ids %v", err, serr, ids)
	}
	stop := errors.New("stop")
	n := 0
	err = Each(context.Background(), uri, `SELECT id FROM t`, nil, false, started, func(*Stmt) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Each stopped by its callback: %v after %d rows", err, n)
	}
	<-started
	// A cancelled context ends a long statement.
	ctx, cancel := context.WithCancel(context.Background())
	n = 0
	err = Each(ctx, uri, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c`, nil, false, started, func(*Stmt) error {
		if n++; n == 1000 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || n > 1300 {
		t.Errorf("cancelled Each: %v after %d rows", err, n)
	}
	<-started
	err = Each(context.Background(), uri, `SELECT x FROM nope`, nil, false, started, nil)
	if serr := <-started; err == nil || serr == nil {
		t.Errorf("Each of a bad statement: %v (started: %v)", err, serr)
	}
}

func TestURI(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/ev/case.db", "file:///ev/case.db?mode=ro"},
		{"/ev/a b?c#d%e.db", "file:///ev/a%20b%3Fc%23d%25e.db?mode=ro"},
		{"//host/share.db", "file:///host/share.db?mode=ro"}, // never an authority
	}
	for _, tt := range tests {
		got, err := URI(tt.path, false)
		if err != nil || got != tt.want {
			t.Errorf("URI(%q) = %q, %v; want %q", tt.path, got, err, tt.want)
		}
	}
	if got, _ := URI("/ev/case.db", true); got != "file:///ev/case.db?mode=ro&immutable=1" {
		t.Errorf("immutable URI = %q", got)
	}
}
