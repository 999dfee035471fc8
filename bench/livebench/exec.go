//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Every child runs in its own process group, so that a Ctrl-C at the
// terminal reaches only the harness, which then stops the children in order
// (the recorder with SIGINT, so that it still writes a clean file). Pdeathsig
// kills a child if the harness itself dies without cleaning up.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// outBuf collects a child's stdout and stderr, up to a limit.
type outBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

const outLimit = 1 << 20

func (o *outBuf) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if room := outLimit - o.buf.Len(); room > 0 {
		o.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (o *outBuf) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// tail is the last few lines of s, for error messages.
func tail(s string, lines int) string {
	s = strings.TrimRight(s, "\n")
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func cmdline(argv []string) string { return strings.Join(argv, " ") }

// runCmd runs argv to completion within timeout and returns its standard
// output. On timeout or cancellation the whole process group is killed; the
// error then carries the tail of stdout and stderr.
func runCmd(ctx context.Context, timeout time.Duration, argv ...string) (string, error) {
	return runCmdIn(ctx, timeout, "", nil, argv...)
}

// runCmdIn is runCmd in directory dir ("" for the current one) with extra
// environment variables.
func runCmdIn(ctx context.Context, timeout time.Duration, dir string, env []string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.SysProcAttr = childAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, both outBuf
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&stdout, &both), &both
	err := cmd.Run()
	if ctx.Err() != nil && err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v", timeout)
		} else {
			err = ctx.Err()
		}
	}
	if err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\n%s", cmdline(argv), err, tail(both.String(), 15))
	}
	return stdout.String(), nil
}

// bgProc is a long-running child: dnsmasq, tcpdump or the recorder.
type bgProc struct {
	name    string
	argv    []string
	cmd     *exec.Cmd
	out     outBuf
	done    chan struct{}
	waitErr error
	started time.Time
}

// startBG starts argv and, if ready is not empty, waits until its output
// contains ready. It fails if the child exits first or readyTimeout passes.
func startBG(ctx context.Context, name, ready string, readyTimeout time.Duration, argv ...string) (*bgProc, error) {
	p := &bgProc{name: name, argv: argv, done: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.SysProcAttr = childAttr()
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", cmdline(argv), err)
	}
	p.started = time.Now()
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	if ready == "" {
		return p, nil
	}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if strings.Contains(p.out.String(), ready) {
			return p, nil
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("%s exited before it was ready (%v): %s\n%s", name, p.waitErr, cmdline(argv), tail(p.out.String(), 15))
		case <-deadline.C:
			p.kill()
			return nil, fmt.Errorf("%s: no %q in its output within %v: %s\n%s", name, ready, readyTimeout, cmdline(argv), tail(p.out.String(), 15))
		case <-ctx.Done():
			p.kill()
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

func (p *bgProc) pid() int { return p.cmd.Process.Pid }

func (p *bgProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits up to timeout for the child to exit, then kills
// its process group. The error is the child's exit status, or that it had
// to be killed.
func (p *bgProc) stop(ctx context.Context, sig syscall.Signal, timeout time.Duration) error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
		if p.waitErr != nil {
			return fmt.Errorf("%s: %w\n%s", p.name, p.waitErr, tail(p.out.String(), 15))
		}
		return nil
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not exit within %v of %v; killed", p.name, timeout, sig)
	case <-ctx.Done():
		p.kill()
		return ctx.Err()
	}
}

// kill SIGKILLs the child's process group, if the child still runs, and
// reaps it. Safe to call more than once.
func (p *bgProc) kill() {
	if p == nil || p.exited() {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
	}
}

// rusageCPU is the user+system time of an exited child.
func (p *bgProc) rusageCPU() (time.Duration, bool) {
	if !p.exited() || p.cmd.ProcessState == nil {
		return 0, false
	}
	return p.cmd.ProcessState.UserTime() + p.cmd.ProcessState.SystemTime(), true
}

// rusageMaxRSSKiB is the peak resident set of an exited child over its
// whole life, its start and finish included (ru_maxrss, in KiB on Linux).
func (p *bgProc) rusageMaxRSSKiB() (int64, bool) {
	if !p.exited() || p.cmd.ProcessState == nil {
		return 0, false
	}
	ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0, false
	}
	return ru.Maxrss, true
}

// --- network namespace ---

const nsPrefix = "dnsrec-bench-"

// removeStaleNetns deletes namespaces a previous, killed run left behind:
// dnsrec-bench-PID where PID no longer exists.
func removeStaleNetns(ctx context.Context) {
	out, err := runCmd(ctx, 10*time.Second, "ip", "netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimPrefix(f[0], nsPrefix))
		if err != nil || pid <= 0 {
			continue
		}
		if harnessAlive(pid) {
			continue
		}
		logf("removing stale network namespace %s", f[0])
		deleteNetns(ctx, f[0])
	}
	// Temporary directories of runs that were killed: livebench-PID-*.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "livebench-*-*"))
	for _, d := range dirs {
		f := strings.SplitN(filepath.Base(d), "-", 3)
		if pid, err := strconv.Atoi(f[1]); err == nil && pid > 0 && pid != os.Getpid() && !harnessAlive(pid) {
			logf("removing stale temporary directory %s", d)
			os.RemoveAll(d)
		}
	}
}

// harnessAlive reports whether pid is a running livebench: not gone, not a
// zombie nobody reaped yet, not a reused pid.
func harnessAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if i < 0 || j < i || j+2 >= len(s) {
		return false
	}
	return s[i+1:j] == "livebench" && s[j+2] != 'Z'
}

// otherCapture lists processes on the host that would disturb the
// measurements: DNS load generators, DNS servers, capture tools and
// recorders that are not ours (not children of this process).
func otherCapture() []string {
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		comm := s[i+1 : j]
		f := strings.Fields(s[j+1:])
		if len(f) < 2 || f[0] == "Z" || f[1] == strconv.Itoa(self) {
			continue
		}
		switch {
		case comm == "dnsperf", comm == "dnsmasq", comm == "tcpdump", comm == "livebench",
			strings.HasPrefix(comm, "dnsrec"), strings.HasPrefix(comm, "record.test"):
			found = append(found, fmt.Sprintf("%s(%d)", comm, pid))
		}
	}
	return found
}

func createNetns(ctx context.Context, name string) error {
	if _, err := runCmd(ctx, 10*time.Second, "ip", "netns", "add", name); err != nil {
		return err
	}
	if _, err := runCmd(ctx, 10*time.Second, "ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"); err != nil {
		deleteNetns(ctx, name)
		return err
	}
	return nil
}

// deleteNetns kills whatever still runs in the namespace, then removes it.
// It uses a fresh context: it runs during cleanup, after a cancellation too.
func deleteNetns(_ context.Context, name string) {
	ctx := context.Background()
	if out, err := runCmd(ctx, 10*time.Second, "ip", "netns", "pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for i := 0; i < 20; i++ {
		if _, err := runCmd(ctx, 10*time.Second, "ip", "netns", "del", name); err == nil {
			return
		} else if i == 19 {
			logf("warning: could not remove network namespace %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// probeDNS sends one A query for qname to 127.0.0.1:53 from inside the
// network namespace and checks that the answer holds an A record with want.
// It runs this program again under `ip netns exec` with -probe-dns, rather
// than moving one of our own threads into the namespace.
func probeDNS(ctx context.Context, ipBin, nsName, qname string, want net.IP) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	_, err = runCmd(ctx, 10*time.Second, ipBin, "netns", "exec", nsName, self, "-probe-dns", qname, "-probe-want", want.String())
	return err
}

// probeDNSHere is the -probe-dns mode: one query from the current
// namespace.
func probeDNSHere(qname string, want net.IP) error {
	conn, err := net.Dial("udp", "127.0.0.1:53")
	if err != nil {
		return err
	}
	defer conn.Close()
	q := buildQuery(0x4242, qname)
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := conn.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 1500)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	return checkAnswer(buf[:n], 0x4242, want)
}

func buildQuery(id uint16, qname string) []byte {
	b := make([]byte, 12, 64)
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], 0x0100) // RD
	binary.BigEndian.PutUint16(b[4:], 1)      // QDCOUNT
	for _, l := range strings.Split(strings.TrimSuffix(qname, "."), ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	b = append(b, 0, 0, 1, 0, 1) // root, QTYPE A, QCLASS IN
	return b
}

// checkAnswer checks a response: our id, NOERROR, and an A record with want.
func checkAnswer(m []byte, id uint16, want net.IP) error {
	if len(m) < 12 {
		return errors.New("short DNS response")
	}
	if binary.BigEndian.Uint16(m) != id || m[2]&0x80 == 0 {
		return errors.New("not a response to our query")
	}
	if rc := m[3] & 0x0f; rc != 0 {
		return fmt.Errorf("rcode %d", rc)
	}
	qd, an := binary.BigEndian.Uint16(m[4:]), binary.BigEndian.Uint16(m[6:])
	off := 12
	skipName := func() bool {
		for off < len(m) {
			l := int(m[off])
			switch {
			case l == 0:
				off++
				return true
			case l&0xc0 == 0xc0:
				off += 2
				return off <= len(m)
			default:
				off += 1 + l
			}
		}
		return false
	}
	for range qd {
		if !skipName() || off+4 > len(m) {
			return errors.New("malformed question")
		}
		off += 4
	}
	for range an {
		if !skipName() || off+10 > len(m) {
			return errors.New("malformed answer")
		}
		typ := binary.BigEndian.Uint16(m[off:])
		rdlen := int(binary.BigEndian.Uint16(m[off+8:]))
		off += 10
		if off+rdlen > len(m) {
			return errors.New("malformed answer")
		}
		if typ == 1 && rdlen == 4 && net.IP(m[off:off+4]).Equal(want) {
			return nil
		}
		off += rdlen
	}
	return fmt.Errorf("no A record %v in the answer (%d answers)", want, an)
}
