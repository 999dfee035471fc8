package query_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

func runSQL(t *testing.T, db *query.DB, stmt string) (string, error) {
	t.Helper()
	var buf bytes.Buffer
	w, err := db.SQL(context.Background(), stmt, func(cols []string) (format.RowWriter, error) {
		return format.NewRowWriter(&buf, format.FormatCSV, cols, format.WriteOptions{})
	})
	if w != nil {
		if cerr := w.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}
	return buf.String(), err
}

func TestSQL(t *testing.T) {
	dir := t.TempDir()
	web := incident(t, dir, "web01.db", "web01")
	two := secondHost(t, dir, "db02.db", "db02")
	before := querytest.Sum(t, web)
	db := open(t, web)
	got, err := runSQL(t, db, "SELECT qname, pid FROM messages WHERE direction = 'send' AND role = 'client' AND qname LIKE '%.evil.com' ORDER BY ts_ns LIMIT 2; -- done")
	if err != nil {
		t.Fatal(err)
	}
	if want := "qname,pid\nwww.evil.com,901\nwww.evil.com,901\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	got, err = runSQL(t, db, "SELECT raw, 1.5, NULL FROM msgs LIMIT 1")
	if err != nil || got != "raw,1.5,NULL\nx'00',1.5,\n" {
		t.Errorf("blob, float and null: %q, %v", got, err)
	}
	for _, stmt := range []string{
		"DELETE FROM msgs",
		"WITH x AS (SELECT 1) DELETE FROM msgs",
		"UPDATE sessions SET hostname = 'x'",
		"ATTACH 'file:" + filepath.Join(dir, "new.db") + "?mode=rwc' AS z",
		"VACUUM INTO '" + filepath.Join(dir, "copy.db") + "'",
		"SELECT 1; DELETE FROM msgs",
		"PRAGMA journal_mode = DELETE",
		"CREATE TEMP TABLE t(x)",
	} {
		_, err := runSQL(t, db, stmt)
		if !errors.Is(err, query.ErrWriteRefused) {
			t.Errorf("%s: %v, want ErrWriteRefused", stmt, err)
		}
	}
	for _, f := range []string{"new.db", "copy.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			t.Errorf("%s was created", f)
		}
	}
	// A ';' inside a string is not a second statement.
	if got, err := runSQL(t, db, "SELECT 'a;b' AS s"); err != nil || got != "s\na;b\n" {
		t.Errorf("quoted ';': %q, %v", got, err)
	}
	db.Close()
	if querytest.Sum(t, web) != before {
		t.Error("SHA-256 of the evidence changed")
	}
	// Several files: a file column first.
	got, err = runSQL(t, open(t, web, two), "SELECT hostname FROM sessions")
	if err != nil || got != "file,hostname\n"+web+",web01\n"+two+",db02\n" {
		t.Errorf("two files: %q, %v", got, err)
	}
}
