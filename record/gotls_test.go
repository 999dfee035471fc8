//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// goClient is a Go program of testdata built with one toolchain.
type goClient struct {
	name string // "go1.26.8", "go1.26.8 stripped", "go1.21.13"
	exe  string
}

// buildGoDoTClients builds testdata/gotls (goClients).
func buildGoDoTClients(t *testing.T) []goClient {
	return buildGoClients(t, "gotls", "dotclient")
}

// buildGoClients builds testdata/SRC/main.go as the executable NAME with
// this machine's go, the same stripped of .symtab, and with an older
// toolchain (register ABI) fetched through the module proxy when it can be.
func buildGoClients(t *testing.T, src, name string) []goClient {
	t.Helper()
	goBin := lookExe(t, "go")
	code, err := os.ReadFile(filepath.Join("testdata", src, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), code, 0o644); err != nil {
		t.Fatal(err)
	}
	// Its own module, so that an older toolchain may build it.
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := func(out, toolchain string, flags ...string) error {
		cmd := exec.Command(goBin, append(append([]string{"build", "-o", out}, flags...), ".")...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN="+toolchain)
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Logf("go build (GOTOOLCHAIN=%s %q): %v\n%s", toolchain, flags, err, b)
		}
		return err
	}
	v := runtime.Version()
	clients := []goClient{
		{v, filepath.Join(dir, name+"-"+v)},
		{v + " stripped", filepath.Join(dir, name+"-"+v+"-stripped")},
	}
	if build(clients[0].exe, "local") != nil || build(clients[1].exe, "local", "-ldflags=-s -w") != nil {
		t.Fatalf("could not build testdata/%s", src)
	}
	const old = "go1.21.13"
	if err := build(filepath.Join(dir, name+"-"+old), old); err != nil {
		t.Logf("%s could not be fetched or run through the module proxy: its client is left out", old)
	} else {
		clients = append(clients, goClient{old, filepath.Join(dir, name+"-"+old)})
	}
	return clients
}

// TestGoDoT: a Go program resolving over DNS over TLS with its own
// crypto/tls (no libc, OpenSSL or GnuTLS) is recorded in clear: Go
// executables started after the recorder are found, probed in their own
// symbol table (stripped ones in .gopclntab), and each client's rows name
// it with its exact pid, exe, argv and parents, the question and the
// answer, the query and the response with proto dot. The clients are built
// with this machine's toolchain and, when the proxy serves it, go1.21.13.
func TestGoDoT(t *testing.T) {
	requireRoot(t)
	sh := lookExe(t, "sh")
	clients := buildGoDoTClients(t)
	dir := t.TempDir()
	cert := startDoTBed(t, dir)

	// The clients are children of a shell the test starts, and wait long
	// enough for the recorder's scan to find their executables.
	argvs := make([][]string, len(clients))
	var script string
	for i, c := range clients {
		argvs[i] = []string{c.exe, "127.0.0.1:853", cert, "dns.test", "c2.evil.test", "3s"}
		for _, a := range argvs[i] {
			script += "'" + a + "' "
		}
		script += `& p` + strconv.Itoa(i) + `=$!; echo "pid $!"; `
	}
	for i := range clients {
		script += `wait $p` + strconv.Itoa(i) + ` || exit 1; `
	}

	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{})
	shell, out := run(t, exec.Command(sh, "-c", script))
	stop()
	pids := shellPIDs(out)
	if len(pids) != len(clients) || strings.Count(out, "127.0.0.1") != len(clients) {
		t.Fatalf("Go clients did not resolve c2.evil.test over DoT:\n%s", out)
	}

	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	me := os.Getpid()
	for i, c := range clients {
		pid := pids[i]
		rows, err := db.WhoResolved(ctx, "c2.evil.test", query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(pid)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("who-resolved c2.evil.test, Go client %s pid %d: %d rows, want 1: %+v", c.name, pid, len(rows), rows)
			continue
		}
		r := rows[0]
		if r.PID.V != int64(pid) || r.Exe != c.exe || !slices.Equal(r.Argv, argvs[i]) || r.Count != 1 ||
			strings.Join(r.Answers, ";") != "A 127.0.0.1" || r.Status != "NOERROR" ||
			len(r.Ancestry) < 2 || r.Ancestry[0].PID != int64(shell) || !hasAncestor(r.Ancestry, me) {
			t.Errorf("who-resolved c2.evil.test, Go client %s: pid %d exe %q argv %q count %d answers %q status %q ancestry %s;\n"+
				"want pid %d exe %q argv %q count 1 answers \"A 127.0.0.1\" status NOERROR, child of %d, descendant of %d",
				c.name, r.PID.V, r.Exe, r.Argv, r.Count, r.Answers, r.Status, r.Ancestry, pid, c.exe, argvs[i], shell, me)
		}
		var query, response bool
		for _, row := range timelineRows(t, db, pid) {
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
			t.Errorf("timeline of Go client %s (pid %d): query over dot %v, response over dot %v", c.name, pid, query, response)
		}
	}
	// info names each client's executable among the probed files, with the
	// Go release that built it, the process it was found in and the
	// functions probed; the hash chain covers those rows.
	info, err := db.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(info.Columns, "probed")
	if col < 0 || len(info.Rows) != 1 {
		t.Fatalf("info: columns %q, %d rows", info.Columns, len(info.Rows))
	}
	probed, _ := info.Rows[0][col].(string)
	for i, c := range clients {
		want := fmt.Sprintf("go %s %s pid %d (%s %s %s)", c.exe, strings.Fields(c.name)[0], pids[i],
			"crypto/tls.(*Conn).Write", "crypto/tls.(*Conn).Read", "crypto/tls.(*Conn).Close")
		if !slices.Contains(strings.Split(probed, "; "), want) {
			t.Errorf("info probed lacks %q:\n%s", want, probed)
		}
	}
	if rep, err := db.Verify(ctx); err != nil || !rep[0].OK() {
		t.Errorf("verify: %+v, %v", rep, err)
	}
	names := make([]string, len(clients))
	for i, c := range clients {
		names[i] = c.name
	}
	t.Logf("Go toolchains covered: %s", strings.Join(names, ", "))
}
