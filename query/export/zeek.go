package export

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query"
)

// zeekField is one column of the Zeek dns.log: its name and Zeek type.
type zeekField struct{ name, typ string }

// ZeekFields are the columns of the zeek export: Zeek's own dns.log fields,
// in Zeek's order (scripts/base/protocols/dns/main.zeek, DNS::Info, as of
// Zeek 8.1, which added opcode and opcode_name), then dnsrec's: the host,
// the status, a note about cut or undecodable bytes, and the processes at
// the client (orig_*) and server (resp_*) ends when they are on this host.
var ZeekFields = []zeekField{
	{"ts", "time"}, {"uid", "string"},
	{"id.orig_h", "addr"}, {"id.orig_p", "port"}, {"id.resp_h", "addr"}, {"id.resp_p", "port"},
	{"proto", "enum"}, {"trans_id", "count"}, {"rtt", "interval"},
	{"query", "string"}, {"qclass", "count"}, {"qclass_name", "string"}, {"qtype", "count"}, {"qtype_name", "string"},
	{"rcode", "count"}, {"rcode_name", "string"},
	{"AA", "bool"}, {"TC", "bool"}, {"RD", "bool"}, {"RA", "bool"}, {"Z", "count"},
	{"answers", "vector[string]"}, {"TTLs", "vector[interval]"}, {"rejected", "bool"},
	{"opcode", "count"}, {"opcode_name", "string"},
	// dnsrec's fields.
	{"host", "string"}, {"status", "string"}, {"note", "string"},
	{"orig_pid", "count"}, {"orig_tid", "count"}, {"orig_comm", "string"}, {"orig_exe", "string"},
	{"orig_cmdline", "string"}, {"orig_uid", "count"}, {"orig_ancestry", "vector[string]"},
	{"resp_pid", "count"}, {"resp_tid", "count"}, {"resp_comm", "string"}, {"resp_exe", "string"},
	{"resp_cmdline", "string"}, {"resp_uid", "count"}, {"resp_ancestry", "vector[string]"},
}

// zeekWriter writes Zeek's ASCII log format (TSV with # header lines).
// The header waits for the first row, whose time #open takes, so that the
// same evidence always exports to the same bytes; #close takes the latest
// row time. Both are UTC (Zeek writes local time).
type zeekWriter struct {
	bw         *bufio.Writer
	row        []byte
	header     bool
	open, last time.Time
	procs      map[*query.Process][]byte // rendered process fields: messages share their query.Process
}

func newZeekWriter(w io.Writer) *zeekWriter {
	return &zeekWriter{bw: bufio.NewWriterSize(w, 256<<10), procs: map[*query.Process][]byte{}}
}

const zeekTimeLayout = "2006-01-02-15-04-05"

func (z *zeekWriter) writeHeader(open time.Time) {
	z.header = true
	bw := z.bw
	bw.WriteString("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n")
	bw.WriteString("#open\t" + open.UTC().Format(zeekTimeLayout) + "\n#fields")
	for _, f := range ZeekFields {
		bw.WriteString("\t" + f.name)
	}
	bw.WriteString("\n#types")
	for _, f := range ZeekFields {
		bw.WriteString("\t" + f.typ)
	}
	bw.WriteString("\n")
}

func (z *zeekWriter) write(t *query.Transaction) error {
	ts := t.Time()
	if !z.header {
		z.writeHeader(ts)
	}
	if ts.After(z.last) {
		z.last = ts
	}
	q, r := t.Query, t.Response
	b := z.row[:0]
	b = zeekTime(b, ts)
	b = append(b, '\t')
	b = append(b, t.UID()...)
	b = append(b, '\t')
	b = zeekAddr(b, t.ClientAddr())
	b = append(b, '\t')
	b = zeekAddr(b, t.ServerAddr())
	b = append(b, '\t')
	b = zeekString(b, zeekProto(t.Proto()), false)
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(t.First().DNSID), 10)
	b = append(b, '\t')
	if d := t.Latency(); d > 0 {
		b = zeekInterval(b, d)
	} else {
		b = append(b, '-')
	}
	if qm := t.Question(); qm != nil {
		b = append(b, '\t')
		b = zeekString(b, qm.QName, false)
		b = append(b, '\t')
		b = strconv.AppendUint(b, uint64(qm.QClass), 10)
		b = append(b, '\t')
		b = zeekString(b, zeekName(zeekClasses, qm.QClass, "qclass-"), false)
		b = append(b, '\t')
		b = strconv.AppendUint(b, uint64(qm.QType), 10)
		b = append(b, '\t')
		b = zeekString(b, zeekName(zeekQueryTypes, qm.QType, "query-"), false)
	} else {
		b = append(b, "\t-\t-\t-\t-\t-"...)
	}
	if r != nil && r.Rcode >= 0 {
		b = append(b, '\t')
		b = strconv.AppendInt(b, int64(r.Rcode), 10)
		b = append(b, '\t')
		b = zeekString(b, zeekRcodeName(r.Rcode), false)
	} else {
		b = append(b, "\t-\t-"...)
	}
	// Zeek takes RD, TC and Z from the query, AA and RA from the response.
	qh, rh := q, r
	if qh == nil {
		qh = r
	}
	var aa, ra bool
	if rh != nil {
		aa, ra = rh.HeaderFlag("AA"), rh.HeaderFlag("RA")
	}
	b = zeekBool(b, aa)
	b = zeekBool(b, qh.HeaderFlag("TC"))
	b = zeekBool(b, qh.HeaderFlag("RD"))
	b = zeekBool(b, ra)
	b = append(b, '\t')
	b = strconv.AppendUint(b, uint64(qh.Flags>>4&7), 10)
	b = append(b, '\t')
	if r != nil && len(r.Answers) > 0 {
		for i, rr := range r.Answers {
			if i > 0 {
				b = append(b, ',')
			}
			b = zeekString(b, zeekAnswer(rr), true)
		}
		b = append(b, '\t')
		for i, rr := range r.Answers {
			if i > 0 {
				b = append(b, ',')
			}
			b = zeekInterval(b, time.Duration(rr.TTL)*time.Second)
		}
	} else {
		b = append(b, "-\t-"...)
	}
	rejected := r != nil && r.Rcode > 0 && r.QName == "" && r.QType == 0
	b = zeekBool(b, rejected)
	op := t.First()
	if r != nil {
		op = r
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, int64(op.Opcode()), 10)
	b = append(b, '\t')
	b = zeekString(b, zeekOpcodeName(op.Opcode()), false)

	b = append(b, '\t')
	b = zeekString(b, t.Host(), false)
	b = append(b, '\t')
	b = zeekString(b, t.Status(), false)
	b = append(b, '\t')
	b = zeekOptString(b, t.Note())
	b = z.process(b, t.Client())
	b = z.process(b, t.Server())
	b = append(b, '\n')
	z.row = b
	_, err := z.bw.Write(b)
	return err
}

func (z *zeekWriter) close() error {
	if !z.header {
		now := time.Now()
		z.writeHeader(now)
		z.last = now
	}
	z.bw.WriteString("#close\t" + z.last.UTC().Format(zeekTimeLayout) + "\n")
	return z.bw.Flush()
}

// process appends p's fields, rendered once per process.
func (z *zeekWriter) process(b []byte, p *query.Process) []byte {
	if p == nil {
		return zeekProcess(b, nil)
	}
	f, ok := z.procs[p]
	if !ok {
		if len(z.procs) >= maxProcCache {
			clear(z.procs)
		}
		f = zeekProcess(nil, p)
		z.procs[p] = f
	}
	return append(b, f...)
}

// zeekProcess appends the seven process fields, each after a tab.
func zeekProcess(b []byte, p *query.Process) []byte {
	if p == nil {
		return append(b, "\t-\t-\t-\t-\t-\t-\t-"...)
	}
	b = append(b, '\t')
	b = strconv.AppendInt(b, p.PID, 10)
	b = append(b, '\t')
	if p.TID != 0 {
		b = strconv.AppendInt(b, p.TID, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\t')
	b = zeekOptString(b, p.Comm)
	b = append(b, '\t')
	b = zeekOptString(b, p.Exe)
	b = append(b, '\t')
	b = zeekOptString(b, cmdLine(p))
	b = append(b, '\t')
	if p.UID.Valid {
		b = strconv.AppendInt(b, p.UID.V, 10)
	} else {
		b = append(b, '-')
	}
	b = append(b, '\t')
	if len(p.Ancestry) == 0 {
		return append(b, '-')
	}
	for i, s := range p.Ancestry.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		b = zeekString(b, s, true)
	}
	return b
}

// zeekTime renders a time as Zeek does: seconds since the epoch with six
// decimals.
func zeekTime(b []byte, t time.Time) []byte {
	return zeekMicros(b, (t.UnixNano()+500)/1000)
}

func zeekInterval(b []byte, d time.Duration) []byte {
	return zeekMicros(b, (int64(d)+500)/1000)
}

func zeekMicros(b []byte, us int64) []byte {
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := us % 1e6
	for d := int64(100000); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return b
}

// zeekAddr appends an address and port as two fields (addr, port).
func zeekAddr(b []byte, a netip.AddrPort) []byte {
	if !a.IsValid() {
		return append(b, "-\t-"...)
	}
	b = a.Addr().Unmap().AppendTo(b)
	b = append(b, '\t')
	return strconv.AppendUint(b, uint64(a.Port()), 10)
}

func zeekBool(b []byte, v bool) []byte {
	if v {
		return append(b, "\tT"...)
	}
	return append(b, "\tF"...)
}

// zeekOptString is a string field that is unset ("-") when empty.
func zeekOptString(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return zeekString(b, s, false)
}

// zeekString appends s escaped as Zeek's ASCII writer does: "(empty)" for
// the empty string, the first byte of a value that reads as the unset or
// empty marker as \xNN, and control bytes, backslashes, tabs and (inside a
// vector) commas as \xNN.
func zeekString(b []byte, s string, inSet bool) []byte {
	switch s {
	case "":
		return append(b, "(empty)"...)
	case "-", "(empty)":
		b = appendHexEscape(b, s[0])
		return append(b, s[1:]...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' || (inSet && c == ',') {
			b = appendHexEscape(b, c)
		} else {
			b = append(b, c)
		}
	}
	return b
}

func appendHexEscape(b []byte, c byte) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'x', hex[c>>4], hex[c&15])
}

// zeekAnswer renders an answer record as Zeek's DNS analyzer logs it: the
// address of A and AAAA, the target of CNAME, NS, PTR, MX and SRV, the
// primary server of SOA, "TXT <len> <string>" per TXT string. Rarer types
// are logged as dnsrec's typed form ("TYPE rdata"), where Zeek has its own
// summaries or "<unknown type=N>".
func zeekAnswer(rr query.RR) string {
	data := dnstext.DisplayData(rr.Type, rr.Data)
	switch rr.Type {
	case dns.TypeA, dns.TypeAAAA, dns.TypeCNAME, dns.TypeNS, dns.TypePTR:
		return data
	case dns.TypeMX, dns.TypeSRV:
		if i := strings.LastIndexByte(data, ' '); i >= 0 {
			return data[i+1:]
		}
		return data
	case dns.TypeSOA:
		if i := strings.IndexByte(data, ' '); i >= 0 {
			return data[:i]
		}
		return data
	case dns.TypeTXT, dns.TypeSPF:
		label := dnstext.TypeName(rr.Type)
		var parts []string
		for _, s := range txtStrings(rr.Data) {
			parts = append(parts, label+" "+strconv.Itoa(len(s))+" "+s)
		}
		if len(parts) == 0 {
			return label + " 0 "
		}
		return strings.Join(parts, " ")
	}
	return dnstext.TypeName(rr.Type) + " " + data
}

// txtStrings splits TXT rdata in presentation format ("a b" "c") into its
// character strings, unescaped.
func txtStrings(data string) []string {
	var out []string
	i := 0
	for i < len(data) {
		for i < len(data) && data[i] == ' ' {
			i++
		}
		if i >= len(data) {
			break
		}
		var s []byte
		quoted := data[i] == '"'
		if quoted {
			i++
		}
		for i < len(data) {
			c := data[i]
			if quoted && c == '"' {
				i++
				break
			}
			if !quoted && c == ' ' {
				break
			}
			if c == '\\' && i+1 < len(data) {
				if i+3 < len(data) && isDigit(data[i+1]) && isDigit(data[i+2]) && isDigit(data[i+3]) {
					n, _ := strconv.Atoi(data[i+1 : i+4])
					s = append(s, byte(n))
					i += 4
					continue
				}
				s = append(s, data[i+1])
				i += 2
				continue
			}
			s = append(s, c)
			i++
		}
		out = append(out, string(s))
	}
	return out
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func zeekName(m map[uint16]string, v uint16, prefix string) string {
	if s, ok := m[v]; ok {
		return s
	}
	return prefix + strconv.Itoa(int(v))
}

// zeekRcodeName is DNS::base_errors.
func zeekRcodeName(r int) string {
	if s, ok := zeekRcodes[r]; ok {
		return s
	}
	if r >= 11 && r <= 15 {
		return "unassigned-" + strconv.Itoa(r)
	}
	return "rcode-" + strconv.Itoa(r)
}

// zeekOpcodeName is DNS::opcodes.
func zeekOpcodeName(op int) string {
	switch op {
	case 0:
		return "query"
	case 1:
		return "iquery"
	case 2:
		return "server-status"
	case 4:
		return "notify"
	case 5:
		return "dynamic-update"
	case 6:
		return "dso"
	}
	return "opcode-" + strconv.Itoa(op)
}

// zeekRcodes is DNS::base_errors (scripts/base/protocols/dns/consts.zeek).
var zeekRcodes = map[int]string{
	0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
	6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSet", 9: "NOTAUTH", 10: "NOTZONE",
	16: "BADVERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME",
	21: "BADALG", 22: "BADTRUNC", 23: "BADCOOKIE", 3842: "BADSIG",
}

// zeekClasses is DNS::classes.
var zeekClasses = map[uint16]string{
	1: "C_INTERNET", 2: "C_CSNET", 3: "C_CHAOS", 4: "C_HESIOD", 254: "C_NONE", 255: "C_ANY",
}

// zeekQueryTypes is DNS::query_types.
var zeekQueryTypes = map[uint16]string{
	1: "A", 2: "NS", 3: "MD", 4: "MF", 5: "CNAME", 6: "SOA", 7: "MB", 8: "MG", 9: "MR", 10: "NULL",
	11: "WKS", 12: "PTR", 13: "HINFO", 14: "MINFO", 15: "MX", 16: "TXT", 17: "RP", 18: "AFSDB", 19: "X25", 20: "ISDN",
	21: "RT", 22: "NSAP", 23: "NSAP-PTR", 24: "SIG", 25: "KEY", 26: "PX", 27: "GPOS", 28: "AAAA", 29: "LOC", 30: "NXT",
	31: "EID", 32: "NIMLOC", 33: "SRV", 34: "ATMA", 35: "NAPTR", 36: "KX", 37: "CERT", 38: "A6", 39: "DNAME", 40: "SINK",
	41: "OPT", 42: "APL", 43: "DS", 44: "SSHFP", 45: "IPSECKEY", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 49: "DHCID", 50: "NSEC3",
	51: "NSEC3PARAM", 52: "TLSA", 53: "SMIMEA", 55: "HIP", 56: "NINFO", 57: "RKEY", 58: "TALINK", 59: "CDS", 60: "CDNSKEY",
	61: "OPENPGPKEY", 62: "CSYNC", 63: "ZONEMD", 64: "SVCB", 65: "HTTPS",
	99: "SPF", 100: "UINFO", 101: "UID", 102: "GID", 103: "UNSPEC", 104: "NID", 105: "L32", 106: "L64", 107: "LP",
	108: "EUI48", 109: "EUI64", 249: "TKEY", 250: "TSIG", 251: "IXFR", 252: "AXFR", 253: "MAILB", 254: "MAILA", 255: "*",
	256: "URI", 257: "CAA", 32768: "TA", 32769: "DLV", 65281: "WINS", 65282: "WINS-R", 65422: "XPF", 65521: "INTEGRITY",
}

// zeekProto is dns.log's proto, a transport_proto enum: DNS over TLS is tcp.
func zeekProto(p string) string {
	if p == "dot" || p == "doh" {
		return "tcp"
	}
	return p
}
