//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// dohTestServer is a DoH server on 127.0.0.1 for what unbound does not
// serve: RFC 8484 over HTTP/1.1 and the JSON API. It forwards to unbound's
// plain port. /upload takes any body and is not DNS. Go's server-side TLS
// is not probed, so only the clients' plaintext is read.
func dohTestServer(t *testing.T, dir string, plain string) (port int) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	exchange := func(q *dns.Msg) (*dns.Msg, error) {
		r, _, err := new(dns.Client).Exchange(q, plain)
		return r, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/dns-query", func(w http.ResponseWriter, r *http.Request) {
		var wire []byte
		var err error
		if r.Method == http.MethodPost {
			wire, err = io.ReadAll(r.Body)
		} else {
			wire, err = base64.RawURLEncoding.DecodeString(r.URL.Query().Get("dns"))
		}
		q := new(dns.Msg)
		if err == nil {
			err = q.Unpack(wire)
		}
		var resp *dns.Msg
		if err == nil {
			resp, err = exchange(q)
		}
		var b []byte
		if err == nil {
			b, err = resp.Pack()
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/dns-message")
		w.Write(b)
	})
	mux.HandleFunc("/resolve", func(w http.ResponseWriter, r *http.Request) {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(r.URL.Query().Get("name")), dns.StringToType[r.URL.Query().Get("type")])
		resp, err := exchange(q)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		type rr struct {
			Name string `json:"name"`
			Type uint16 `json:"type"`
			TTL  uint32 `json:"TTL"`
			Data string `json:"data"`
		}
		out := struct {
			Status   int
			RD, RA   bool
			Question []rr
			Answer   []rr
		}{Status: resp.Rcode, RD: true, RA: true, Question: []rr{{Name: q.Question[0].Name, Type: q.Question[0].Qtype}}}
		for _, a := range resp.Answer {
			h := a.Header()
			out.Answer = append(out.Answer, rr{h.Name, h.Rrtype, h.Ttl, strings.TrimPrefix(a.String(), h.String())})
		}
		w.Header().Set("Content-Type", "application/dns-json")
		json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "stored\n")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

// TestDoH: DNS over HTTPS is recorded in clear, with the URL that carried
// it. unbound serves DoH (HTTP/2) on 127.0.0.1:8443 (testdata/tls/setup.sh)
// and a Go server in the test serves HTTP/1.1 DoH and the JSON API, both
// with a certificate made for the test. As children of a shell the test
// starts: curl --doh-url (libcurl, OpenSSL, HTTP/2), dig +https (BIND 9.18,
// POST), a Python http.client GET ?dns= (HTTP/1.1), and curl asking the
// JSON API. Each client's rows name it with its exact pid, exe, argv and
// parents, the question, the answer, proto doh and the URL's host and path.
// A further curl POSTs a random secret to the same Go server over the same
// library: not DoH, so nothing of it is stored, which the test checks in the
// evidence file's bytes and its -wal.
func TestDoH(t *testing.T) {
	requireRoot(t)
	curl, dig, sh, py := lookExe(t, "curl"), lookExe(t, "dig"), lookExe(t, "sh"), pythonExe(t)
	getPy, err := filepath.Abs("testdata/tls/doh_get.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const plain, httpPort = "5396", "8094"
	cert := startTLSBed(t, dir, "PLAIN="+plain, "DOT=8854", "DOH=8443", "HTTP="+httpPort)
	goPort := dohTestServer(t, dir, "127.0.0.1:"+plain)
	goHost := "127.0.0.1:" + strconv.Itoa(goPort)

	// The secret is in a file, not on a command line: argv is evidence.
	secretBytes := make([]byte, 16)
	rand.Read(secretBytes)
	secret := "dnsrec-secret-" + hex.EncodeToString(secretBytes)
	secretFile := filepath.Join(dir, "body.txt")
	if err := os.WriteFile(secretFile, []byte("password="+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	jsonPath := "/resolve?name=c2.evil.test&type=A"
	clients := []struct {
		name       string
		argv       []string
		host, path string // the URL the client's rows carry; path "" for a prefix check below
		pathPrefix string
		json       bool
	}{
		{name: "curl", argv: []string{curl, "-4", "-sS", "--cacert", cert, "--doh-url", "https://127.0.0.1:8443/dns-query",
			"-o", "/dev/null", "-w", "%{remote_ip}\n", "http://c2.evil.test:" + httpPort + "/cert.pem"},
			host: "127.0.0.1:8443", path: "/dns-query"},
		{name: "dig", argv: []string{dig, "+short", "+https", "+tls-ca=" + cert, "+tls-hostname=dns.test", "@127.0.0.1", "-p", "8443", "c2.evil.test", "A"},
			host: "127.0.0.1:8443", path: "/dns-query"},
		{name: "python", argv: []string{py, getPy, "127.0.0.1", strconv.Itoa(goPort), cert, "c2.evil.test"},
			host: goHost, pathPrefix: "/dns-query?dns="},
		{name: "curl-json", argv: []string{curl, "-4", "-sS", "--cacert", cert, "-H", "accept: application/dns-json", "https://" + goHost + jsonPath},
			host: goHost, path: jsonPath, json: true},
		{name: "curl-secret", argv: []string{curl, "-4", "-sS", "--cacert", cert, "--data-binary", "@" + secretFile,
			"https://" + goHost + "/upload", "https://" + goHost + "/upload?again"}},
	}
	var script string
	for _, c := range clients {
		for _, a := range c.argv {
			script += "'" + a + "' "
		}
		script += `& echo "pid $!"; wait $! || exit 1; `
	}

	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{DoHPorts: []uint16{8443, uint16(goPort)}})
	shell, out := run(t, exec.Command(sh, "-c", script))
	stop()
	pids := map[string]int{}
	i := 0
	for _, l := range strings.Split(out, "\n") {
		if p, ok := strings.CutPrefix(l, "pid "); ok && i < len(clients) {
			pids[clients[i].name], _ = strconv.Atoi(p)
			i++
		}
	}
	if len(pids) != len(clients) || strings.Count(out, "127.0.0.1") < 3 || !strings.Contains(out, "stored") {
		t.Fatalf("clients did not all resolve c2.evil.test over DoH:\n%s", out)
	}

	// Nothing of the connection that was not DoH is in the evidence.
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.IsNotExist(err) && f != path {
				continue
			}
			t.Fatal(err)
		}
		// (Its URL is on curl's command line, which is evidence when
		// curl resolves 127.0.0.1 through libc; its body is not.)
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret of a non-DoH HTTPS request", f)
		}
	}

	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	me := os.Getpid()
	for _, c := range clients {
		pid := pids[c.name]
		tl := timelineRows(t, db, pid)
		if c.name == "curl-secret" {
			if len(tl) != 0 {
				t.Errorf("curl POSTing a non-DNS body (pid %d) left rows: %v", pid, tl)
			}
			continue
		}
		rows, err := db.WhoResolved(ctx, "c2.evil.test", query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(pid)}}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("who-resolved c2.evil.test, %s pid %d: %d rows, want 1: %+v", c.name, pid, len(rows), rows)
			continue
		}
		r := rows[0]
		if r.PID.V != int64(pid) || r.Exe != c.argv[0] || !slices.Equal(r.Argv, c.argv) ||
			strings.Join(r.Answers, ";") != "A 127.0.0.1" || r.Status != "NOERROR" ||
			len(r.Ancestry) < 2 || r.Ancestry[0].PID != int64(shell) || !hasAncestor(r.Ancestry, me) {
			t.Errorf("who-resolved c2.evil.test, %s: pid %d exe %q argv %q answers %q status %q ancestry %s;\n"+
				"want pid %d exe %q argv %q answers \"A 127.0.0.1\" status NOERROR, child of %d, descendant of %d",
				c.name, r.PID.V, r.Exe, r.Argv, r.Answers, r.Status, r.Ancestry, pid, c.argv[0], c.argv, shell, me)
		}
		urlOK := func(row map[string]string) bool {
			if row["url_host"] != c.host {
				return false
			}
			if c.pathPrefix != "" {
				return strings.HasPrefix(row["url_path"], c.pathPrefix)
			}
			return row["url_path"] == c.path
		}
		jsonOK := func(row map[string]string) bool {
			return strings.Contains(row["note"], "synthesised from the DoH JSON API") == c.json
		}
		server := strings.Split(c.host, ":")
		serverAddr := "127.0.0.1:" + server[1]
		var q, resp bool
		for _, row := range tl {
			if row["proto"] != "doh" || !urlOK(row) || !jsonOK(row) || row["qname"] != "c2.evil.test" || row["qtype"] != "A" {
				continue
			}
			switch {
			case row["kind"] == "query" && row["src_pid"] == strconv.Itoa(pid) && row["dst"] == serverAddr:
				q = true
			case row["kind"] == "response" && row["dst_pid"] == strconv.Itoa(pid) && row["src"] == serverAddr &&
				row["rcode"] == "NOERROR" && row["answers"] == "A 127.0.0.1" && row["reply_to"] != "":
				resp = true
			}
		}
		if !q || !resp {
			t.Errorf("timeline of %s (pid %d): query over doh to %s with URL %s%s%s %v, its response %v; rows:\n%v",
				c.name, pid, serverAddr, c.host, c.path, c.pathPrefix, q, resp, tl)
		}
	}
}
