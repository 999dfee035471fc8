//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
)

// framed prefixes msg with its 2-byte length, as DNS over TCP sends it.
func framed(msg []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...)
}

// body is a recognizable message body of n bytes.
func body(tag byte, n int) []byte {
	b := bytes.Repeat([]byte{tag}, n)
	for i := range b {
		b[i] += byte(i % 7) // so that a shifted copy does not compare equal
	}
	return b
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// segment is one call to tcpStream.add and what it must return. A zero
// origLen means the whole segment was captured.
type segment struct {
	seq     uint32
	payload []byte
	origLen int
	want    []tcpMessage
}

func TestTCPStream(t *testing.T) {
	a, b, c := body('a', 40), body('b', 25), body('c', 60)
	fa, fb, fc := framed(a), framed(b), framed(c)
	big := body('B', 200) // cut at snaplen below
	fbig := framed(big)
	huge := body('H', 2000) // spans several segments, each cut at snaplen
	fhuge := framed(huge)

	// Large messages: nothing between the kernel's records and the store
	// may cut them. Loopback's MTU is 65536, so one segment can
	// carry most of a maximal message.
	max := body('M', 65535) // the largest DNS message
	fmax := framed(max)
	txt := body('T', 30000)
	ftxt := framed(txt)

	const isn = 1000
	nearWrap := uint32(1<<32 - 10) // the stream's first byte is 10 bytes before 2^32

	tests := []struct {
		name string
		segs []segment
	}{
		{
			name: "two messages in one segment",
			segs: []segment{
				{seq: isn, payload: cat(fa, fb), want: []tcpMessage{{a, len(a)}, {b, len(b)}}},
			},
		},
		{
			name: "one message over three segments",
			segs: []segment{
				{seq: isn, payload: fa[:1]}, // half of the length prefix
				{seq: isn + 1, payload: fa[1:20]},
				{seq: isn + 20, payload: fa[20:], want: []tcpMessage{{a, len(a)}}},
			},
		},
		{
			name: "message ends mid-segment, next one continues",
			segs: []segment{
				{seq: isn, payload: cat(fa, fb[:10]), want: []tcpMessage{{a, len(a)}}},
				{seq: isn + uint32(len(fa)+10), payload: fb[10:], want: []tcpMessage{{b, len(b)}}},
			},
		},
		{
			name: "retransmission of a whole segment",
			segs: []segment{
				{seq: isn, payload: fa, want: []tcpMessage{{a, len(a)}}},
				{seq: isn, payload: fa},
				{seq: isn + uint32(len(fa)), payload: fb, want: []tcpMessage{{b, len(b)}}},
			},
		},
		{
			name: "retransmission of a partial message",
			segs: []segment{
				{seq: isn, payload: fa[:15]},
				{seq: isn, payload: fa[:15]},
				{seq: isn + 15, payload: fa[15:], want: []tcpMessage{{a, len(a)}}},
			},
		},
		{
			// The second segment repeats 10 bytes already seen and adds new ones.
			name: "overlapping retransmission",
			segs: []segment{
				{seq: isn, payload: fa[:30]},
				{seq: isn + 20, payload: cat(fa[20:], fb), want: []tcpMessage{{a, len(a)}, {b, len(b)}}},
			},
		},
		{
			name: "old segment after later data",
			segs: []segment{
				{seq: isn, payload: fa[:10]},
				{seq: isn + 10, payload: fa[10:], want: []tcpMessage{{a, len(a)}}},
				{seq: isn + 5, payload: fa[5:20]}, // entirely old
				{seq: isn + uint32(len(fa)), payload: fb, want: []tcpMessage{{b, len(b)}}},
			},
		},
		{
			// The segment carrying the rest of a and the start of b is lost;
			// the stream stores what it has of a, cut, and picks up at c.
			name: "gap resyncs at the next segment",
			segs: []segment{
				{seq: isn, payload: fa[:20]},
				{seq: isn + uint32(len(fa)+10), payload: fc, want: []tcpMessage{{a[:18], len(a)}, {c, len(c)}}},
				{seq: isn + uint32(len(fa)+10+len(fc)), payload: fb, want: []tcpMessage{{b, len(b)}}},
			},
		},
		{
			name: "sequence numbers wrap around 2^32",
			segs: []segment{
				{seq: nearWrap, payload: fa[:7]},
				{seq: nearWrap + 7, payload: fa[7:30]}, // crosses 2^32
				{seq: nearWrap + 30, payload: cat(fa[30:], fb), want: []tcpMessage{{a, len(a)}, {b, len(b)}}},
			},
		},
		{
			name: "retransmission across the wrap",
			segs: []segment{
				{seq: nearWrap, payload: fa[:20]},
				{seq: nearWrap + 5, payload: fa[5:], want: []tcpMessage{{a, len(a)}}}, // starts before 2^32, overlaps
				{seq: nearWrap, payload: fa},                                          // all old
			},
		},
		{
			// A segment of 200+2 bytes on the wire of which 32 were captured:
			// the message is kept truncated with its real length, and the
			// 170 bytes still to come in the next segment are skipped.
			name: "segment cut at snaplen",
			segs: []segment{
				{seq: isn, payload: fbig[:32], origLen: 100, want: []tcpMessage{{big[:30], len(big)}}},
				{seq: isn + 100, payload: cat(fbig[100:], fc), want: []tcpMessage{{c, len(c)}}},
			},
		},
		{
			// The cut falls inside the second message of the segment; the
			// first is whole. Nothing of the second is left to skip later.
			name: "cut at snaplen after a whole message",
			segs: []segment{
				{seq: isn, payload: cat(fa, fb[:5]), origLen: len(fa) + len(fb),
					want: []tcpMessage{{a, len(a)}, {b[:3], len(b)}}},
				{seq: isn + uint32(len(fa)+len(fb)), payload: fc, want: []tcpMessage{{c, len(c)}}},
			},
		},
		{
			// The cut segment holds the end of one message (captured) and
			// most of the next (not captured), whose tail arrives next.
			name: "cut at snaplen, rest skipped over two segments",
			segs: []segment{
				{seq: isn, payload: fbig[:10], origLen: 50, want: []tcpMessage{{big[:8], len(big)}}},
				{seq: isn + 50, payload: fbig[50:120]}, // still inside big: skipped
				{seq: isn + 120, payload: cat(fbig[120:], fa), want: []tcpMessage{{a, len(a)}}},
			},
		},
		{
			// Every segment of a large response is cut at snaplen. The
			// bytes to skip run through the second segment's uncaptured
			// part too, and the message after the large one is found.
			name: "cut at snaplen in consecutive segments",
			segs: []segment{
				{seq: isn, payload: fhuge[:10], origLen: 100, want: []tcpMessage{{huge[:8], len(huge)}}},
				{seq: isn + 100, payload: fhuge[100:200], origLen: 1000},
				{seq: isn + 1100, payload: cat(fhuge[1100:], fc), want: []tcpMessage{{c, len(c)}}},
			},
		},
		{
			name: "30 KB message in one segment",
			segs: []segment{
				{seq: isn, payload: ftxt, want: []tcpMessage{{txt, len(txt)}}},
			},
		},
		{
			// 65483 bytes is the most a loopback segment carries (MTU
			// 65536 less IP, TCP and timestamp headers).
			name: "65535-byte message over two loopback segments",
			segs: []segment{
				{seq: isn, payload: fmax[:65483]},
				{seq: isn + 65483, payload: cat(fmax[65483:], fa), want: []tcpMessage{{max, len(max)}, {a, len(a)}}},
			},
		},
		{
			// The fentry and kprobe tiers record a write of prefix and
			// message in one buffer as records of at most 65536 bytes.
			name: "65535-byte message with its prefix in 65536 bytes and 1",
			segs: []segment{
				{seq: isn, payload: fmax[:65536]},
				{seq: isn + 65536, payload: fmax[65536:], want: []tcpMessage{{max, len(max)}}},
			},
		},
		{
			name: "large messages back to back across segments",
			segs: []segment{
				{seq: isn, payload: cat(ftxt, fmax[:30000]), want: []tcpMessage{{txt, len(txt)}}},
				{seq: isn + uint32(len(ftxt)+30000), payload: cat(fmax[30000:], ftxt), want: []tcpMessage{{max, len(max)}, {txt, len(txt)}}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var s tcpStream
			for i, seg := range tc.segs {
				orig := seg.origLen
				if orig == 0 {
					orig = len(seg.payload)
				}
				got := s.add(seg.seq, seg.payload, orig, uint64(i+1))
				if !equalMessages(got, seg.want) {
					t.Fatalf("segment %d (seq %d, %d/%d bytes): got %v, want %v", i, seg.seq, len(seg.payload), orig, showMessages(got), showMessages(seg.want))
				}
				if s.lastNs != uint64(i+1) {
					t.Errorf("segment %d: lastNs = %d", i, s.lastNs)
				}
			}
		})
	}
}

// TestTCPStreamDoesNotAliasInput checks that returned messages survive the
// caller reusing its buffer, as the ring buffer reader does.
func TestTCPStreamDoesNotAliasInput(t *testing.T) {
	a := body('a', 20)
	buf := framed(a)
	var s tcpStream
	got := s.add(1, buf, len(buf), 1)
	for i := range buf {
		buf[i] = 0xff
	}
	if len(got) != 1 || !bytes.Equal(got[0].Raw, a) {
		t.Fatalf("message changed with the input buffer: %v", showMessages(got))
	}
}

func equalMessages(a, b []tcpMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].OrigLen != b[i].OrigLen || !bytes.Equal(a[i].Raw, b[i].Raw) {
			return false
		}
	}
	return true
}

func showMessages(ms []tcpMessage) string {
	s := "["
	for i, m := range ms {
		if i > 0 {
			s += " "
		}
		n := min(len(m.Raw), 4)
		s += fmt.Sprintf("{%d/%d bytes %x…}", len(m.Raw), m.OrigLen, m.Raw[:n])
	}
	return s + "]"
}

// TestTCPStreamFlush: what a stream holds when it ends is returned, cut:
// the start of a message, a bogus length prefix with a few bytes, a lone
// byte of a prefix. Nothing is held afterwards.
func TestTCPStreamFlush(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want []tcpMessage
	}{
		{"nothing held", nil, nil},
		{"a message cut short", []byte{0, 40, 1, 2, 3}, []tcpMessage{{[]byte{1, 2, 3}, 40}}},
		{"a bogus length", []byte{0xff, 0xff, 'x', 'y'}, []tcpMessage{{[]byte("xy"), 65535}}},
		{"half a length prefix", []byte{7}, []tcpMessage{{[]byte{7}, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s tcpStream
			if got := s.add(1000, tc.in, len(tc.in), 1); len(got) != 0 {
				t.Fatalf("add returned %v before the stream ended", got)
			}
			if got := s.flush(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("flush = %v, want %v", got, tc.want)
			}
			if got := s.flush(); got != nil {
				t.Errorf("second flush = %v, want nothing", got)
			}
		})
	}
}
