package query_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// runEveryQuery runs every query the package offers, in every format, so
// that the read-only tests cover them all. A new query command belongs here.
func runEveryQuery(t *testing.T, db *query.DB) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"evil.com", "www.evil.com", "example.org", "com"} {
		for _, exact := range []bool{false, true} {
			rows, err := db.WhoResolved(ctx, name, query.WhoResolvedOptions{Exact: exact})
			if err != nil {
				t.Fatalf("who-resolved %s: %v", name, err)
			}
			for _, f := range format.Formats {
				if err := format.Write(io.Discard, f, query.WhoResolvedTable(rows, false)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// Every other command, each with a filter that touches its own SQL.
	filter := query.Filter{Since: querytest.At(0), PIDs: []int64{901}, QTypes: []uint16{1}, Rcodes: []int{0}}
	w, err := format.NewRowWriter(io.Discard, format.FormatJSON, query.TimelineColumns, format.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []query.Filter{{}, filter} {
		if _, err := db.Timeline(ctx, query.TimelineOptions{Filter: f}, w); err != nil {
			t.Fatalf("timeline: %v", err)
		}
		p, _ := query.ParsePrefix("203.0.113.0/24")
		if _, err := db.ResolvedTo(ctx, p, f); err != nil {
			t.Fatalf("resolved-to: %v", err)
		}
		if _, err := db.Processes(ctx, "curl", f); err != nil {
			t.Fatalf("process: %v", err)
		}
		if _, err := db.Stats(ctx, f); err != nil {
			t.Fatalf("stats: %v", err)
		}
		for _, format := range export.Formats {
			if _, err := export.Write(ctx, db, io.Discard, format, f); err != nil {
				t.Fatalf("export %s: %v", format, err)
			}
		}
	}
	if _, err := db.Info(ctx); err != nil {
		t.Fatalf("info: %v", err)
	}
	if _, err := db.Verify(ctx); err != nil {
		t.Fatalf("verify: %v", err)
	}
	for _, stmt := range []string{"SELECT * FROM messages", "DELETE FROM msgs", "ATTACH 'x.db' AS x"} {
		sw, err := db.SQL(ctx, stmt, func(cols []string) (format.RowWriter, error) {
			return format.NewRowWriter(io.Discard, format.FormatCSV, cols, format.WriteOptions{})
		})
		if sw != nil {
			sw.Close()
		}
		if (err != nil) != strings.HasPrefix(stmt, "DELETE") && (err != nil) != strings.HasPrefix(stmt, "ATTACH") {
			t.Fatalf("sql %s: %v", stmt, err)
		}
	}
}

// hashes returns the SHA-256 of path and of its -wal, if there is one. The
// -shm is left out: it is SQLite's shared-memory index, which readers are
// allowed to rebuild, and it is not evidence.
func hashes(t *testing.T, path string) map[string]string {
	t.Helper()
	h := make(map[string]string)
	for _, p := range []string{path, path + "-wal"} {
		f, err := os.Open(p)
		if errors.Is(err, os.ErrNotExist) && p != path {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		s := sha256.New()
		_, err = io.Copy(s, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		h[filepath.Base(p)] = hex.EncodeToString(s.Sum(nil))
	}
	return h
}

func sameHashes(t *testing.T, before, after map[string]string) {
	t.Helper()
	for name, h := range before {
		if after[name] != h {
			t.Errorf("%s changed: SHA-256 %s before the queries, %s after", name, h, after[name])
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && strings.HasSuffix(name, ".db") {
			t.Errorf("%s appeared", name)
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestReadOnlyClosedFile is the usual case: a file the recorder closed
// cleanly (WAL mode, no -wal left).
func TestReadOnlyClosedFile(t *testing.T) {
	p := incident(t, t.TempDir(), "case.db", "web01")
	before := hashes(t, p)
	db := open(t, p)
	runEveryQuery(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sameHashes(t, before, hashes(t, p))
}

// TestReadOnlyWALCopy queries a copy of a file that was still being written:
// the .db and its -wal copied together (as scp of a live recording gives),
// without the -shm. The -wal holds every row, so a reader that ignored it
// (immutable=1) would see an empty database.
func TestReadOnlyWALCopy(t *testing.T) {
	live := filepath.Join(t.TempDir(), "live.db")
	b := querytest.New(t, live) // stays open: the -wal is not checkpointed
	querytest.Incident(b, "web01")
	if _, err := os.Stat(live + "-wal"); err != nil {
		t.Fatalf("the live file has no -wal: %v", err)
	}

	p := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, live, p)
	copyFile(t, live+"-wal", p+"-wal")
	before := hashes(t, p)
	if len(before) != 2 {
		t.Fatalf("hashed %d files, want the .db and its -wal", len(before))
	}
	db := open(t, p)
	rows, err := db.WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Errorf("got %d rows from the -wal copy, want 5", len(rows))
	}
	runEveryQuery(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	sameHashes(t, before, hashes(t, p))
}

// TestLiveFile queries a file while it is being written, and sees each
// committed batch.
func TestLiveFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "case.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	db := open(t, p)
	count := func() int {
		t.Helper()
		rows, err := db.WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	if n := count(); n != 5 {
		t.Fatalf("got %d rows, want 5", n)
	}
	b.Message(querytest.Message{Session: 1, PID: 31337, Comm: "late", TS: querytest.At(time.Minute),
		Direction: "send", QName: "late.evil.com"})
	if n := count(); n != 6 {
		t.Errorf("after one more commit: got %d rows, want 6", n)
	}
	// Every command while the writer holds the file, and the writer still
	// commits afterwards.
	runEveryQuery(t, db)
	b.Message(querytest.Message{Session: 1, PID: 31338, Comm: "later", TS: querytest.At(2 * time.Minute),
		Direction: "send", QName: "later.evil.com"})
	if n := count(); n != 7 {
		t.Errorf("after the queries and one more commit: got %d rows, want 7", n)
	}
}
