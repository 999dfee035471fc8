//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// TestQueriesPairedWithResponses: each response names the query it answers,
// with the client's wait; a query nobody answers stays unanswered; a
// retransmitted query is not paired twice; who-resolved says NOERROR,
// NXDOMAIN or unanswered instead of an empty answers column.
func TestQueriesPairedWithResponses(t *testing.T) {
	requireRoot(t)
	startServer(t, "paired.tx.test", "retry.tx.test")
	path := filepath.Join(t.TempDir(), "tx.db")
	// 5354 is a DNS port here that nobody listens on; 5355 is a server
	// that answers a retransmitted query only once it has both copies, so
	// the order on the wire is query, query, response, response. (Through
	// the ordinary server the first answer can come back before the second
	// send, and then two links to two queries are right.)
	retrySrv := holdTwoServer(t, "127.0.0.1:5355")
	stop := startRecorder(t, path, record.Options{Ports: []uint16{53, 5354, 5355}})

	exchange := func(name string) {
		q := new(dns.Msg)
		q.SetQuestion(name+".", dns.TypeA)
		if _, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, "127.0.0.1:53"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	exchange("paired.tx.test")
	exchange("missing.tx.test") // NXDOMAIN
	// The same query twice from one socket: to nobody, and to the server.
	twice := func(addr, name string) {
		// Unconnected, so that an ICMP error for the first send does not
		// fail the second.
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		to, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		q := new(dns.Msg)
		q.SetQuestion(name+".", dns.TypeA)
		b, _ := q.Pack()
		for range 2 {
			if _, err := c.WriteTo(b, to); err != nil {
				t.Fatal(err)
			}
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		buf := make([]byte, 512)
		c.ReadFrom(buf)
		c.ReadFrom(buf)
	}
	twice("127.0.0.1:5354", "lost.tx.test")
	twice(retrySrv, "retry.tx.test")
	stop()

	db := openRO(t, path)
	pairs := func(name string) (queries, responses, linked, distinct int, latency int64) {
		t.Helper()
		err := db.QueryRow(`SELECT
			(SELECT count(*) FROM msgs m JOIN names n ON n.id = m.name_id WHERE n.name = ?1 AND m.obs & 4 = 0),
			(SELECT count(*) FROM msgs m JOIN names n ON n.id = m.name_id WHERE n.name = ?1 AND m.obs & 4 = 4),
			(SELECT count(*) FROM msgs m JOIN names n ON n.id = m.name_id WHERE n.name = ?1 AND m.obs & 4 = 4
				AND m.query_id IN (SELECT q.id FROM msgs q WHERE q.name_id = m.name_id AND q.obs & 4 = 0 AND q.dns_id = m.dns_id)),
			(SELECT count(DISTINCT m.query_id) FROM msgs m JOIN names n ON n.id = m.name_id WHERE n.name = ?1),
			(SELECT coalesce(min(m.latency_ns), -1) FROM msgs m JOIN names n ON n.id = m.name_id WHERE n.name = ?1 AND m.query_id IS NOT NULL)`,
			name).Scan(&queries, &responses, &linked, &distinct, &latency)
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	for _, name := range []string{"paired.tx.test", "missing.tx.test"} {
		if q, r, l, _, lat := pairs(name); q != 1 || r != 1 || l != 1 || lat <= 0 || lat > int64(2*time.Second) {
			t.Errorf("%s: %d queries, %d responses, %d linked, latency %d ns; want 1, 1, 1 and a latency", name, q, r, l, lat)
		}
	}
	if q, r, l, _, _ := pairs("lost.tx.test"); q != 2 || r != 0 || l != 0 {
		t.Errorf("lost.tx.test: %d queries, %d responses, %d linked; want 2, 0, 0", q, r, l)
	}
	if q, r, l, d, _ := pairs("retry.tx.test"); q != 2 || r < 1 || l != 1 || d != 1 {
		t.Errorf("retry.tx.test: %d queries, %d responses, %d linked to %d queries; want 2 queries and one link", q, r, l, d)
	}

	qdb, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer qdb.Close()
	rows, err := qdb.WhoResolved(context.Background(), "tx.test", query.WhoResolvedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"paired.tx.test": "NOERROR", "missing.tx.test": "NXDOMAIN", "lost.tx.test": "unanswered (2)"}
	for _, r := range rows {
		if w, ok := want[r.QName]; ok {
			if r.Status != w {
				t.Errorf("who-resolved %s: status %q, want %q", r.QName, r.Status, w)
			}
			delete(want, r.QName)
		}
	}
	if len(want) != 0 {
		t.Errorf("who-resolved has no row for %v", want)
	}
}

// holdTwoServer answers DNS queries on addr in pairs: it reads two, then
// answers each (NOERROR, no records), so both sends precede both answers.
func holdTwoServer(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		type got struct {
			from net.Addr
			q    dns.Msg
		}
		var held []got
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			var g got
			if g.q.Unpack(buf[:n]) != nil {
				continue
			}
			g.from = from
			if held = append(held, g); len(held) < 2 {
				continue
			}
			for _, h := range held {
				r := new(dns.Msg)
				r.SetReply(&h.q)
				b, _ := r.Pack()
				c.WriteTo(b, h.from)
			}
			held = held[:0]
		}
	}()
	return c.LocalAddr().String()
}
