//go:build linux && (amd64 || arm64)

package record

import (
	"net/netip"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/bpf"
)

func TestPortRole(t *testing.T) {
	for _, tc := range []struct {
		ports          []uint16
		src, dst       uint16
		server, decide bool
	}{
		{[]uint16{53}, 40000, 53, false, true}, // to the DNS port: a client
		{[]uint16{53}, 53, 40000, true, true},  // from it: the server
		{[]uint16{53}, 53, 53, false, false},   // resolver to resolver: the ports cannot tell
		{[]uint16{53}, 40000, 40001, false, false},
		{[]uint16{53, 5353}, 5353, 40000, true, true},
		{[]uint16{53, 5353}, 40000, 5353, false, true},
		{[]uint16{53, 5353}, 53, 5353, false, false},
	} {
		server, ok := portRole(tc.ports, tc.src, tc.dst)
		if ok != tc.decide || ok && server != tc.server {
			t.Errorf("portRole(%v, %d, %d) = %v, %v; want %v, %v", tc.ports, tc.src, tc.dst, server, ok, tc.server, tc.decide)
		}
	}
}

func TestQRMismatch(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		qr           *bool
		senderServer bool
		want         bool
	}{
		{nil, false, false}, // no header: nothing to contradict
		{nil, true, false},
		{&no, false, false}, // a client's query
		{&yes, true, false}, // a server's response
		{&yes, false, true}, // a client's "response": spoofed QR
		{&no, true, true},   // a server's "query"
	} {
		if got := qrMismatch(tc.qr, tc.senderServer); got != tc.want {
			t.Errorf("qrMismatch(%v, server=%v) = %v, want %v", tc.qr != nil && *tc.qr, tc.senderServer, got, tc.want)
		}
	}
}

// TestPipelineRoles feeds the pipeline the send and receive of each message
// (no BPF, no store) and checks the role each side is stored in and the
// QR-mismatch flag: from the ports, whatever the QR bit says, and between
// two DNS ports from who spoke first.
func TestPipelineRoles(t *testing.T) {
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	server := netip.MustParseAddrPort("127.0.0.1:53")
	resolverA := netip.MustParseAddrPort("127.0.0.2:53")
	resolverB := netip.MustParseAddrPort("127.0.0.3:53")
	msg := func(name string, response bool) []byte {
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeA)
		m.Response = response
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	p := newTestPipeline()
	feed := func(src, dst netip.AddrPort, raw []byte) *msgRow {
		t.Helper()
		n := len(p.rows)
		for i, dir := range []uint8{bpf.DirSend, bpf.DirRecv} {
			pkt := &Packet{Kind: bpf.EventDNS, Dir: dir, Src: src, Dst: dst, OrigLen: uint32(len(raw)), Payload: raw, BootNs: uint64(len(p.rows)*2+i) * 1000}
			if err := p.message(nil, pkt, raw, len(raw)); err != nil {
				t.Fatal(err)
			}
		}
		if len(p.rows) != n+1 {
			t.Fatalf("send and receive of one message made %d rows", len(p.rows)-n)
		}
		return p.rows[n]
	}
	for _, tc := range []struct {
		what         string
		src, dst     netip.AddrPort
		response     bool
		senderServer bool
		mismatch     bool
		name         string
	}{
		{"query", client, server, false, false, false, "a.role.test."},
		{"response", server, client, true, true, false, "a.role.test."},
		{"client's spoofed response", client, server, true, false, true, "spoof.role.test."},
		{"server's query-flagged answer", server, client, false, true, true, "odd.role.test."},
		// Between two DNS ports the first to speak on the flow is the client.
		{"resolver's query", resolverA, resolverB, false, false, false, "up.role.test."},
		{"resolver's answer", resolverB, resolverA, true, true, false, "up.role.test."},
		{"resolver's spoofed second message", resolverA, resolverB, true, false, true, "up2.role.test."},
	} {
		m := feed(tc.src, tc.dst, msg(tc.name, tc.response))
		if !m.Send.Seen || !m.Recv.Seen {
			t.Fatalf("%s: sides not paired: %+v", tc.what, m)
		}
		if m.Send.Server != tc.senderServer || m.Recv.Server != !tc.senderServer {
			t.Errorf("%s: send side server=%v, receive side server=%v; want %v, %v", tc.what, m.Send.Server, m.Recv.Server, tc.senderServer, !tc.senderServer)
		}
		if m.QRMismatch != tc.mismatch {
			t.Errorf("%s: QR mismatch %v, want %v", tc.what, m.QRMismatch, tc.mismatch)
		}
	}
	// Bytes with no DNS header have no QR bit to contradict.
	if m := feed(client, server, []byte{0x12}); m.QRMismatch || m.Send.Server || !m.Recv.Server {
		t.Errorf("a 1-byte message to the DNS port: %+v", m)
	}
}
