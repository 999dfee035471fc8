//go:build linux

package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

type cpioFile struct {
	mode, rmaj, rmin uint32
	data             string
}

// readNewc is an independent newc reader for the round trip.
func readNewc(t *testing.T, b []byte) map[string]cpioFile {
	t.Helper()
	files := map[string]cpioFile{}
	off := 0
	align := func() { off = (off + 3) &^ 3 }
	for {
		if off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		field := func(i int) uint32 {
			v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
			if err != nil {
				t.Fatal(err)
			}
			return uint32(v)
		}
		mode, size, rmaj, rmin, nsize := field(1), field(6), field(9), field(10), field(11)
		off += 110
		name := string(b[off : off+int(nsize)-1])
		off += int(nsize)
		align()
		data := string(b[off : off+int(size)])
		off += int(size)
		align()
		if name == "TRAILER!!!" {
			return files
		}
		files[name] = cpioFile{mode, rmaj, rmin, data}
	}
}

func TestInitramfsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "bin")
	if err := os.WriteFile(src, []byte("hello world"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	err := writeInitramfs(&buf, []cpioEntry{
		{name: "dev/console", mode: 0o600, char: true, major: 5, minor: 1},
		{name: "/init", mode: 0o755, src: src},
		{name: "/a/b/c.txt", mode: 0o644, data: []byte("xyz")},
	})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&buf)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	got := readNewc(t, raw)
	want := map[string]cpioFile{
		"dev":         {sIFDIR | 0o755, 0, 0, ""},
		"dev/console": {sIFCHR | 0o600, 5, 1, ""},
		"init":        {sIFREG | 0o755, 0, 0, "hello world"},
		"a":           {sIFDIR | 0o755, 0, 0, ""},
		"a/b":         {sIFDIR | 0o755, 0, 0, ""},
		"a/b/c.txt":   {sIFREG | 0o644, 0, 0, "xyz"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("archive:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseRun(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want runSpec
		bad  bool
	}{
		{in: "fentry=-test.run TestX -tier fentry", want: runSpec{"fentry", []string{"-test.run", "TestX", "-tier", "fentry"}}},
		{in: `json=["a b", "c"]`, want: runSpec{"json", []string{"a b", "c"}}},
		{in: "empty=", want: runSpec{"empty", []string{}}},
		{in: "noequals", bad: true},
		{in: "bad label=x", bad: true},
	} {
		got, err := parseRun(tc.in)
		if (err != nil) != tc.bad {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.bad && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v want %+v", tc.in, got, tc.want)
		}
	}
}

func TestMarkers(t *testing.T) {
	m := reResult.FindStringSubmatch("[  1.0] junk VMTEST-RESULT: exit=3 id=abc123\r")
	if m == nil || m[1] != "3" || m[2] != "abc123" {
		t.Fatalf("result marker: %q", m)
	}
	if m := reUnsupported.FindStringSubmatch("VMTEST-UNSUPPORTED: no fentry"); m == nil || m[1] != "no fentry" {
		t.Fatalf("unsupported marker: %q", m)
	}
}

func TestEncodeList(t *testing.T) {
	if got := encodeList(nil); got != "W10" { // base64url("[]")
		t.Fatalf("got %q", got)
	}
}

func TestHostEnv(t *testing.T) {
	got := hostEnv([]string{"DNSREC_BIN=/dnsrec", "OTHER=/x", "PLAIN=1"},
		[]string{"/cache/dnsrec-{arch}:/dnsrec", "/cache/x.bin"}, "amd64")
	want := []string{"DNSREC_BIN=/cache/dnsrec-amd64", "OTHER=/x", "PLAIN=1"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("hostEnv = %q, want %q", got, want)
	}
}

// TestStallRetry: a guest that reports a soft lockup and then hangs is
// killed after the grace period and booted once more; the second boot's
// result counts, the first log is kept, and the reason says what happened.
// A guest that stalls twice fails.
func TestStallRetry(t *testing.T) {
	dir := t.TempDir()
	qemu := filepath.Join(dir, "qemu")
	// A fake qemu: reports in with the id from -append, then stalls on
	// each boot while the file "stalls" holds boots left to stall.
	script := `#!/bin/sh
id=$(echo "$*" | sed -n 's/.*vmtest.id=\([^ ]*\).*/\1/p')
echo "VMTEST-BOOT: ready id=$id"
n=$(cat "` + dir + `/stalls")
if [ "$n" -gt 0 ]; then
	echo $((n - 1)) > "` + dir + `/stalls"
	echo "[   28.5] watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [test.bin:97]"
	echo "[   28.5] Call Trace:"
	exec sleep 60
fi
echo "=== RUN   TestX"
echo "VMTEST-RESULT: exit=0 id=$id"
`
	if err := os.WriteFile(qemu, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &config{logDir: dir, qemu: qemu, accel: "tcg", smp: 1, mem: 64, timeout: 30 * time.Second, stallGrace: 500 * time.Millisecond}
	k := kernel{Label: "fake", Version: "fake", Path: "/dev/null", Arch: "amd64"}
	for _, tc := range []struct {
		stalls     string
		wantStatus string
	}{{"1", statusPassed}, {"2", statusError}} {
		if err := os.WriteFile(filepath.Join(dir, "stalls"), []byte(tc.stalls), 0o644); err != nil {
			t.Fatal(err)
		}
		o := runVM(c, k, runSpec{Label: "run" + tc.stalls}, "/dev/null")
		if o.Status != tc.wantStatus || !strings.Contains(o.Reason, "the first stalled") || !strings.Contains(o.Reason, "soft lockup") {
			t.Errorf("%s stalls: status %s reason %q; want %s, the first boot's stall named", tc.stalls, o.Status, o.Reason, tc.wantStatus)
		}
		if _, err := os.Stat(o.Log + ".stall1"); err != nil {
			t.Errorf("%s stalls: first log not kept: %v", tc.stalls, err)
		}
		if ctx := context3(o.Log + ".stall1"); len(ctx) < 2 || !strings.Contains(strings.Join(ctx, "\n"), "Call Trace") {
			t.Errorf("%s stalls: stall report not picked from the log: %q", tc.stalls, ctx)
		}
	}
}
