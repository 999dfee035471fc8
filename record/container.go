//go:build linux && (amd64 || arm64)

package record

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dnsrec/dnsrec/bpf"
)

// Container identity. The kernel gives each message the
// cgroup v2 id of its process; a cgroup v2 id is the inode number of the
// cgroup's directory, so walking the cgroup2 mount names it. Container
// runtimes name their cgroups after the container: the id is parsed from
// the path. On a hybrid host (cgroup v1 controllers beside a v2 tree that
// runtimes may not use) the v1 paths in /proc/PID/cgroup are read too,
// while the process lives.

// containerPatterns match one component of a cgroup path; the first
// submatch is the container id.
var containerPatterns = []*regexp.Regexp{
	regexp.MustCompile(`^docker-([0-9a-f]{64})\.scope$`),         // docker, systemd cgroup driver
	regexp.MustCompile(`^cri-containerd-([0-9a-f]{64})\.scope$`), // containerd (Kubernetes CRI), systemd driver
	regexp.MustCompile(`^crio-([0-9a-f]{64})\.scope$`),           // CRI-O
	regexp.MustCompile(`^libpod-([0-9a-f]{64})\.scope$`),         // podman
	regexp.MustCompile(`^([0-9a-f]{64})$`),                       // cgroupfs driver: /docker/<id>, /kubepods/.../<id>
	regexp.MustCompile(`^machine-(.+)\.scope$`),                  // systemd-nspawn, machinectl: the machine name
	regexp.MustCompile(`^systemd-nspawn@(.+)\.service$`),         // systemd-nspawn as a service
}

// ContainerOf parses a container id (or a systemd machine name) from a
// cgroup path; "" if the path is not a container's. The innermost match
// wins: a container inside a pod, or nested runtimes.
func ContainerOf(path string) string {
	parts := strings.Split(path, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		for _, re := range containerPatterns {
			if m := re.FindStringSubmatch(parts[i]); m != nil {
				return unescapeSystemd(m[1])
			}
		}
	}
	return ""
}

// unescapeSystemd undoes systemd's \xNN escapes in unit names
// (machine-my\x2dbox.scope is the machine my-box).
func unescapeSystemd(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// cgroupNames maps cgroup v2 ids to paths, relative to the cgroup2 root
// ("/system.slice/docker-<id>.scope").
type cgroupNames struct {
	root     string // "" when no cgroup2 is mounted
	byID     map[uint64]string
	lastWalk time.Time
	procRoot string
}

// cgroupWalkEvery bounds how often an unknown id makes the tree be walked
// again (a cgroup made since the last walk; or one already gone).
const cgroupWalkEvery = time.Second

func newCgroupNames(procRoot string) *cgroupNames {
	c := &cgroupNames{byID: map[uint64]string{}, procRoot: procRoot}
	if f, err := os.Open(procRoot + "/self/mountinfo"); err == nil {
		c.root, _ = bpf.FindCgroup2(bufio.NewScanner(f))
		f.Close()
	}
	return c
}

// of returns the cgroup path of id and the container parsed from it (or,
// failing that, from the v1 paths of the live process pid).
func (c *cgroupNames) of(pid uint32, id uint64) (path, container string) {
	if id != 0 && c.root != "" {
		p, ok := c.byID[id]
		if !ok && time.Since(c.lastWalk) >= cgroupWalkEvery {
			c.walk()
			p, ok = c.byID[id]
		}
		if ok {
			path = p
		}
	}
	if container = ContainerOf(path); container != "" {
		return path, container
	}
	b, err := os.ReadFile(c.procRoot + "/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
	if err != nil {
		return path, ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		// "4:memory:/docker/<id>", "0::/system.slice/..."
		if f := strings.SplitN(line, ":", 3); len(f) == 3 {
			if container = ContainerOf(f[2]); container != "" {
				return path, container
			}
		}
	}
	return path, ""
}

// walk reads the whole cgroup2 tree: each directory's inode is its id.
func (c *cgroupNames) walk() {
	c.lastWalk = time.Now()
	if len(c.byID) > 100_000 {
		clear(c.byID)
	}
	filepath.WalkDir(c.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			rel := strings.TrimPrefix(p, c.root)
			if rel == "" {
				rel = "/"
			}
			c.byID[st.Ino] = rel
		}
		return nil
	})
}
