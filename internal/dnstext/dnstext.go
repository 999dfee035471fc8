package dnstext

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// TypeName is a record type's mnemonic, or TYPEn.
func TypeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// RcodeName is a response code's mnemonic, or RCODEn.
func RcodeName(r int) string {
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return "RCODE" + strconv.Itoa(r)
}

// DisplayData removes the trailing root dot from the names inside the rdata
// of the types whose text ends in or holds names (MX, SRV, SOA, ...), which
// the recorder keeps as its DNS library printed them.
func DisplayData(t uint16, data string) string {
	switch t {
	case dns.TypeMX, dns.TypeSRV, dns.TypeKX, dns.TypeRT, dns.TypeAFSDB, dns.TypeNAPTR, dns.TypeSOA, dns.TypeRP, dns.TypeMINFO, dns.TypeSVCB, dns.TypeHTTPS:
	default:
		return data
	}
	f := strings.Split(data, " ")
	for i, w := range f {
		if len(w) > 1 && strings.HasSuffix(w, ".") && !strings.HasSuffix(w, "\\.") {
			f[i] = w[:len(w)-1]
		}
	}
	return strings.Join(f, " ")
}

// ResolutionStatus names a resolution's rc: "answered", glibc's EAI_*
// names for getaddrinfo, "not found" for gethostbyname*_r finding nothing,
// and the errno otherwise.
func ResolutionStatus(fn string, rc int64) string {
	if rc == 0 {
		return "answered"
	}
	if fn == "getaddrinfo" {
		if n, ok := eaiNames[rc]; ok {
			return n
		}
		return "EAI " + strconv.FormatInt(rc, 10)
	}
	if rc == -1 {
		return "not found"
	}
	return "errno " + strconv.FormatInt(rc, 10)
}

// eaiNames are glibc's getaddrinfo error codes (netdb.h).
var eaiNames = map[int64]string{
	-1: "EAI_BADFLAGS", -2: "EAI_NONAME", -3: "EAI_AGAIN", -4: "EAI_FAIL", -6: "EAI_FAMILY",
	-7: "EAI_SOCKTYPE", -8: "EAI_SERVICE", -10: "EAI_MEMORY", -11: "EAI_SYSTEM", -12: "EAI_OVERFLOW",
	-5: "EAI_NODATA", -9: "EAI_ADDRFAMILY",
}

// AddrAnswer types an address as an answer would be: "A 192.0.2.7",
// "AAAA 2001:db8::7".
func AddrAnswer(addr string) string {
	if a, err := netip.ParseAddr(addr); err == nil && a.Is6() {
		return "AAAA " + addr
	}
	return "A " + addr
}
