//go:build linux

package bpf

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// CgroupV2Root returns the mount point of the cgroup v2 hierarchy, read from
// /proc/self/mountinfo: /sys/fs/cgroup on most hosts, /sys/fs/cgroup/unified
// on hybrid ones. If none is mounted, it mounts a private one in a temporary
// directory and returns a cleanup that unmounts it.
func CgroupV2Root() (string, func() error, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", nil, fmt.Errorf("find cgroup2 mount: %w", err)
	}
	defer f.Close()
	if p, ok := FindCgroup2(bufio.NewScanner(f)); ok {
		return p, func() error { return nil }, nil
	}
	dir, err := os.MkdirTemp("", "dnsrec-cgroup2-")
	if err != nil {
		return "", nil, fmt.Errorf("mount private cgroup2: %w", err)
	}
	if err := unix.Mount("cgroup2", dir, "cgroup2", 0, ""); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("no cgroup2 mounted and mounting one at %s failed: %w", dir, err)
	}
	return dir, func() error {
		if err := unix.Unmount(dir, 0); err != nil {
			return fmt.Errorf("unmount private cgroup2 %s: %w", dir, err)
		}
		return os.Remove(dir)
	}, nil
}

// FindCgroup2 scans mountinfo lines: "36 35 98:0 / /mnt rw,noatime - cgroup2 cgroup2 rw".
func FindCgroup2(s *bufio.Scanner) (string, bool) {
	for s.Scan() {
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) == 0 || fs[0] != "cgroup2" {
			continue
		}
		fields := strings.Fields(pre)
		if len(fields) < 5 || fields[3] != "/" {
			continue // a bind mount of a sub-tree does not see every process
		}
		return unescapeMountPath(fields[4]), true
	}
	return "", false
}

// unescapeMountPath undoes mountinfo's octal escapes (\040 for space).
func unescapeMountPath(p string) string {
	if !strings.Contains(p, `\`) {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] == '\\' && i+3 < len(p) {
			var c byte
			if _, err := fmt.Sscanf(p[i+1:i+4], "%3o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(p[i])
	}
	return b.String()
}
