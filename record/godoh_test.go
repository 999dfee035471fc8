//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// TestGoDoH: a Go program resolving over DNS over HTTPS with net/http
// (HTTP/2 negotiated by ALPN) and its own crypto/tls is recorded in clear.
// Each client (testdata/godoh, built with this machine's toolchain, the same
// stripped, and go1.21.13 when the proxy serves it) sends one RFC 8484 GET
// and one POST for c2.evil.test A to unbound's DoH on one connection; each
// makes a query row and a response row with proto doh, the client's exact
// pid, exe, argv and parents, the URL's host and path, and the response
// tied to its own request.
func TestGoDoH(t *testing.T) {
	requireRoot(t)
	sh := lookExe(t, "sh")
	clients := buildGoClients(t, "godoh", "dohclient")
	dir := t.TempDir()
	const dohPort = 8445
	server := "127.0.0.1:" + strconv.Itoa(dohPort)
	cert := startTLSBed(t, dir, "PLAIN=5395", "DOT=8855", "DOH="+strconv.Itoa(dohPort), "HTTP=8095")

	// The clients are children of a shell the test starts, each with its
	// own output file, and wait long enough for the recorder's scan to find
	// their executables.
	argvs := make([][]string, len(clients))
	outs := make([]string, len(clients))
	var script string
	for i, c := range clients {
		argvs[i] = []string{c.exe, "https://" + server + "/dns-query", cert, "c2.evil.test", "3s"}
		outs[i] = filepath.Join(dir, "out-"+strconv.Itoa(i))
		for _, a := range argvs[i] {
			script += "'" + a + "' "
		}
		script += `>'` + outs[i] + `' & p` + strconv.Itoa(i) + `=$!; echo "pid $!"; `
	}
	for i := range clients {
		script += `wait $p` + strconv.Itoa(i) + ` || exit 1; `
	}

	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{DoHPorts: []uint16{dohPort}})
	shell, out := run(t, exec.Command(sh, "-c", script))
	stop()
	pids := shellPIDs(out)
	if len(pids) != len(clients) {
		t.Fatalf("shell output: %q, want %d pids", out, len(clients))
	}
	// Each client really spoke HTTP/2, and got its answers.
	for i, c := range clients {
		b, err := os.ReadFile(outs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got, want := string(b), "GET HTTP/2.0 127.0.0.1\nPOST HTTP/2.0 127.0.0.1\n"; got != want {
			t.Fatalf("Go DoH client %s printed %q, want %q", c.name, got, want)
		}
	}

	// The message both requests carry (testdata/godoh): id 0, RD, c2.evil.test A IN.
	msg := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 'c', '2', 4, 'e', 'v', 'i', 'l', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}
	requests := []struct{ method, path string }{
		{"GET", "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(msg)},
		{"POST", "/dns-query"},
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
			t.Errorf("who-resolved c2.evil.test, Go DoH client %s pid %d: %d rows, want 1: %+v", c.name, pid, len(rows), rows)
		} else if r := rows[0]; r.PID.V != int64(pid) || r.Exe != c.exe || !slices.Equal(r.Argv, argvs[i]) || r.Count != 2 ||
			strings.Join(r.Answers, ";") != "A 127.0.0.1" || r.Status != "NOERROR (2)" ||
			len(r.Ancestry) < 2 || r.Ancestry[0].PID != int64(shell) || !hasAncestor(r.Ancestry, me) {
			t.Errorf("who-resolved c2.evil.test, Go DoH client %s: pid %d exe %q argv %q count %d answers %q status %q ancestry %s;\n"+
				"want pid %d exe %q argv %q count 2 answers \"A 127.0.0.1\" status \"NOERROR (2)\", child of %d, descendant of %d",
				c.name, r.PID.V, r.Exe, r.Argv, r.Count, r.Answers, r.Status, r.Ancestry, pid, c.exe, argvs[i], shell, me)
		}
		tl := timelineRows(t, db, pid)
		srcs := map[string]bool{} // the queries' client ends
		for _, req := range requests {
			// The query, and the response that replies to it, both with
			// the request's URL.
			var queryID string
			var response bool
			for _, row := range tl {
				if row["proto"] != "doh" || row["url_host"] != server || row["url_path"] != req.path ||
					row["qname"] != "c2.evil.test" || row["qtype"] != "A" {
					continue
				}
				if row["kind"] == "query" && row["src_pid"] == strconv.Itoa(pid) && row["dst"] == server {
					queryID = row["id"]
					srcs[row["src"]] = true
				}
			}
			for _, row := range tl {
				if queryID != "" && row["kind"] == "response" && row["proto"] == "doh" && row["dst_pid"] == strconv.Itoa(pid) &&
					row["src"] == server && row["url_host"] == server && row["url_path"] == req.path &&
					row["qname"] == "c2.evil.test" && row["qtype"] == "A" && row["rcode"] == "NOERROR" &&
					row["answers"] == "A 127.0.0.1" && row["reply_to"] == queryID {
					response = true
				}
			}
			if queryID == "" || !response {
				t.Errorf("timeline of Go DoH client %s (pid %d), %s %s%s: query over doh %v, its response %v; rows:\n%v",
					c.name, pid, req.method, server, req.path, queryID != "", response, tl)
			}
		}
		// Two streams of one HTTP/2 connection: the recorder follows both.
		if len(srcs) != 1 {
			t.Errorf("Go DoH client %s (pid %d): queries from %d client ends %v, want both on one connection", c.name, pid, len(srcs), srcs)
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
