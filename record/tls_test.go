//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/record"
)

// TestDoT: DNS over TLS is recorded in clear. unbound serves DoT on
// 127.0.0.1:853 with a certificate made for the test (testdata/tls/setup.sh);
// kdig +tls (GnuTLS), dig +tls (BIND 9, OpenSSL), a Python ssl client
// (OpenSSL) and the same client on memory BIOs (OpenSSL makes no system call:
// the script moves the ciphertext itself) resolve c2.evil.test through it as
// children of a shell the test starts. Each client's rows name
// it with its exact pid, exe, argv and parents, the question and the answer,
// with proto dot; with --no-tls (Options.NoTLS) nothing of DoT is recorded.
func TestDoT(t *testing.T) {
	requireRoot(t)
	kdig, dig, sh, py := lookExe(t, "kdig"), lookExe(t, "dig"), lookExe(t, "sh"), pythonExe(t)
	dotPy, err := filepath.Abs("testdata/tls/dot.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert := startDoTBed(t, dir)
	kdigArgv := []string{kdig, "+tls", "+tls-ca=" + cert, "+tls-hostname=dns.test", "@127.0.0.1", "c2.evil.test", "A"}
	digArgv := []string{dig, "+tls", "+tls-ca=" + cert, "+tls-hostname=dns.test", "@127.0.0.1", "c2.evil.test", "A"}
	pyArgv := []string{py, dotPy, "127.0.0.1", "853", cert, "c2.evil.test"}
	pyMemArgv := []string{py, dotPy, "127.0.0.1", "853", cert, "c2.evil.test", "membio"}
	// The shell prints each client's pid; the clients are its children.
	var script string
	for _, argv := range [][]string{kdigArgv, digArgv, pyArgv, pyMemArgv} {
		for _, a := range argv {
			script += "'" + a + "' "
		}
		script += `& echo "pid $!"; wait $! || exit 1; `
	}
	clients := func() (shell int, pids map[string]int) {
		shell, out := run(t, exec.Command(sh, "-c", script))
		pids = map[string]int{}
		names := []string{"kdig", "dig", "python", "python-membio"}
		for _, l := range strings.Split(out, "\n") {
			if p, ok := strings.CutPrefix(l, "pid "); ok && len(names) > 0 {
				pids[names[0]], _ = strconv.Atoi(p)
				names = names[1:]
			}
		}
		if len(pids) != 4 || strings.Count(out, "127.0.0.1") < 4 {
			t.Fatalf("clients did not resolve c2.evil.test over DoT:\n%s", out)
		}
		return shell, pids
	}

	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{})
	shell, pids := clients()
	stop()

	db, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	me := os.Getpid()
	for _, tc := range []struct {
		client string
		exe    string
		argv   []string
	}{
		{"kdig", kdig, kdigArgv},
		{"dig", dig, digArgv},
		{"python", py, pyArgv},
		{"python-membio", py, pyMemArgv},
	} {
		pid := pids[tc.client]
		rows, err := db.WhoResolved(ctx, "c2.evil.test", query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(pid)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("who-resolved c2.evil.test, %s pid %d: %d rows, want 1: %+v", tc.client, pid, len(rows), rows)
			continue
		}
		r := rows[0]
		if r.PID.V != int64(pid) || r.Exe != tc.exe || !slices.Equal(r.Argv, tc.argv) || r.Count != 1 ||
			strings.Join(r.Answers, ";") != "A 127.0.0.1" || r.Status != "NOERROR" ||
			len(r.Ancestry) < 2 || r.Ancestry[0].PID != int64(shell) || !hasAncestor(r.Ancestry, me) {
			t.Errorf("who-resolved c2.evil.test, %s: pid %d exe %q argv %q count %d answers %q status %q ancestry %s;\n"+
				"want pid %d exe %q argv %q count 1 answers \"A 127.0.0.1\" status NOERROR, child of %d, descendant of %d",
				tc.client, r.PID.V, r.Exe, r.Argv, r.Count, r.Answers, r.Status, r.Ancestry, pid, tc.exe, tc.argv, shell, me)
		}
		// The timeline: the client's query to 853 and the response it
		// read, both proto dot.
		tl := timelineRows(t, db, pid)
		var query, response bool
		for _, row := range tl {
			switch {
			case row["kind"] == "query" && row["proto"] == "dot" && row["src_pid"] == strconv.Itoa(pid) &&
				row["dst"] == "127.0.0.1:853" && row["qname"] == "c2.evil.test" && row["qtype"] == "A":
				query = true
			case row["kind"] == "response" && row["proto"] == "dot" && row["dst_pid"] == strconv.Itoa(pid) &&
				row["src"] == "127.0.0.1:853" && row["rcode"] == "NOERROR" && row["answers"] == "A 127.0.0.1":
				response = true
			}
		}
		if !query || !response {
			t.Errorf("timeline of %s (pid %d): query over dot %v, response over dot %v; rows:\n%v", tc.client, pid, query, response, tl)
		}
	}

	// --no-tls: the same clients leave no DoT row.
	path = filepath.Join(dir, "notls.db")
	stop = startRecorder(t, path, record.Options{NoTLS: true})
	clients()
	stop()
	db2, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	if rows, err := db2.WhoResolved(ctx, "c2.evil.test", query.WhoResolvedOptions{Exact: true}); err != nil || len(rows) != 0 {
		t.Errorf("with NoTLS, who-resolved c2.evil.test: %+v, %v; want nothing", rows, err)
	}
}

// pythonExe is the Python interpreter itself (not a pyenv shim or a
// symlink), so that its exe and argv are known exactly.
func pythonExe(t *testing.T) string {
	t.Helper()
	py := lookExe(t, "python3")
	out, err := exec.Command(py, "-c", "import os, sys; print(os.path.realpath(sys.executable))").Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// timelineRows is the timeline of one pid, as CSV records by column name.
func timelineRows(t *testing.T, db *query.DB, pid int) []map[string]string {
	t.Helper()
	var buf bytes.Buffer
	cols := db.TimelineColumnsFor()
	w, err := format.NewRowWriter(&buf, format.FormatCSV, cols, format.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Timeline(context.Background(), query.TimelineOptions{Filter: query.Filter{PIDs: []int64{int64(pid)}}}, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	recs, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("timeline CSV: %v\n%s", err, buf.String())
	}
	var rows []map[string]string
	for _, rec := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			if i < len(rec) {
				m[c] = rec[i]
			}
		}
		rows = append(rows, m)
	}
	return rows
}

// startDoTBed starts unbound serving DoT on 127.0.0.1:853 with a
// certificate for dns.test made in dir, until the test ends; it returns
// the certificate's path.
func startDoTBed(t *testing.T, dir string) string {
	t.Helper()
	return startTLSBed(t, dir, "PLAIN=5398", "DOT=853", "DOH=8453", "HTTP=8093")
}

// startTLSBed runs testdata/tls/setup.sh in dir, with its ports (PLAIN,
// DOT, DOH, HTTP) set by env, until the test ends: unbound serving the
// test zone in clear, over DoT and over DoH, and an HTTP server. It returns
// the path of the certificate made for dns.test and 127.0.0.1.
func startTLSBed(t *testing.T, dir string, env ...string) string {
	t.Helper()
	sh := lookExe(t, "sh")
	for _, tool := range []string{"unbound", "openssl", "dig"} {
		lookExe(t, tool)
	}
	bed, err := filepath.Abs("testdata/tls/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	env = append(os.Environ(), env...)
	// The servers outlive the script: they get a file, not a pipe that
	// Wait would wait on.
	logf, err := os.Create(filepath.Join(dir, "bed.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stop := exec.Command(sh, bed, "stop", dir)
		stop.Env = env
		stop.Run()
		logf.Close()
	})
	start := exec.Command(sh, bed, "start", dir)
	start.Env, start.Stdout, start.Stderr = env, logf, logf
	if err := start.Run(); err != nil {
		out, _ := os.ReadFile(logf.Name())
		t.Fatalf("test bed (unbound with DoT and DoH, %s): %v\n%s", strings.Join(env[len(env)-4:], " "), err, out)
	}
	return filepath.Join(dir, "cert.pem")
}

// shellPIDs are the pids a test's shell printed, one "pid N" line per
// client it started, in order.
func shellPIDs(out string) []int {
	var pids []int
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "pid "); ok {
			n, _ := strconv.Atoi(p)
			pids = append(pids, n)
		}
	}
	return pids
}
