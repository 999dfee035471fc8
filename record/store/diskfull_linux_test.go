package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestStoreDiskFull fills a small tmpfs: the write that fails says the disk
// is full, and every batch committed before it can still be read. With small
// batches the commit is what fails; with large messages in a large batch,
// SQLite spills its page cache into the WAL in the middle of the batch and
// an insert fails first.
func TestStoreDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root: run `sudo go test ./record/store/`")
	}
	tests := []struct {
		name      string
		rawLen    int
		batch     int
		tmpfsSize string
		step      string // the step of Commit that must fail
	}{
		// An empty file (schema v15) and its WAL take most of the 576k.
		{name: "commit fails", rawLen: 400, batch: 10, tmpfsSize: "576k", step: ": commit: "},
		// 12 MB in one batch overflows the 4 MiB page cache, which spills
		// into the WAL in the middle of the batch.
		{name: "insert fails", rawLen: 4000, batch: 3000, tmpfsSize: "6m", step: ": write message: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { testDiskFull(t, tc.rawLen, tc.batch, tc.tmpfsSize, tc.step) })
	}
}

func testDiskFull(t *testing.T, rawLen, batch int, size, step string) {
	dir := t.TempDir()
	// TestMain runs root tests in a private mount namespace, so the mount
	// is the test's own.
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size="+size+",mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	ctx := context.Background()
	path := filepath.Join(dir, "full.db")
	s := createStore(t, path)
	_, dig := insertSample(t, s)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	committed := 3

	raw := make([]byte, rawLen)
	for i := range raw {
		raw[i] = byte(i*131 + i>>3) // poorly compressible, not that SQLite compresses
	}
	var failure error
	pending := 0
	for i := 0; i < 100_000 && failure == nil; i++ {
		m := oneSide(true, int64(i), "udp", fmt.Sprintf("10.0.0.2:%d", uint16(i)), "192.0.2.53:53", 0, dig, sampleIdent, raw, len(raw))
		m.DNS = ParseDNS(sampleQuery)
		if err := s.InsertMessage(ctx, m); err != nil {
			failure = err
			break
		}
		pending++
		if pending == batch {
			if err := s.Commit(); err != nil {
				failure = err
				break
			}
			committed += pending
			pending = 0
		}
	}
	if failure == nil {
		t.Fatalf("filled 100000 messages into a %s tmpfs without an error", size)
	}
	t.Logf("failed after %d committed messages: %v", committed, failure)
	if !strings.Contains(failure.Error(), "the disk is full") {
		t.Errorf("error does not say the disk is full: %v", failure)
	}
	if !strings.Contains(failure.Error(), step) {
		t.Errorf("error %q: want the failure in step %q", failure, step)
	}
	s.Rollback()
	_, ferr := s.Finish(ctx, 1)
	t.Logf("Finish on a full disk: %v", ferr)

	db := openRO(t, path)
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil {
		t.Fatalf("read after the disk filled: %v", err)
	}
	if n != committed {
		t.Errorf("%d messages readable, %d were committed", n, committed)
	}
	var whole int
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE length(raw) = ? AND qname = 'www.evil.example'`, rawLen).Scan(&whole); err != nil {
		t.Fatal(err)
	}
	if whole != committed-3 {
		t.Errorf("%d filler messages intact, %d were committed", whole, committed-3)
	}
}

// TestCreateDiskFull: a disk too full for the schema leaves no file behind
// that would block the next try as "not a dnsrec database".
func TestCreateDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root: run `sudo go test ./record/store/`")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=32k,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, "case.db")
	s, err := Create(context.Background(), path, false)
	if err == nil {
		s.Finish(context.Background(), 1)
		t.Fatal("created an evidence file in 32 KiB")
	}
	if !strings.Contains(err.Error(), "create schema") {
		t.Errorf("error %q: want it to say the schema could not be written", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("left behind %v", ents)
	}
}
