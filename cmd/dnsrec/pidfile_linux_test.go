package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPIDFile: the file holds this pid and goes at remove; hostile or busy
// paths are refused before anything is written.
func TestPIDFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "dnsrec.pid")
	pf, err := writePIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("pid file holds %q", b)
	}
	// Held by a running process (this one): refused, and left alone.
	if _, err := writePIDFile(path); err == nil || !strings.Contains(err.Error(), "which is running") {
		t.Errorf("second writer: %v", err)
	}
	pf.remove()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after remove: %v", err)
	}

	// A stale one (no such process) is replaced.
	if err := os.WriteFile(path, []byte("4194304\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pf, err = writePIDFile(path)
	if err != nil {
		t.Fatalf("stale pid file: %v", err)
	}
	pf.remove()

	// A symbolic link is not followed, whatever it names.
	target := filepath.Join(dir, "victim")
	os.WriteFile(target, []byte("precious"), 0o644)
	link := filepath.Join(dir, "link.pid")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if _, err := writePIDFile(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symlink: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the link's target was written: %q", b)
	}
	// A directory anyone can write in, without the sticky bit.
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	os.Chmod(open, 0o777)
	if _, err := writePIDFile(filepath.Join(open, "x.pid")); err == nil || !strings.Contains(err.Error(), "writable by every user") {
		t.Errorf("world-writable dir: %v", err)
	}
	// Not a regular file.
	if _, err := writePIDFile(dir); err == nil {
		t.Error("a directory as the pid file: no error")
	}
	// Replaced by someone else after the write: remove leaves theirs.
	pf, err = writePIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	time.Sleep(20 * time.Millisecond) // a later change time, on coarse clocks too
	os.WriteFile(path, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644)
	pf.remove()
	if _, err := os.Stat(path); err != nil {
		t.Errorf("remove took a file it did not write: %v", err)
	}
}
