//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// TestEncryptedConns: connections to encrypted-DNS servers are on record
// even though their content is not read. Clients the test starts, as
// children of a shell, connect to listeners the test opens on loopback:
// openssl s_client to 127.0.0.1:853 (DoT by its port) and to 127.0.0.2:443
// (a --doh-server address), python3 sending UDP to 127.0.0.1:853 (DoQ by
// its port), and openssl to 127.0.0.3:443, which is no listed resolver.
// Each of the first three has one row with its exact pid, exe, argv and
// parents, the remote, the transport, the kind and the SNI of its
// ClientHello; the last has none.
func TestEncryptedConns(t *testing.T) {
	requireRoot(t)
	sh, ossl, py := lookExe(t, "sh"), lookExe(t, "openssl"), pythonExe(t)
	// The listeners read the ClientHello and hang up: the clients fail
	// their handshake, having sent what the recorder reads.
	for _, addr := range []string{"127.0.0.1:853", "127.0.0.2:443", "127.0.0.3:443"} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listen on %s (another DoT server running?): %v", addr, err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					c.SetDeadline(time.Now().Add(2 * time.Second))
					io.ReadAtLeast(c, make([]byte, 4096), 5)
					c.Close()
				}()
			}
		}()
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:853")
	if err != nil {
		t.Fatalf("listen on udp 127.0.0.1:853: %v", err)
	}
	defer u.Close()

	dot := []string{ossl, "s_client", "-connect", "127.0.0.1:853", "-servername", "dns.example.test"}
	doq := []string{py, "-c", "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.connect((\"127.0.0.1\", 853)); s.send(b\"q\" * 40)"}
	doh := []string{ossl, "s_client", "-connect", "127.0.0.2:443", "-servername", "doh.example.test"}
	other := []string{ossl, "s_client", "-connect", "127.0.0.3:443", "-servername", "www.example.test"}
	var script string
	for _, argv := range [][]string{dot, doq, doh, other} {
		for _, a := range argv {
			script += "'" + a + "' "
		}
		script += `</dev/null >/dev/null 2>&1 & echo "pid $!"; wait $!; `
	}
	script += "true" // the handshakes fail: the listeners hang up

	dir := t.TempDir()
	path := filepath.Join(dir, "case.db")
	stop := startRecorder(t, path, record.Options{DoHServers: []string{"127.0.0.2"}})
	shell, out := run(t, exec.Command(sh, "-c", script))
	time.Sleep(200 * time.Millisecond)
	stop()
	pids := shellPIDs(out)
	if len(pids) != 4 {
		t.Fatalf("clients: %q", out)
	}

	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	me := os.Getpid()
	for i, tc := range []struct {
		exe                          string
		argv                         []string
		kind, transport, remote, sni string
	}{
		{ossl, dot, "dot", "tcp", "127.0.0.1:853", "dns.example.test"},
		{py, doq, "doq", "udp", "127.0.0.1:853", ""},
		{ossl, doh, "doh-known", "tcp", "127.0.0.2:443", "doh.example.test"},
	} {
		rows, err := db.Encrypted(ctx, query.Filter{PIDs: []int64{int64(pids[i])}})
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 {
			t.Errorf("encrypted, pid %d (%s): %d rows, want 1: %+v", pids[i], tc.argv, len(rows), rows)
			continue
		}
		r := rows[0]
		if r.PID.V != int64(pids[i]) || r.Exe != tc.exe || !slices.Equal(r.Argv, tc.argv) || r.Count != 1 ||
			r.Kind != tc.kind || r.Transport != tc.transport || r.Remote != tc.remote || r.SNI != tc.sni ||
			len(r.Ancestry) < 2 || r.Ancestry[0].PID != int64(shell) || !hasAncestor(r.Ancestry, me) {
			t.Errorf("encrypted: pid %d exe %q argv %q count %d kind %s transport %s remote %s sni %q ancestry %s;\n"+
				"want pid %d exe %q argv %q count 1 kind %s transport %s remote %s sni %q, child of %d, descendant of %d",
				r.PID.V, r.Exe, r.Argv, r.Count, r.Kind, r.Transport, r.Remote, r.SNI, r.Ancestry,
				pids[i], tc.exe, tc.argv, tc.kind, tc.transport, tc.remote, tc.sni, shell, me)
		}
		if tc.kind == "doh-known" && r.Resolver != "127.0.0.2" {
			t.Errorf("doh-known row names resolver %q, want the --doh-server value 127.0.0.2", r.Resolver)
		}
	}
	if rows, err := db.Encrypted(ctx, query.Filter{PIDs: []int64{int64(pids[3])}}); err != nil || len(rows) != 0 {
		t.Errorf("a connection to 127.0.0.3:443, no listed resolver: %+v, %v; want no row", rows, err)
	}
	// The local end is the socket's, read at the first send.
	raw, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var local string
	if err := raw.QueryRow("SELECT l_addr || ':' || l_port FROM enc_conns WHERE kind = 'doq'").Scan(&local); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(local, "127.0.0.1:") || local == "127.0.0.1:853" {
		t.Errorf("doq row's local end %q, want 127.0.0.1 and the client's port", local)
	}

	// The hash chain covers the rows: the file verifies, and a changed
	// server name does not.
	if reps, err := db.Verify(ctx); err != nil || len(reps) != 1 || !reps[0].OK() {
		t.Fatalf("verify: %+v, %v", reps, err)
	}
	raw.Close()
	db.Close()
	rw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Exec("UPDATE enc_conns SET sni = 'innocent.example' WHERE sni = 'dns.example.test'"); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	db2, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	reps, err := db2.Verify(ctx)
	if err != nil || len(reps) != 1 || reps[0].OK() || !strings.Contains(fmt.Sprint(reps[0].Problems), "enc_conns") {
		t.Errorf("verify after editing an enc_conns row: %+v, %v; want a problem in enc_conns", reps, err)
	}
}

// TestEncryptedLearnt: a --doh-server NAME gets its addresses from the DNS
// answers the recorder stores. dig asks a server the test runs for
// doh.example.test (answer 127.0.0.4), then openssl connects to
// 127.0.0.4:443: a doh-known row naming the resolver doh.example.test.
// Before the answer, the address is in no list.
func TestEncryptedLearnt(t *testing.T) {
	requireRoot(t)
	sh, ossl, dig := lookExe(t, "sh"), lookExe(t, "openssl"), lookExe(t, "dig")
	pc, err := net.ListenPacket("udp", "127.0.0.1:5397")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if q.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(q.Question[0].Name + " 60 IN A 127.0.0.4")
			m.Answer = append(m.Answer, rr)
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown(); pc.Close() })
	l, err := net.Listen("tcp", "127.0.0.4:443")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.SetDeadline(time.Now().Add(2 * time.Second))
			io.ReadAtLeast(c, make([]byte, 4096), 5)
			c.Close()
		}
	}()
	conn := []string{ossl, "s_client", "-connect", "127.0.0.4:443", "-servername", "doh.example.test"}
	q := "'" + strings.Join(conn, "' '") + "' </dev/null >/dev/null 2>&1"
	// The first connection precedes the answer; the second follows it.
	script := q + ` & echo "pid $!"; wait $!; '` + dig + `' +short -p 5397 @127.0.0.1 doh.example.test A; sleep 1; ` + q + ` & echo "pid $!"; wait $!; true`

	path := filepath.Join(t.TempDir(), "case.db")
	stop := startRecorder(t, path, record.Options{Ports: []uint16{53, 5397}, DoHServers: []string{"doh.example.test"}})
	shell, out := run(t, exec.Command(sh, "-c", script))
	stop()
	pids := shellPIDs(out)
	if len(pids) != 2 || !strings.Contains(out, "127.0.0.4") {
		t.Fatalf("clients: %q", out)
	}
	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if rows, err := db.Encrypted(ctx, query.Filter{PIDs: []int64{int64(pids[0])}}); err != nil || len(rows) != 0 {
		t.Errorf("before the answer: %+v, %v; want no row", rows, err)
	}
	rows, err := db.Encrypted(ctx, query.Filter{PIDs: []int64{int64(pids[1])}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Kind != "doh-known" || rows[0].Remote != "127.0.0.4:443" || rows[0].Resolver != "doh.example.test" ||
		rows[0].SNI != "doh.example.test" || rows[0].Exe != ossl || !slices.Equal(rows[0].Argv, conn) ||
		len(rows[0].Ancestry) == 0 || rows[0].Ancestry[0].PID != int64(shell) {
		t.Errorf("after the answer: %+v; want one doh-known row of pid %d to 127.0.0.4:443, resolver and sni doh.example.test, child of %d", rows, pids[1], shell)
	}
}
