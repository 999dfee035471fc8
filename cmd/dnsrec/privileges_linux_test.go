//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestMissingPrivileges(t *testing.T) {
	all := uint64(1)<<capBPF | 1<<capPerfmon | 1<<capNetAdmin
	for _, tc := range []struct {
		euid int
		eff  uint64
		want string // "" for none
	}{
		{0, ^uint64(0), ""},
		{1000, all, ""},
		{1000, 1<<capSysAdmin | 1<<capNetAdmin, ""},
		{1000, 0, "lacks CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN) and CAP_NET_ADMIN"},
		{1000, 1<<capBPF | 1<<capNetAdmin, "lacks CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN)."},
		{1000, 1<<capBPF | 1<<capPerfmon, "lacks CAP_NET_ADMIN"},
		{0, 1 << capSysAdmin, "this root lacks them"},
	} {
		err := missingPrivileges(tc.euid, tc.eff)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("euid %d caps %x: %v", tc.euid, tc.eff, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "record needs root")):
			t.Errorf("euid %d caps %x: %v, want %q", tc.euid, tc.eff, err, tc.want)
		}
	}
}

// TestRecordNotRoot runs record as nobody: the first and only error says
// what it needs, not the memlock failure it would meet next.
func TestRecordNotRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as nobody")
	}
	dir := t.TempDir()
	// t.TempDir's parent is the test's own; nobody must reach the copy.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary's own directory is root's alone: copy it.
	bin := filepath.Join(dir, "dnsrec.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	src.Close()
	dst.Close()
	cmd := exec.Command(bin, "-test.run=^TestMainHelper$", "--", "record", "-o", filepath.Join(dir, "case.db"))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if _, ok := err.(*exec.ExitError); !ok {
		t.Fatalf("%v (stderr %s)", err, stderr.String())
	}
	if !strings.HasPrefix(stderr.String(), "dnsrec: record needs root, or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN") || strings.Contains(stderr.String(), "memlock") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "case.db")); err == nil {
		t.Error("case.db created")
	}
}
