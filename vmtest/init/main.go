//go:build linux

// Command init is the /init of the vmtest initramfs.
//
// It runs as PID 1 inside a QEMU guest booted by vmtest/cmd/vmrun:
//
//  1. mounts devtmpfs, proc, sysfs, cgroup2 (/sys/fs/cgroup), bpf
//     (/sys/fs/bpf), tracefs, debugfs, securityfs and tmpfs (/tmp, /run),
//  2. brings up lo with 127.0.0.1/8 and ::1/128 and checks that both work,
//  3. runs /test.bin with the arguments and environment passed on the kernel
//     command line (vmtest.args= and vmtest.env=, each base64url(JSON []string)),
//     its stdout and stderr going straight to the console,
//  4. prints "VMTEST-RESULT: exit=N id=ID" and powers the machine off.
//
// It is deliberately separate from the code under test: packages such as
// cilium/ebpf's rlimit look at /proc in their init(), before a main() of the
// test binary could have mounted it.
//
// Build it statically: CGO_ENABLED=0 go build ./vmtest/init
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const testBin = "/test.bin"

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stdout, "vmtest-init: "+format+"\n", args...)
}

func main() {
	start := time.Now()
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vmtest-init: must run as PID 1 inside the vmtest VM")
		os.Exit(2)
	}
	mountAll()
	ensureConsole()

	cmdline, _ := os.ReadFile("/proc/cmdline")
	params := parseCmdline(string(cmdline))
	id := params["vmtest.id"]

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	_ = unix.Sethostname([]byte("vmtest"))
	writeEtc()

	fmt.Println() // the firmware leaves the console mid-line
	if v, err := os.ReadFile("/proc/version"); err == nil {
		logf("%s", strings.TrimSpace(string(v)))
	}
	v4, v6 := setupLoopback()
	// Machine-readable, parsed by vmrun for timing and the report.
	fmt.Printf("\nVMTEST-BOOT: kernel=%s lo4=%s lo6=%s id=%s\n", release, okStr(v4), okStr(v6), id)

	args, err := decodeList(params["vmtest.args"])
	if err != nil {
		logf("bad vmtest.args: %v", err)
		finish(id, 125)
	}
	env, err := decodeList(params["vmtest.env"])
	if err != nil {
		logf("bad vmtest.env: %v", err)
		finish(id, 125)
	}

	cmd := exec.Command(testBin, args...)
	cmd.Args[0] = testBin
	cmd.Dir = "/"
	cmd.Stdin = nil
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stdout // one stream, keeps ordering on the console
	cmd.Env = append([]string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
		"TMPDIR=/tmp",
		"TERM=dumb",
		"VMTEST=1",
		"VMTEST_KERNEL=" + release,
	}, env...)
	logf("kernel up %s, init took %.2fs; running %s %q", uptime(), time.Since(start).Seconds(), testBin, args)
	code := 0
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		switch {
		case errors.As(err, &ee):
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				logf("%s killed by signal %v", testBin, ws.Signal())
				code = 128 + int(ws.Signal())
			} else {
				code = ee.ExitCode()
			}
		default:
			logf("cannot run %s: %v", testBin, err)
			code = 126
		}
	}
	finish(id, code)
}

// uptime is the guest's time since boot, from /proc/uptime.
func uptime() string {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0] + "s"
}

func okStr(ok bool) string {
	if ok {
		return "ok"
	}
	return "fail"
}

// finish prints the result marker and powers off. It never returns.
func finish(id string, code int) {
	// Leading newline: the marker must start a line even if the test's last
	// output line had none.
	logf("test finished, kernel up %s", uptime())
	fmt.Printf("\nVMTEST-RESULT: exit=%d id=%s\n", code, id)
	_ = os.Stdout.Sync()
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	// Returning from PID 1 panics the kernel; with panic=-1 and qemu's
	// -no-reboot that still ends the VM.
	logf("power off failed: %v", err)
	os.Exit(code)
}

type mnt struct {
	src, target, fstype, data string
	flags                     uintptr
	required                  bool
}

func mountAll() {
	const nosuid = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	mounts := []mnt{
		{"devtmpfs", "/dev", "devtmpfs", "mode=0755", unix.MS_NOSUID, true},
		{"proc", "/proc", "proc", "", nosuid, true},
		{"sysfs", "/sys", "sysfs", "", nosuid, true},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "", nosuid, true},
		{"bpf", "/sys/fs/bpf", "bpf", "mode=0700", nosuid, true},
		{"tracefs", "/sys/kernel/tracing", "tracefs", "", nosuid, false},
		{"debugfs", "/sys/kernel/debug", "debugfs", "", nosuid, false},
		{"securityfs", "/sys/kernel/security", "securityfs", "", nosuid, false},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777", unix.MS_NOSUID | unix.MS_NODEV, true},
		{"tmpfs", "/run", "tmpfs", "mode=0755", unix.MS_NOSUID | unix.MS_NODEV, false},
		{"devpts", "/dev/pts", "devpts", "mode=0620,ptmxmode=0666", unix.MS_NOSUID | unix.MS_NOEXEC, false},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777", nosuid, false},
	}
	for _, m := range mounts {
		if err := os.MkdirAll(m.target, 0o755); err != nil && m.required {
			logf("mkdir %s: %v", m.target, err)
		}
		if err := unix.Mount(m.src, m.target, m.fstype, m.flags, m.data); err != nil {
			if errors.Is(err, unix.EBUSY) {
				continue // already mounted (devtmpfs automount)
			}
			logf("mount %s on %s: %v", m.fstype, m.target, err)
		}
	}
	_ = os.Symlink("/proc/self/fd", "/dev/fd")
}

// ensureConsole reopens stdio on /dev/console when the kernel could not
// provide it (no /dev/console in the initramfs).
func ensureConsole() {
	if _, err := unix.FcntlInt(1, unix.F_GETFD, 0); err == nil {
		return
	}
	fd, err := unix.Open("/dev/console", unix.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return
	}
	for _, n := range []int{0, 1, 2} {
		_ = unix.Dup2(fd, n)
	}
	if fd > 2 {
		unix.Close(fd)
	}
}

func writeEtc() {
	files := map[string]string{
		"/etc/hosts":         "127.0.0.1\tlocalhost vmtest\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"/etc/passwd":        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"/etc/group":         "root:x:0:\nnogroup:x:65534:\n",
		"/etc/nsswitch.conf": "hosts: files dns\n",
		"/etc/resolv.conf":   "nameserver 127.0.0.1\n",
	}
	_ = os.MkdirAll("/etc", 0o755)
	_ = os.MkdirAll("/root", 0o700)
	for name, content := range files {
		if _, err := os.Stat(name); err == nil {
			continue // shipped in the initramfs by the caller
		}
		_ = os.WriteFile(name, []byte(content), 0o644)
	}
}

func parseCmdline(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		m[k] = v
	}
	return m
}

// decodeList decodes base64url (padding optional) of a JSON array of strings.
func decodeList(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	var l []string
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, err
	}
	return l, nil
}

// setupLoopback brings lo up with 127.0.0.1/8 and ::1/128 using ioctls and
// reports whether UDP over each actually works.
func setupLoopback() (v4ok, v6ok bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		logf("socket: %v", err)
		return false, false
	}
	defer unix.Close(fd)

	set := func(req uint, what string, fill func(*unix.Ifreq) error) {
		ifr, err := unix.NewIfreq("lo")
		if err == nil {
			err = fill(ifr)
		}
		if err == nil {
			err = unix.IoctlIfreq(fd, req, ifr)
		}
		if err != nil {
			logf("lo: %s: %v", what, err)
		}
	}
	set(unix.SIOCSIFADDR, "set 127.0.0.1", func(ifr *unix.Ifreq) error { return ifr.SetInet4Addr([]byte{127, 0, 0, 1}) })
	set(unix.SIOCSIFNETMASK, "set netmask", func(ifr *unix.Ifreq) error { return ifr.SetInet4Addr([]byte{255, 0, 0, 0}) })
	ifr, _ := unix.NewIfreq("lo")
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		logf("lo: get flags: %v", err)
	}
	flags := ifr.Uint16() | unix.IFF_UP | unix.IFF_RUNNING
	set(unix.SIOCSIFFLAGS, "up", func(ifr *unix.Ifreq) error { ifr.SetUint16(flags); return nil })

	v4ok = udpEcho("udp4", "127.0.0.1:0") == nil
	if err := udpEcho("udp6", "[::1]:0"); err != nil {
		// The kernel normally adds ::1 when lo comes up (addrconf). Add it
		// explicitly if it did not, then retry.
		if aerr := addIPv6Loopback(); aerr != nil {
			logf("lo: add ::1: %v", aerr)
		}
		if err2 := udpEcho("udp6", "[::1]:0"); err2 != nil {
			logf("lo: IPv6 loopback does not work: %v", err2)
		} else {
			v6ok = true
		}
	} else {
		v6ok = true
	}
	return v4ok, v6ok
}

// in6_ifreq from <linux/ipv6.h>.
type in6Ifreq struct {
	addr      [16]byte
	prefixlen uint32
	ifindex   int32
}

func addIPv6Loopback() error {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	req := in6Ifreq{prefixlen: 128, ifindex: int32(lo.Index)}
	req.addr[15] = 1
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCSIFADDR, uintptr(unsafe.Pointer(&req)))
	if errno != 0 && errno != unix.EEXIST {
		return errno
	}
	return nil
}

func udpEcho(network, addr string) error {
	c, err := net.ListenPacket(network, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	msg := []byte("vmtest-lo-check")
	if _, err := c.WriteTo(msg, c.LocalAddr()); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 64)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return err
	}
	if !bytes.Equal(buf[:n], msg) {
		return fmt.Errorf("echo mismatch")
	}
	return nil
}
