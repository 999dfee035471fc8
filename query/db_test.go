package query_test

import (
	"context"
	"database/sql"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/schema"
)

// sqliteFile creates a plain SQLite database at path and runs stmts in it.
func sqliteFile(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	good := incident(t, dir, "good.db", "web01")

	foreign := filepath.Join(dir, "foreign.db")
	sqliteFile(t, foreign, "CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)", "INSERT INTO invoices VALUES (1, 9.5)")

	newer := incident(t, dir, "newer.db", "web01")
	sqliteFile(t, newer, "PRAGMA user_version = 99")

	unstamped := filepath.Join(dir, "unstamped.db")
	sqliteFile(t, unstamped, "PRAGMA application_id = 0") // an SQLite file with no schema at all

	empty := filepath.Join(dir, "empty.db")
	text := filepath.Join(dir, "notes.txt")
	for p, body := range map[string]string{empty: "", text: strings.Repeat("not a database\n", 100)} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		paths   []string
		is      error  // errors.Is target, if any
		message string // substring of the error
	}{
		{"missing", []string{filepath.Join(dir, "case.db")}, query.ErrNoFile, "case.db: no such file"},
		{"missing second", []string{good, filepath.Join(dir, "b.db")}, query.ErrNoFile, "b.db: no such file"},
		{"directory", []string{dir}, nil, "is a directory"},
		{"foreign", []string{foreign}, schema.ErrForeign, "not a dnsrec database"},
		{"newer version", []string{newer}, schema.ErrTooNew, "version 99"},
		{"unstamped", []string{unstamped}, schema.ErrForeign, "not a dnsrec database"},
		{"empty file", []string{empty}, schema.ErrForeign, "not a dnsrec database"},
		{"text file", []string{text}, schema.ErrForeign, "not an SQLite file"},
		{"same file twice", []string{good, link}, nil, "given twice"},
		{"none", nil, nil, "no database"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := query.Open(context.Background(), tt.paths)
			if err == nil {
				db.Close()
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %q", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.message) {
				t.Errorf("error %q does not mention %q", err, tt.message)
			}
			if len(tt.paths) > 0 && !strings.HasPrefix(err.Error(), "open ") {
				t.Errorf("error %q does not say which file", err)
			}
		})
	}
	// Refusing must not have created anything where a file was missing.
	if _, err := os.Stat(filepath.Join(dir, "case.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("case.db exists after a failed open: %v", err)
	}
	// Nor may it have modified the foreign file.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: foreign, RawQuery: "mode=ro"}).String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil || n != 1 {
		t.Errorf("foreign file has %d schema objects (%v), want 1", n, err)
	}
}

// TestOpenHostilePaths opens files whose names are URI syntax.
func TestOpenHostilePaths(t *testing.T) {
	for _, name := range []string{
		"a b.db",
		"what?mode=rw.db",
		"frag#ment.db",
		"pct%41%2e.db",
		"semi;colon&amp=1.db",
		"-dash.db",
		"ünï cödé.db",
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "dir ?#%")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			p := incident(t, dir, name, "web01")
			rows, err := open(t, p).WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) != 5 {
				t.Errorf("got %d rows, want 5", len(rows))
			}
			// Nothing may appear beside the file under a truncated name.
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if !strings.HasPrefix(e.Name(), name) {
					t.Errorf("stray file %q next to %q", e.Name(), name)
				}
			}
		})
	}
}

// TestOpenRelativePath uses the default name from the working directory.
func TestOpenRelativePath(t *testing.T) {
	dir := t.TempDir()
	incident(t, dir, "case.db", "web01")
	t.Chdir(dir)
	db := open(t, "case.db")
	if got := db.Paths(); len(got) != 1 || got[0] != "case.db" {
		t.Errorf("Paths() = %q", got)
	}
	rows, err := db.WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{Exact: true})
	if err != nil || len(rows) != 1 {
		t.Errorf("got %d rows, %v", len(rows), err)
	}
}
