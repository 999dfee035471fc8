package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestRecordUnsupported(t *testing.T) {
	tests := []struct {
		goos, goarch string
		want         []string // in the message; none: it can record
	}{
		{"linux", "amd64", nil},
		{"linux", "arm64", nil},
		{"darwin", "arm64", []string{"record: ", "needs Linux with eBPF on amd64 or arm64", "this build is darwin/arm64", "`dnsrec query`"}},
		{"darwin", "amd64", []string{"this build is darwin/amd64", "`dnsrec query`"}},
		{"windows", "amd64", []string{"this build is windows/amd64", "`dnsrec query`"}},
		{"linux", "riscv64", []string{"record: ", "no BPF programs for riscv64", "linux/amd64 or linux/arm64 host", "`dnsrec query`"}},
	}
	for _, tt := range tests {
		err := recordUnsupported(tt.goos, tt.goarch)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s/%s: %v, want nil", tt.goos, tt.goarch, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s/%s: nil, want a refusal", tt.goos, tt.goarch)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s/%s: %q does not say %q", tt.goos, tt.goarch, err, w)
			}
		}
	}
	// The message and the build tags of record_linux.go and
	// record_other.go must agree on where recording is built in.
	if err := recordUnsupported(runtime.GOOS, runtime.GOARCH); (err == nil) != canRecord {
		t.Errorf("%s/%s: recordUnsupported says %v, but canRecord is %v", runtime.GOOS, runtime.GOARCH, err, canRecord)
	}
}

// TestRecordHelp: record's help lists all its flags on every platform, the
// ones that cannot record included.
func TestRecordHelp(t *testing.T) {
	r := dnsrec(t, t.TempDir(), nil, "record", "--help")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	for _, f := range recordCommand().Flags {
		if name := "--" + f.Names()[0]; !strings.Contains(r.stdout, name) {
			t.Errorf("help does not list %s:\n%s", name, r.stdout)
		}
	}
	if want := "auto, fentry, kprobe, cgroup"; !strings.Contains(r.stdout, want) {
		t.Errorf("help does not list the tiers %q:\n%s", want, r.stdout)
	}
}

// TestRecordRefuses: where there are no BPF programs, record fails with the
// plain message and creates nothing.
func TestRecordRefuses(t *testing.T) {
	if canRecord {
		t.Skipf("%s/%s can record", runtime.GOOS, runtime.GOARCH)
	}
	dir := t.TempDir()
	r := dnsrec(t, dir, nil, "record", "-o", "case.db", "--hook", "cgroup")
	if r.code != 1 {
		t.Errorf("exit %d, want 1", r.code)
	}
	if want := "dnsrec: " + recordUnsupported(runtime.GOOS, runtime.GOARCH).Error() + "\n"; r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "case.db")); !os.IsNotExist(err) {
		t.Errorf("case.db: %v, want it not created", err)
	}
}

// TestRecordBadSnaplen: a --snaplen out of range is refused before
// anything is created, including one a uint32 would wrap to 0.
func TestRecordBadSnaplen(t *testing.T) {
	if !canRecord {
		t.Skip("this build cannot record")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "case.db")
	for _, v := range []string{"0", "65537", "4294967296"} {
		r := dnsrec(t, dir, nil, "record", "-o", out, "--snaplen", v)
		if r.code == 0 || !strings.Contains(r.stderr, "--snaplen "+v+": must be between 1 and 65536") {
			t.Errorf("--snaplen %s: exit %d, stderr %q", v, r.code, r.stderr)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("--snaplen %s created %s", v, out)
		}
	}
}

// TestRecordBadKernelOptions: --port and --ring-size values the kernel
// options cannot take are refused before anything is created, with the
// flag's value in the message, whether the flag parsing (a value that
// would wrap) or the one validation of the options (record.Run) refuses.
func TestRecordBadKernelOptions(t *testing.T) {
	if !canRecord {
		t.Skip("this build cannot record")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "case.db")
	for _, tc := range []struct{ flag, value, want string }{
		{"--port", "0", "port 0 cannot be captured"},
		{"--port", "70000", "--port 70000: not a port"},
		{"--ring-size", "3", "--ring-size: ring buffer size must be a power of two between 4096 bytes and 1024 MiB, got 3 MiB"},
		{"--ring-size", "0", "--ring-size: ring buffer size must be a power of two between 4096 bytes and 1024 MiB, got 0 MiB"},
		{"--ring-size", "4096", "--ring-size: ring buffer size must be a power of two between 4096 bytes and 1024 MiB, got 4096 MiB"},
		{"--ring-size", "17592186044416", "--ring-size: ring buffer size must be a power of two between 4096 bytes and 1024 MiB, got 18446744073709551615 bytes"},
		{"--memory-limit", "1MiB", "--memory-limit 1MiB: below 8MiB the collector would run all the time; 0 means no limit"},
		{"--memory-limit", "lots", `--memory-limit: "lots" is not a size`},
	} {
		r := dnsrec(t, dir, nil, "record", "-o", out, tc.flag, tc.value)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s %s: exit %d, stderr %q, want %q", tc.flag, tc.value, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%s %s created %s", tc.flag, tc.value, out)
		}
	}
}

// TestRecordBadFlags: the options' rules (record.Options.Validate) and the
// flags' own (a value the option cannot carry, a flag that needs another)
// refuse before anything is created, each naming its flag.
func TestRecordBadFlags(t *testing.T) {
	if !canRecord {
		t.Skip("this build cannot record")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "case.db")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--hook", "xdp"}, `--hook "xdp": unknown tier (want auto, fentry, kprobe, cgroup)`},
		{[]string{"--nice", "20"}, "--nice 20: must be between -20 and 19"},
		{[]string{"--nice", "-21"}, "--nice -21: must be between -20 and 19"},
		{[]string{"--duration", "-1s"}, "--duration -1s: must be positive"},
		{[]string{"--keep", "2"}, "--keep needs --rotate: without rotation there is one file"},
		{[]string{"--rotate", "1h", "--keep", "0"}, "--keep 0: must be at least 1"},
		{[]string{"--rotate", "1h", "--keep", "-1"}, "--keep -1: must be at least 1"},
		{[]string{"--live-format", "json"}, "--live-format needs --live"},
		{[]string{"--live", "--live-format", "yaml"}, `--live-format "yaml": want text or json`},
		{[]string{"--status-interval", "-1s"}, "--status-interval -1s: must be 0 or positive"},
		{[]string{"--rotate", "10ms"}, "--rotate 10ms: rotate at most once a second"},
		{[]string{"--max-size", "lots"}, "--max-size: "},
		{[]string{"--comm", "a-very-long-command-name"}, `--comm "a-very-long-command-name": a command name has 1 to 15 characters`},
	} {
		r := dnsrec(t, dir, nil, append([]string{"record", "-o", out}, tc.args...)...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, r.code, r.stderr, tc.want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Fatalf("%v created %s", tc.args, out)
		}
	}
}
