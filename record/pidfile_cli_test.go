//go:build linux && (amd64 || arm64)

package record_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCLIPIDFile: record --pidfile writes the recorder's own pid once it
// runs, and removes the file at the clean stop.
func TestCLIPIDFile(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	pidfile := filepath.Join(dir, "dnsrec.pid")
	rec := startRecorderCLI(t, bin, "record", "-o", filepath.Join(dir, "case.db"), "--pidfile", pidfile, "--status-interval", "0")
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatalf("while recording: %v", err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.Itoa(rec.cmd.Process.Pid) {
		t.Errorf("pid file holds %q, the recorder is %d", got, rec.cmd.Process.Pid)
	}
	stopRecorder(t, rec)
	if _, err := os.Stat(pidfile); !os.IsNotExist(err) {
		t.Errorf("after the stop: %v", err)
	}
}
