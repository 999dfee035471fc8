//go:build linux && (amd64 || arm64)

package bpf

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// The names the tests resolve, from a private /etc/hosts.
const (
	libcTestName   = "only-in-hosts.test"
	libcTestV4     = "192.0.2.55"
	libcTestV6     = "2001:db8::55"
	libcTestAbsent = "absent-from-hosts.test"
)

func requireRootBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root: run `sudo make test`")
	}
}

// openLibcCapture opens the best tier and its ring buffer reader.
func openLibcCapture(t *testing.T) (*Capture, *ringbuf.Reader) {
	t.Helper()
	requireRootBPF(t)
	l, err := NewLoader(TierAuto, Config{Ports: []uint16{53}, Snaplen: 512, RingBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := l.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rd, err := ringbuf.NewReader(c.Events)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return c, rd
}

// resolveRec is a decoded EV_RESOLVE record.
type resolveRec struct {
	fn    uint8
	flags uint8
	rc    int32
	name  string
	addrs []netip.Addr
	pid   uint32
	ev    ResolveEvent
}

func (r resolveRec) String() string {
	return fmt.Sprintf("func=%d rc=%d flags=%d name=%q addrs=%v pid=%d comm=%q", r.fn, r.rc, r.flags, r.name, r.addrs, r.pid, cString(r.ev.Id.Comm[:]))
}

func cString(b []int8) string {
	s := unsafe.Slice((*byte)(unsafe.Pointer(&b[0])), len(b))
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return string(s)
}

func decodeResolve(t *testing.T, raw []byte) resolveRec {
	t.Helper()
	if len(raw) < int(unsafe.Sizeof(ResolveEvent{})) {
		t.Fatalf("EV_RESOLVE record of %d bytes, want %d", len(raw), unsafe.Sizeof(ResolveEvent{}))
	}
	ev := *(*ResolveEvent)(unsafe.Pointer(&raw[0]))
	r := resolveRec{fn: ev.Func, flags: ev.Flags, rc: ev.Rc, name: cString(ev.Name[:]), pid: ev.Id.Pid, ev: ev}
	if int(ev.Naddrs) > resAddrs {
		t.Fatalf("naddrs %d > %d", ev.Naddrs, resAddrs)
	}
	for _, a := range ev.Addrs[:ev.Naddrs] {
		switch a.Family {
		case 4:
			r.addrs = append(r.addrs, netip.AddrFrom4([4]byte(a.Addr[:4])))
		case 6:
			r.addrs = append(r.addrs, netip.AddrFrom16(a.Addr))
		default:
			t.Fatalf("address family %d in %v", a.Family, r)
		}
	}
	if ev.CallNs == 0 || ev.BootNs < ev.CallNs {
		t.Errorf("call_ns %d, boot_ns %d: want 0 < call_ns <= boot_ns", ev.CallNs, ev.BootNs)
	}
	return r
}

// resAddrs is RES_ADDRS of common.h.
const resAddrs = len(ResolveEvent{}.Addrs)

// drainResolves reads the ring buffer until it stays empty for a moment
// and returns the EV_RESOLVE records of pid.
func drainResolves(t *testing.T, rd *ringbuf.Reader, pid int) []resolveRec {
	t.Helper()
	var out []resolveRec
	for {
		rd.SetDeadline(time.Now().Add(300 * time.Millisecond))
		rec, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.RawSample) == 0 || rec.RawSample[0] != EventResolve {
			continue
		}
		r := decodeResolve(t, rec.RawSample)
		if int(r.pid) == pid {
			out = append(out, r)
		}
	}
}

// privateEtc writes a hosts file with the test names, an nsswitch.conf that
// looks at files only, and a resolv.conf that fails at once (nothing
// answers on 127.0.0.1), and returns the shell commands that bind them over
// /etc's in a private mount namespace.
func privateEtc(t *testing.T, extraHosts ...string) string {
	t.Helper()
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	resolv := filepath.Join(dir, "resolv.conf")
	nss := filepath.Join(dir, "nsswitch.conf")
	if err := os.WriteFile(nss, []byte("hosts: files\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, []byte(fmt.Sprintf("127.0.0.1 localhost\n%s %s\n%s %s\n", libcTestV4, libcTestName, libcTestV6, libcTestName)+strings.Join(extraHosts, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("mount --bind %s /etc/hosts && mount --bind %s /etc/resolv.conf && mount --bind %s /etc/nsswitch.conf", hosts, resolv, nss)
}

// runPrivate runs script with sh in a private mount namespace whose /etc
// has privateEtc's files; exec in script keeps the pid. It returns the pid
// and the output.
func runPrivate(t *testing.T, etc, script string) (int, string) {
	t.Helper()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", etc+" && "+script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err != nil {
		t.Logf("%s: %v", script, err)
	}
	return cmd.Process.Pid, out.String()
}

func addrSet(addrs []netip.Addr) string {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	return strings.Join(s, ",")
}

// checkFound wants exactly one record of fn for the test name, rc 0, with
// the addresses want.
func checkFound(t *testing.T, recs []resolveRec, fn uint8, want string) {
	t.Helper()
	var got []resolveRec
	for _, r := range recs {
		if r.fn == fn {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		t.Fatalf("want one record of func %d, got %d: %v", fn, len(got), recs)
	}
	r := got[0]
	if r.name != libcTestName || r.rc != 0 || r.flags != 0 || addrSet(r.addrs) != want {
		t.Errorf("got %v, want name %s rc 0 flags 0 addrs %s", r, libcTestName, want)
	}
}

func scanLibc(t *testing.T, c *Capture) []LibcTarget {
	t.Helper()
	added, err := c.LibcProbes().Scan()
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	for _, a := range added {
		t.Logf("attached %s (as %s, pid %d, mntns %d, dev %#x, inode %d): %v, skipped %v", a.Path, a.OpenedAs, a.PID, a.MntNS, a.Dev, a.Inode, a.Symbols, a.Skipped)
	}
	return added
}

// TestLibcResolve: getent's getaddrinfo and gethostbyname2 calls arrive as
// EV_RESOLVE records with the name, the result and the caller.
func TestLibcResolve(t *testing.T) {
	c, rd := openLibcCapture(t)
	scanLibc(t, c)
	if len(c.LibcProbes().Targets()) == 0 {
		t.Fatal("no libc found")
	}
	etc := privateEtc(t)

	t.Run("getaddrinfo", func(t *testing.T) {
		pid, out := runPrivate(t, etc, "exec getent ahosts "+libcTestName)
		recs := drainResolves(t, rd, pid)
		t.Logf("getent ahosts: %q: %v", out, recs)
		// glibc lists each address once per socket type; the record once.
		checkFound(t, recs, ResolveGetaddrinfo, libcTestV4+","+libcTestV6)
		for _, r := range recs {
			if r.ev.Id.Tid == 0 || cString(r.ev.Id.Comm[:]) != "getent" {
				t.Errorf("identity of %v: tid %d", r, r.ev.Id.Tid)
			}
		}
	})
	t.Run("gethostbyname2", func(t *testing.T) {
		// getent hosts asks gethostbyname2(AF_INET6) first.
		pid, out := runPrivate(t, etc, "exec getent hosts "+libcTestName)
		recs := drainResolves(t, rd, pid)
		t.Logf("getent hosts: %q: %v", out, recs)
		checkFound(t, recs, ResolveGethostbyname2R, libcTestV6)
	})
	t.Run("absent", func(t *testing.T) {
		pid, out := runPrivate(t, etc, "exec getent ahosts "+libcTestAbsent)
		recs := drainResolves(t, rd, pid)
		t.Logf("getent ahosts absent: %q: %v", out, recs)
		// EAI_NONAME
		if len(recs) != 1 || recs[0].fn != ResolveGetaddrinfo || recs[0].name != libcTestAbsent || recs[0].rc != -2 || len(recs[0].addrs) != 0 {
			t.Errorf("want one getaddrinfo record of %s with rc -2 (EAI_NONAME) and no address, got %v", libcTestAbsent, recs)
		}
		pid, out = runPrivate(t, etc, "exec getent hosts "+libcTestAbsent)
		recs = drainResolves(t, rd, pid)
		t.Logf("getent hosts absent: %q: %v", out, recs)
		// gethostbyname2 for AF_INET6, then for AF_INET: not found, both.
		if len(recs) != 2 {
			t.Fatalf("want two gethostbyname2_r records, got %v", recs)
		}
		for _, r := range recs {
			if r.fn != ResolveGethostbyname2R || r.name != libcTestAbsent || r.rc != -1 || len(r.addrs) != 0 {
				t.Errorf("want gethostbyname2_r of %s with rc -1 and no address, got %v", libcTestAbsent, r)
			}
		}
	})
	t.Run("detached", func(t *testing.T) {
		if err := c.Detach(); err != nil {
			t.Fatal(err)
		}
		pid, _ := runPrivate(t, etc, "exec getent ahosts "+libcTestName)
		if recs := drainResolves(t, rd, pid); len(recs) != 0 {
			t.Errorf("records after Detach: %v", recs)
		}
		if added, err := c.LibcProbes().Scan(); err == nil || len(added) != 0 {
			t.Errorf("Scan after Detach: %v, %v", added, err)
		}
	})
}

// TestLibcMapsLine reads the memory map lines Scan looks at.
func TestLibcMapsLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
		want libcFound
	}{
		{"7f777ed0f000-7f777ee65000 r-xp 00026000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6",
			true, libcFound{path: "/usr/lib/x86_64-linux-gnu/libc.so.6", span: "7f777ed0f000-7f777ee65000", id: fileID{unix.Mkdev(0xfe, 0), 326269}}},
		{"7f0000000000-7f0000001000 r--p 00000000 103:02 42 /lib/libc.so.6 (deleted)",
			true, libcFound{path: "/lib/libc.so.6", gone: true, span: "7f0000000000-7f0000001000", id: fileID{unix.Mkdev(0x103, 2), 42}}},
		{"7ffd5b1e0000-7ffd5b201000 rw-p 00000000 00:00 0                          [stack]", false, libcFound{}},
		{"55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0 ", false, libcFound{}},
	} {
		got, ok := parseMapsLine(tc.line)
		if ok != tc.ok || ok && got != tc.want {
			t.Errorf("%q: got %+v %v, want %+v %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
	for name, want := range map[string]bool{
		"libc.so.6": true, "libc-2.31.so": true, "ld-musl-x86_64.so.1": true, "libc.musl-aarch64.so.1": true,
		"libcap.so.2": false, "libc.so": false, "ld-linux-x86-64.so.2": false, "libcrypt.so.1": false,
	} {
		if isLibc(name) != want {
			t.Errorf("isLibc(%q) = %v", name, !want)
		}
	}
}

// resolveC calls the libc functions directly; built by buildResolveC.
const resolveC = `#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
	const char *mode = argv[1], *name = argv[2];
	struct hostent *h = NULL, he;
	char buf[8192];
	int herr, rc = 0;
	if (!strcmp(mode, "gethostbyname"))
		h = gethostbyname(name);
	else if (!strcmp(mode, "gethostbyname2"))
		h = gethostbyname2(name, AF_INET);
	else if (!strcmp(mode, "gethostbyname_r"))
		rc = gethostbyname_r(name, &he, buf, sizeof buf, &h, &herr);
	else if (!strcmp(mode, "gethostbyname_r_small")) {
		/* too small a buffer first, as gethostbyname() does */
		rc = gethostbyname_r(name, &he, buf, 8, &h, &herr);
		if (rc != ERANGE)
			return 3;
		rc = gethostbyname_r(name, &he, buf, sizeof buf, &h, &herr);
	} else
		return 2;
	printf("rc=%d found=%d\n", rc, h != NULL);
	return 0;
}
`

// buildResolveC compiles resolveC with the host's cc.
func buildResolveC(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "resolve.c")
	bin := filepath.Join(dir, "resolve")
	if err := os.WriteFile(src, []byte(resolveC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return bin
}

// TestLibcGethostbyname: the non-reentrant gethostbyname() and
// gethostbyname2() reach the probes on gethostbyname_r and
// gethostbyname2_r (glibc implements them with the same functions, called
// internally), and a call that fails with ERANGE, retried with a bigger
// buffer as gethostbyname() does, is one record.
func TestLibcGethostbyname(t *testing.T) {
	c, rd := openLibcCapture(t)
	scanLibc(t, c)
	etc := privateEtc(t)
	bin := buildResolveC(t)
	for _, tc := range []struct {
		mode string
		fn   uint8
		want string
	}{
		{"gethostbyname", ResolveGethostbynameR, libcTestV4},
		{"gethostbyname2", ResolveGethostbyname2R, libcTestV4},
		{"gethostbyname_r", ResolveGethostbynameR, libcTestV4},
		{"gethostbyname_r_small", ResolveGethostbynameR, libcTestV4},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			pid, out := runPrivate(t, etc, fmt.Sprintf("exec %s %s %s", bin, tc.mode, libcTestName))
			recs := drainResolves(t, rd, pid)
			t.Logf("%s: %q: %v", tc.mode, out, recs)
			if !strings.Contains(out, "found=1") {
				t.Fatalf("the call did not find %s: %q", libcTestName, out)
			}
			if len(recs) != 1 {
				t.Fatalf("want one record, got %v", recs)
			}
			checkFound(t, recs, tc.fn, tc.want)
		})
	}
}

// TestLibcContainer: a process in another mount namespace whose libc is
// another file (a container's own) is found by the next Scan, which
// attaches to that file too, and its calls are recorded.
func TestLibcContainer(t *testing.T) {
	c, rd := openLibcCapture(t)
	scanLibc(t, c)
	host := c.LibcProbes().Targets()
	if len(host) == 0 {
		t.Fatal("no host libc found")
	}
	// The path the maps of a process will show: with /lib a symbolic
	// link (merged /usr), that is /usr/lib's.
	libcPath, err := filepath.EvalSymlinks(host[0].Path)
	if err != nil {
		t.Fatal(err)
	}

	// The container's libc: a copy of the host's, a file of its own.
	dir := t.TempDir()
	copyPath := filepath.Join(dir, "libc.so.6")
	b, err := os.ReadFile(host[0].OpenedAs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(copyPath, b, 0o755); err != nil {
		t.Fatal(err)
	}
	var st syscallStat
	if err := statFile(copyPath, &st); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "go")
	if err := mkfifo(fifo); err != nil {
		t.Fatal(err)
	}

	// The inner sh starts after the bind mount, so it maps the copy, and
	// waits on the fifo before it becomes getent.
	etc := privateEtc(t)
	script := fmt.Sprintf("%s && mount --bind %s %s && exec sh -c 'read x < %s; exec getent ahosts %s'", etc, copyPath, libcPath, fifo, libcTestName)
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	mapsFile := fmt.Sprintf("/proc/%d/maps", pid)
	inode := fmt.Sprintf(" %d ", st.ino)
	for deadline := time.Now().Add(10 * time.Second); ; {
		m, _ := os.ReadFile(mapsFile)
		if bytes.Contains(m, []byte(inode)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process never mapped the copied libc (inode %d):\n%s\n%s", st.ino, m, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	start := time.Now()
	added := scanLibc(t, c)
	t.Logf("scan with a new mount namespace: %v", time.Since(start))
	if len(added) != 1 || added[0].Inode != st.ino || added[0].PID != pid || added[0].Path != libcPath || len(added[0].Symbols) != len(libcKind.probes) {
		t.Fatalf("want the copy (inode %d) attached as %s from pid %d with every symbol, added %+v", st.ino, libcPath, pid, added)
	}
	if added[0].Inode == host[0].Inode {
		t.Fatal("the container's libc has the host's inode")
	}
	start = time.Now()
	if again := scanLibc(t, c); len(again) != 0 {
		t.Errorf("a second scan added %+v", again)
	}
	t.Logf("scan with nothing new: %v", time.Since(start))
	if n := len(c.LibcProbes().Targets()); n != len(host)+1 {
		t.Errorf("%d targets, want %d", n, len(host)+1)
	}

	if err := os.WriteFile(fifo, []byte("go\n"), 0); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	recs := drainResolves(t, rd, pid)
	t.Logf("container getent ahosts: %q: %v", out.String(), recs)
	checkFound(t, recs, ResolveGetaddrinfo, libcTestV4+","+libcTestV6)
}

type syscallStat struct{ dev, ino uint64 }

func statFile(path string, st *syscallStat) error {
	var s unix.Stat_t
	if err := unix.Stat(path, &s); err != nil {
		return err
	}
	st.dev, st.ino = s.Dev, s.Ino
	return nil
}

func mkfifo(path string) error { return unix.Mkfifo(path, 0o600) }

// TestLibcLimits: a name longer than the record keeps is cut and flagged,
// one that just fits is not; more distinct addresses than the record keeps
// are flagged, the first RES_ADDRS kept in order.
func TestLibcLimits(t *testing.T) {
	c, rd := openLibcCapture(t)
	scanLibc(t, c)
	bin := buildResolveC(t)
	const many = "many.test"
	var lines, want []string
	for i := 1; i <= 20; i++ {
		lines = append(lines, fmt.Sprintf("192.0.2.%d %s\n", i, many))
		if i <= resAddrs {
			want = append(want, fmt.Sprintf("192.0.2.%d", i))
		}
	}
	etc := privateEtc(t, lines...)
	nameLen := len(ResolveEvent{}.Name) - 1

	for _, tc := range []struct {
		what, script string
		fn           uint8
	}{
		{"getaddrinfo", "exec getent ahostsv4 " + many, ResolveGetaddrinfo},
		{"gethostbyname_r", fmt.Sprintf("exec %s gethostbyname_r %s", bin, many), ResolveGethostbynameR},
	} {
		t.Run("addrs/"+tc.what, func(t *testing.T) {
			pid, out := runPrivate(t, etc, tc.script)
			recs := drainResolves(t, rd, pid)
			t.Logf("%q: %v", out, recs)
			if len(recs) != 1 {
				t.Fatalf("want one record, got %v", recs)
			}
			r := recs[0]
			want := want
			if tc.fn == ResolveGetaddrinfo {
				// getaddrinfo sorts (RFC 6724): the order getent prints.
				want = nil
				for _, l := range strings.Split(out, "\n") {
					if f := strings.Fields(l); len(f) > 0 && len(want) < resAddrs && !slices.Contains(want, f[0]) {
						want = append(want, f[0])
					}
				}
			}
			if r.fn != tc.fn || r.rc != 0 || r.flags != ResolveAddrsCut || addrSet(r.addrs) != strings.Join(want, ",") {
				t.Errorf("got %v, want func %d rc 0, flags %d, addresses %v", r, tc.fn, ResolveAddrsCut, want)
			}
		})
	}
	for _, tc := range []struct {
		n    int
		want uint8
	}{{nameLen, 0}, {nameLen + 1, ResolveNameCut}, {400, ResolveNameCut}} {
		t.Run(fmt.Sprintf("name%d", tc.n), func(t *testing.T) {
			name := strings.Repeat("a", tc.n)
			pid, out := runPrivate(t, etc, "exec getent ahosts "+name)
			recs := drainResolves(t, rd, pid)
			t.Logf("%q: %v", out, recs)
			if len(recs) != 1 {
				t.Fatalf("want one record, got %v", recs)
			}
			r := recs[0]
			if r.flags != tc.want || r.name != name[:min(tc.n, nameLen)] {
				t.Errorf("name of %d bytes: got flags %d and %d bytes of name, want flags %d", tc.n, r.flags, len(r.name), tc.want)
			}
		})
	}
}
