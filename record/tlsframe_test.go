//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/dnsrec/dnsrec/bpf"
)

// TestDoTFraming: the plaintext of TLS calls becomes DoT messages whatever
// the calls' boundaries (a length prefix alone, a message split, two
// messages in one call), and held memory-BIO plaintext is kept when its
// object is bound to a DoT connection and dropped otherwise.
func TestDoTFraming(t *testing.T) {
	p := newTestPipeline()
	p.dot = newDotState(p.opts.dotPorts())
	local := netip.MustParseAddrPort("127.0.0.1:40000")
	dot := netip.MustParseAddrPort("127.0.0.1:853")
	https := netip.MustParseAddrPort("127.0.0.1:443")
	var ident *Identity // without a store no process row can be written; TestDoT checks identities
	q1 := []byte{0x11, 0x11, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1}
	q2 := []byte{0x22, 0x22, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'b', 0, 0, 1, 0, 1}
	q3 := []byte{0x33, 0x33, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'c', 0, 0, 1, 0, 1}
	frame := func(m []byte) []byte { return append(binary.BigEndian.AppendUint16(nil, uint16(len(m))), m...) }
	data := func(obj uint64, flags uint8, remote netip.AddrPort, b []byte) *TLSData {
		t := &TLSData{Dir: bpf.DirSend, Lib: bpf.TLSLibGnuTLS, Flags: flags, PID: 42, TID: 42, Obj: obj,
			Len: uint32(len(b)), BootNs: 1000, Ident: ident, Data: b}
		if flags&bpf.TLSUnbound == 0 {
			t.Local, t.Remote = local, remote
		}
		return t
	}
	f1, f2 := frame(q1), frame(q2)
	for _, rec := range []*TLSData{
		data(1, bpf.TLSSyscall, dot, f1[:2]),                        // the length alone
		data(1, 0, dot, f1[2:7]),                                    // part of the message
		data(1, 0, dot, append(append([]byte{}, f1[7:]...), f2...)), // its end and a whole one
		data(2, bpf.TLSUnbound, netip.AddrPort{}, frame(q3)),        // memory BIO, DoT once bound
		{Bind: true, PID: 42, Obj: 2, Local: local, Remote: dot},
		data(3, bpf.TLSUnbound, netip.AddrPort{}, frame(q1)), // memory BIO, not DoT
		{Bind: true, PID: 42, Obj: 3, Local: local, Remote: https},
	} {
		if err := p.tls(nil, rec); err != nil {
			t.Fatal(err)
		}
	}
	want := [][]byte{q1, q2, q3}
	if len(p.rows) != len(want) {
		t.Fatalf("%d messages, want %d", len(p.rows), len(want))
	}
	for i, m := range p.rows {
		if !bytes.Equal(m.Raw, want[i]) || m.Proto != "dot" || m.Src != local || m.Dst != dot || !m.Send.Seen || m.Send.Ident != ident ||
			m.senderServer || m.DNS.QName == nil {
			t.Errorf("message %d: proto %q %s > %s raw %x server %v; want dot %s > %s raw %x from the client", i, m.Proto, m.Src, m.Dst, m.Raw, m.senderServer, local, dot, want[i])
		}
	}
	if p.dot.notDNS != 1 || p.dot.unboundDropped != 0 || len(p.dot.held) != 0 {
		t.Errorf("dropped %d records of a non-DNS connection, %d never bound, %d objects still held; want 1, 0 and 0", p.dot.notDNS, p.dot.unboundDropped, len(p.dot.held))
	}
}

// TestDoHPipeline: TLS plaintext of client connections to a DoH port
// becomes doh rows carrying their URL; a connection whose first request is
// not DoH is skipped in the kernel and leaves no row, and a call the kernel
// cut on a DoH connection is counted and gives it up.
func TestDoHPipeline(t *testing.T) {
	p := newTestPipeline()
	p.dot = newDotState(p.opts.dotPorts())
	p.dot.dohPorts = p.opts.dohPorts()
	var skipped []uint64
	p.dot.skip = func(pid uint32, obj uint64) error {
		skipped = append(skipped, obj)
		return nil
	}
	local := netip.MustParseAddrPort("127.0.0.1:40000")
	server := netip.MustParseAddrPort("127.0.0.1:443")
	rec := func(obj uint64, dir uint8, flags uint8, b []byte) *TLSData {
		return &TLSData{Dir: dir, Lib: bpf.TLSLibOpenSSL, Flags: flags, PID: 42, TID: 42, Obj: obj, Len: uint32(len(b)),
			BootNs: 1000, Local: local, Remote: server, Data: b}
	}
	q := packMsg(t, "c2.evil.test.", 1, "")
	r := packMsg(t, "c2.evil.test.", 1, "c2.evil.test. 60 IN A 127.0.0.1")
	cl, sv := newH2Side(true), newH2Side(false)
	cl.headers(t, 1, false, ":method", "POST", ":scheme", "https", ":authority", "dns.example", ":path", "/dns-query",
		"content-type", "application/dns-message")
	cl.data(t, 1, q)
	sv.headers(t, 1, false, ":status", "200", "content-type", "application/dns-message")
	sv.data(t, 1, r)
	other := []byte("POST /login HTTP/1.1\r\nHost: bank.example\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 11\r\n\r\npassword=hu")
	for _, d := range []*TLSData{
		rec(1, bpf.DirSend, 0, cl.buf.Bytes()),
		rec(1, bpf.DirRecv, 0, sv.buf.Bytes()),
		rec(2, bpf.DirSend, 0, other),
		rec(2, bpf.DirSend, 0, []byte("nter2\r\n")),        // in the ring before the skip
		rec(3, bpf.DirSend, 0, cl.buf.Bytes()),             // DoH, another connection
		rec(3, bpf.DirSend, bpf.TLSCut, make([]byte, 100)), // then a call too large to copy
	} {
		if err := p.tls(nil, d); err != nil {
			t.Fatal(err)
		}
	}
	if len(p.rows) != 3 {
		t.Fatalf("%d rows, want the query and the response, and the query of the cut connection", len(p.rows))
	}
	for i, want := range [][]byte{q, r, q} {
		m := p.rows[i]
		if m.Proto != "doh" || !bytes.Equal(m.Raw, want) || m.DoH == nil || m.DoH.Host != "dns.example" || m.DoH.Path != "/dns-query" || m.DoH.JSON {
			t.Errorf("row %d: proto %q raw %x url %+v; want doh %x dns.example /dns-query", i, m.Proto, m.Raw, m.DoH, want)
		}
	}
	if m := p.rows[0]; m.Src != local || m.Dst != server || m.senderServer {
		t.Errorf("query %s > %s, sender server %v; want %s > %s from the client", m.Src, m.Dst, m.senderServer, local, server)
	}
	if len(skipped) != 2 || skipped[0] != 2 || skipped[1] != 3 || p.dot.dohSkipped != 1 || p.dot.dohLate != 1 {
		t.Errorf("skipped objects %v (%d not DoH, %d late calls); want [2 3], 1 and 1", skipped, p.dot.dohSkipped, p.dot.dohLate)
	}
	if p.dot.cut != 1 || p.dot.dohUnparsed != 0 {
		t.Errorf("cut %d, unparsed %d; want 1 and 0", p.dot.cut, p.dot.dohUnparsed)
	}
}
