//go:build linux && (amd64 || arm64)

package record_test

import (
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

// TestLossIsNeverSilent overruns a one-page ring buffer with a burst of
// parallel exchanges. Every message the kernel could not queue must be
// counted as a lost message (loss.msg_drops), not only as some lost record:
// every exchange is four messages (query and response, each seen by client
// and server), so stored messages plus counted message drops must cover
// them all. Process and owner records lost in the same burst count in
// ringbuf_drops only, and cannot make up for an uncounted message.
func TestLossIsNeverSilent(t *testing.T) {
	requireRoot(t)
	startServer(t, "loss.dnsrec.test")
	path := filepath.Join(t.TempDir(), "loss.db")
	stop := startRecorder(t, path, record.Options{Hook: bpf.TierCgroup, RingBytes: 4096, OwnerWait: 300 * time.Millisecond})

	const workers, each = 32, 25
	q := new(dns.Msg)
	q.SetQuestion("loss.dnsrec.test.", dns.TypeA)
	var wg sync.WaitGroup
	var mu sync.Mutex
	answered := 0
	for range workers {
		wg.Go(func() {
			c := &dns.Client{Net: "udp", Timeout: 2 * time.Second}
			for range each {
				if _, _, err := c.Exchange(q, "127.0.0.1:53"); err == nil {
					mu.Lock()
					answered++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	stop()

	db := openRO(t, path)
	var stored, drops, msgDrops int64
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = 'loss.dnsrec.test'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT coalesce(max(ringbuf_drops), 0), coalesce(max(msg_drops), 0) FROM loss`).Scan(&drops, &msgDrops); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d exchanges answered, %d messages stored, %d message drops, %d ring buffer drops in all", answered, stored, msgDrops, drops)
	if answered == 0 {
		t.Fatal("no exchange was answered")
	}
	// A one-page ring cannot hold this burst: if no message was dropped,
	// the test did not test the counting.
	if msgDrops == 0 {
		t.Errorf("no message drops from %d exchanges through a %d-byte ring (ringbuf_drops %d)", answered, 4096, drops)
	}
	if msgDrops > drops {
		t.Errorf("msg_drops %d > ringbuf_drops %d: the total must count every drop", msgDrops, drops)
	}
	if stored+msgDrops < int64(4*answered) {
		t.Errorf("%d messages stored + %d message drops counted < %d messages exchanged: loss went uncounted", stored, msgDrops, 4*answered)
	}
}
