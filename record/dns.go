package record

import (
	"encoding/binary"
	"fmt"
	"net"
	"strings"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/schema"
)

// Parsed is what dnsrec keeps of a DNS message besides its raw bytes. Fields
// the bytes did not contain are nil.
type Parsed struct {
	ID      *uint16
	Flags   *uint16 // the header's second 16-bit word
	QR      *bool
	Opcode  *int
	Rcode   *int
	QName   *string // normalized: lowercased, no trailing dot
	QType   *uint16
	QClass  *uint16
	ANCount *int
	Answers []Answer
	Err     error // why the message could not be parsed completely
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

// ParseDNS parses a DNS message. It never fails: a malformed or truncated
// message yields whatever header and question could be read, and Err.
func ParseDNS(b []byte) (p Parsed) {
	defer func() {
		// miekg/dns is fuzzed, but a recorder must not die on one packet.
		if r := recover(); r != nil {
			p.Err = fmt.Errorf("dns parser panic: %v", r)
		}
	}()
	if len(b) < 12 {
		p.Err = fmt.Errorf("message of %d bytes is shorter than a DNS header", len(b))
		return p
	}
	flags := binary.BigEndian.Uint16(b[2:4])
	p.ID = ptr(binary.BigEndian.Uint16(b[0:2]))
	p.Flags = &flags
	p.QR = ptr(flags&0x8000 != 0)
	p.Opcode = ptr(int(flags>>11) & 0xf)
	p.Rcode = ptr(int(flags & 0xf))
	p.ANCount = ptr(int(binary.BigEndian.Uint16(b[6:8])))

	// The first question is read straight from the bytes: miekg/dns fills
	// in a zero type and class for a question cut after its name.
	if binary.BigEndian.Uint16(b[4:6]) > 0 {
		if name, off, err := dns.UnpackDomainName(b, 12); err == nil {
			p.QName = ptr(schema.NormalizeName(name))
			if off+4 <= len(b) {
				p.QType = ptr(binary.BigEndian.Uint16(b[off:]))
				p.QClass = ptr(binary.BigEndian.Uint16(b[off+2:]))
			}
		}
	}

	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		p.Err = err
		return p
	}
	p.Rcode = ptr(m.Rcode) // includes the EDNS extended bits
	// miekg/dns accepts a message that ends before the sections its header
	// announces; for evidence that is worth saying.
	counts := [4]int{int(binary.BigEndian.Uint16(b[4:6])), int(binary.BigEndian.Uint16(b[6:8])),
		int(binary.BigEndian.Uint16(b[8:10])), int(binary.BigEndian.Uint16(b[10:12]))}
	if got := [4]int{len(m.Question), len(m.Answer), len(m.Ns), len(m.Extra)}; got != counts {
		p.Err = fmt.Errorf("header announces %d/%d/%d/%d question/answer/authority/additional records, message holds %d/%d/%d/%d",
			counts[0], counts[1], counts[2], counts[3], got[0], got[1], got[2], got[3])
	}
	for _, sec := range []struct {
		name string
		rrs  []dns.RR
	}{{"answer", m.Answer}, {"authority", m.Ns}, {"additional", m.Extra}} {
		for _, rr := range sec.rrs {
			h := rr.Header()
			if h.Rrtype == dns.TypeOPT {
				continue // EDNS pseudo-record, not data
			}
			p.Answers = append(p.Answers, Answer{
				Section: sec.name,
				Name:    schema.NormalizeName(h.Name),
				Type:    h.Rrtype,
				Class:   h.Class,
				TTL:     h.Ttl,
				Data:    rdata(rr),
			})
		}
	}
	return p
}

// rdata is the address for A/AAAA, the normalized target for names, and
// presentation-format rdata otherwise.
func rdata(rr dns.RR) string {
	switch v := rr.(type) {
	case *dns.A:
		return ipString(v.A)
	case *dns.AAAA:
		return ipString(v.AAAA)
	case *dns.CNAME:
		return schema.NormalizeName(v.Target)
	case *dns.NS:
		return schema.NormalizeName(v.Ns)
	case *dns.PTR:
		return schema.NormalizeName(v.Ptr)
	case *dns.DNAME:
		return schema.NormalizeName(v.Target)
	}
	return strings.TrimSpace(strings.TrimPrefix(rr.String(), rr.Header().String()))
}

func ipString(ip net.IP) string {
	if ip == nil {
		return ""
	}
	return ip.String()
}
