//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat's start time.
// It is 100 on every architecture Linux supports today.
const userHZ = 100

// ticks converts a CLOCK_BOOTTIME start time in ns to /proc's clock ticks,
// the same rounding the kernel applies (nsec_to_clock_t).
func ticks(ns uint64) uint64 { return ns / (1e9 / userHZ) }

// procKey identifies a process for the life of a boot: pids are reused, a
// (pid, start time) pair is not.
type procKey struct {
	pid   uint32
	ticks uint64
}

// procInfo is what the recorder knows of one process image.
type procInfo struct {
	key       procKey
	parent    *procKey
	comm      string
	exe, argv *string
	// exeCut, argvCut: the kernel cut what it captured at exec (nil when
	// exe and argv did not come from exec).
	exeCut, argvCut *bool
	uid, gid        *uint32
	cgroup          *uint64
	execBootNs      uint64
	source          string // exec, procfs, inherited, chain
	exitBootNs      uint64 // 0 while running
	dbID            int64  // 0 until written
}

// procTable is the recorder's process table: exec events, a /proc scan at
// start, and lazily written rows. Only the pipeline goroutine uses it.
type procTable struct {
	procRoot string
	m        map[procKey]*procInfo
}

func newProcTable(procRoot string) *procTable {
	return &procTable{procRoot: procRoot, m: map[procKey]*procInfo{}}
}

// scan adds every process visible in /proc.
func (t *procTable) scan() error {
	ents, err := os.ReadDir(t.procRoot)
	if err != nil {
		return fmt.Errorf("scan processes: %w", err)
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		if info, err := t.readProc(uint32(pid)); err == nil {
			t.m[info.key] = info
		}
	}
	// Link parents now that all start times are known.
	for _, info := range t.m {
		if info.parent == nil || info.parent.ticks != 0 {
			continue
		}
		for k := range t.byPID(info.parent.pid) {
			p := k
			info.parent = &p
		}
	}
	return nil
}

func (t *procTable) byPID(pid uint32) map[procKey]struct{} {
	out := map[procKey]struct{}{}
	for k := range t.m {
		if k.pid == pid {
			out[k] = struct{}{}
		}
	}
	return out
}

// readProc reads one process from /proc. The parent's start time is left 0.
func (t *procTable) readProc(pid uint32) (*procInfo, error) {
	dir := fmt.Sprintf("%s/%d", t.procRoot, pid)
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return nil, err
	}
	comm, ppid, start, err := parseStat(stat)
	if err != nil {
		return nil, fmt.Errorf("%s/stat: %w", dir, err)
	}
	info := &procInfo{key: procKey{pid, start}, comm: comm, source: "procfs"}
	if ppid != 0 {
		info.parent = &procKey{pid: ppid}
	}
	if exe, err := os.Readlink(dir + "/exe"); err == nil {
		exe = strings.TrimSuffix(exe, " (deleted)")
		info.exe = &exe
	}
	if cmd, err := os.ReadFile(dir + "/cmdline"); err == nil && len(cmd) > 0 {
		info.argv = argvJSON(strings.Split(string(bytes.TrimSuffix(cmd, []byte{0})), "\x00"))
	}
	if st, err := os.ReadFile(dir + "/status"); err == nil {
		info.uid, info.gid = parseStatusIDs(st)
	}
	return info, nil
}

// parseStat reads comm, ppid and starttime from /proc/PID/stat. comm may hold
// spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (comm string, ppid uint32, start uint64, err error) {
	open := bytes.IndexByte(b, '(')
	closing := bytes.LastIndexByte(b, ')')
	if open < 0 || closing < open {
		return "", 0, 0, errors.New("malformed stat")
	}
	comm = string(b[open+1 : closing])
	f := strings.Fields(string(b[closing+1:]))
	// f[0] is field 3 (state); ppid is field 4, starttime field 22.
	if len(f) < 20 {
		return "", 0, 0, errors.New("short stat")
	}
	p, err := strconv.ParseUint(f[1], 10, 32)
	if err != nil {
		return "", 0, 0, fmt.Errorf("ppid: %w", err)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return "", 0, 0, fmt.Errorf("starttime: %w", err)
	}
	return comm, uint32(p), start, nil
}

func parseStatusIDs(b []byte) (uid, gid *uint32) {
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "Uid" && k != "Gid") {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			continue
		}
		id := uint32(n)
		if k == "Uid" {
			uid = &id
		} else {
			gid = &id
		}
	}
	return uid, gid
}

// exec records a new process image from the kernel.
func (t *procTable) exec(e *Exec) {
	key := procKey{e.PID, ticks(e.StartNs)}
	parent := procKey{e.PPID, ticks(e.PStartNs)}
	exe := e.Exe
	uid, gid, cg := e.UID, e.GID, e.CgroupID
	exeCut, argvCut := e.PathTruncated, e.ArgsTruncated
	t.m[key] = &procInfo{
		key: key, parent: &parent, comm: e.Comm, exe: &exe, argv: argvJSON(e.Argv),
		uid: &uid, gid: &gid, cgroup: &cg, execBootNs: e.BootNs, source: "exec",
		exeCut: &exeCut, argvCut: &argvCut,
	}
}

// exit marks a process as gone and returns it if it has a row to update.
func (t *procTable) exit(e *Exec) *procInfo {
	info, ok := t.m[procKey{e.PID, ticks(e.StartNs)}]
	if !ok {
		return nil
	}
	info.exitBootNs = e.BootNs
	return info
}

// evict forgets processes that exited before cutoff (CLOCK_BOOTTIME ns).
func (t *procTable) evict(cutoff uint64) {
	for k, info := range t.m {
		if info.exitBootNs != 0 && info.exitBootNs < cutoff {
			delete(t.m, k)
		}
	}
}

// resolve returns the table's entry for a process seen in an event, adding
// one if needed: from /proc if the process is still there, else inherited
// from its parent (a fork that did not exec runs its parent's image), else
// with just what the kernel said (source "chain").
func (t *procTable) resolve(pid uint32, startNs uint64, comm string, parent *procKey) *procInfo {
	key := procKey{pid, ticks(startNs)}
	if info, ok := t.m[key]; ok {
		return info
	}
	if info, err := t.readProc(pid); err == nil && info.key == key {
		info.parent = parent
		t.m[key] = info
		return info
	}
	info := &procInfo{key: key, parent: parent, comm: comm, source: "chain"}
	if parent != nil {
		if p, ok := t.m[*parent]; ok && p.exe != nil {
			info.exe, info.argv, info.source = p.exe, p.argv, "inherited"
			info.exeCut, info.argvCut = p.exeCut, p.argvCut
			info.execBootNs = p.execBootNs
		}
	}
	t.m[key] = info
	return info
}

// argvJSON encodes arguments as a JSON array of strings: readable in the
// sqlite3 shell and queryable with json_each, unlike NUL-separated text.
func argvJSON(argv []string) *string {
	if argv == nil {
		argv = []string{}
	}
	b, err := json.Marshal(argv)
	if err != nil {
		return nil // strings always marshal
	}
	s := string(b)
	return &s
}

// forgetRows is for a new evidence file (a rotation): no process has a row
// in it yet.
func (t *procTable) forgetRows() {
	for _, info := range t.m {
		info.dbID = 0
	}
}
