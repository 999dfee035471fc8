//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// verifyCLI runs `dnsrec query verify` and returns its exit code and stderr.
func verifyCLI(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"query", "verify"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, stderr.String()
}

func countCheckpoints(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("dnsrec-checkpoint "))
}

// TestCLIAnchorStopAndKill: the recorder with --anchor file: sends signed
// checkpoints while it records. Stopped cleanly, its file matches them all
// and the first key it logged is the session's; killed with SIGKILL, verify
// alone passes a file that just did not stop cleanly, and verify --anchors
// reports that the checkpoints end without a stop, since the last one.
func TestCLIAnchorStopAndKill(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const name = "anchor.kill.test"
	startServer(t, name)

	// A clean stop.
	path, anchors := filepath.Join(dir, "clean.db"), filepath.Join(dir, "clean.anchor")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0", "--anchor", "file:"+anchors, "--checkpoint-every", "1s")
	m := regexp.MustCompile(`first_key=(\S+)`).FindStringSubmatch(rec.logText())
	if m == nil {
		t.Fatalf("no first key logged:\n%s", rec.logText())
	}
	exchanges(name, 0, func(done int64) bool { return done < 20 })
	waitUntil(t, 10*time.Second, "three checkpoints", func() bool { return countCheckpoints(anchors) >= 3 })
	stopRecorder(t, rec)
	if code, stderr := verifyCLI(t, bin, "--db", path, "--anchors", anchors); code != 0 || !strings.Contains(stderr, "matches ") {
		t.Fatalf("verify --anchors of a clean recording: exit %d\n%s\n%s", code, stderr, rec.logText())
	}
	db := openRO(t, path)
	var key, info string
	if err := db.QueryRow(`SELECT sign_key FROM sessions`).Scan(&key); err != nil || key != m[1] {
		t.Errorf("session sign_key %q (%v), logged %q", key, err, m[1])
	}
	db.QueryRow(`SELECT dest || ' ' || made || ' ' || sent || ' ' || dropped FROM anchors ORDER BY id DESC LIMIT 1`).Scan(&info)
	if !strings.HasPrefix(info, "file:"+anchors+" ") || strings.HasSuffix(info, " 0 0 0") || !strings.HasSuffix(info, " 0") {
		t.Errorf("anchors row %q", info)
	}
	db.Close()

	// A kill.
	path, anchors = filepath.Join(dir, "killed.db"), filepath.Join(dir, "killed.anchor")
	rec = startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0", "--anchor", "file:"+anchors, "--checkpoint-every", "1s")
	exchanges(name, 0, func(done int64) bool { return done < 20 })
	waitUntil(t, 10*time.Second, "three checkpoints", func() bool { return countCheckpoints(anchors) >= 3 })
	if err := rec.cmd.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	rec.wait()
	code, stderr := verifyCLI(t, bin, "--db", path)
	if code != 0 || !strings.Contains(stderr, "only internal consistency was checked") {
		t.Fatalf("verify alone of the killed recording: exit %d\n%s", code, stderr)
	}
	code, stderr = verifyCLI(t, bin, "--db", path, "--anchors", anchors)
	last := regexp.MustCompile(`time=(\S+) reason=periodic`).FindAllStringSubmatch(func() string { b, _ := os.ReadFile(anchors); return string(b) }(), -1)
	if code != 1 || len(last) == 0 || !strings.Contains(stderr, "without a stop: the recorder was killed, or cut off from its anchors, after "+last[len(last)-1][1]) {
		t.Fatalf("verify --anchors of the killed recording: exit %d\n%s", code, stderr)
	}
}

// TestCLIAnchorRotation: with --rotate, each file of the series has its
// own checkpoints in one key chain: the last of a part after its stop link,
// the first of the next after its session. Every file verifies against
// the anchors.
func TestCLIAnchorRotation(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const name = "anchor.rotate.test"
	startServer(t, name)
	path, anchors := filepath.Join(dir, "case.db"), filepath.Join(dir, "case.anchor")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0", "--anchor", "file:"+anchors,
		"--checkpoint-every", "1s", "--rotate", "2s")
	exchanges(name, 0, func(done int64) bool { return done < 20 })
	waitUntil(t, 20*time.Second, "a third file", func() bool {
		_, err := os.Stat(filepath.Join(dir, "case-0003.db"))
		return err == nil
	})
	stopRecorder(t, rec)
	files, _ := filepath.Glob(filepath.Join(dir, "case-*.db"))
	if len(files) < 3 {
		t.Fatalf("files %v", files)
	}
	b, _ := os.ReadFile(anchors)
	for _, reason := range []string{"reason=start", "reason=rotate", "reason=stop", "part=1 ", "part=3 "} {
		if !bytes.Contains(b, []byte(reason)) {
			t.Errorf("no checkpoint with %s:\n%s", reason, b)
		}
	}
	args := []string{"--anchors", anchors}
	for _, f := range files {
		args = append(args, "--db", f)
	}
	if code, stderr := verifyCLI(t, bin, args...); code != 0 || strings.Count(stderr, "matches ") != len(files) {
		t.Fatalf("verify --anchors of the series: exit %d\n%s\n%s", code, stderr, rec.logText())
	}
}
