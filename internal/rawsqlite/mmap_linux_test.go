//go:build linux && (amd64 || arm64)

package rawsqlite

import (
	"bufio"
	"context"
	"database/sql"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// bigDB makes a file of rows ids 1..n, each with a kB of blob, and returns
// its path and read-only URI.
func bigDB(t *testing.T, n int) (path, uri string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "big.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`PRAGMA journal_mode=WAL`,
		`CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)`,
		`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ` + strconv.Itoa(n) + `) INSERT INTO t SELECT x, randomblob(1000) FROM c`,
		`PRAGMA wal_checkpoint(TRUNCATE)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return path, (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String()
}

// mappedKB is the resident size of the process's maps of path, in kB
// (from /proc/self/smaps), and how many maps there are.
func mappedKB(t *testing.T, path string) (kb, maps int) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	in := false
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			if in {
				maps++
			}
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			n, _ := strconv.Atoi(fields[1])
			kb += n
		}
	}
	return kb, maps
}

// A mapped stream reads the file through a map, whose resident pages are
// dropped whenever they grow past mapBudget; every row still arrives,
// whole.
func TestEachMappedTrims(t *testing.T) {
	const n = 3 * mapBudget / 2 / 1024 // rows of a kB: half as much again as the budget
	path, uri := bigDB(t, n)
	started := make(chan error, 1)
	var rows, sum, peak, drops, maps, last int
	err := Each(context.Background(), uri, `SELECT id, b FROM t ORDER BY id`, nil, true, started, func(s *Stmt) error {
		rows++
		sum += int(s.Int64(0))
		if len(s.Blob(1)) != 1000 {
			t.Fatalf("row %d: blob of %d bytes", s.Int64(0), len(s.Blob(1)))
		}
		if rows%1024 == 0 {
			kb, m := mappedKB(t, path)
			peak, maps = max(peak, kb), max(maps, m)
			if kb < last-mapBudget/1024/2 {
				drops++
			}
			last = kb
		}
		return nil
	})
	if serr := <-started; err != nil || serr != nil {
		t.Fatalf("Each: %v (started: %v)", err, serr)
	}
	if rows != n || sum != n*(n+1)/2 {
		t.Errorf("read %d rows, ids summing to %d; want %d and %d", rows, sum, n, n*(n+1)/2)
	}
	// The budget, and what 256 rows (between two looks) and the kernel's
	// fault-around add to it.
	if maps != 1 || drops == 0 || peak > (mapBudget+1<<20)/1024 || peak < mapBudget/1024/2 {
		t.Errorf("%d maps of the file, dropped %d times, at most %d kB resident: want one map, dropped, at most %d kB and at least half of that", maps, drops, peak, mapBudget/1024)
	}
	if kb, maps := mappedKB(t, path); maps != 0 || kb != 0 {
		t.Errorf("after the stream: %d maps of the file, %d kB resident", maps, kb)
	}
}

// Without mapped, or on a file that is not mapped, nothing is.
func TestEachUnmapped(t *testing.T) {
	path, uri := bigDB(t, 100)
	started := make(chan error, 1)
	maps := -1
	err := Each(context.Background(), uri, `SELECT id FROM t`, nil, false, started, func(s *Stmt) error {
		_, maps = mappedKB(t, path)
		return nil
	})
	if serr := <-started; err != nil || serr != nil || maps != 0 {
		t.Errorf("Each: %v (started: %v), %d maps of the file", err, serr, maps)
	}
}

// A file cut short while a mapped stream reads it gives an error, not a
// crash of the program (SIGBUS on the pages past its new end).
func TestEachMappedTruncated(t *testing.T) {
	path, uri := bigDB(t, 2000)
	started := make(chan error, 1)
	rows := 0
	err := Each(context.Background(), uri, `SELECT id, b FROM t ORDER BY id`, nil, true, started, func(s *Stmt) error {
		if rows++; rows == 10 {
			if err := os.Truncate(path, 8192); err != nil {
				t.Fatal(err)
			}
		}
		return nil
	})
	<-started
	if err == nil || !strings.Contains(err.Error(), "truncated while it was read") || rows >= 2000 {
		t.Errorf("Each on a file truncated at row 10: %v after %d rows", err, rows)
	}
}

// A fault outside the map, a bug in the callback, is not taken for the
// file's: it panics on, as it would unmapped. (A nil dereference would not
// tell: the runtime reports faults below 4096 without their address.)
func TestEachMappedOtherFault(t *testing.T) {
	_, uri := bigDB(t, 10)
	// A page kept reserved but unreadable: no map can take its place.
	none, err := syscall.Mmap(-1, 0, 4096, syscall.PROT_NONE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(none)
	p := &none[0]
	started := make(chan error, 1)
	defer func() {
		<-started
		a, ok := recover().(interface{ Addr() uintptr })
		if !ok || a.Addr() != uintptr(unsafe.Pointer(p)) {
			t.Errorf("a fault in the callback at %p: recovered %v, want its panic", p, a)
		}
	}()
	err = Each(context.Background(), uri, `SELECT id FROM t`, nil, true, started, func(s *Stmt) error {
		if *p == 0 {
			return nil
		}
		return nil
	})
	t.Errorf("Each returned %v, want a panic", err)
}
