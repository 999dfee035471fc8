//go:build linux

package main

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// An initramfs entry. Exactly one of src (a host file), dir or char is used.
type cpioEntry struct {
	name         string // path inside the archive, without a leading slash
	mode         uint32 // permission bits
	src          string // regular file: host path to copy
	data         []byte // regular file: contents (when src is empty)
	dir          bool
	char         bool // character device
	major, minor uint32
}

const (
	sIFDIR = 0o040000
	sIFREG = 0o100000
	sIFCHR = 0o020000
)

// writeInitramfs writes entries as a gzip-compressed cpio "newc" archive,
// the format the kernel unpacks into its rootfs. Parent directories are added
// automatically. Owned by root, mtime 0.
func writeInitramfs(w io.Writer, entries []cpioEntry) error {
	all := map[string]cpioEntry{}
	for _, e := range entries {
		e.name = strings.TrimPrefix(path.Clean("/"+e.name), "/")
		if e.name == "" {
			continue
		}
		for d := path.Dir(e.name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = cpioEntry{name: d, mode: 0o755, dir: true}
			}
		}
		all[e.name] = e
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names) // parents before children

	zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<20)
	cw := &cpioWriter{w: bw}
	ino := uint32(1)
	for _, n := range names {
		e := all[n]
		ino++
		switch {
		case e.dir:
			err = cw.header(ino, sIFDIR|e.mode, 2, 0, 0, 0, n)
		case e.char:
			err = cw.header(ino, sIFCHR|e.mode, 1, 0, e.major, e.minor, n)
		default:
			err = cw.file(ino, e)
		}
		if err != nil {
			return fmt.Errorf("initramfs %s: %w", n, err)
		}
	}
	if err := cw.header(0, 0, 1, 0, 0, 0, "TRAILER!!!"); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return zw.Close()
}

type cpioWriter struct {
	w   io.Writer
	off int64
}

func (c *cpioWriter) write(b []byte) error {
	n, err := c.w.Write(b)
	c.off += int64(n)
	return err
}

func (c *cpioWriter) pad() error {
	if r := c.off % 4; r != 0 {
		return c.write(make([]byte, 4-r))
	}
	return nil
}

func (c *cpioWriter) header(ino, mode, nlink uint32, size int64, rmaj, rmin uint32, name string) error {
	if size > 0xffffffff {
		return fmt.Errorf("file too large for cpio newc (%d bytes)", size)
	}
	h := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		ino, mode, 0, 0, nlink, 0, uint32(size), 0, 0, rmaj, rmin, len(name)+1, 0)
	if err := c.write([]byte(h)); err != nil {
		return err
	}
	if err := c.write(append([]byte(name), 0)); err != nil {
		return err
	}
	return c.pad()
}

func (c *cpioWriter) file(ino uint32, e cpioEntry) error {
	var r io.Reader
	var size int64
	if e.src != "" {
		f, err := os.Open(e.src)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", e.src)
		}
		r, size = f, st.Size()
	} else {
		r, size = strings.NewReader(string(e.data)), int64(len(e.data))
	}
	if err := c.header(ino, sIFREG|e.mode, 1, size, 0, 0, e.name); err != nil {
		return err
	}
	n, err := io.Copy(writerFunc(c.write), r)
	if err != nil {
		return err
	}
	if n != size {
		return fmt.Errorf("%s changed size while archiving", e.src)
	}
	return c.pad()
}

type writerFunc func([]byte) error

func (f writerFunc) Write(b []byte) (int, error) {
	if err := f(b); err != nil {
		return 0, err
	}
	return len(b), nil
}
