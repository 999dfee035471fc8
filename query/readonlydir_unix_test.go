//go:build unix

package query_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// The read-only directory test runs as an unprivileged user: root may write
// into a mode 0555 directory anyway, which would hide the very failure the
// test is about. As root it re-executes this test binary as nobody, with the
// prepared directory in roDirEnv.
const roDirEnv = "DNSREC_TEST_READONLY_DIR"

// Files of the read-only directory, and what opening them must do.
var readOnlyDirCases = []struct {
	name string
	rows int   // rows for who-resolved evil.com
	err  error // or this error
}{
	// Clean recorder output. mode=ro cannot create the -shm a WAL-mode file
	// wants; with no -wal, immutable=1 reads the file exactly.
	{name: "closed.db", rows: 5},
	// A live copy with -wal but no -shm: mode=ro cannot create the -shm,
	// and immutable=1 would drop the -wal's rows. Refused.
	{name: "walonly.db", err: query.ErrWALUnreadable},
	// A live copy with its -wal and -shm: SQLite reads a read-only -shm.
	{name: "walshm.db", rows: 5},
	// A file this user may not read: permission denied, said plainly.
	{name: "noread.db", err: fs.ErrPermission},
}

func TestReadOnlyDirectory(t *testing.T) {
	if dir := os.Getenv(roDirEnv); dir != "" {
		checkReadOnlyDir(t, dir) // the re-executed child
		return
	}
	dir := filepath.Join(t.TempDir(), "evidence")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	incident(t, dir, "closed.db", "web01")
	live := filepath.Join(t.TempDir(), "live.db")
	b := querytest.New(t, live)
	querytest.Incident(b, "web01")
	copyFile(t, live, filepath.Join(dir, "walonly.db"))
	copyFile(t, live+"-wal", filepath.Join(dir, "walonly.db-wal"))
	copyFile(t, live, filepath.Join(dir, "walshm.db"))
	copyFile(t, live+"-wal", filepath.Join(dir, "walshm.db-wal"))
	copyFile(t, live+"-shm", filepath.Join(dir, "walshm.db-shm"))
	b.Close()
	copyFile(t, filepath.Join(dir, "closed.db"), filepath.Join(dir, "noread.db"))
	if err := os.Chmod(filepath.Join(dir, "noread.db"), 0); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o755) }) // so that TempDir can remove it

	if os.Geteuid() != 0 {
		checkReadOnlyDir(t, dir)
		return
	}

	// Root: let nobody reach the directory and a copy of this binary, and run
	// the check as nobody.
	for d := filepath.Dir(dir); d != filepath.Clean(os.TempDir()) && d != filepath.Dir(d); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil { // t.TempDir makes them 0700
			t.Fatal(err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(filepath.Dir(dir), "query.test")
	copyFile(t, self, bin)
	if err := os.Chmod(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestReadOnlyDirectory$", "-test.v")
	cmd.Env = append(os.Environ(), roDirEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot switch to uid 65534 to get a directory root cannot write to: %v", err)
	}
	if err != nil {
		t.Fatalf("as uid 65534: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestReadOnlyDirectory") {
		t.Fatalf("as uid 65534, the test did not run:\n%s", out)
	}
	t.Logf("as uid 65534:\n%s", out)
}

func checkReadOnlyDir(t *testing.T, dir string) {
	if f, err := os.CreateTemp(dir, "probe"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Fatalf("%s is writable: this test would prove nothing", dir)
	}
	for _, c := range readOnlyDirCases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			if errors.Is(c.err, fs.ErrPermission) {
				_, err := query.Open(context.Background(), []string{p})
				if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "cannot read") {
					t.Fatalf("error %v, want permission denied", err)
				}
				t.Logf("refused as expected: %v", err)
				return
			}
			before := hashes(t, p)
			db, err := query.Open(context.Background(), []string{p})
			if c.err != nil {
				if err == nil {
					db.Close()
					t.Fatalf("no error, want %v", c.err)
				}
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				t.Logf("refused as expected: %v", err)
			} else {
				if err != nil {
					t.Fatal(err)
				}
				rows, err := db.WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(rows) != c.rows {
					t.Errorf("got %d rows, want %d", len(rows), c.rows)
				}
				runEveryQuery(t, db)
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
			sameHashes(t, before, hashes(t, p))
		})
	}
}
