//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/record"
)

// TestLibcResolver: names a process resolves through the C library, from a
// private /etc/hosts that no DNS server knows, are recorded by the libc
// uprobes with the exact pid, exe and parent, and the query commands show
// them (who-resolved, resolved-to, timeline, process). One of the
// processes runs in a mount namespace with a libc of its own (a copy of
// the host's, bind-mounted over it, as a container brings its own): the
// recorder finds it by its periodic scan and probes it too.
func TestLibcResolver(t *testing.T) {
	requireRoot(t)
	getent, unshare, sh := lookExe(t, "getent"), lookExe(t, "unshare"), lookExe(t, "sh")
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n192.0.2.77 hosts-only.libc.test\n2001:db8::77 hosts-only.libc.test\n"+
		"192.0.2.78 own-libc.libc.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	libc := hostLibc(t)
	libcCopy := filepath.Join(dir, "libc.so.6")
	if b, err := os.ReadFile(libc); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(libcCopy, b, 0o755); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(dir, "case.db")
	probed := make(probedPIDs, 16)
	stop := startRecorder(t, path, record.Options{Hook: bpf.TierCgroup, Logger: slog.New(probed)})
	me := os.Getpid()

	// unshare without --fork execs sh, and sh execs getent: one pid.
	cmd := exec.Command(unshare, "-m", "--propagation", "private", sh, "-c",
		`mount --bind "$0" /etc/hosts && exec "$1" ahosts hosts-only.libc.test`, hosts, getent)
	pid, out := run(t, cmd)
	if !strings.Contains(out, "192.0.2.77") {
		t.Fatalf("getent ahosts did not read the private hosts file: %q", out)
	}
	// getent hosts calls gethostbyname2 (AAAA first, then A).
	cmd = exec.Command(unshare, "-m", "--propagation", "private", sh, "-c",
		`mount --bind "$0" /etc/hosts && exec "$1" hosts hosts-only.libc.test`, hosts, getent)
	pid2, _ := run(t, cmd)

	// Its own libc: the shell re-executed after the bind mount maps the
	// copy, and waits until the recorder has probed it before getent
	// resolves.
	cmd = exec.Command(unshare, "-m", "--propagation", "private", sh, "-c",
		`mount --bind "$0" /etc/hosts && mount --bind "$1" "$2" && exec "$3" -c 'read go; exec "$0" ahosts own-libc.libc.test' "$4"`,
		hosts, libcCopy, libc, sh, getent)
	goAhead, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid3 := cmd.Process.Pid
	for deadline := time.After(20 * time.Second); ; {
		select {
		case pid := <-probed:
			if pid != int64(pid3) {
				continue
			}
		case <-deadline:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("the recorder did not probe the libc of pid %d", pid3)
		}
		break
	}
	goAhead.Write([]byte("go\n"))
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v: %v\n%s%s", cmd.Args, err, stdout.String(), stderr.String())
	}
	if out := stdout.String(); !strings.Contains(out, "192.0.2.78") {
		t.Fatalf("getent ahosts in its own mount namespace: %q", out)
	}
	sum := stop()
	if sum.Resolutions < 3 {
		t.Errorf("summary counts %d libc resolutions, want at least 3", sum.Resolutions)
	}

	db, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		pid     int
		via     string
		answers string
	}{
		{"hosts-only.libc.test", pid, "libc getaddrinfo", "A 192.0.2.77;AAAA 2001:db8::77"},
		{"hosts-only.libc.test", pid2, "libc gethostbyname2_r", "AAAA 2001:db8::77"},
		{"own-libc.libc.test", pid3, "libc getaddrinfo", "A 192.0.2.78"},
	} {
		rows, err := db.WhoResolved(ctx, tc.name, query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(tc.pid)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("who-resolved %s, pid %d: %d rows, want 1: %+v", tc.name, tc.pid, len(rows), rows)
			continue
		}
		r := rows[0]
		got := slices.Clone(r.Answers)
		slices.Sort(got) // getaddrinfo sorts by RFC 6724, which depends on the host's addresses
		if r.PID.V != int64(tc.pid) || r.Exe != getent || r.Via != tc.via || strings.Join(got, ";") != tc.answers || r.Status != "answered" ||
			len(r.Ancestry) == 0 || r.Ancestry[len(r.Ancestry)-1].PID == 0 || !hasAncestor(r.Ancestry, me) {
			t.Errorf("who-resolved %s: pid %d exe %q via %q answers %q status %q ancestry %s; want pid %d exe %s via %q answers %q, a descendant of %d",
				tc.name, r.PID.V, r.Exe, r.Via, strings.Join(r.Answers, ";"), r.Status, r.Ancestry, tc.pid, getent, tc.via, tc.answers, me)
		}
	}

	// resolved-to finds the process by the address; the timeline and the
	// process view show the call.
	p, _ := query.ParsePrefix("192.0.2.77")
	rt, err := db.ResolvedTo(ctx, p, query.Filter{PIDs: []int64{int64(pid)}})
	if err != nil || len(rt) != 1 || rt[0].Proc == nil || rt[0].Proc.PID != int64(pid) || rt[0].Chain != "hosts-only.libc.test > libc getaddrinfo > A 192.0.2.77" {
		t.Errorf("resolved-to 192.0.2.77: %+v, %v", rt, err)
	}
	var buf bytes.Buffer
	w, err := format.NewRowWriter(&buf, format.FormatCSV, db.TimelineColumnsFor(), format.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Timeline(ctx, query.TimelineOptions{Filter: query.Filter{PIDs: []int64{int64(pid)}}}, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if want := fmt.Sprintf(",libc getaddrinfo,,,%d,getent,", pid); !strings.Contains(buf.String(), want) || !strings.Contains(buf.String(), "hosts-only.libc.test") {
		t.Errorf("timeline of pid %d lacks %q:\n%s", pid, want, buf.String())
	}
	procs, err := db.Processes(ctx, fmt.Sprint(pid), query.Filter{})
	if err != nil || len(procs) != 1 || len(procs[0].LibcNames) != 1 || procs[0].LibcNames[0].Name != "hosts-only.libc.test" {
		t.Errorf("process %d: %+v, %v", pid, procs, err)
	}
	rep, err := db.Verify(ctx)
	if err != nil || !rep[0].OK() {
		t.Errorf("verify: %+v, %v", rep, err)
	}
}

// probedPIDs is a log handler that passes on the pid of each process in
// which the recorder found a C library to probe.
type probedPIDs chan int64

func (c probedPIDs) Enabled(context.Context, slog.Level) bool { return true }
func (c probedPIDs) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c probedPIDs) WithGroup(string) slog.Handler            { return c }

func (c probedPIDs) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "libc resolver probes attached" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "pid" {
			select {
			case c <- a.Value.Int64():
			default:
			}
		}
		return true
	})
	return nil
}

func hasAncestor(a query.Ancestry, pid int) bool {
	for _, p := range a {
		if p.PID == int64(pid) {
			return true
		}
	}
	return false
}

// hostLibc is the C library this test binary's tools load.
func hostLibc(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", `ldd "$(command -v getent)"`).Output()
	if err != nil {
		t.Fatalf("ldd getent: %v", err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && strings.HasPrefix(f[0], "libc.so") {
			p, err := filepath.EvalSymlinks(f[2])
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatalf("no libc in ldd's output:\n%s", out)
	return ""
}

// TestLibcNested: a Python socket.getaddrinfo(AF_INET) is one question of
// the program, though glibc's getaddrinfo calls gethostbyname2_r inside it.
// Both calls are stored, the inner one marked nested (flags 4); the query
// commands show and count the outer call only, with the name in the case
// it was passed in.
func TestLibcNested(t *testing.T) {
	requireRoot(t)
	unshare, sh, py := lookExe(t, "unshare"), lookExe(t, "sh"), pythonExe(t)
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n192.0.2.79 nested.libc.test\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{Hook: bpf.TierCgroup})
	// unshare and sh exec: python keeps the pid.
	cmd := exec.Command(unshare, "-m", "--propagation", "private", sh, "-c",
		`mount --bind "$0" /etc/hosts && exec "$1" -c 'import socket; print(socket.getaddrinfo("Nested.LIBC.test", None, socket.AF_INET)[0][4][0])'`, hosts, py)
	pid, out := run(t, cmd)
	if strings.TrimSpace(out) != "192.0.2.79" {
		t.Fatalf("python getaddrinfo did not read the private hosts file: %q", out)
	}
	stop()

	raw := openRO(t, path)
	var calls []string
	rs, err := raw.Query(`SELECT r.func, r.flags FROM resolutions r JOIN owners o ON o.id = r.owner WHERE o.pid = ? ORDER BY r.id`, pid)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var fn string
		var flags int
		if err := rs.Scan(&fn, &flags); err != nil {
			t.Fatal(err)
		}
		calls = append(calls, fmt.Sprintf("%s %d", fn, flags))
	}
	rs.Close()
	// The inner call returns first.
	if got := strings.Join(calls, ";"); got != "gethostbyname2_r 4;getaddrinfo 0" {
		t.Errorf("stored calls of pid %d: %q, want the nested gethostbyname2_r marked 4, then getaddrinfo", pid, got)
	}

	db, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.WhoResolved(context.Background(), "nested.libc.test", query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(pid)}}})
	if err != nil {
		t.Fatal(err)
	}
	// The name as Python passed it, found by its lowercase form.
	if len(rows) != 1 || rows[0].PID.V != int64(pid) || rows[0].Exe != py || rows[0].Count != 1 || rows[0].Via != "libc getaddrinfo" || rows[0].QName != "Nested.LIBC.test" {
		t.Errorf("who-resolved nested.libc.test, pid %d: %+v; want one row, exe %s, count 1, via libc getaddrinfo, qname Nested.LIBC.test", pid, rows, py)
	}
	tl := timelineRows(t, db, pid)
	if len(tl) != 1 || tl[0]["qname"] != "Nested.LIBC.test" {
		t.Errorf("timeline of pid %d: %d rows, want 1: %v", pid, len(tl), tl)
	}
}
