//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

// childMain is the "child binary" client: the test binary re-executed with
// envChild=NAME. It resolves NAME through Go's own resolver against
// DNSREC_TEST_SERVER over DNSREC_TEST_NET (udp or tcp), prints its pid and
// exits at once. With DNSREC_TEST_SPAWN set it instead starts itself once
// more (a grandchild of the test) and prints the grandchild's output.
func childMain() int {
	if os.Getenv("DNSREC_TEST_SPAWN") != "" {
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintf(os.Stderr, "spawner: %v\n", err)
			return 1
		}
		cmd := exec.Command(exe)
		cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "DNSREC_TEST_SPAWN=") })
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "spawner: %v\n", err)
			return 1
		}
		return 0
	}
	name := os.Getenv(envChild)
	server := os.Getenv("DNSREC_TEST_SERVER")
	network := cmp.Or(os.Getenv("DNSREC_TEST_NET"), "udp")
	if os.Getenv("DNSREC_TEST_TXT") != "" {
		// One TXT query with EDNS 65535 (dig 9.18 sends no more than
		// 32767), printing the response's size.
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), dns.TypeTXT)
		q.SetEdns0(65535, false)
		if network == "tcp" {
			r, _, err := (&dns.Client{Net: "tcp", Timeout: 10 * time.Second}).Exchange(q, server)
			if err != nil || len(r.Answer) == 0 {
				fmt.Fprintf(os.Stderr, "child: TXT %s over tcp: %v %v\n", name, r, err)
				return 1
			}
			r.Compress = true
			fmt.Printf("size=%d answers=%d\n", r.Len(), len(r.Answer))
			return 0
		}
		b, _ := q.Pack()
		c, err := net.Dial("udp", server)
		if err != nil {
			fmt.Fprintf(os.Stderr, "child: %v\n", err)
			return 1
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 65536)
		n := 0
		if _, err = c.Write(b); err == nil {
			n, err = c.Read(buf)
		}
		var r dns.Msg
		if err == nil {
			err = r.Unpack(buf[:n])
		}
		if err != nil || r.Truncated || len(r.Answer) == 0 {
			fmt.Fprintf(os.Stderr, "child: TXT %s: %v %v\n", name, &r, err)
			return 1
		}
		fmt.Printf("size=%d answers=%d\n", n, len(r.Answer))
		return 0
	}
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, server)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := r.LookupIPAddr(ctx, name); err != nil {
		fmt.Fprintf(os.Stderr, "child: resolve %s: %v\n", name, err)
		return 1
	}
	// With DNSREC_TEST_SETUID=N it then drops to uid N (every thread) and
	// resolves "after.NAME": the same process under another identity.
	if u := os.Getenv("DNSREC_TEST_SETUID"); u != "" {
		uid, _ := strconv.Atoi(u)
		if err := syscall.Setuid(uid); err != nil {
			fmt.Fprintf(os.Stderr, "child: setuid %d: %v\n", uid, err)
			return 1
		}
		if _, err := r.LookupIPAddr(ctx, "after."+name); err != nil {
			fmt.Fprintf(os.Stderr, "child: resolve after.%s: %v\n", name, err)
			return 1
		}
	}
	fmt.Printf("pid=%d\n", os.Getpid())
	return 0
}

func isRoot() bool { return os.Geteuid() == 0 }

func requireRoot(t *testing.T) {
	t.Helper()
	if !isRoot() {
		t.Skip("loading BPF programs needs root: run `sudo make test`")
	}
}

// testServer answers A and AAAA for the names it was given, on 127.0.0.1:53
// and [::1]:53, UDP and TCP, and TXT for the names given to addTXT.
type testServer struct {
	mu      sync.Mutex
	answers map[string]int // name -> last octet of its addresses
	txt     map[string]int // name -> size of its TXT response
	h       dns.Handler
}

// addTXT makes the server answer name TXT with a response of exactly size
// bytes (txtAnswer).
func (s *testServer) addTXT(name string, size int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answers[name] = 0
	s.txt[name] = size
}

// txtReply is the answer section of the server's TXT response for qname
// (with its trailing dot), of size bytes in all.
func txtReply(qname string, size int) []dns.RR {
	m := new(dns.Msg)
	m.SetQuestion(qname, dns.TypeTXT)
	m.Response, m.Compress = true, true
	return txtAnswer(qname, size-m.Len())
}

// txtRecords is the data of name's TXT records as dnsrec stores them, in
// the order the server sends them.
func (s *testServer) txtRecords(name string) []string {
	s.mu.Lock()
	size := s.txt[name]
	s.mu.Unlock()
	var out []string
	for _, rr := range txtReply(dns.Fqdn(name), size) {
		out = append(out, rdata(rr))
	}
	return out
}

func (s *testServer) addr4(name string) string { return fmt.Sprintf("192.0.2.%d", s.answers[name]) }
func (s *testServer) addr6(name string) string { return fmt.Sprintf("2001:db8::%d", s.answers[name]) }

func startServer(t testing.TB, names ...string) *testServer {
	t.Helper()
	s := newTestServer(names...)
	for _, host := range []string{"127.0.0.1", "::1"} {
		s.listen(t, net.JoinHostPort(host, "53"))
	}
	return s
}

// newTestServer is a server that listens nowhere yet: see listen.
func newTestServer(names ...string) *testServer {
	s := &testServer{answers: map[string]int{}, txt: map[string]int{}}
	for i, n := range names {
		s.answers[n] = 10 + i
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		name := strings.TrimSuffix(strings.ToLower(q.Name), ".")
		s.mu.Lock()
		_, ok := s.answers[name]
		txtSize := s.txt[name]
		s.mu.Unlock()
		switch {
		case !ok:
			m.Rcode = dns.RcodeNameError
		case q.Qtype == dns.TypeTXT && txtSize > 0:
			m.Compress = true
			m.Answer = txtReply(q.Name, txtSize)
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(s.addr4(name))})
		case q.Qtype == dns.TypeAAAA:
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, AAAA: net.ParseIP(s.addr6(name))})
		}
		w.WriteMsg(m)
	})
	s.h = h
	return s
}

// listen serves on one more address, UDP and TCP, until the test ends.
func (s *testServer) listen(t testing.TB, addr string) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatalf("listen udp %s: %v", addr, err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen tcp %s: %v", addr, err)
	}
	for _, srv := range []*dns.Server{{PacketConn: pc, Handler: s.h}, {Listener: l, Handler: s.h}} {
		go srv.ActivateAndServe()
		t.Cleanup(func() { srv.Shutdown() })
	}
	// Shutdown does nothing to a server whose goroutine has not started
	// yet, which would keep port 53 for the next test: close the sockets
	// themselves too.
	t.Cleanup(func() { pc.Close(); l.Close() })
}

// listenTLS serves DNS over TLS on addr (TCP) until the test ends, with a
// certificate for dns.test and the address made here; it returns the path,
// in dir, of that certificate in PEM for clients to trust.
func (s *testServer) listenTLS(t testing.TB, addr, dir string) string {
	t.Helper()
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dns.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"dns.test"}, IPAddresses: []net.IP{net.ParseIP(host)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "upstream-cert.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatalf("listen tls %s: %v", addr, err)
	}
	srv := &dns.Server{Listener: l, Net: "tcp-tls", Handler: s.h}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown(); l.Close() })
	return bundle
}

// startRecorder runs record.Run on path until the returned stop is called.
func startRecorder(t *testing.T, path string, opts record.Options) (stop func() record.Summary) {
	t.Helper()
	stop, err := tryStartRecorder(t, path, opts)
	if err != nil {
		t.Fatalf("recorder did not start: %v", err)
	}
	return stop
}

// tryStartRecorder is startRecorder for callers that handle a recorder that
// cannot start (a hook tier this kernel lacks).
func tryStartRecorder(t testing.TB, path string, opts record.Options) (stop func() record.Summary, err error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	type result struct {
		sum record.Summary
		err error
	}
	done := make(chan result, 1)
	opts.Output = path
	opts.Started = func(record.Started) { close(started) }
	go func() {
		sum, err := record.Run(ctx, opts)
		done <- result{sum, err}
	}()
	select {
	case <-started:
	case r := <-done:
		cancel()
		return nil, r.err
	case <-time.After(2 * time.Minute): // loading under emulation (vmtest) is slow
		cancel()
		return nil, errors.New("recorder did not start within 2 minutes")
	}
	var once sync.Once
	var res result
	stop = func() record.Summary {
		once.Do(func() {
			cancel()
			res = <-done
		})
		if res.err != nil {
			t.Fatalf("recorder: %v", res.err)
		}
		return res.sum
	}
	t.Cleanup(func() { once.Do(func() { cancel(); <-done }) })
	return stop, nil
}

func lookExe(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is needed for this test (apt-get install dnsutils libc-bin): %v", name, err)
	}
	p, err = filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func run(t *testing.T, cmd *exec.Cmd) (pid int, stdout string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %v\n%s%s", cmd.Args, err, out.String(), errb.String())
	}
	return cmd.Process.Pid, out.String()
}

// client is one process the test starts and what the recording must say of it.
type client struct {
	name      string // qname it resolves (unique per client)
	proto     string
	server    string // server address it talks to
	pid       int
	exe       string
	parents   []int  // expected ancestry pids, direct parent first
	source    string // expected processes.source, "" for any
	answerTyp string // "A" or "AAAA" it must have received
}

// msgRow is what the assertions read back for one message.
type msgRow struct {
	direction, role, proto, saddr string
	pid                           sql.NullInt64
	procPID                       sql.NullInt64
	exe, source                   sql.NullString
	answers                       string
}

func readMessages(t *testing.T, db *sql.DB, qname string) []msgRow {
	t.Helper()
	rows, err := db.Query(`SELECT m.direction, m.role, m.proto, m.saddr, m.pid, p.pid, p.exe, p.source,
		coalesce((SELECT group_concat(a.data, ';') FROM answers a WHERE a.message_id = m.id AND a.section = 'answer'), '')
		FROM messages m LEFT JOIN processes p ON p.id = m.process_id WHERE m.qname = ? ORDER BY m.id`, qname)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []msgRow
	for rows.Next() {
		var r msgRow
		if err := rows.Scan(&r.direction, &r.role, &r.proto, &r.saddr, &r.pid, &r.procPID, &r.exe, &r.source, &r.answers); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// ancestry returns the pids up the parent_id chain of the process that sent
// a client query for qname, direct parent first.
func ancestry(t *testing.T, db *sql.DB, qname string, pid int) []int {
	t.Helper()
	rows, err := db.Query(`WITH RECURSIVE up(id, pid, depth) AS (
		SELECT p.parent_id, NULL, 0 FROM messages m JOIN processes p ON p.id = m.process_id
		 WHERE m.qname = ? AND m.pid = ? AND m.direction = 'send' AND m.role = 'client'
		UNION ALL
		SELECT p.parent_id, p.pid, up.depth + 1 FROM up JOIN processes p ON p.id = up.id WHERE up.depth < 64)
		SELECT pid FROM up WHERE pid IS NOT NULL GROUP BY depth ORDER BY depth`, qname, pid)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var p int
		if err := rows.Scan(&p); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func openRO(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestRecordAttributesClients is the end-to-end check of the slice: real BPF
// programs on this kernel, a real DNS server on loopback, and real clients
// the test starts itself. Every client's query and response must be in the
// file with the client's exact pid, exe and parent chain, and the response
// with the answer it received.
func TestRecordAttributesClients(t *testing.T) {
	requireRoot(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	self, _ = filepath.EvalSymlinks(self)
	dig, getent := lookExe(t, "dig"), lookExe(t, "getent")
	sh := lookExe(t, "sh")

	names := []string{"child.dnsrec.test", "grandchild.dnsrec.test", "udp.dnsrec.test", "tcp.dnsrec.test", "v6.dnsrec.test", "getent.dnsrec.test"}
	srv := startServer(t, names...)
	path := filepath.Join(t.TempDir(), "case.db")
	stop := startRecorder(t, path, record.Options{Hook: bpf.TierCgroup, OwnerWait: 300 * time.Millisecond})

	me := os.Getpid()
	childEnv := func(name string) []string {
		return append(os.Environ(), envChild+"="+name, "DNSREC_TEST_SERVER=127.0.0.1:53")
	}
	var clients []client

	// A child binary that resolves and exits at once.
	cmd := exec.Command(self)
	cmd.Env = childEnv("child.dnsrec.test")
	pid, _ := run(t, cmd)
	clients = append(clients, client{name: "child.dnsrec.test", proto: "udp", server: "127.0.0.1", pid: pid, exe: self, parents: []int{me}, source: "exec", answerTyp: "A"})

	// The same child, one level down, under a shell that outlives it by
	// nothing: its ancestry must name the shell and then this test.
	cmd = exec.Command(sh, "-c", `"$0"; exit $?`, self)
	cmd.Env = childEnv("grandchild.dnsrec.test")
	shPID, out := run(t, cmd)
	gpid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "pid=")))
	if err != nil {
		t.Fatalf("grandchild printed %q", out)
	}
	clients = append(clients, client{name: "grandchild.dnsrec.test", proto: "udp", server: "127.0.0.1", pid: gpid, exe: self, parents: []int{shPID, me}, source: "exec", answerTyp: "A"})

	for _, c := range []struct{ name, proto, server, typ string }{
		{"udp.dnsrec.test", "udp", "127.0.0.1", "A"},
		{"tcp.dnsrec.test", "tcp", "127.0.0.1", "A"},
		{"v6.dnsrec.test", "udp", "::1", "AAAA"},
	} {
		args := []string{"@" + c.server, "-p", "53", c.name, c.typ, "+tries=1", "+time=3"}
		if c.proto == "tcp" {
			args = append(args, "+tcp")
		}
		pid, _ := run(t, exec.Command(dig, args...))
		clients = append(clients, client{name: c.name, proto: c.proto, server: c.server, pid: pid, exe: dig, parents: []int{me}, source: "exec", answerTyp: c.typ})
	}

	// glibc's stub resolver, reading the sandbox's resolv.conf. `getent
	// hosts` (gethostbyname2) asks for AAAA first and stops there; `getent
	// ahosts` would ask nothing, because getaddrinfo's AI_ADDRCONFIG
	// ignores loopback, the only interface in the sandbox.
	pid, _ = run(t, exec.Command(getent, "hosts", "getent.dnsrec.test"))
	clients = append(clients, client{name: "getent.dnsrec.test", proto: "udp", server: "127.0.0.1", pid: pid, exe: getent, parents: []int{me}, source: "exec", answerTyp: "AAAA"})

	sum := stop()
	if sum.SHA256 == "" || sum.Messages == 0 {
		t.Fatalf("summary %+v: no messages", sum)
	}
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a -wal file was left behind: %v", err)
	}

	db := openRO(t, path)
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			rows := readMessages(t, db, c.name)
			var sent, got bool
			want := srv.addr4(c.name)
			if c.answerTyp == "AAAA" {
				want = srv.addr6(c.name)
			}
			for _, r := range rows {
				if r.role != "client" || !r.pid.Valid || int(r.pid.Int64) != c.pid {
					continue
				}
				if r.proto != c.proto {
					t.Errorf("%s message over %s, want %s", r.direction, r.proto, c.proto)
				}
				if !r.procPID.Valid || int(r.procPID.Int64) != c.pid {
					t.Errorf("%s message: process row pid %v, want %d", r.direction, r.procPID, c.pid)
				}
				if r.exe.String != c.exe {
					t.Errorf("%s message: exe %q, want %q", r.direction, r.exe.String, c.exe)
				}
				if c.source != "" && r.source.String != c.source {
					t.Errorf("%s message: process source %q, want %q (exe must come from the kernel's exec event)", r.direction, r.source.String, c.source)
				}
				switch r.direction {
				case "send":
					sent = true
					if r.saddr != c.server {
						t.Errorf("query sent from %s, want %s", r.saddr, c.server)
					}
				case "recv":
					if strings.Contains(";"+r.answers+";", ";"+want+";") {
						got = true
					}
				}
			}
			if !sent {
				t.Errorf("no query sent by pid %d for %s; rows: %+v", c.pid, c.name, rows)
			}
			if !got {
				t.Errorf("no response with answer %s received by pid %d for %s; rows: %+v", want, c.pid, c.name, rows)
			}
			chain := ancestry(t, db, c.name, c.pid)
			if len(chain) < len(c.parents) || !slices.Equal(chain[:len(c.parents)], c.parents) {
				t.Errorf("ancestry %v, want it to start with %v", chain, c.parents)
			}
		})
	}

	// The server side belongs to this test process, which runs the server.
	// Its sockets were bound before it sent anything, so their owner is
	// learnt when it reads: recvmsg for UDP, sock_recv_length for an
	// accepted TCP connection (Linux 6.3+, as on the CI kernel).
	for _, name := range []string{"udp.dnsrec.test", "tcp.dnsrec.test", "v6.dnsrec.test"} {
		seen := map[string]bool{}
		for _, r := range readMessages(t, db, name) {
			if r.role != "server" {
				continue
			}
			if !r.pid.Valid || int(r.pid.Int64) != me {
				t.Errorf("%s: server %s message attributed to pid %v, want the test process %d", name, r.direction, r.pid, me)
			}
			seen[r.direction] = true
		}
		if !seen["recv"] || !seen["send"] {
			t.Errorf("%s: server side incomplete, saw %v", name, seen)
		}
	}

	var hook string
	var drops int64
	if err := db.QueryRow(`SELECT hook FROM sessions`).Scan(&hook); err != nil || hook != "cgroup" {
		t.Errorf("sessions.hook = %q, %v; want cgroup", hook, err)
	}
	if err := db.QueryRow(`SELECT coalesce(max(ringbuf_drops), 0) FROM loss`).Scan(&drops); err != nil || drops != 0 {
		t.Errorf("ring buffer drops %d, %v; want 0", drops, err)
	}
}
