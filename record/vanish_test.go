//go:build linux && (amd64 || arm64)

package record_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/record"
)

// TestNothingVanishes: bytes sent to port 53 that are not a whole DNS
// message are stored raw and flagged, never dropped: an empty UDP
// datagram, a TCP connection that closes in the middle of a message, a
// bogus 0xffff length prefix, random bytes on a TCP DNS connection. Every
// byte this process sent over TCP is accounted for in what was stored.
func TestNothingVanishes(t *testing.T) {
	requireRoot(t)
	startServer(t, "whole.vanish.test")
	path := filepath.Join(t.TempDir(), "vanish.db")
	stop := startRecorder(t, path, record.Options{})

	udp, err := net.Dial("udp", "127.0.0.1:53")
	if err != nil {
		t.Fatal(err)
	}
	udp.Write(nil) // an empty datagram
	udpPort := udp.LocalAddr().(*net.UDPAddr).Port
	udp.Close()

	q := new(dns.Msg)
	q.SetQuestion("whole.vanish.test.", dns.TypeA)
	whole, _ := q.Pack()
	random := []byte{0, 20, 0x9c, 0x2e, 0x11, 0xf0, 0x07, 0x66, 0, 1, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0xff, 0xff, 1, 2, 3, 4,
		0, 40, 0xaa, 0xbb, 0xcc} // a 20-byte "message", then a 40-byte one that stops after 3
	tcpCases := map[string][]byte{
		"cut":    append([]byte{0, byte(len(whole))}, whole[:len(whole)/2]...), // closes mid-message
		"bogus":  append([]byte{0xff, 0xff}, "0123456789"...),
		"random": random,
	}
	ports := map[string]int{}
	for name, b := range tcpCases {
		c, err := net.Dial("tcp", "127.0.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
		ports[name] = c.LocalAddr().(*net.TCPAddr).Port
		time.Sleep(20 * time.Millisecond) // its own segment
		c.Close()
	}
	stop() // a stream's partial message is stored at the stop, at the latest

	db := openRO(t, path)
	me := int64(os.Getpid())
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE proto = 'udp' AND sport = ? AND direction = 'send'
		AND orig_len = 0 AND length(raw) = 0 AND parse_error IS NOT NULL AND pid = ?`, udpPort, me).Scan(&n); err != nil || n != 1 {
		t.Errorf("empty datagram: %d rows (%v), want 1 stored with a parse error", n, err)
	}
	for name, b := range tcpCases {
		rows, err := db.Query(`SELECT orig_len, length(raw), parse_error IS NOT NULL, coalesce(pid, -1) FROM messages
			WHERE proto = 'tcp' AND sport = ? AND direction = 'send' ORDER BY id`, ports[name])
		if err != nil {
			t.Fatal(err)
		}
		stored, flagged := 0, 0
		for rows.Next() {
			var orig, got int
			var perr bool
			var pid int64
			if err := rows.Scan(&orig, &got, &perr, &pid); err != nil {
				t.Fatal(err)
			}
			if pid != me {
				t.Errorf("%s: message owned by pid %d, want %d", name, pid, me)
			}
			stored += got + 2 // its length prefix
			if perr || got < orig {
				flagged++
			}
		}
		rows.Close()
		if stored != len(b) || flagged == 0 {
			t.Errorf("%s: %d of %d bytes sent stored, %d messages flagged cut or undecodable", name, stored, len(b), flagged)
		}
	}
}
