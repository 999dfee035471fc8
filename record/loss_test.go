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
// parallel exchanges. Whatever the kernel could not queue must be counted:
// every exchange is four messages (query and response, each seen by client
// and server), so stored messages plus counted drops must cover them all.
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
	var stored, drops int64
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = 'loss.dnsrec.test'`).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT coalesce(max(ringbuf_drops), 0) FROM loss`).Scan(&drops); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d exchanges answered, %d messages stored, %d ring buffer drops", answered, stored, drops)
	if answered == 0 {
		t.Fatal("no exchange was answered")
	}
	// A one-page ring cannot hold this burst: if nothing was dropped, the
	// test did not test the counting.
	if drops == 0 {
		t.Errorf("no ring buffer drops from %d exchanges through a %d-byte ring", answered, 4096)
	}
	if stored+drops < int64(4*answered) {
		t.Errorf("%d messages stored + %d drops counted < %d messages exchanged: loss went uncounted", stored, drops, 4*answered)
	}
}
