package query

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dnsrec/dnsrec/schema/summary"
)

// WithoutSummaries copies the evidence file at path (and its -wal, if
// any) into a temporary directory, with the summaries' extents deleted, and
// returns the copy's path: who-resolved and resolved-to on the copy read
// the messages, for tests that compare the two ways. Rows from the copy
// name the copy in their File.
func WithoutSummaries(t testing.TB, path string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(path))
	for _, suffix := range []string{"", "-wal"} {
		in, err := os.Open(path + suffix)
		if suffix != "" && os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out, err := os.Create(dst + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			t.Fatal(err)
		}
		in.Close()
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
	db, err := sql.Open("sqlite", "file:"+dst)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM summaries`); err != nil {
		t.Fatal(err)
	}
	return dst
}

// Summarized tells whether every file of d answers from its summary of
// kind ("who" for who-resolved, "addr" for resolved-to).
func Summarized(ctx context.Context, d *DB, kind string) (bool, error) {
	for _, s := range summary.All {
		if s.Kind != kind {
			continue
		}
		for _, f := range d.files {
			ok, err := f.summarized(ctx, s)
			if !ok || err != nil {
				return false, err
			}
		}
		return len(d.files) > 0, nil
	}
	return false, nil
}
