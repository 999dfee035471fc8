//go:build linux && (amd64 || arm64)

package record

import "encoding/binary"

// tcpStream reassembles DNS messages from one direction of one TCP
// connection: each message is preceded by a 2-byte length (RFC 1035 4.2.2).
// One segment may carry several messages and one message may span several
// segments.
type tcpStream struct {
	next    uint32 // sequence number of the next expected byte
	started bool
	skip    int // bytes still to skip of a message that was cut at snaplen
	buf     []byte
	lastNs  uint64
	last    *Packet // the newest segment: where a flushed message is said to come from
}

// tcpMessage is a reassembled message: Raw may be shorter than OrigLen when
// part of it was not captured.
type tcpMessage struct {
	Raw     []byte
	OrigLen int
}

// maxTCPBuffer bounds what is held for one stream: one maximal message.
const maxTCPBuffer = 2 + 65535

// add feeds one segment: payload holds the captured bytes, origLen the
// segment's length on the wire. It returns the messages the segment completed.
func (s *tcpStream) add(seq uint32, payload []byte, origLen int, bootNs uint64) (out []tcpMessage) {
	s.lastNs = bootNs
	if s.started {
		d := int32(seq - s.next) // wraps correctly around 2^32
		switch {
		case d < 0 && int(-d) >= origLen:
			return nil // retransmission of bytes already seen
		case d < 0:
			cut := int(-d)
			origLen -= cut
			if cut >= len(payload) {
				payload = nil
			} else {
				payload = payload[cut:]
			}
			seq = s.next
		case d > 0:
			// A gap: bytes were lost. Keep what there is of the message
			// in progress, cut, and assume the next one starts here.
			out = s.flush()
			s.skip = 0
		}
	}
	s.started = true
	s.next = seq + uint32(origLen)

	missing := origLen - len(payload) // cut at snaplen, at the segment's end
	if s.skip > 0 {
		n := min(s.skip, len(payload))
		payload, s.skip = payload[n:], s.skip-n
		// The uncaptured end of this segment may still be part of the
		// message being skipped.
		n = min(s.skip, missing)
		s.skip, missing = s.skip-n, missing-n
	}
	s.buf = append(s.buf, payload...)

	for len(s.buf) >= 2 {
		l := int(binary.BigEndian.Uint16(s.buf))
		if len(s.buf) < 2+l {
			break
		}
		out = append(out, tcpMessage{Raw: clone(s.buf[2 : 2+l]), OrigLen: l})
		s.buf = s.buf[2+l:]
	}
	if missing > 0 {
		// The rest of this segment was not captured: whatever message is
		// in progress is stored as far as we have it, and its remaining
		// bytes are skipped when (if) the next segment continues it.
		if len(s.buf) >= 2 {
			l := int(binary.BigEndian.Uint16(s.buf))
			out = append(out, tcpMessage{Raw: clone(s.buf[2:]), OrigLen: l})
			s.skip = max(0, 2+l-len(s.buf)-missing)
		}
		s.buf = nil
	}
	if len(s.buf) > maxTCPBuffer {
		out = append(out, s.flush()...)
	}
	if len(s.buf) == 0 {
		s.buf = nil // let a long-lived stream's buffer go
	}
	return out
}

// flush returns what is held of a message in progress, as a message cut
// short (its Raw shorter than its OrigLen), and empties the stream: for a
// gap, a stream that goes quiet, and the stop. Nothing captured is dropped:
// even a lone byte of a length prefix comes out, as an undecodable message.
func (s *tcpStream) flush() []tcpMessage {
	if len(s.buf) == 0 {
		return nil
	}
	m := tcpMessage{Raw: clone(s.buf), OrigLen: len(s.buf)}
	if len(s.buf) >= 2 {
		m = tcpMessage{Raw: clone(s.buf[2:]), OrigLen: int(binary.BigEndian.Uint16(s.buf))}
	}
	s.buf = nil
	return []tcpMessage{m}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }
