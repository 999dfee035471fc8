//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// pidFile is record's --pidfile: the recorder's pid, for scripts to stop
// the right process. The recorder runs as root, so the path is treated as
// possibly hostile: a symbolic link is never followed (root writing
// through a link another user planted overwrites what the link names), a
// file that is not a regular file is refused, and so is a directory any
// user may write in without the sticky bit (anyone could swap the file).
// A pid file of a recorder still running is refused; a stale one (its
// process gone) is replaced.
type pidFile struct {
	path string
	info fs.FileInfo
}

func writePIDFile(path string) (*pidFile, error) {
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--pidfile %s: %w", path, err)
	}
	if m := di.Mode(); m&0o002 != 0 && m&fs.ModeSticky == 0 {
		return nil, fmt.Errorf("--pidfile %s: %s is writable by every user and not sticky: anyone could replace the file; use a directory such as /run", path, dir)
	}
	if fi, err := os.Lstat(path); err == nil {
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return nil, fmt.Errorf("--pidfile %s: is a symbolic link; refusing to write through it", path)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("--pidfile %s: exists and is not a regular file", path)
		}
		if pid, ok := readPID(path); ok && processAlive(pid) {
			return nil, fmt.Errorf("--pidfile %s: names pid %d, which is running (another recorder?)", path, pid)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--pidfile %s: stale, and cannot remove it: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("--pidfile %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("--pidfile %s: %w", path, err)
	}
	_, werr := fmt.Fprintf(f, "%d\n", os.Getpid())
	if werr == nil {
		werr = f.Sync()
	}
	fi, serr := f.Stat()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = serr
	}
	if werr != nil {
		os.Remove(path)
		return nil, fmt.Errorf("--pidfile %s: %w", path, werr)
	}
	return &pidFile{path: path, info: fi}, nil
}

// remove deletes the pid file if it is still the one written, holding this
// process's pid: not a file someone put in its place.
func (p *pidFile) remove() {
	if p == nil {
		return
	}
	fi, err := os.Lstat(p.path)
	// Same inode and change time: a file created in its place may get the
	// same inode number back.
	if err != nil || !os.SameFile(fi, p.info) || ctime(fi) != ctime(p.info) {
		return
	}
	if pid, ok := readPID(p.path); ok && pid == os.Getpid() {
		os.Remove(p.path)
	}
}

func ctime(fi fs.FileInfo) syscall.Timespec {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ctim
	}
	return syscall.Timespec{}
}

func readPID(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b)))
	return pid, err == nil && pid > 0
}

// processAlive: signal 0 checks that pid exists; EPERM means it exists
// under another user.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
