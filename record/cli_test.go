//go:build linux && (amd64 || arm64)

package record_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/dnsrec/dnsrec/bpf"
)

// TestCLIRecordAndQuery runs the README's workflow with the real binary:
// `dnsrec record -o FILE` until SIGTERM, then `dnsrec query who-resolved` and
// `dnsrec query info` on the file, as a responder would.
func TestCLIRecordAndQuery(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	dig := lookExe(t, "dig")
	srv := startServer(t, "cli.dnsrec.test")
	path := filepath.Join(dir, "case.db")

	rec := startRecorderCLI(t, bin, "record", "-o", path)

	pid, _ := run(t, exec.Command(dig, "@127.0.0.1", "cli.dnsrec.test", "+tries=1", "+time=3"))
	if err := rec.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(); err != nil {
		t.Fatalf("dnsrec record exited with %v:\n%s", err, rec.logText())
	}

	// It prints "SHA256  FILE" for the chain of custody, leaves no -wal
	// behind, and the file is 0600.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	io.Copy(h, f)
	f.Close()
	sum := hex.EncodeToString(h.Sum(nil))
	if want := sum + "  " + path; !strings.Contains(rec.stdout.String(), want) {
		t.Errorf("stdout %q does not contain %q", rec.stdout.String(), want)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("evidence mode %v (%v), want 0600", fi.Mode(), err)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("-wal left behind: %v", err)
	}

	// A second record to the same path is refused, and the evidence stays.
	if out, err := exec.Command(bin, "record", "-o", path).CombinedOutput(); err == nil || !strings.Contains(string(out), "refusing to overwrite") {
		t.Errorf("record over existing evidence: %v, %s", err, out)
	}

	query := func(args ...string) [][]string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"query"}, args...)...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("dnsrec query %v: %v", args, err)
		}
		rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || len(rows) < 1 {
			t.Fatalf("dnsrec query %v: bad CSV %q: %v", args, out, err)
		}
		return rows
	}
	// The positional argument before the flags, as the README shows.
	rows := query("who-resolved", "cli.dnsrec.test", "--db", path, "--format", "csv")
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c] = i
	}
	var found bool
	for _, r := range rows[1:] {
		if r[col["pid"]] != strconv.Itoa(pid) {
			continue
		}
		found = true
		if r[col["exe"]] != dig || r[col["comm"]] != "dig" || r[col["qname"]] != "cli.dnsrec.test" {
			t.Errorf("row %q: want exe %s, comm dig", r, dig)
		}
		if want := fmt.Sprintf("(%d)", os.Getpid()); !strings.HasSuffix(strings.SplitN(r[col["ancestry"]], " > ", 2)[0], want) {
			t.Errorf("ancestry %q: want the test process %s as direct parent", r[col["ancestry"]], want)
		}
		if r[col["answers"]] != "A "+srv.addr4("cli.dnsrec.test") || r[col["count"]] != "1" {
			t.Errorf("answers %q count %q, want A %s and 1", r[col["answers"]], r[col["count"]], srv.addr4("cli.dnsrec.test"))
		}
	}
	if !found {
		t.Errorf("who-resolved has no row for dig (pid %d): %q", pid, rows)
	}

	// verify finds the chain whole, ending in the head the recorder logged.
	head := ""
	for _, l := range rec.log {
		if i := strings.Index(l, "chain_head="); i >= 0 && strings.Contains(l, "wrote evidence") {
			head = strings.Fields(l[i+len("chain_head="):])[0]
		}
	}
	v := query("verify", "--db", path, "--format", "csv")
	vcol := func(name string) string { return v[1][slices.Index(v[0], name)] }
	if head == "" || len(v) != 2 || vcol("result") != "ok" || vcol("head") != head || vcol("sha256") != sum {
		t.Errorf("verify: %q; the recorder logged chain head %q and printed SHA-256 %s", v, head, sum)
	}

	// --hook auto picked a tier and info says which.
	info := query("info", "--db", path, "--format", "csv")
	hook := slices.Index(info[0], "hook")
	if len(info) != 2 || hook < 0 || !slices.Contains(bpf.Tiers, bpf.Tier(info[1][hook])) {
		t.Errorf("info: %q, want one session naming its hook tier", info)
	}

	// Queries never change the evidence.
	f, _ = os.Open(path)
	h = sha256.New()
	io.Copy(h, f)
	f.Close()
	if after := hex.EncodeToString(h.Sum(nil)); after != sum {
		t.Errorf("querying changed the file's SHA-256: %s -> %s", sum, after)
	}
}

// recorderCLI is `dnsrec record` run as a user runs it, with its log.
type recorderCLI struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	lines  chan string // stderr, line by line, closed when it ends
	log    []string    // what waitFor and wait have read of it
}

// startRecorderCLI starts bin with args and waits until it logs that it is
// recording. It is killed at the end of the test if still running.
func startRecorderCLI(t *testing.T, bin string, args ...string) *recorderCLI {
	t.Helper()
	r := &recorderCLI{cmd: exec.Command(bin, args...), lines: make(chan string, 100)}
	r.cmd.Stdout = &r.stdout
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.cmd.Process.Kill(); r.cmd.Wait() })
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			r.lines <- s.Text()
		}
		close(r.lines)
	}()
	r.waitFor(t, `msg=recording`)
	return r
}

// waitFor reads the log until a line contains substr.
func (r *recorderCLI) waitFor(t *testing.T, substr string) {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("dnsrec record ended before logging %q:\n%s", substr, r.logText())
			}
			r.log = append(r.log, l)
			if strings.Contains(l, substr) {
				return
			}
		case <-timeout:
			t.Fatalf("dnsrec record did not log %q:\n%s", substr, r.logText())
		}
	}
}

// wait reads the rest of the log and waits for the process to end.
func (r *recorderCLI) wait() error {
	for l := range r.lines {
		r.log = append(r.log, l)
	}
	return r.cmd.Wait()
}

func (r *recorderCLI) logText() string { return strings.Join(r.log, "\n") }

// buildDnsrec builds cmd/dnsrec into dir.
func buildDnsrec(t *testing.T, dir string) string {
	t.Helper()
	// A binary built for the test (the kernel matrix passes the guest's).
	if bin := os.Getenv("DNSREC_BIN"); bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("needs the go tool to build cmd/dnsrec")
	}
	bin := filepath.Join(dir, "dnsrec")
	// By import path, so it builds from any directory inside the module (the
	// matrix runs the host column from the repository root).
	build := exec.Command(gobin, "build", "-o", bin, "github.com/dnsrec/dnsrec/cmd/dnsrec")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build dnsrec: %v\n%s", err, out)
	}
	return bin
}

// TestCLIForcedTier: a tier forced with --hook either runs or exits non-zero
// with a message that names the tier and what the kernel lacks, without
// falling back to another tier and without leaving an output file.
func TestCLIForcedTier(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	for _, tier := range bpf.Tiers {
		t.Run(string(tier), func(t *testing.T) {
			path := filepath.Join(dir, string(tier)+".db")
			cmd := exec.Command(bin, "record", "--hook", string(tier), "-o", path)
			pipe, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var stderr strings.Builder
			running := make(chan struct{})
			ended := make(chan struct{})
			go func() {
				defer close(ended)
				s := bufio.NewScanner(pipe)
				for s.Scan() {
					stderr.WriteString(s.Text() + "\n")
					if strings.Contains(s.Text(), "msg=recording") {
						close(running)
					}
				}
			}()
			select {
			case <-running:
				// A kernel that has this tier: it must say so, and stop cleanly.
				cmd.Process.Signal(syscall.SIGTERM)
				<-ended
				if err := cmd.Wait(); err != nil {
					t.Fatalf("--hook %s ran but did not stop cleanly: %v\n%s", tier, err, stderr.String())
				}
				if !strings.Contains(stderr.String(), "hook="+string(tier)) {
					t.Errorf("--hook %s: recording did not say it uses %s:\n%s", tier, tier, stderr.String())
				}
				return
			case <-ended:
				err = cmd.Wait()
			case <-time.After(2 * time.Minute):
				cmd.Process.Kill()
				t.Fatalf("--hook %s neither started nor failed within 2 minutes", tier)
			}
			if err == nil {
				t.Fatalf("--hook %s exited 0 without being stopped:\n%s", tier, stderr.String())
			}
			msg := stderr.String()
			if !strings.Contains(msg, "hook tier "+string(tier)) || !strings.Contains(msg, "not supported by this kernel") {
				t.Errorf("--hook %s failed without naming the tier and the reason:\n%s", tier, msg)
			}
			if strings.Contains(msg, "msg=recording") {
				t.Errorf("--hook %s fell back to another tier:\n%s", tier, msg)
			}
			if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("--hook %s failed but left %s behind (%v)", tier, path, err)
			}
			t.Logf("--hook %s: %s", tier, strings.TrimSpace(msg))
		})
	}
}

// TestCLINoKernelBTF: on a kernel that publishes no BTF, `dnsrec record`
// says so in one message that names the kernel option, and leaves no
// file. The test hides /sys/kernel/btf under an empty tmpfs in a mount
// namespace of its own (unshare from util-linux), as such a kernel has it.
func TestCLINoKernelBTF(t *testing.T) {
	requireRoot(t)
	unshare := lookExe(t, "unshare")
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	path := filepath.Join(dir, "case.db")
	for _, hook := range []string{"auto", "cgroup", "kprobe", "fentry"} {
		cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs none /sys/kernel/btf && exec "$0" record --hook "$1" -o "$2"`, bin, hook, path)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Errorf("--hook %s: exit %v, want 1\n%s", hook, err, stderr.String())
		}
		msg := strings.TrimSpace(stderr.String())
		if !strings.Contains(msg, "publishes no BTF") || !strings.Contains(msg, "CONFIG_DEBUG_INFO_BTF") || strings.Count(msg, "\n") > 0 {
			t.Errorf("--hook %s: stderr %q, want one line naming CONFIG_DEBUG_INFO_BTF", hook, msg)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("--hook %s: %s exists (%v); nothing was recorded", hook, path, err)
		}
	}
}

// TestCLIBoundedRecording: `--duration` and `--max-size` stop the recorder
// by itself, cleanly: exit 0, the hash printed, the reason logged, the
// file whole (no -wal) and holding what was sent before the stop.
func TestCLIBoundedRecording(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	startServer(t, "bounded.dnsrec.test")
	q := new(dns.Msg)
	q.SetQuestion("bounded.dnsrec.test.", dns.TypeA)
	client := &dns.Client{Timeout: 2 * time.Second}

	stopsBy := func(t *testing.T, rec *recorderCLI, path, reason string, traffic bool) {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- rec.cmd.Wait() }()
		deadline := time.After(90 * time.Second)
		sent := 0
		for waiting := true; waiting; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("dnsrec record exited with %v", err)
				}
				waiting = false
			case <-deadline:
				t.Fatalf("dnsrec record did not stop by itself (%s)", reason)
			default:
				if traffic {
					if _, _, err := client.Exchange(q, "127.0.0.1:53"); err == nil {
						sent++
					}
				} else {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		for l := range rec.lines {
			rec.log = append(rec.log, l)
		}
		if !strings.Contains(rec.logText(), reason) {
			t.Errorf("the log does not say %q:\n%s", reason, rec.logText())
		}
		if !strings.Contains(rec.stdout.String(), "  "+path) {
			t.Errorf("stdout %q has no hash line for %s", rec.stdout.String(), path)
		}
		if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s-wal is left behind (%v)", path, err)
		}
		db := openRO(t, path)
		var n int
		if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = 'bounded.dnsrec.test' AND role = 'client'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		// Each exchange is a query and a response seen by the client.
		// The client keeps asking until the recorder has exited, so the
		// exchanges after it detached are not stored: at most all.
		if traffic && (n < 20 || n > 2*sent) {
			t.Errorf("%d client messages stored for %d exchanges", n, sent)
		}
	}

	t.Run("duration", func(t *testing.T) {
		path := filepath.Join(dir, "duration.db")
		start := time.Now()
		rec := startRecorderCLI(t, bin, "record", "-o", path, "--duration", "2s")
		stopsBy(t, rec, path, `stopped="duration 2s reached"`, true)
		if took := time.Since(start); took < 2*time.Second {
			t.Errorf("stopped after %s, before its duration", took)
		}
	})
	t.Run("max-size", func(t *testing.T) {
		path := filepath.Join(dir, "size.db")
		const max = 1 << 20
		rec := startRecorderCLI(t, bin, "record", "-o", path, "--max-size", "1MiB")
		stopsBy(t, rec, path, `stopped="max-size 1048576 bytes reached"`, true)
		if fi, err := os.Stat(path); err != nil || fi.Size() < max/2 {
			t.Errorf("%s: %v, want a file that grew to about %d bytes", path, err, max)
		}
	})
	t.Run("bad size", func(t *testing.T) {
		out, err := exec.Command(bin, "record", "-o", filepath.Join(dir, "bad.db"), "--max-size", "2 parsecs").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--max-size") || !strings.Contains(string(out), "not a size") {
			t.Errorf("--max-size '2 parsecs': %v\n%s", err, out)
		}
	})
}

// TestCLILive: `--live` prints a dig query's line, and its response's,
// within a second of the query; `--live-format json` prints one JSON
// object per message.
func TestCLILive(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	dig := lookExe(t, "dig")
	srv := startServer(t, "live.dnsrec.test", "json.dnsrec.test")
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			name := "live.dnsrec.test"
			if format == "json" {
				name = "json.dnsrec.test"
			}
			path := filepath.Join(dir, format+".db")
			cmd := exec.Command(bin, "record", "-o", path, "--live", "--live-format", format)
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			var stderr lockedBuffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			lines := make(chan string, 1000)
			go func() {
				s := bufio.NewScanner(stdout)
				for s.Scan() {
					lines <- s.Text()
				}
				close(lines)
			}()
			// The recorder is ready when its log says so.
			for deadline := time.Now().Add(time.Minute); !strings.Contains(stderr.String(), "msg=recording"); time.Sleep(50 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("dnsrec record did not start:\n%s", stderr.String())
				}
			}
			pid, _ := run(t, exec.Command(dig, "@127.0.0.1", name, "+tries=1", "+time=3"))
			asked := time.Now()
			var query, response string
			timeout := time.After(time.Second)
			for query == "" || response == "" {
				select {
				case l := <-lines:
					if !strings.Contains(l, name) {
						continue
					}
					if format == "json" {
						var m struct {
							Sender, Receiver *struct{ PID int }
							Response         bool
							QName, QType     string
							Rcode            string
							Answers          []string
						}
						if err := json.Unmarshal([]byte(l), &m); err != nil {
							t.Fatalf("not JSON: %q: %v", l, err)
						}
						switch {
						case !m.Response && m.Sender != nil && m.Sender.PID == pid && m.QType == "A":
							query = l
						case m.Response && m.Receiver != nil && m.Receiver.PID == pid && m.QType == "A" && m.Rcode == "NOERROR" &&
							len(m.Answers) == 1 && m.Answers[0] == "A "+srv.addr4(name):
							response = l
						}
						continue
					}
					switch {
					case strings.Contains(l, fmt.Sprintf("(%d) > ", pid)) && strings.Contains(l, "query") && strings.Contains(l, name+" A"):
						query = l
					case strings.Contains(l, fmt.Sprintf(" > dig(%d)", pid)) || strings.Contains(l, fmt.Sprintf("(%d)  udp  response", pid)):
						if strings.Contains(l, "NOERROR") && strings.Contains(l, "A "+srv.addr4(name)) {
							response = l
						}
					}
				case <-timeout:
					t.Fatalf("within a second of dig (pid %d), the live view printed query %q and response %q; stderr:\n%s", pid, query, response, stderr.String())
				}
			}
			t.Logf("%s after %s:\n%s\n%s", format, time.Since(asked).Round(time.Millisecond), query, response)
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Fatalf("dnsrec record: %v\n%s", err, stderr.String())
			}
		})
	}
	t.Run("bad format", func(t *testing.T) {
		out, err := exec.Command(bin, "record", "-o", filepath.Join(dir, "bad.db"), "--live", "--live-format", "xml").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "--live-format") {
			t.Errorf("--live-format xml: %v\n%s", err, out)
		}
	})
}

// openPTY opens a pseudo-terminal: the master end, which the test reads,
// and the slave end, which a child takes as its terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pty slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// TestCLIStatus: on a terminal the recorder redraws one status line
// (elapsed, stored, rate, loss, size, tier) in place; in a pipe it never
// draws it, and logs a status line every --status-interval instead, or on
// SIGUSR1.
func TestCLIStatus(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	startServer(t, "status.dnsrec.test")
	q := new(dns.Msg)
	q.SetQuestion("status.dnsrec.test.", dns.TypeA)
	traffic := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			(&dns.Client{Timeout: time.Second}).Exchange(q, "127.0.0.1:53")
		}
	}
	const clearLine = "\r\x1b[K"

	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		cmd := exec.Command(bin, "record", "-o", filepath.Join(dir, "tty.db"))
		cmd.Stderr = slave
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		slave.Close()
		var mu sync.Mutex
		var out bytes.Buffer
		read := make(chan struct{}) // closed once the terminal is read to its end
		go func() {
			defer close(read)
			buf := make([]byte, 4096)
			for {
				n, err := master.Read(buf)
				mu.Lock()
				out.Write(buf[:n])
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
		traffic(3 * time.Second)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("dnsrec record: %v", err)
		}
		select {
		case <-read:
		case <-time.After(10 * time.Second):
			t.Fatal("the terminal's output did not end after dnsrec exited")
		}
		mu.Lock()
		text := out.String()
		mu.Unlock()
		lines := regexp.MustCompile(`\r\x1b\[K(\d+s  (\d+) stored  \d+/s  loss: \d+ ring drops, \d+ hook misses, \d+ unattributed, \d+ undecodable  [\d.]+ [KMG]iB  (cgroup|fentry|kprobe))`).FindAllStringSubmatch(text, -1)
		if len(lines) < 2 {
			t.Fatalf("want the status line redrawn at least twice on the terminal, got %d:\n%q", len(lines), text)
		}
		if last := lines[len(lines)-1][2]; last == "0" {
			t.Errorf("the last status says nothing stored: %q", lines[len(lines)-1][1])
		}
		// The log still reaches the terminal, each line starting clean.
		if !strings.Contains(text, clearLine+"time=") || !strings.Contains(text, "msg=\"wrote evidence\"") {
			t.Errorf("log lines are not written over a cleared status line:\n%q", text)
		}
	})
	t.Run("pipe", func(t *testing.T) {
		cmd := exec.Command(bin, "record", "-o", filepath.Join(dir, "pipe.db"), "--status-interval", "1s")
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		traffic(3500 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("dnsrec record: %v\n%s", err, stderr.String())
		}
		if strings.Contains(stderr.String(), "\x1b[K") {
			t.Errorf("terminal control codes in a pipe:\n%q", stderr.String())
		}
		if n := regexp.MustCompile(`msg=status elapsed=\S+ stored=[1-9]\d* rate=\d+ ringbuf_drops=\d+`).FindAllString(stderr.String(), -1); len(n) < 1 {
			t.Errorf("no status log line every second in a pipe:\n%s", stderr.String())
		}
	})
	t.Run("SIGUSR1", func(t *testing.T) {
		cmd := exec.Command(bin, "record", "-o", filepath.Join(dir, "usr1.db"), "--status-interval", "0")
		var stderr lockedBuffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		traffic(2500 * time.Millisecond)
		if strings.Contains(stderr.String(), "msg=status") {
			t.Fatalf("a status line before SIGUSR1 with --status-interval 0:\n%s", stderr.String())
		}
		cmd.Process.Signal(syscall.SIGUSR1)
		waitUntil(t, 10*time.Second, "a status line after SIGUSR1", func() bool { return strings.Contains(stderr.String(), "msg=status") })
		cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Fatalf("dnsrec record: %v\n%s", err, stderr.String())
		}
		if !regexp.MustCompile(`msg=status elapsed=\S+ stored=[1-9]`).MatchString(stderr.String()) {
			t.Errorf("SIGUSR1 logged no status:\n%s", stderr.String())
		}
	})
}

// lockedBuffer is a bytes.Buffer a test may read while a child process's
// output is still being copied into it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
