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

	var m dns.Msg
	if err := m.Unpack(b); err != nil {
		p.Err = err
		if binary.BigEndian.Uint16(b[4:6]) > 0 {
			if name, off, err := dns.UnpackDomainName(b, 12); err == nil {
				p.QName = ptr(schema.NormalizeName(name))
				if off+4 <= len(b) {
					p.QType = ptr(binary.BigEndian.Uint16(b[off:]))
					p.QClass = ptr(binary.BigEndian.Uint16(b[off+2:]))
				}
			}
		}
		return p
	}
	p.Rcode = ptr(m.Rcode) // includes the EDNS extended bits
	if len(m.Question) > 0 {
		q := m.Question[0]
		p.QName = ptr(schema.NormalizeName(q.Name))
		p.QType = ptr(q.Qtype)
		p.QClass = ptr(q.Qclass)
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
