package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/schema"
)

// Parsed is what dnsrec keeps of a DNS message besides its raw bytes. Fields
// the bytes did not contain are nil.
type Parsed struct {
	ID     *uint16
	Flags  *uint16 // the header's second 16-bit word
	QR     *bool
	Opcode *int
	Rcode  *int
	QName  *string // normalized: lowercased, no trailing dot
	// Spelling is the question name as sent, no trailing dot, when its
	// case differs from QName's (a tunnel's data, DNS 0x20); "" otherwise.
	Spelling string
	QType    *uint16
	QClass   *uint16
	ANCount  *int
	Answers  []Answer
	Err      error // why the message could not be parsed completely
}

// Answer is one resource record of a response.
type Answer struct {
	Section string // answer, authority, additional
	Name    string
	Type    uint16
	Class   uint16
	TTL     uint32
	Data    string
}

func ptr[T any](v T) *T { return &v }

// headerFields backs the header pointers of a Parsed.
type headerFields struct {
	id, flags, qtype, qclass uint16
	qr                       bool
	opcode, rcode, ancount   int
	qname                    string
}

// ParseDNS parses a DNS message. It never fails: a malformed or truncated
// message (one cut at snaplen, or one the kernel could only read part of)
// yields whatever header and question could be read, every complete answer
// record before the first that could not be, and Err for the rest.
func ParseDNS(b []byte) (p Parsed) {
	defer func() {
		// miekg/dns is fuzzed, but a recorder must not die on one packet.
		if r := recover(); r != nil {
			p.Err = fmt.Errorf("dns parser panic: %v", r)
		}
		if len(p.Answers) == 0 {
			p.Answers = nil // as if never made room for
		}
	}()
	if len(b) < 12 {
		p.Err = fmt.Errorf("message of %d bytes is shorter than a DNS header", len(b))
		return p
	}
	// The header's fields live in one allocation, not one each: this runs
	// for every message at line rate.
	h := new(headerFields)
	h.id = binary.BigEndian.Uint16(b[0:2])
	h.flags = binary.BigEndian.Uint16(b[2:4])
	h.qr = h.flags&0x8000 != 0
	h.opcode = int(h.flags>>11) & 0xf
	h.rcode = int(h.flags & 0xf)
	h.ancount = int(binary.BigEndian.Uint16(b[6:8]))
	p.ID, p.Flags, p.QR, p.Opcode, p.Rcode, p.ANCount = &h.id, &h.flags, &h.qr, &h.opcode, &h.rcode, &h.ancount

	// The first question is read straight from the bytes: miekg/dns fills
	// in a zero type and class for a question cut after its name.
	if binary.BigEndian.Uint16(b[4:6]) > 0 {
		if name, off, err := dns.UnpackDomainName(b, 12); err == nil {
			h.qname = schema.NormalizeName(name)
			p.QName = &h.qname
			// Lowercasing keeps the length (the presentation form is
			// ASCII): the name as sent is the same bytes, in its case.
			if sent := name[:len(h.qname)]; sent != h.qname {
				p.Spelling = sent
			}
			if off+4 <= len(b) {
				h.qtype = binary.BigEndian.Uint16(b[off:])
				h.qclass = binary.BigEndian.Uint16(b[off+2:])
				p.QType, p.QClass = &h.qtype, &h.qclass
			}
		}
	}

	// The rest is walked here rather than unpacked by miekg/dns: the
	// answer section is what the store indexes, the other sections only
	// need to be well-formed (their bytes are in raw), and a full Unpack
	// costs several times the whole budget of a message at line rate.
	counts := [4]int{int(binary.BigEndian.Uint16(b[4:6])), int(binary.BigEndian.Uint16(b[6:8])),
		int(binary.BigEndian.Uint16(b[8:10])), int(binary.BigEndian.Uint16(b[10:12]))}
	var got [4]int
	off := 12
	for ; got[0] < counts[0] && off < len(b); got[0]++ {
		_, end, err := dns.UnpackDomainName(b, off)
		if err != nil {
			p.Err = fmt.Errorf("question %d: %w", got[0]+1, err)
			return p
		}
		if end+4 > len(b) {
			p.Err = fmt.Errorf("question %d: %w", got[0]+1, errCut)
			return p
		}
		off = end + 4
	}
	if counts[1] > 0 {
		// Room for the answers the header announces, as many as the
		// bytes left could hold (a record takes at least 11).
		p.Answers = make([]Answer, 0, min(counts[1], (len(b)-off)/11))
	}
	owner := ownerCache{ptr: -1}
	for sec := 1; sec < 4; sec++ {
		for ; got[sec] < counts[sec] && off < len(b); got[sec]++ {
			var err error
			off, err = p.record(b, off, sec, &owner)
			if err != nil {
				// The records before this one are whole: they stay, and
				// the message's row says it was not parsed completely.
				p.Err = fmt.Errorf("%s record %d: %w", sectionNames[sec], got[sec]+1, err)
				return p
			}
		}
	}
	// miekg/dns accepts a message that ends before the sections its header
	// announces; for evidence that is worth saying.
	if got != counts {
		p.Err = fmt.Errorf("header announces %d/%d/%d/%d question/answer/authority/additional records, message holds %d/%d/%d/%d",
			counts[0], counts[1], counts[2], counts[3], got[0], got[1], got[2], got[3])
	}
	return p
}

var sectionNames = [4]string{"question", "answer", "authority", "additional"}

// errCut: the message ends inside a record.
var errCut = errors.New("message ends inside the record")

// record reads the resource record at off in section sec (1 answer, 2
// authority, 3 additional) and returns where the next one starts. Answer
// records are appended to p.Answers once whole; an EDNS OPT record extends
// the rcode.
func (p *Parsed) record(b []byte, off, sec int, owner *ownerCache) (int, error) {
	var name, norm string
	var end int
	var err error
	switch {
	case sec != 1:
		end, err = skipName(b, off)
	case off+2 <= len(b) && b[off]&0xc0 == 0xc0:
		// A name that is only a compression pointer: the records of a
		// large answer mostly point at the same owner, decoded once.
		ptr := int(binary.BigEndian.Uint16(b[off:]) & 0x3fff)
		if ptr == owner.ptr {
			name, norm, end = owner.name, owner.norm, off+2
			break
		}
		if name, end, err = dns.UnpackDomainName(b, off); err == nil {
			norm = schema.NormalizeName(name)
			*owner = ownerCache{ptr: ptr, name: name, norm: norm}
		}
	default:
		if name, end, err = dns.UnpackDomainName(b, off); err == nil {
			norm = schema.NormalizeName(name)
		}
	}
	if err != nil {
		return 0, err
	}
	if end+10 > len(b) {
		return 0, errCut
	}
	typ := binary.BigEndian.Uint16(b[end:])
	class := binary.BigEndian.Uint16(b[end+2:])
	ttl := binary.BigEndian.Uint32(b[end+4:])
	rdlen := int(binary.BigEndian.Uint16(b[end+8:]))
	rdata := end + 10
	next := rdata + rdlen
	if next > len(b) {
		return 0, errCut
	}
	if typ == dns.TypeOPT {
		// The extended rcode's upper 8 bits ride in the TTL (RFC 6891).
		if p.Rcode != nil {
			*p.Rcode = int(ttl>>24)<<4 | *p.Rcode&0xf
		}
		return next, nil
	}
	if sec != 1 {
		return next, nil
	}
	data, err := rdataString(b, rdata, rdlen, dns.RR_Header{Name: name, Rrtype: typ, Class: class, Ttl: ttl, Rdlength: uint16(rdlen)})
	if err != nil {
		return 0, err
	}
	p.Answers = append(p.Answers, Answer{Section: "answer", Name: norm, Type: typ, Class: class, TTL: ttl, Data: data})
	return next, nil
}

// ownerCache is the last answer owner name that was a bare compression
// pointer: the pointer (-1: none), the name as decoded and normalized.
type ownerCache struct {
	ptr        int
	name, norm string
}

// skipName returns where the (possibly compressed) name at off ends,
// without decoding it.
func skipName(b []byte, off int) (int, error) {
	for {
		if off >= len(b) {
			return 0, errCut
		}
		c := int(b[off])
		switch c & 0xc0 {
		case 0x00:
			if c == 0 {
				return off + 1, nil
			}
			off += 1 + c
		case 0xc0:
			if off+2 > len(b) {
				return 0, errCut
			}
			return off + 2, nil // a pointer ends the name here
		default:
			return 0, fmt.Errorf("bad label type %#x", c&0xc0)
		}
	}
}

// rdataString is the address for A/AAAA, the normalized target for names,
// and presentation-format rdata otherwise, as miekg/dns prints it.
func rdataString(b []byte, off, n int, h dns.RR_Header) (string, error) {
	switch h.Rrtype {
	case dns.TypeA:
		if n != 4 {
			return "", fmt.Errorf("A record with %d bytes of data", n)
		}
		return netip.AddrFrom4([4]byte(b[off : off+4])).String(), nil
	case dns.TypeAAAA:
		if n != 16 {
			return "", fmt.Errorf("AAAA record with %d bytes of data", n)
		}
		return netip.AddrFrom16([16]byte(b[off : off+16])).String(), nil
	case dns.TypeCNAME, dns.TypeNS, dns.TypePTR, dns.TypeDNAME:
		target, end, err := dns.UnpackDomainName(b, off)
		if err != nil {
			return "", err
		}
		if end != off+n {
			return "", fmt.Errorf("%s target of %d bytes in %d bytes of data", dns.TypeToString[h.Rrtype], end-off, n)
		}
		return schema.NormalizeName(target), nil
	case dns.TypeTXT, dns.TypeSPF, dns.TypeAVC:
		// Written here from the bytes: a large TXT answer (kilobytes
		// in one message) costs through miekg/dns an escaped copy of
		// every string, a []string, a header rendered only to be cut
		// off, and the text built again, several times the cost of
		// storing it. A malformed one is left to miekg/dns, for its
		// error.
		if s, ok := txtString(b[off : off+n]); ok {
			return s, nil
		}
	}
	// Rare types: miekg/dns for the presentation format, on the record's
	// own bytes so that it cannot read past them.
	rr, _, err := dns.UnpackRRWithHeader(h, b[:off+n], off)
	if err != nil {
		return "", err
	}
	return rdata(rr), nil
}

// rdata is a record's rdata in presentation format, as miekg/dns prints it:
// for the types rdataString does not decode itself.
func rdata(rr dns.RR) string {
	return strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

// txtString is the presentation format of TXT-like rdata (character
// strings), exactly as miekg/dns prints it: each string quoted, '"' and
// '\\' escaped with a backslash, bytes outside ' '..'~' as \DDD, strings
// separated by a space. ok is false when a string runs past the rdata.
func txtString(rd []byte) (s string, ok bool) {
	// One pass to size the text and check the strings, one to write it.
	size := 0
	for i := 0; i < len(rd); {
		l := int(rd[i])
		i++
		if i+l > len(rd) {
			return "", false
		}
		size += 3 // quotes, and the space before the next
		for _, c := range rd[i : i+l] {
			size += txtEscLen[c]
		}
		i += l
	}
	if size == 0 {
		return "", true
	}
	out := make([]byte, 0, size-1)
	for i := 0; i < len(rd); {
		l := int(rd[i])
		i++
		if i > 1 {
			out = append(out, ' ')
		}
		out = append(out, '"')
		str := rd[i : i+l]
		start := 0
		for j, c := range str {
			if txtEscLen[c] == 1 {
				continue
			}
			out = append(out, str[start:j]...)
			if c == '"' || c == '\\' {
				out = append(out, '\\', c)
			} else {
				out = append(out, '\\', '0'+c/100, '0'+c/10%10, '0'+c%10)
			}
			start = j + 1
		}
		out = append(out, str[start:]...)
		out = append(out, '"')
		i += l
	}
	return unsafe.String(unsafe.SliceData(out), len(out)), true
}

// txtEscLen is how many bytes of presentation format a byte of a
// character string takes.
var txtEscLen = func() (t [256]int) {
	for c := range t {
		switch {
		case c == '"' || c == '\\':
			t[c] = 2
		case c < ' ' || c > '~':
			t[c] = 4
		default:
			t[c] = 1
		}
	}
	return t
}()
