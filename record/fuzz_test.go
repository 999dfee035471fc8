//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
)

// FuzzDecode feeds arbitrary ring buffer records to the decoder: it must
// return an event or an error, never panic, and a packet's payload must be
// the record's bytes after the header, no more than the header claims.
func FuzzDecode(f *testing.F) {
	f.Add(dnsRecord(f, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 4, CapLen: 2}, []byte{7, 8}))
	f.Add(dnsRecord(f, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 6, CapLen: 0, Flags: bpf.FlagIdent}, nil))
	f.Add(dnsRecord(f, bpf.DNSEvent{Kind: bpf.EventOwner, Flags: bpf.FlagIdent}, nil))
	f.Add([]byte{bpf.EventExec})
	f.Add([]byte{bpf.EventExit, 0, 0, 0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Decode(raw)
		if err != nil {
			return
		}
		switch e := ev.(type) {
		case *Packet:
			hdr := int(unsafe.Sizeof(bpf.DNSEvent{}))
			if len(raw) < hdr || len(e.Payload) > len(raw)-hdr || !bytes.Equal(e.Payload, raw[hdr:hdr+len(e.Payload)]) {
				t.Fatalf("payload of %d bytes does not come from the %d-byte record", len(e.Payload), len(raw))
			}
			if e.Ident != nil && len(e.Ident.Ancestors) > len(bpf.Ident{}.Anc) {
				t.Fatalf("%d ancestors", len(e.Ident.Ancestors))
			}
		case *Exec, *Resolution, *TLSData, *Signal, *EncEvent:
		default:
			t.Fatalf("Decode returned %T", ev)
		}
	})
}

// FuzzTCPStream feeds arbitrary segment sequences to the reassembler. Each
// segment is read from the input as: 2 bytes of sequence offset, 2 bytes
// of wire length, 1 byte of captured length, then that many bytes. Nothing
// may panic; every message must fit the protocol (at most 65535 bytes, no
// more captured than its length says); and the stream never emits more
// message bytes than it was given, nor holds more than one maximal message.
func FuzzTCPStream(f *testing.F) {
	seg := func(off, wire uint16, data []byte) []byte {
		b := binary.BigEndian.AppendUint16(nil, off)
		b = binary.BigEndian.AppendUint16(b, wire)
		return append(append(b, byte(len(data))), data...)
	}
	two := []byte{0, 3, 'a', 'b', 'c', 0, 1, 'x'}
	f.Add(seg(0, 8, two))                                                          // two messages in one segment
	f.Add(append(seg(0, 3, two[:3]), seg(3, 5, two[3:])...))                       // one split across two
	f.Add(append(seg(0, 8, two), seg(0, 8, two)...))                               // a retransmission
	f.Add(append(seg(0, 4, []byte{0xff, 0xff, 1, 2}), seg(4, 2, []byte{3, 4})...)) // a bogus length
	f.Add(seg(0, 200, two))                                                        // cut at snaplen
	f.Add(append(seg(10, 2, []byte{0, 0}), seg(0, 2, []byte{0, 1})...))            // a gap, then going back
	// A maximal message over two full-size segments, each cut at snaplen,
	// then a small one.
	f.Add(append(seg(0, 65535, []byte{0xff, 0xff, 1, 2, 3}), seg(65535, 5, []byte{4, 5, 0, 1, 'x'})...))
	f.Fuzz(func(t *testing.T, in []byte) {
		var s tcpStream
		base := uint32(0xfffffff0) // across the sequence number wrap
		given := 0
		emitted := 0
		for len(in) >= 5 {
			off := binary.BigEndian.Uint16(in)
			wire := int(binary.BigEndian.Uint16(in[2:]))
			n := min(int(in[4]), len(in)-5, wire)
			data := in[5 : 5+n]
			in = in[5+n:]
			given += wire
			for _, m := range s.add(base+uint32(off), data, wire, 1) {
				if m.OrigLen > 65535 || len(m.Raw) > m.OrigLen {
					t.Fatalf("message of %d captured bytes, %d on the wire", len(m.Raw), m.OrigLen)
				}
				emitted += len(m.Raw) // and its length prefix, except for a lone prefix byte flushed at a gap
			}
			if len(s.buf) > maxTCPBuffer {
				t.Fatalf("holds %d bytes", len(s.buf))
			}
		}
		if emitted > given {
			t.Fatalf("emitted %d bytes from %d on the wire", emitted, given)
		}
	})
}

// FuzzPairing sends arbitrary sequences of observations through the
// pipeline's pairing. Each input byte pair is one observation: which
// direction, which of four flows, which of four payloads. Every
// observation must end up in exactly one row, a row holds at most one
// send and one receive, and both sides of a row carry the row's own bytes
// and flow.
func FuzzPairing(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0})          // a send and its receive
	f.Add([]byte{1, 0, 0, 0})          // the receive first
	f.Add([]byte{0, 0, 0, 0, 1, 0})    // a retransmission, then one receive
	f.Add([]byte{0, 5, 1, 6, 1, 5, 0}) // interleaved flows and payloads
	payloads := [][]byte{
		{0x12, 0x34, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1},
		{0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 1, 'a', 0, 0, 1, 0, 1},
		{},
		{1, 2, 3},
	}
	flows := [][2]netip.AddrPort{
		{netip.MustParseAddrPort("127.0.0.1:40000"), netip.MustParseAddrPort("127.0.0.1:53")},
		{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("127.0.0.1:40000")},
		{netip.MustParseAddrPort("[::1]:41000"), netip.MustParseAddrPort("[::1]:53")},
		{netip.MustParseAddrPort("127.0.0.1:53"), netip.MustParseAddrPort("127.0.0.1:53")},
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		p := newTestPipeline()
		sends, recvs := 0, 0
		for i, b := range in {
			dir := uint8(bpf.DirSend)
			if b&1 != 0 {
				dir = bpf.DirRecv
				recvs++
			} else {
				sends++
			}
			fl := flows[(b>>1)&3]
			raw := payloads[(b>>3)&3]
			pkt := &Packet{Kind: bpf.EventDNS, Dir: dir, Src: fl[0], Dst: fl[1], OrigLen: uint32(len(raw)), Payload: raw, BootNs: uint64(i) * 1000}
			if err := p.message(nil, pkt, raw, len(raw)); err != nil {
				t.Fatal(err)
			}
		}
		gotSends, gotRecvs := 0, 0
		for _, m := range p.rows {
			if m.Send.Seen {
				gotSends++
			}
			if m.Recv.Seen {
				gotRecvs++
			}
			if !m.Send.Seen && !m.Recv.Seen {
				t.Fatal("a row with no observation")
			}
		}
		if gotSends != sends || gotRecvs != recvs {
			t.Fatalf("%d sends and %d receives became rows holding %d and %d", sends, recvs, gotSends, gotRecvs)
		}
		for k, m := range p.pairs {
			if k.src != m.Src || k.dst != m.Dst || (m.Send.Seen && m.Recv.Seen) {
				t.Fatalf("pairing index points at the wrong row: %+v -> %+v", k, m)
			}
		}
	})
}

// newTestPipeline is a pipeline with no store and no capture: enough for
// what happens before a batch is written.
func newTestPipeline() *pipeline {
	opts := Options{}
	opts.setDefaults()
	return newPipeline(opts, nil)
}
