//go:build linux && (amd64 || arm64)

package record

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// statLine is a /proc/PID/stat line with the given comm, ppid and start time
// (field 22) and plausible values elsewhere.
func statLine(pid uint32, comm string, ppid uint32, start uint64) string {
	return fmt.Sprintf("%d (%s) S %d %d %d 0 -1 4194560 1520 0 0 0 3 1 0 0 20 0 1 0 %d 9306112 897 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 2 0 0 0 0 0\n",
		pid, comm, ppid, pid, pid, start)
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		comm      string
		ppid      uint32
		start     uint64
		wantError bool
	}{
		{name: "plain", in: statLine(4321, "dig", 1200, 987654), comm: "dig", ppid: 1200, start: 987654},
		{name: "spaces in comm", in: statLine(7, "tmux: server", 1, 55), comm: "tmux: server", ppid: 1, start: 55},
		// A process can name itself to look like the rest of the line.
		{name: "parenthesis in comm", in: statLine(8, "x) R 99 (y", 2, 66), comm: "x) R 99 (y", ppid: 2, start: 66},
		{name: "comm ends in parenthesis", in: statLine(9, "evil)", 3, 77), comm: "evil)", ppid: 3, start: 77},
		{name: "empty comm", in: statLine(10, "", 4, 88), comm: "", ppid: 4, start: 88},
		{name: "no parentheses", in: "12 dig S 1 2 3", wantError: true},
		{name: "only a closing parenthesis", in: "12 dig) S 1 2 3", wantError: true},
		{name: "too few fields", in: "12 (dig) S 1 2 3 4 5", wantError: true},
		{name: "ppid not a number", in: strings.Replace(statLine(5, "a", 1, 2), "(a) S 1 ", "(a) S x ", 1), wantError: true},
		{name: "start not a number", in: strings.Replace(statLine(5, "a", 1, 123456), " 123456 ", " -5 ", 1), wantError: true},
		{name: "empty", in: "", wantError: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			comm, ppid, start, err := parseStat([]byte(tc.in))
			if tc.wantError {
				if err == nil {
					t.Fatalf("parseStat(%q) = %q, %d, %d, want an error", tc.in, comm, ppid, start)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseStat(%q): %v", tc.in, err)
			}
			if comm != tc.comm || ppid != tc.ppid || start != tc.start {
				t.Errorf("parseStat(%q) = %q, %d, %d, want %q, %d, %d", tc.in, comm, ppid, start, tc.comm, tc.ppid, tc.start)
			}
		})
	}
}

func TestParseStatusIDs(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		uid, gid *uint32
	}{
		{
			name: "real, effective, saved, fs: the real ids count",
			in:   "Name:\tdig\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t42\nPid:\t42\nPPid:\t1\nUid:\t1000\t0\t0\t0\nGid:\t100\t5\t5\t5\nFDSize:\t64\n",
			uid:  ptr[uint32](1000), gid: ptr[uint32](100),
		},
		{name: "root", in: "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n", uid: ptr[uint32](0), gid: ptr[uint32](0)},
		{name: "no Gid line", in: "Uid:\t33\t33\t33\t33\n", uid: ptr[uint32](33)},
		{name: "overflowing and empty values", in: "Uid:\t4294967296\nGid:\n", uid: nil, gid: nil},
		{name: "largest id", in: "Uid:\t4294967295\nGid:\tx\n", uid: ptr[uint32](4294967295)},
		{name: "similar keys are not ids", in: "NSuid:\t5\nUidx:\t6\nGroups:\t7 8\n"},
		{name: "empty", in: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			uid, gid := parseStatusIDs([]byte(tc.in))
			if !reflect.DeepEqual(uid, tc.uid) || !reflect.DeepEqual(gid, tc.gid) {
				t.Errorf("parseStatusIDs(%q) = %v, %v, want %v, %v", tc.in, deref(uid), deref(gid), deref(tc.uid), deref(tc.gid))
			}
		})
	}
}

func TestTicks(t *testing.T) {
	tests := []struct{ ns, want uint64 }{
		{0, 0},
		{9_999_999, 0}, // truncated, like the kernel's nsec_to_clock_t
		{10_000_000, 1},
		{1_500_000_000, 150},
		{86400 * 1_000_000_000, 8_640_000},
		{1<<64 - 1, (1<<64 - 1) / 10_000_000},
	}
	for _, tc := range tests {
		if got := ticks(tc.ns); got != tc.want {
			t.Errorf("ticks(%d) = %d, want %d", tc.ns, got, tc.want)
		}
	}
}

// fakeProc is a process to lay out in a fake /proc.
type fakeProc struct {
	pid, ppid uint32
	comm      string
	start     uint64 // clock ticks
	exe       string // symlink target; "" for none (kernel threads)
	cmdline   string // NUL-separated, as the kernel writes it
	status    string
}

func fakeProcRoot(t *testing.T, procs ...fakeProc) string {
	t.Helper()
	root := t.TempDir()
	for _, p := range procs {
		dir := filepath.Join(root, fmt.Sprint(p.pid))
		must(t, os.Mkdir(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "stat"), []byte(statLine(p.pid, p.comm, p.ppid, p.start)), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte(p.cmdline), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "status"), []byte(p.status), 0o644))
		if p.exe != "" {
			must(t, os.Symlink(p.exe, filepath.Join(dir, "exe")))
		}
	}
	// Entries a real /proc has that are not processes.
	must(t, os.Mkdir(filepath.Join(root, "sys"), 0o755))
	must(t, os.Symlink("4242", filepath.Join(root, "self")))
	must(t, os.WriteFile(filepath.Join(root, "uptime"), []byte("1.0 1.0\n"), 0o644))
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// procView is the part of procInfo that tests compare.
type procView struct {
	Key        procKey
	Parent     *procKey
	Comm       string
	Exe, Argv  *string
	UID, GID   *uint32
	ExecBootNs uint64
	Source     string
}

func viewProc(p *procInfo) procView {
	if p == nil {
		return procView{}
	}
	return procView{p.key, p.parent, p.comm, p.exe, p.argv, p.uid, p.gid, p.execBootNs, p.source}
}

func (v procView) String() string {
	return fmt.Sprintf("{key %v parent %v comm %q exe %v argv %v uid %v gid %v exec %d source %q}",
		v.Key, deref(v.Parent), v.Comm, deref(v.Exe), deref(v.Argv), deref(v.UID), deref(v.GID), v.ExecBootNs, v.Source)
}

const tick = 10_000_000 // ns per clock tick

func TestProcTableResolve(t *testing.T) {
	root := fakeProcRoot(t,
		fakeProc{pid: 300, ppid: 1, comm: "curl", start: 5000, exe: "/usr/bin/curl (deleted)",
			cmdline: "curl\x00-s\x00http://evil.example/\x00", status: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"},
		fakeProc{pid: 301, ppid: 1, comm: "reused", start: 7000, exe: "/usr/bin/other"},
	)
	shell := &Exec{PID: 100, PPID: 1, StartNs: 1000 * tick, PStartNs: 5 * tick, BootNs: 1000*tick + 500,
		UID: 1000, GID: 1000, CgroupID: 77, Comm: "bash", Exe: "/usr/bin/bash", Argv: []string{"bash", "-i"}}
	shellKey := procKey{100, 1000}
	unknownKey := procKey{999, 42}
	chainParent := procKey{150, 1100}

	tests := []struct {
		name    string
		pid     uint32
		startNs uint64
		comm    string
		parent  *procKey
		want    procView
	}{
		{
			name: "fork of an exec'd parent inherits its image",
			pid:  200, startNs: 2000*tick + 1234, comm: "bash", parent: &shellKey,
			want: procView{Key: procKey{200, 2000}, Parent: &shellKey, Comm: "bash",
				Exe: ptr("/usr/bin/bash"), Argv: ptr(`["bash","-i"]`), ExecBootNs: 1000*tick + 500, Source: "inherited"},
		},
		{
			name: "unknown parent",
			pid:  201, startNs: 3000 * tick, comm: "sh", parent: &unknownKey,
			want: procView{Key: procKey{201, 3000}, Parent: &unknownKey, Comm: "sh", Source: "chain"},
		},
		{
			name: "no parent",
			pid:  202, startNs: 3001 * tick, comm: "init-ish",
			want: procView{Key: procKey{202, 3001}, Comm: "init-ish", Source: "chain"},
		},
		{
			// The parent is in the table but only as a chain entry: there is
			// no image to inherit.
			name: "parent known only from a chain",
			pid:  203, startNs: 3002 * tick, comm: "child", parent: &chainParent,
			want: procView{Key: procKey{203, 3002}, Parent: &chainParent, Comm: "child", Source: "chain"},
		},
		{
			name: "still running: read from procfs",
			pid:  300, startNs: 5000*tick + 9, comm: "curl-thread", parent: &shellKey,
			want: procView{Key: procKey{300, 5000}, Parent: &shellKey, Comm: "curl",
				Exe: ptr("/usr/bin/curl"), Argv: ptr(`["curl","-s","http://evil.example/"]`),
				UID: ptr[uint32](1000), GID: ptr[uint32](1000), Source: "procfs"},
		},
		{
			// procfs has pid 301, but a later process: not the one the
			// event is about.
			name: "pid reused since",
			pid:  301, startNs: 6000 * tick, comm: "old", parent: &shellKey,
			want: procView{Key: procKey{301, 6000}, Parent: &shellKey, Comm: "old",
				Exe: ptr("/usr/bin/bash"), Argv: ptr(`["bash","-i"]`), ExecBootNs: 1000*tick + 500, Source: "inherited"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pt := newProcTable(root)
			pt.exec(shell)
			pt.resolve(chainParent.pid, chainParent.ticks*tick, "chainp", &unknownKey)

			got := pt.resolve(tc.pid, tc.startNs, tc.comm, tc.parent)
			if v := viewProc(got); !reflect.DeepEqual(v, tc.want) {
				t.Fatalf("resolve:\n got %v\nwant %v", v, tc.want)
			}
			if again := pt.resolve(tc.pid, tc.startNs, "renamed", nil); again != got {
				t.Errorf("second resolve returned a new entry %v", viewProc(again))
			}
		})
	}
}

func TestProcTableExecExitEvict(t *testing.T) {
	pt := newProcTable(t.TempDir())
	run := &Exec{PID: 10, PPID: 1, StartNs: 100 * tick, PStartNs: tick, BootNs: 100*tick + 1, Comm: "dig",
		Exe: "/usr/bin/dig", Argv: []string{"dig", "evil.example"}, UID: 1, GID: 2, CgroupID: 3}
	keep := &Exec{PID: 11, PPID: 1, StartNs: 110 * tick, PStartNs: tick, BootNs: 110 * tick, Comm: "sleep",
		Exe: "/usr/bin/sleep"}
	pt.exec(run)
	pt.exec(keep)

	k := procKey{10, 100}
	info := pt.m[k]
	want := procView{Key: k, Parent: &procKey{1, 1}, Comm: "dig", Exe: ptr("/usr/bin/dig"),
		Argv: ptr(`["dig","evil.example"]`), UID: ptr[uint32](1), GID: ptr[uint32](2), ExecBootNs: 100*tick + 1, Source: "exec"}
	if v := viewProc(info); !reflect.DeepEqual(v, want) {
		t.Fatalf("after exec:\n got %v\nwant %v", v, want)
	}
	if info.cgroup == nil || *info.cgroup != 3 {
		t.Errorf("cgroup = %v, want 3", deref(info.cgroup))
	}

	if got := pt.exit(&Exec{Exit: true, PID: 10, StartNs: 100*tick + 5, BootNs: 200 * tick}); got != info {
		t.Fatalf("exit returned %v, want the exec'd entry", viewProc(got))
	}
	if info.exitBootNs != 200*tick {
		t.Errorf("exitBootNs = %d, want %d", info.exitBootNs, 200*tick)
	}
	// Same pid, other start time: a different process.
	if got := pt.exit(&Exec{Exit: true, PID: 10, StartNs: 300 * tick, BootNs: 301 * tick}); got != nil {
		t.Errorf("exit of an unknown process returned %v", viewProc(got))
	}

	steps := []struct {
		cutoff uint64
		want   []procKey
	}{
		{cutoff: 100 * tick, want: []procKey{{10, 100}, {11, 110}}},
		{cutoff: 200 * tick, want: []procKey{{10, 100}, {11, 110}}}, // exited at the cutoff, not before
		{cutoff: 200*tick + 1, want: []procKey{{11, 110}}},
		{cutoff: 1 << 62, want: []procKey{{11, 110}}}, // still running
	}
	for _, s := range steps {
		pt.evict(s.cutoff)
		var got []procKey
		for _, k := range s.want {
			if _, ok := pt.m[k]; ok {
				got = append(got, k)
			}
		}
		if len(pt.m) != len(s.want) || !reflect.DeepEqual(got, s.want) {
			t.Errorf("after evict(%d): table %v, want %v", s.cutoff, pt.m, s.want)
		}
	}
}

// TestProcTableExecReplacesImage: an exec of a known process is a new image
// (a new row), not an update of the old one.
func TestProcTableExecReplacesImage(t *testing.T) {
	pt := newProcTable(t.TempDir())
	sh := &Exec{PID: 10, PPID: 1, StartNs: 100 * tick, BootNs: 100 * tick, Comm: "sh", Exe: "/bin/sh"}
	pt.exec(sh)
	pt.m[procKey{10, 100}].dbID = 7
	pt.exec(&Exec{PID: 10, PPID: 1, StartNs: 100 * tick, BootNs: 150 * tick, Comm: "nc", Exe: "/usr/bin/nc", Argv: []string{"nc"}})
	info := pt.m[procKey{10, 100}]
	if info.dbID != 0 || *info.exe != "/usr/bin/nc" || info.execBootNs != 150*tick {
		t.Errorf("after second exec: %v dbID %d", viewProc(info), info.dbID)
	}
}

func TestProcTableScan(t *testing.T) {
	root := fakeProcRoot(t,
		fakeProc{pid: 1, comm: "systemd", start: 1, exe: "/usr/lib/systemd/systemd", cmdline: "/sbin/init\x00"},
		fakeProc{pid: 2, comm: "kthreadd", start: 1}, // kernel thread: no exe, empty cmdline
		fakeProc{pid: 500, ppid: 1, comm: "sshd", start: 300, exe: "/usr/sbin/sshd", cmdline: "sshd: /usr/sbin/sshd -D\x00"},
		fakeProc{pid: 600, ppid: 500, comm: "bash", start: 900, exe: "/usr/bin/bash", cmdline: "-bash\x00",
			status: "Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n"},
	)
	pt := newProcTable(root)
	if err := pt.scan(); err != nil {
		t.Fatal(err)
	}
	want := map[procKey]procView{
		{1, 1}: {Key: procKey{1, 1}, Comm: "systemd", Exe: ptr("/usr/lib/systemd/systemd"), Argv: ptr(`["/sbin/init"]`), Source: "procfs"},
		{2, 1}: {Key: procKey{2, 1}, Comm: "kthreadd", Source: "procfs"},
		{500, 300}: {Key: procKey{500, 300}, Parent: &procKey{1, 1}, Comm: "sshd", Exe: ptr("/usr/sbin/sshd"),
			Argv: ptr(`["sshd: /usr/sbin/sshd -D"]`), Source: "procfs"},
		{600, 900}: {Key: procKey{600, 900}, Parent: &procKey{500, 300}, Comm: "bash", Exe: ptr("/usr/bin/bash"),
			Argv: ptr(`["-bash"]`), UID: ptr[uint32](1000), GID: ptr[uint32](1000), Source: "procfs"},
	}
	if len(pt.m) != len(want) {
		t.Errorf("scan found %d processes, want %d", len(pt.m), len(want))
	}
	for k, w := range want {
		if v := viewProc(pt.m[k]); !reflect.DeepEqual(v, w) {
			t.Errorf("process %v:\n got %v\nwant %v", k, v, w)
		}
	}

	if err := newProcTable(filepath.Join(root, "missing")).scan(); err == nil {
		t.Error("scan of a missing /proc succeeded")
	}
}

func TestArgvJSON(t *testing.T) {
	tests := []struct {
		in   []string
		want string
	}{
		{nil, `[]`},
		{[]string{""}, `[""]`},
		{[]string{"dig", "@8.8.8.8", "evil.example"}, `["dig","@8.8.8.8","evil.example"]`},
		{[]string{"sh", "-c", "echo \"a\tb\"\n"}, `["sh","-c","echo \"a\tb\"\n"]`},
		{[]string{"\xff"}, `["\ufffd"]`},
	}
	for _, tc := range tests {
		if got := argvJSON(tc.in); got == nil || *got != tc.want {
			t.Errorf("argvJSON(%q) = %v, want %s", tc.in, deref(got), tc.want)
		}
	}
}
