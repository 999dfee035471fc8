package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// dnsView is Parsed with Err as text, for comparing and for golden files.
type dnsView struct {
	ID      *uint16  `json:"id"`
	Flags   *uint16  `json:"flags"`
	QR      *bool    `json:"qr"`
	Opcode  *int     `json:"opcode"`
	Rcode   *int     `json:"rcode"`
	QName   *string  `json:"qname"`
	QType   *uint16  `json:"qtype"`
	QClass  *uint16  `json:"qclass"`
	ANCount *int     `json:"ancount"`
	Answers []Answer `json:"answers"`
	Err     string   `json:"err,omitempty"`
}

func viewOf(p Parsed) dnsView {
	v := dnsView{
		ID: p.ID, Flags: p.Flags, QR: p.QR, Opcode: p.Opcode, Rcode: p.Rcode,
		QName: p.QName, QType: p.QType, QClass: p.QClass, ANCount: p.ANCount, Answers: p.Answers,
	}
	if p.Err != nil {
		v.Err = p.Err.Error()
	}
	return v
}

func (v dnsView) String() string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// questionEnd is the offset just past the first question of a packed message.
func questionEnd(t testing.TB, b []byte) int {
	t.Helper()
	_, off, err := dns.UnpackDomainName(b, 12)
	if err != nil {
		t.Fatalf("question name: %v", err)
	}
	return off + 4
}

func TestParseDNS(t *testing.T) {
	garbage := make([]byte, 200)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	// Force a question count so that the garbage is not trivially empty.
	binary.BigEndian.PutUint16(garbage[4:], 1)

	resp := pack(t, response(t))
	truncated := resp[:questionEnd(t, resp)+7] // inside the first answer's header

	loop := []byte{
		0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		0xc0, 12, // a name that points at itself
		0, 1, 0, 1,
	}
	loop2 := []byte{
		0xab, 0xce, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
		1, 'a', 0xc0, 18, // "a" then a pointer to the next name
		0, 0, // padding
		1, 'b', 0xc0, 12, // "b" then a pointer back to the first
		0, 1, 0, 1,
	}

	tests := []struct {
		name    string
		raw     []byte
		want    dnsView
		wantErr bool
		errHas  string // substring of Err, if it matters
	}{
		{
			name: "query",
			raw:  pack(t, query("example.com.", dns.TypeA)),
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr("example.com"), QType: ptr(dns.TypeA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(0),
			},
		},
		{
			name: "response with CNAME, A, AAAA and MX",
			raw:  resp,
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x8180), QR: ptr(true), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr("www.example.com"), QType: ptr(dns.TypeA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(4),
				Answers: []Answer{
					{Section: "answer", Name: "www.example.com", Type: dns.TypeCNAME, Class: dns.ClassINET, TTL: 300, Data: "web.example.com"},
					{Section: "answer", Name: "web.example.com", Type: dns.TypeA, Class: dns.ClassINET, TTL: 60, Data: "192.0.2.1"},
					{Section: "answer", Name: "web.example.com", Type: dns.TypeAAAA, Class: dns.ClassINET, TTL: 60, Data: "2001:db8::1"},
					{Section: "answer", Name: "example.com", Type: dns.TypeMX, Class: dns.ClassINET, TTL: 3600, Data: "10 mail.example.com."},
				},
			},
		},
		{
			name: "uppercase qname",
			raw:  pack(t, query("WWW.Example.COM.", dns.TypeAAAA)),
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr("www.example.com"), QType: ptr(dns.TypeAAAA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(0),
			},
		},
		{
			name: "root",
			raw:  pack(t, query(".", dns.TypeNS)),
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr(""), QType: ptr(dns.TypeNS), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(0),
			},
		},
		{
			// An escaped dot inside a label is data, not a separator.
			name: "dot inside a label",
			raw:  []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'a', '.', 'B', 0, 0, 1, 0, 1},
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr(`a\.b`), QType: ptr(dns.TypeA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(0),
			},
		},
		{
			// The label is the two bytes 'a' '\': presentation "a\\.", which
			// must lose its trailing dot like any other name.
			name: "label ending in a backslash",
			raw:  []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, 'a', '\\', 0, 0, 1, 0, 1},
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr(`a\\`), QType: ptr(dns.TypeA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(0),
			},
		},
		{
			name: "truncated in the answer section",
			raw:  truncated,
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x8180), QR: ptr(true), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr("www.example.com"), QType: ptr(dns.TypeA), QClass: ptr[uint16](dns.ClassINET), ANCount: ptr(4),
			},
			wantErr: true,
		},
		{
			// miekg/dns stops quietly when a message ends on a section
			// boundary; the header still promises a question.
			name: "header only, question missing",
			raw:  resp[:12],
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x8180), QR: ptr(true), Opcode: ptr(0), Rcode: ptr(0),
				ANCount: ptr(4),
			},
			wantErr: true,
		},
		{
			// The type and class were not captured: they are unknown, not 0.
			name: "cut after the question name",
			raw:  resp[:questionEnd(t, resp)-4],
			want: dnsView{
				ID: ptr[uint16](0x1234), Flags: ptr[uint16](0x8180), QR: ptr(true), Opcode: ptr(0), Rcode: ptr(0),
				QName: ptr("www.example.com"), ANCount: ptr(4),
			},
			wantErr: true,
		},
		{
			name:    "shorter than a header",
			raw:     resp[:11],
			wantErr: true,
			errHas:  "shorter than a DNS header",
		},
		{
			name:    "empty",
			raw:     nil,
			wantErr: true,
			errHas:  "shorter than a DNS header",
		},
		{
			name: "compression pointer to itself",
			raw:  loop,
			want: dnsView{
				ID: ptr[uint16](0xabcd), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				ANCount: ptr(0),
			},
			wantErr: true,
			errHas:  "pointer",
		},
		{
			name: "compression pointers in a cycle",
			raw:  loop2,
			want: dnsView{
				ID: ptr[uint16](0xabce), Flags: ptr[uint16](0x0100), QR: ptr(false), Opcode: ptr(0), Rcode: ptr(0),
				ANCount: ptr(0),
			},
			wantErr: true,
			errHas:  "pointer",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := ParseDNS(tc.raw)
			got := viewOf(p)
			switch {
			case !tc.wantErr && p.Err != nil:
				t.Errorf("Err = %v, want nil", p.Err)
			case tc.wantErr && p.Err == nil:
				t.Errorf("Err = nil, want an error")
			case tc.errHas != "" && !strings.Contains(p.Err.Error(), tc.errHas):
				t.Errorf("Err = %q, want one containing %q", p.Err, tc.errHas)
			}
			got.Err = ""
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseDNS(%x) =\n%v\nwant\n%v", tc.raw, got, tc.want)
			}
		})
	}

	t.Run("garbage", func(t *testing.T) {
		p := ParseDNS(garbage)
		if p.Err == nil {
			t.Errorf("random bytes parsed without error: %v", viewOf(p))
		}
		if p.ID == nil || *p.ID != binary.BigEndian.Uint16(garbage) {
			t.Errorf("ID = %v, want the first two bytes %#x", p.ID, garbage[:2])
		}
		if p.Answers != nil {
			t.Errorf("Answers = %v, want none from a message that did not parse", p.Answers)
		}
	})
}

// TestParseDNSTruncatedEverywhere cuts a response at every length: whatever
// the cut, the header is kept from 12 bytes on, the question once it is
// complete (and not before), and Err is set until the message is whole.
func TestParseDNSTruncatedEverywhere(t *testing.T) {
	resp := pack(t, response(t))
	qEnd := questionEnd(t, resp)
	for n := 0; n <= len(resp); n++ {
		p := ParseDNS(resp[:n])
		if (p.Err == nil) != (n == len(resp)) {
			t.Errorf("cut at %d/%d: Err = %v", n, len(resp), p.Err)
		}
		if (p.ID != nil) != (n >= 12) {
			t.Errorf("cut at %d: ID = %v", n, p.ID)
		}
		if n >= qEnd && (p.QName == nil || *p.QName != "www.example.com" || p.QType == nil || *p.QType != dns.TypeA) {
			t.Errorf("cut at %d (question ends at %d): question = %v %v", n, qEnd, p.QName, p.QType)
		}
		if n < qEnd && (p.QType != nil || p.QClass != nil) {
			t.Errorf("cut at %d (question ends at %d): qtype %v and qclass %v were not captured", n, qEnd, deref(p.QType), deref(p.QClass))
		}
		if got, want := len(p.Answers), wholeAnswers(t, resp, n); got != want {
			t.Errorf("cut at %d: %d answers, want the %d that end by then", n, got, want)
		}
	}
}

// wholeAnswers is how many answer records of the message b end within its
// first n bytes, found with miekg/dns's UnpackRR.
func wholeAnswers(t testing.TB, b []byte, n int) int {
	t.Helper()
	off := questionEnd(t, b)
	count := 0
	for range binary.BigEndian.Uint16(b[6:8]) {
		_, end, err := dns.UnpackRR(b, off)
		if err != nil {
			t.Fatalf("answer %d of the whole message: %v", count+1, err)
		}
		if end > n {
			break
		}
		count, off = count+1, end
	}
	return count
}

// bigTXT is a response to NAME TXT holding n TXT records of 250-byte
// strings: about 260 bytes each, so 25 make a 6 KB message and 120 a 30 KB
// one, over the 4096 and 8192 bytes dnsrec used to keep.
func bigTXT(t testing.TB, name string, n int) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(query(name, dns.TypeTXT))
	m.Compress = true
	for i := range n {
		txt := fmt.Sprintf("%03d-", i) + strings.Repeat(string(rune('a'+i%26)), 246)
		m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{txt}})
	}
	return m
}

// TestParseDNSCutLargeTXT: a 30 KB TXT response cut at 1024, 4096 and 8192
// bytes (snaplen) keeps its header, its question and every TXT record that
// ends inside the cut, and says where it stopped; whole, it has all 120.
func TestParseDNSCutLargeTXT(t *testing.T) {
	resp := pack(t, bigTXT(t, "big.example.com.", 120))
	if len(resp) < 30000 {
		t.Fatalf("message of %d bytes, want about 30 KB", len(resp))
	}
	whole := ParseDNS(resp)
	if whole.Err != nil || len(whole.Answers) != 120 {
		t.Fatalf("whole message: %d answers, Err %v", len(whole.Answers), whole.Err)
	}
	for _, n := range []int{1024, 4096, 8192} {
		p := ParseDNS(resp[:n])
		want := wholeAnswers(t, resp, n)
		if want == 0 {
			t.Fatalf("cut at %d: no record fits, the test is wrong", n)
		}
		if p.QName == nil || *p.QName != "big.example.com" || p.QType == nil || *p.QType != dns.TypeTXT {
			t.Errorf("cut at %d: question %v %v", n, deref(p.QName), deref(p.QType))
		}
		if !reflect.DeepEqual(p.Answers, whole.Answers[:want]) {
			t.Errorf("cut at %d: %d answers, want the first %d of the whole message", n, len(p.Answers), want)
		}
		if p.Err == nil || !strings.Contains(p.Err.Error(), fmt.Sprintf("answer record %d: ", want+1)) || !errors.Is(p.Err, errCut) {
			t.Errorf("cut at %d: Err = %v, want answer record %d: %v", n, p.Err, want+1, errCut)
		}
	}
}

// Golden files: testdata/dns/NAME.hex holds a raw message as hex ('#' starts
// a comment), NAME.json what ParseDNS makes of it. go test -run
// TestParseDNSGolden -update rewrites the .json files.
func TestParseDNSGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/dns/*.hex")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/dns/*.hex files")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".hex")
		t.Run(name, func(t *testing.T) {
			raw := readHex(t, f)
			got := []byte(viewOf(ParseDNS(raw)).String() + "\n")
			golden := strings.TrimSuffix(f, ".hex") + ".json"
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("ParseDNS(%s) =\n%s\nwant (%s)\n%s", f, got, golden, want)
			}
		})
	}
}

func readHex(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var digits strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		line, _, _ = strings.Cut(line, "#")
		digits.WriteString(strings.Join(strings.Fields(line), ""))
	}
	raw, err := hex.DecodeString(digits.String())
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return raw
}

// FuzzParseDNS checks the promises ParseDNS makes whatever the input: it
// returns, the header is there exactly when 12 bytes are, a result without a
// header says why, and names are normalized. And a message cut short (at
// snaplen) keeps what the whole one had before the cut: its answers are the
// first ones of the whole message's, and it says why it stopped.
func FuzzParseDNS(f *testing.F) {
	files, _ := filepath.Glob("testdata/dns/*.hex")
	for _, file := range files {
		f.Add(readHex(f, file))
	}
	f.Add(pack(f, query("example.com.", dns.TypeA)))
	f.Add(pack(f, response(f)))
	f.Add([]byte{})
	// Large answers, whole and cut inside a record (the fuzzer cuts the
	// whole ones itself too).
	txt := pack(f, bigTXT(f, "big.example.com.", 6))
	f.Add(txt)
	f.Add(txt[:len(txt)/2])
	resp := pack(f, response(f))
	f.Add(resp[:len(resp)-3])
	f.Fuzz(func(t *testing.T, b []byte) {
		p := ParseDNS(b)
		// Cut where the input says (its last byte, as a share of its
		// length) and in the middle.
		cuts := []int{len(b) / 2}
		if len(b) > 0 {
			cuts = append(cuts, len(b)*int(b[len(b)-1])/256)
		}
		for _, n := range cuts {
			c := ParseDNS(b[:n])
			if len(c.Answers) > len(p.Answers) || !slices.Equal(c.Answers, p.Answers[:len(c.Answers)]) {
				t.Fatalf("cut at %d of %d bytes: answers %v are not the first of the whole message's %v", n, len(b), c.Answers, p.Answers)
			}
			if c.Err == nil && len(c.Answers) < len(p.Answers) {
				t.Fatalf("cut at %d of %d bytes: %d of %d answers and no error", n, len(b), len(c.Answers), len(p.Answers))
			}
		}
		hasHeader := p.ID != nil && p.Flags != nil && p.QR != nil && p.Opcode != nil && p.Rcode != nil && p.ANCount != nil
		if hasHeader != (len(b) >= 12) {
			t.Fatalf("%d bytes: header fields set = %v", len(b), hasHeader)
		}
		if !hasHeader && p.Err == nil {
			t.Fatalf("%d bytes: no header and no Err", len(b))
		}
		if p.Err == nil && binary.BigEndian.Uint16(b[4:6]) > 0 && p.QName == nil {
			t.Fatalf("parsed without error but the question is missing")
		}
		names := []string{}
		if p.QName != nil {
			names = append(names, *p.QName)
		}
		for _, a := range p.Answers {
			names = append(names, a.Name)
		}
		for _, n := range names {
			if n != strings.ToLower(n) {
				t.Fatalf("name %q is not lowercased", n)
			}
			if hasTrailingDot(n) {
				t.Fatalf("name %q keeps its trailing dot", n)
			}
		}
		for _, a := range p.Answers {
			if a.Type == dns.TypeA || a.Type == dns.TypeAAAA {
				if a.Data != "" && net.ParseIP(a.Data) == nil {
					t.Fatalf("%d record with data %q, not an address", a.Type, a.Data)
				}
			}
		}
	})
}

// hasTrailingDot reports whether a presentation-format name ends in a label
// separator, that is a '.' preceded by an even number of backslashes.
func hasTrailingDot(name string) bool {
	if !strings.HasSuffix(name, ".") {
		return false
	}
	n := 0
	for i := len(name) - 2; i >= 0 && name[i] == '\\'; i-- {
		n++
	}
	return n%2 == 0
}

// BenchmarkParseDNS parses a typical response (CNAME, A, AAAA, MX).
func BenchmarkParseDNS(b *testing.B) {
	raw := pack(b, response(b))
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		p := ParseDNS(raw)
		if p.Err != nil || len(p.Answers) != 4 {
			b.Fatalf("ParseDNS: %v, %d answers", p.Err, len(p.Answers))
		}
	}
}

// txtViaMiekg is the presentation format miekg/dns gives TXT-like rdata:
// what rdataString printed before it wrote TXT itself.
func txtViaMiekg(typ uint16, rd []byte) (string, error) {
	rr, _, err := dns.UnpackRRWithHeader(dns.RR_Header{Name: "x.", Rrtype: typ, Class: dns.ClassINET, Rdlength: uint16(len(rd))}, rd, 0)
	if err != nil {
		return "", err
	}
	return rdata(rr), nil
}

// TestTXTString: txtString writes what miekg/dns does, for every byte
// value, empty strings and rdata, and refuses what miekg/dns refuses.
func TestTXTString(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	cases := [][]byte{
		{}, {0}, {0, 0}, {1, 'a'}, {3, 'a', '"', '\\'}, {2, 'a'}, {5},
		append([]byte{255}, all[:255]...),
		append(append([]byte{255}, all[1:]...), 1, 0),
		append([]byte{4, 'x', 'y', 'z', 'w', 0, 3, 0x7f, 0x80, ' '}, 9),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(600))
		for i := range b {
			if r.IntN(4) == 0 {
				b[i] = byte(r.IntN(8)) // short strings, often running past the end
			} else {
				b[i] = byte(r.IntN(256))
			}
		}
		cases = append(cases, b)
	}
	for _, rd := range cases {
		for _, typ := range []uint16{dns.TypeTXT, dns.TypeSPF, dns.TypeAVC} {
			want, werr := txtViaMiekg(typ, rd)
			got, ok := txtString(rd)
			if werr != nil {
				if ok {
					t.Fatalf("type %d rdata %x: txtString = %q, miekg/dns refuses it: %v", typ, rd, got, werr)
				}
				continue
			}
			if !ok || got != want {
				t.Fatalf("type %d rdata %x: txtString = %q, %v; miekg/dns %q", typ, rd, got, ok, want)
			}
			// And through ParseDNS's path.
			if got, err := rdataString(rd, 0, len(rd), dns.RR_Header{Name: "x.", Rrtype: typ, Class: dns.ClassINET, Rdlength: uint16(len(rd))}); err != nil || got != want {
				t.Fatalf("type %d rdata %x: rdataString = %q, %v; miekg/dns %q", typ, rd, got, err, want)
			}
		}
	}
}

// FuzzTXTString: see TestTXTString.
func FuzzTXTString(f *testing.F) {
	f.Add([]byte{3, 'a', '"', 0})
	f.Fuzz(func(t *testing.T, rd []byte) {
		if len(rd) > 65535 {
			return
		}
		want, werr := txtViaMiekg(dns.TypeTXT, rd)
		got, ok := txtString(rd)
		if (werr == nil) != ok || got != want && ok {
			t.Fatalf("rdata %x: txtString = %q, %v; miekg/dns %q, %v", rd, got, ok, want, werr)
		}
	})
}

// TestParseSpelling: the question's case is kept where it differs from the
// normalized name, and only there.
func TestParseSpelling(t *testing.T) {
	for _, tc := range []struct{ q, norm, sent string }{
		{"exfil-aGVsbG8.evil.test.", "exfil-agvsbg8.evil.test", "exfil-aGVsbG8.evil.test"},
		{"www.example.com.", "www.example.com", ""},
		{"WwW.ExAmPlE.CoM.", "www.example.com", "WwW.ExAmPlE.CoM"},
	} {
		m := new(dns.Msg)
		m.SetQuestion(tc.q, dns.TypeA)
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		p := ParseDNS(b)
		if p.QName == nil || *p.QName != tc.norm || p.Spelling != tc.sent {
			t.Errorf("%s: qname %v spelling %q, want %q and %q", tc.q, p.QName, p.Spelling, tc.norm, tc.sent)
		}
	}
}
