//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// TestTCPOwnerLookup: a TCP server's first bytes that
// arrive before any hook sees its reader — a query riding the SYN (TCP
// fast open, as dnsmasq sends upstream), or one queued before accept
// (TCP_DEFER_ACCEPT) — are stored with the process that holds the
// listening socket, not as unattributed. The server is this test process;
// each client is a process of its own.
func TestTCPOwnerLookup(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	dig := lookExe(t, "dig")
	python := lookExe(t, "python3")
	// Fast open in this test's network namespace, client and server,
	// without the cookie exchange (1|2|4|0x200): data in the first SYN.
	const sysctl = "/proc/sys/net/ipv4/tcp_fastopen"
	old, err := os.ReadFile(sysctl)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sysctl, []byte("519"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(sysctl, old, 0o644)

	srv := newTestServer("tfo.owner.test", "tfo2.owner.test", "defer.owner.test")
	listen := func(addr string, opt, val int) {
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, opt, val) }); err != nil {
				return err
			}
			return serr
		}}
		l, err := lc.Listen(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("listen %s: %v", addr, err)
		}
		s := &dns.Server{Listener: l, Handler: srv.h}
		go s.ActivateAndServe()
		t.Cleanup(func() { s.Shutdown(); l.Close() })
	}
	listen("127.0.0.3:53", unix.TCP_FASTOPEN, 16)
	listen("127.0.0.4:53", unix.TCP_DEFER_ACCEPT, 5)

	path := filepath.Join(dir, "owner.db")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")
	// A fast open client: the query (with its TCP length prefix) is
	// the SYN's payload.
	fastOpen := func(name string) {
		q := new(dns.Msg)
		q.SetQuestion(name+".", dns.TypeA)
		wire, err := q.Pack()
		if err != nil {
			t.Fatal(err)
		}
		script := fmt.Sprintf(`import socket, struct
q = bytes.fromhex(%q)
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.sendto(struct.pack("!H", len(q)) + q, socket.MSG_FASTOPEN, ("127.0.0.3", 53))
n = struct.unpack("!H", s.recv(2))[0]
r = b""
while len(r) < n:
    r += s.recv(n - len(r))
print(len(r))
`, fmt.Sprintf("%x", wire))
		if out, err := exec.Command(python, "-c", script).CombinedOutput(); err != nil {
			t.Fatalf("fast open client: %v\n%s", err, out)
		}
	}
	// The server's receipt of each name's query, stored with its owner:
	// the owner wait is over for it.
	received := func(names ...string) func() bool {
		return countAtLeast(path, int64(len(names)), `SELECT count(DISTINCT n.name) FROM msgs m JOIN names n ON n.id = m.name_id
			WHERE n.name IN (SELECT value FROM json_each(?)) AND m.obs & 4 = 0 AND m.obs & 2 AND m.r_owner IS NOT NULL`, `["`+strings.Join(names, `","`)+`"]`)
	}
	fastOpen("tfo.owner.test")
	// The first query's socket is looked up. The next query on it is
	// attributed at once, and so is stored as one message with both
	// ends, like any loopback exchange.
	waitUntil(t, 10*time.Second, "the first fast open query's owner", received("tfo.owner.test"))
	fastOpen("tfo2.owner.test")
	if out, err := exec.Command(dig, "+tcp", "+tries=1", "+time=3", "@127.0.0.4", "defer.owner.test").CombinedOutput(); err != nil {
		t.Fatalf("dig +tcp: %v\n%s", err, out)
	}
	// The held receipts are released with their owners, before the stop.
	waitUntil(t, 10*time.Second, "the held receipts' owners", received("tfo2.owner.test", "defer.owner.test"))
	stopRecorder(t, rec)

	db := openRO(t, path)
	var both int
	if err := db.QueryRow(`SELECT count(*) FROM msgs m JOIN names n ON n.id = m.name_id JOIN owners o ON o.id = m.r_owner
		WHERE n.name = 'tfo2.owner.test' AND m.obs & 15 = 11 AND o.pid = ?`, os.Getpid()).Scan(&both); err != nil || both != 1 {
		t.Errorf("the second fast open query: %d rows with both ends and the listener's process (%v), want 1", both, err)
	}
	for _, name := range []string{"tfo.owner.test", "tfo2.owner.test", "defer.owner.test"} {
		var obs int
		var pid *int64
		err := db.QueryRow(`SELECT m.obs, o.pid FROM msgs m JOIN names n ON n.id = m.name_id LEFT JOIN owners o ON o.id = m.r_owner
			WHERE n.name = ? AND m.obs & 4 = 0 AND m.obs & 2`, name).Scan(&obs, &pid)
		if err != nil {
			t.Errorf("%s: the server's receipt of the query: %v\n%s", name, err, rec.logText())
			continue
		}
		if pid == nil || *pid != int64(os.Getpid()) {
			got := "none"
			if pid != nil {
				got = strconv.FormatInt(*pid, 10)
			}
			t.Errorf("%s: the server's receipt is attributed to %s, want the listening process %d (obs %d)", name, got, os.Getpid(), obs)
		}
	}
}
