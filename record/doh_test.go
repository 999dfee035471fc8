package record

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"testing"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func packMsg(t testing.TB, name string, qtype uint16, answer string) []byte {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0
	if answer != "" {
		m.Response = true
		rr, err := dns.NewRR(answer)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// h2Side builds one direction of an HTTP/2 connection with the Framer and
// an hpack encoder that keeps its dynamic table across header blocks, as a
// real peer's does.
type h2Side struct {
	buf bytes.Buffer
	fr  *http2.Framer
	hb  bytes.Buffer
	enc *hpack.Encoder
}

func newH2Side(client bool) *h2Side {
	s := &h2Side{}
	if client {
		s.buf.WriteString(http2.ClientPreface)
	}
	s.fr = http2.NewFramer(&s.buf, nil)
	s.enc = hpack.NewEncoder(&s.hb)
	s.fr.WriteSettings()
	return s
}

func (s *h2Side) headers(t testing.TB, id uint32, end bool, kv ...string) {
	t.Helper()
	s.hb.Reset()
	for i := 0; i < len(kv); i += 2 {
		s.enc.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]})
	}
	block := s.hb.Bytes()
	// Split the block so that a CONTINUATION frame carries its end.
	half := len(block) / 2
	if err := s.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block[:half], EndStream: end}); err != nil {
		t.Fatal(err)
	}
	if err := s.fr.WriteContinuation(id, true, block[half:]); err != nil {
		t.Fatal(err)
	}
}

func (s *h2Side) data(t testing.TB, id uint32, b []byte) {
	t.Helper()
	if err := s.fr.WriteData(id, true, b); err != nil {
		t.Fatal(err)
	}
}

// feedChunks feeds b in pieces of n bytes, as TLS calls would cut it.
func feedChunks(c *dohConn, send bool, b []byte, n int) ([]dohMsg, dohVerdict) {
	var out []dohMsg
	v := c.verdict
	for len(b) > 0 {
		k := min(n, len(b))
		var msgs []dohMsg
		msgs, v = c.feed(send, b[:k])
		out = append(out, msgs...)
		b = b[k:]
	}
	return out, v
}

// TestDoHHTTP2: POST and GET requests over one HTTP/2 connection, the
// header blocks split over CONTINUATION frames and compressed against each
// direction's dynamic table, the bytes cut at odd places; each query and
// response comes out with its :authority and :path.
func TestDoHHTTP2(t *testing.T) {
	for _, chunk := range []int{1, 7, 1 << 20} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			q1, r1 := packMsg(t, "c2.evil.test.", dns.TypeA, ""), packMsg(t, "c2.evil.test.", dns.TypeA, "c2.evil.test. 60 IN A 127.0.0.1")
			q2, r2 := packMsg(t, "c2.evil.test.", dns.TypeAAAA, ""), packMsg(t, "c2.evil.test.", dns.TypeAAAA, "c2.evil.test. 60 IN AAAA ::1")
			cl, sv := newH2Side(true), newH2Side(false)
			cl.headers(t, 1, false, ":method", "POST", ":scheme", "https", ":authority", "dns.test:8443", ":path", "/dns-query",
				"accept", "application/dns-message", "content-type", "application/dns-message")
			cl.data(t, 1, q1)
			get := "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q2)
			cl.headers(t, 3, true, ":method", "GET", ":scheme", "https", ":authority", "dns.test:8443", ":path", get,
				"accept", "application/dns-message")
			sv.headers(t, 3, false, ":status", "200", "content-type", "application/dns-message")
			sv.data(t, 3, r2)
			sv.headers(t, 1, false, ":status", "200", "content-type", "application/dns-message")
			sv.data(t, 1, r1)

			c := newDoHConn()
			sent, v := feedChunks(c, true, cl.buf.Bytes(), chunk)
			recv, v2 := feedChunks(c, false, sv.buf.Bytes(), chunk)
			if v != dohYes || v2 != dohYes || c.unparsed != 0 {
				t.Fatalf("verdicts %d %d, unparsed %d; want DoH and nothing unparsed", v, v2, c.unparsed)
			}
			want := []dohMsg{
				{send: true, raw: q1, host: "dns.test:8443", path: "/dns-query"},
				{send: true, raw: q2, host: "dns.test:8443", path: get},
				{raw: r2, host: "dns.test:8443", path: get},
				{raw: r1, host: "dns.test:8443", path: "/dns-query"},
			}
			checkMsgs(t, append(sent, recv...), want)
		})
	}
}

func checkMsgs(t *testing.T, got, want []dohMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.send != w.send || !bytes.Equal(g.raw, w.raw) || g.host != w.host || g.path != w.path || g.json != w.json {
			t.Errorf("message %d: send %v host %q path %q json %v raw %x;\nwant send %v host %q path %q json %v raw %x",
				i, g.send, g.host, g.path, g.json, g.raw, w.send, w.host, w.path, w.json, w.raw)
		}
	}
}

// TestDoHHTTP1: a GET ?dns= and a POST on one keep-alive HTTP/1.1
// connection, the second response chunked.
func TestDoHHTTP1(t *testing.T) {
	q1, r1 := packMsg(t, "c2.evil.test.", dns.TypeA, ""), packMsg(t, "c2.evil.test.", dns.TypeA, "c2.evil.test. 60 IN A 127.0.0.1")
	q2, r2 := packMsg(t, "www.evil.test.", dns.TypeA, ""), packMsg(t, "www.evil.test.", dns.TypeA, "www.evil.test. 60 IN A 127.0.0.7")
	get := "/dns-query?dns=" + base64.RawURLEncoding.EncodeToString(q1)
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: dns.test:8443\r\nAccept: application/dns-message\r\n\r\n", get)
	fmt.Fprintf(&req, "POST /dns-query HTTP/1.1\r\nHost: dns.test\r\nContent-Type: application/dns-message\r\nContent-Length: %d\r\n\r\n%s", len(q2), q2)
	var resp bytes.Buffer
	fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: %d\r\n\r\n%s", len(r1), r1)
	fmt.Fprintf(&resp, "HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(r2), r2)
	for _, chunk := range []int{1, 13, 1 << 20} {
		c := newDoHConn()
		sent, v := feedChunks(c, true, req.Bytes(), chunk)
		recv, v2 := feedChunks(c, false, resp.Bytes(), chunk)
		if v != dohYes || v2 != dohYes || c.unparsed != 0 {
			t.Fatalf("chunk %d: verdicts %d %d, unparsed %d; want DoH and nothing unparsed", chunk, v, v2, c.unparsed)
		}
		checkMsgs(t, append(sent, recv...), []dohMsg{
			{send: true, raw: q1, host: "dns.test:8443", path: get},
			{send: true, raw: q2, host: "dns.test", path: "/dns-query"},
			{raw: r1, host: "dns.test:8443", path: get},
			{raw: r2, host: "dns.test", path: "/dns-query"},
		})
	}
}

// TestDoHJSON: the JSON API's request and answer become a synthesised
// query and response, marked json.
func TestDoHJSON(t *testing.T) {
	cl, sv := newH2Side(true), newH2Side(false)
	path := "/resolve?name=c2.evil.test&type=AAAA"
	cl.headers(t, 1, true, ":method", "GET", ":scheme", "https", ":authority", "dns.test", ":path", path, "accept", "application/dns-json")
	sv.headers(t, 1, false, ":status", "200", "content-type", "application/dns-json; charset=utf-8")
	sv.data(t, 1, []byte(`{"Status":0,"RD":true,"RA":true,"Question":[{"name":"c2.evil.test.","type":28}],`+
		`"Answer":[{"name":"c2.evil.test.","type":28,"TTL":60,"data":"::1"},{"name":"c2.evil.test.","type":28,"TTL":60,"data":"not an address"}]}`))
	c := newDoHConn()
	sent, _ := c.feed(true, cl.buf.Bytes())
	recv, v := c.feed(false, sv.buf.Bytes())
	if v != dohYes || len(sent) != 1 || len(recv) != 1 || !sent[0].json || !recv[0].json || recv[0].path != path {
		t.Fatalf("verdict %d, sent %+v, received %+v", v, sent, recv)
	}
	var q, r dns.Msg
	if err := q.Unpack(sent[0].raw); err != nil || q.Response || q.Question[0].Name != "c2.evil.test." || q.Question[0].Qtype != dns.TypeAAAA {
		t.Errorf("synthesised query %v: %v", &q, err)
	}
	if err := r.Unpack(recv[0].raw); err != nil || !r.Response || r.Rcode != 0 || len(r.Answer) != 1 ||
		r.Answer[0].String() != "c2.evil.test.\t60\tIN\tAAAA\t::1" {
		t.Errorf("synthesised response %v: %v", &r, err)
	}
}

// TestDoHNotDNS: a first request that is not DoH decides the connection:
// nothing of it comes out, over HTTP/1.1 or HTTP/2, and the buffers are
// dropped.
func TestDoHNotDNS(t *testing.T) {
	secret := "s3cr3t-" + fmt.Sprint(12345)
	h1 := []byte("POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n" + secret)
	cl := newH2Side(true)
	cl.headers(t, 1, false, ":method", "POST", ":scheme", "https", ":authority", "example.test", ":path", "/upload", "content-type", "text/plain")
	cl.data(t, 1, []byte(secret))
	for name, b := range map[string][]byte{"http1": h1, "http2": cl.buf.Bytes(), "not http": []byte("\x16\x03\x01 binary junk " + secret)} {
		c := newDoHConn()
		msgs, v := c.feed(true, b)
		if v != dohNo || len(msgs) != 0 || c.send.buf.Len() != 0 || c.unparsed != 0 {
			t.Errorf("%s: verdict %d, %d messages, %d bytes held, %d unparsed; want not DoH, none, 0, 0", name, v, len(msgs), c.send.buf.Len(), c.unparsed)
		}
		// Later bytes are ignored.
		if msgs, v := c.feed(true, h1); v != dohNo || len(msgs) != 0 || c.send.buf.Len() != 0 {
			t.Errorf("%s: after the verdict, %d messages, %d bytes held", name, len(msgs), c.send.buf.Len())
		}
	}
}

// FuzzDoH: no input makes the parser panic or hold more than its bound.
func FuzzDoH(f *testing.F) {
	q := packMsg(f, "c2.evil.test.", dns.TypeA, "")
	cl := newH2Side(true)
	cl.headers(f, 1, false, ":method", "POST", ":authority", "dns.test", ":path", "/dns-query", "content-type", "application/dns-message")
	cl.data(f, 1, q)
	f.Add(cl.buf.Bytes(), []byte{})
	f.Add([]byte("GET /dns-query?dns="+base64.RawURLEncoding.EncodeToString(q)+" HTTP/1.1\r\nHost: x\r\n\r\n"),
		[]byte("HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\nContent-Length: 3\r\n\r\nabc"))
	f.Fuzz(func(t *testing.T, send, recv []byte) {
		c := newDoHConn()
		c.feed(true, send)
		c.feed(false, recv)
		if c.send.buf.Len() > dohMaxBuf+len(send) || c.recv.buf.Len() > dohMaxBuf+len(recv) {
			t.Fatalf("holds %d and %d bytes", c.send.buf.Len(), c.recv.buf.Len())
		}
	})
}
