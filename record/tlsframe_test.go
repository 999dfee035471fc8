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
