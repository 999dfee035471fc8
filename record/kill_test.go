//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestCLISIGKILLUnderLoad kills the recorder with SIGKILL while it records a
// steady load. Everything committed before (a first burst, given time to be
// committed) must be in the file, the file must pass integrity_check, and
// the query CLI must answer from it as it is: with its -wal and without the
// indexes a clean stop builds.
func TestCLISIGKILLUnderLoad(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const committed, inflight = "committed.kill.test", "inflight.kill.test"
	startServer(t, committed, inflight)
	path := filepath.Join(dir, "case.db")

	rec := startRecorderCLI(t, bin, "record", "-o", path)

	// load sends queries for name from workers until stop is closed or n
	// exchanges have completed, and returns how many completed.
	load := func(name string, n int64, stop <-chan struct{}) int64 {
		return exchanges(name, 0, func(done int64) bool {
			select {
			case <-stop:
				return false
			default:
				return done < n
			}
		})
	}

	sent := load(committed, 1500, nil)
	// The first burst is committed before the kill, and a checkpoint has
	// copied it into case.db, which must then verify without its -wal.
	waitUntil(t, 10*time.Second, "the first burst committed", countAtLeast(path, 4*sent, `SELECT count(*) FROM messages WHERE qname = ?`, committed))
	// A checkpoint must have copied the burst into case.db, and be over,
	// before the kill: one the kill interrupts leaves case.db torn without
	// its -wal (SQLite writes the pages in place). So wait until a copy of
	// case.db alone holds the burst and verifies; the next timed
	// checkpoint starts checkpointEvery after that one began.
	aloneDir := t.TempDir()
	waitUntil(t, 20*time.Second, "a checkpoint of the first burst into case.db", func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		c := filepath.Join(aloneDir, "probe.db")
		if err := os.WriteFile(c, b, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "query", "who-resolved", committed, "--exact", "--db", c, "--format", "csv").Output()
		if err != nil || !bytes.Contains(out, []byte(","+strconv.FormatInt(sent, 10)+",")) {
			return false
		}
		return exec.Command(bin, "query", "verify", "--db", c).Run() == nil
	})
	stop := make(chan struct{})
	var second atomic.Int64
	go func() { second.Store(load(inflight, 1<<40, stop)) }()
	time.Sleep(300 * time.Millisecond)
	if err := rec.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	rec.wait()
	close(stop)

	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Errorf("no -wal after SIGKILL (%v): was the file closed cleanly?", err)
	}
	db := openRO(t, path)
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	// Each exchange is four observations: the client's send, the
	// server's receipt, its answer, the client's receipt.
	var got int64
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = ?`, committed).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != 4*sent {
		t.Errorf("%d observations of %s in the killed recording, want 4 x %d exchanges = %d\n%s", got, committed, sent, 4*sent, rec.logText())
	}
	var stopped *int64
	if err := db.QueryRow(`SELECT stopped_ns FROM sessions`).Scan(&stopped); err != nil || stopped != nil {
		t.Errorf("sessions.stopped_ns = %v, %v: want NULL after SIGKILL", stopped, err)
	}
	var inflightRows int64
	db.QueryRow(`SELECT count(*) FROM messages WHERE qname = ?`, inflight).Scan(&inflightRows)
	t.Logf("killed: %d of %d first-burst observations kept; %d of %d in-flight ones", got, 4*sent, inflightRows, 4*second.Load())
	db.Close()

	// The CLI answers from the file as the kill left it.
	out, err := exec.Command(bin, "query", "who-resolved", committed, "--exact", "--db", path, "--format", "csv").Output()
	if err != nil {
		t.Fatalf("who-resolved on the killed recording: %v", err)
	}
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("who-resolved on the killed recording: %q (%v), want one row", out, err)
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	if r := rows[1]; r[col["pid"]] != strconv.Itoa(os.Getpid()) || r[col["count"]] != strconv.FormatInt(sent, 10) {
		t.Errorf("who-resolved row %q: want pid %d and count %d", r, os.Getpid(), sent)
	}

	// The hash chain of the killed file holds: everything committed is as
	// committed, and the chain simply ends before a stop.
	vout, err := exec.Command(bin, "query", "verify", "--db", path, "--format", "csv").Output()
	if err != nil {
		t.Fatalf("verify on the killed recording: %v\n%s", err, vout)
	}
	if !bytes.Contains(vout, []byte("ok, not stopped cleanly")) {
		t.Errorf("verify on the killed recording: %s", vout)
	}

	// A responder who copies only case.db still gets a dnsrec file, as
	// far as the last checkpoint, that verifies and says what is missing.
	alone := filepath.Join(t.TempDir(), "case.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "query", "verify", "--db", alone, "--format", "csv")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	vout, err = cmd.Output()
	if err != nil || !bytes.Contains(vout, []byte("ok, not stopped cleanly")) {
		t.Errorf("verify on the .db without its -wal: %v\n%s%s", err, vout, stderr.String())
	}
	if !bytes.Contains(stderr.Bytes(), []byte("no case.db-wal beside it")) {
		t.Errorf("no warning that the -wal is missing: %q", stderr.String())
	}
}

// TestCLIStopWithReader: an analyst's reader holding the file open with a
// read transaction at the stop must not make it fail. The recorder stops,
// prints the hash of the .db and of the -wal it had to leave, and the two
// together verify.
func TestCLIStopWithReader(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	startServer(t, "reader.kill.test")
	path := filepath.Join(dir, "case.db")
	rec := startRecorderCLI(t, bin, "record", "-o", path)
	q := new(dns.Msg)
	q.SetQuestion("reader.kill.test.", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, "127.0.0.1:53"); err != nil {
		t.Fatal(err)
	}
	// Committed, so that the reader has something to read.
	waitUntil(t, 10*time.Second, "the exchange committed", countAtLeast(path, 1, `SELECT count(*) FROM msgs`))
	reader := openRO(t, path)
	tx, err := reader.Begin()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tx.QueryRow(`SELECT count(*) FROM msgs`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := rec.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(); err != nil {
		t.Fatalf("the stop failed with a reader present: %v\n%s", err, rec.logText())
	}
	tx.Rollback()
	reader.Close()
	out := rec.stdout.String()
	for _, f := range []string{path, path + "-wal"} {
		if !bytes.Contains([]byte(out), []byte("  "+f+"\n")) {
			t.Errorf("stdout %q does not give the hash of %s", out, f)
		}
	}
	vout, err := exec.Command(bin, "query", "verify", "--db", path, "--format", "csv").Output()
	if err != nil || !bytes.Contains(vout, []byte(",ok,")) {
		t.Errorf("verify after a stop with a reader: %v\n%s", err, vout)
	}
}
