//go:build linux && (amd64 || arm64)

package record_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

// perfEventFDs counts this process's perf event file descriptors: each
// attached uprobe holds one.
func perfEventFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && l == "anon_inode:[perf_event]" {
			n++
		}
	}
	return n
}

// TestStopRemovesUprobes: the stop removes the libc and TLS uprobes in
// the background while the file is finished, and Run returns only once
// every one of them is gone: none is left attached to the host's
// libraries after the recorder.
func TestStopRemovesUprobes(t *testing.T) {
	requireRoot(t)
	before := perfEventFDs(t)
	stop := startRecorder(t, filepath.Join(t.TempDir(), "case.db"), record.Options{Hook: bpf.TierCgroup})
	during := perfEventFDs(t)
	if during <= before {
		stop()
		t.Skipf("no uprobe attached (perf event fds %d before, %d while recording): nothing to check", before, during)
	}
	stop()
	if after := perfEventFDs(t); after != before {
		t.Fatalf("perf event fds: %d before the recording, %d while recording, %d after Run returned: uprobes left attached", before, during, after)
	}
	t.Logf("perf event fds: %d before, %d while recording, %d after", before, during, before)
}
