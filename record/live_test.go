//go:build linux && (amd64 || arm64)

package record

import (
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/record/store"
)

// blockedWriter never returns from Write until released: a terminal that
// stopped reading.
type blockedWriter struct{ release chan struct{} }

func (w blockedWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

// TestLiveViewNeverWaits: with its output stuck, the live view takes every
// commit without waiting and counts the lines it could not print.
func TestLiveViewNeverWaits(t *testing.T) {
	w := blockedWriter{make(chan struct{})}
	v := newLiveView(w, false)
	q := store.ParseDNS(pack(t, query("stuck.example.", 1)))
	m := &msgRow{MsgRow: store.MsgRow{Proto: "udp", DNS: q, Send: Side{Seen: true, TsNs: 1}}}
	const batches, perBatch = 1000, 3
	done := make(chan struct{})
	go func() {
		for range batches {
			for range perBatch {
				v.add(m)
			}
			v.committed()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("committing waited for a stuck live view")
	}
	close(w.release)
	skipped := v.close()
	// The printer holds at most one batch and the backlog liveBacklog more.
	if min := int64(batches-liveBacklog-1) * perBatch; skipped < min || skipped%perBatch != 0 {
		t.Errorf("%d lines skipped, want at least %d, whole batches", skipped, min)
	}
}

// TestLiveLine: the text line of a response names both ends, the question,
// the rcode and the answers.
func TestLiveLine(t *testing.T) {
	var out strings.Builder
	v := newLiveView(&out, false)
	resp := new(dns.Msg)
	resp.SetReply(query("www.example.", dns.TypeA))
	resp.Answer = append(resp.Answer, mustRR(t, "www.example. 60 IN A 192.0.2.7"))
	r := store.ParseDNS(pack(t, resp))
	m := &msgRow{MsgRow: store.MsgRow{Proto: "udp", DNS: r,
		Send: Side{Seen: true, TsNs: 1, Ident: &Identity{PID: 53, Comm: "dnsmasq"}},
		Recv: Side{Seen: true, TsNs: 2, Ident: &Identity{PID: 4321, Comm: "curl"}}}, senderServer: true}
	v.add(m)
	v.committed()
	v.close()
	for _, want := range []string{"dnsmasq(53) > curl(4321)", "udp  response  www.example A  NOERROR  A 192.0.2.7"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("line %q lacks %q", out.String(), want)
		}
	}
}

var _ io.Writer = blockedWriter{}

func TestLiveResolution(t *testing.T) {
	var out strings.Builder
	v := newLiveView(&out, false)
	r := &ResolutionRow{Resolution: &Resolution{Func: "getaddrinfo", Name: "hosts-only.test", Ident: &Identity{PID: 812, Comm: "getent"},
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.55"), netip.MustParseAddr("2001:db8::55")}}, TsNs: 1}
	v.addResolution(r)
	nx := &ResolutionRow{Resolution: &Resolution{Func: "getaddrinfo", Name: "nx.test", RC: -2, Ident: &Identity{PID: 812, Comm: "getent"}}, TsNs: 2}
	v.addResolution(nx)
	v.committed()
	v.close()
	for _, want := range []string{"getent(812) > libc getaddrinfo  hosts-only.test  answered  A 192.0.2.55; AAAA 2001:db8::55",
		"getent(812) > libc getaddrinfo  nx.test  EAI_NONAME"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lines %q lack %q", out.String(), want)
		}
	}
	var js strings.Builder
	v = newLiveView(&js, true)
	v.addResolution(r)
	v.committed()
	v.close()
	if want := `"proto":"libc"`; !strings.Contains(js.String(), want) || !strings.Contains(js.String(), `"libc":"getaddrinfo"`) {
		t.Errorf("json %q lacks %q and the function", js.String(), want)
	}
}
