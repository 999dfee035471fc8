package record

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// DNS over HTTPS in clear. The TLS probes deliver a client connection's
// plaintext per direction; dohConn follows the HTTP spoken in it (HTTP/1.1,
// or HTTP/2 through golang.org/x/net/http2's Framer and hpack, one decoder
// per direction as the protocol requires) and pulls out the DNS messages of
// RFC 8484 (GET ?dns=, POST application/dns-message) and of the JSON API
// (GET ?name=&type=, application/dns-json). The first request decides: a
// connection whose first request is not DoH is given up (the caller stops
// the kernel copying it), and nothing of it is kept.

// dohMsg is one DNS message found in a DoH connection.
type dohMsg struct {
	send bool // the client's query (else the server's response)
	raw  []byte
	host string // :authority or Host
	path string // :path or the request target, query included
	// json: raw was synthesised from the JSON API's request or answer,
	// not read as DNS wire format.
	json bool
}

// dohVerdict is what a connection's first request showed.
type dohVerdict uint8

const (
	dohUnknown dohVerdict = iota // not yet seen
	dohYes                       // DoH: keep following it
	dohNo                        // not DoH: stop copying it
	dohBroken                    // DoH, or unrecognisable, but the HTTP could not be parsed
)

// dohMaxBuf bounds what one direction may hold while a request, response
// or frame is incomplete: a DNS message is at most 64 KiB, and its
// encodings (base64url in a URL, JSON) less than twice that.
const dohMaxBuf = 256 << 10

const (
	dohKindWire = iota + 1 // application/dns-message, GET ?dns= or POST
	dohKindJSON            // the JSON API
)

type dohReq struct {
	method, host, path, ctype, accept string
	body                              []byte
	kind                              int
	query                             []byte // the DNS query it carries (wire, or synthesised)
	name                              string // the JSON API's name and type
	qtype                             uint16
}

type dohStream struct {
	req       *dohReq
	status    string
	ctype     string
	body      []byte
	respEnded bool
}

// dohConn is one client connection's HTTP, both directions.
type dohConn struct {
	verdict dohVerdict
	h2      bool
	decided bool // h2 or HTTP/1.1 known
	send    dohDir
	recv    dohDir
	// HTTP/2: streams by id. HTTP/1.1: requests waiting for their
	// response, in order.
	streams map[uint32]*dohStream
	pending []*dohReq
	// unparsed counts the HTTP that could not be parsed in a DoH
	// connection: frames or messages given up.
	unparsed uint64
}

type dohDir struct {
	buf bytes.Buffer
	fr  *http2.Framer
	dec *hpack.Decoder
}

func newDoHConn() *dohConn {
	return &dohConn{streams: map[uint32]*dohStream{}}
}

var h2Preface = []byte(http2.ClientPreface)

// feed adds one call's plaintext in one direction and returns the DNS
// messages it completes. The verdict is the connection's, as of now.
func (c *dohConn) feed(send bool, data []byte) ([]dohMsg, dohVerdict) {
	if c.verdict == dohNo || c.verdict == dohBroken {
		return nil, c.verdict
	}
	d := &c.recv
	if send {
		d = &c.send
	}
	d.buf.Write(data)
	if !c.decided {
		b := c.send.buf.Bytes()
		n := min(len(b), len(h2Preface))
		if !bytes.Equal(b[:n], h2Preface[:n]) {
			c.decided = true // not the preface: HTTP/1.x
		} else if n == len(h2Preface) {
			c.decided, c.h2 = true, true
			c.send.buf.Next(n)
			c.initH2()
		} else {
			return nil, c.verdict
		}
	}
	var out []dohMsg
	var err error
	if c.h2 {
		out, err = c.h2Frames(send)
	} else {
		out, err = c.h1(send)
	}
	if err != nil {
		if c.verdict == dohUnknown {
			c.verdict = dohNo // not HTTP at all: not DNS either
		} else {
			c.unparsed++
			c.verdict = dohBroken
		}
	}
	if (c.send.buf.Len() > dohMaxBuf || c.recv.buf.Len() > dohMaxBuf) && c.verdict != dohNo {
		c.unparsed++
		c.verdict = dohBroken
	}
	if c.verdict == dohNo || c.verdict == dohBroken {
		c.send.buf, c.recv.buf = bytes.Buffer{}, bytes.Buffer{}
		c.streams, c.pending = nil, nil
	}
	return out, c.verdict
}

// judge classifies a request from its method, target and headers, and
// takes the DNS query it carries in its URL.
func (c *dohConn) judge(r *dohReq) {
	u, err := url.ParseRequestURI(r.path)
	isDoH := false
	if err == nil {
		q := u.Query()
		ct := mediaType(r.ctype)
		switch {
		case r.method == "POST" && ct == "application/dns-message":
			r.kind, isDoH = dohKindWire, true
		case r.method == "GET" && q.Has("dns"):
			if b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(q.Get("dns"), "=")); err == nil {
				r.kind, r.query, isDoH = dohKindWire, b, true
			}
		case r.method == "GET" && q.Has("name") &&
			(strings.Contains(r.accept, "application/dns-json") || strings.HasSuffix(u.Path, "/resolve") || strings.HasSuffix(u.Path, "/dns-query")):
			r.kind, isDoH = dohKindJSON, true
			r.name = q.Get("name")
			r.qtype = dns.TypeA
			if t := q.Get("type"); t != "" {
				if n, err := strconv.ParseUint(t, 10, 16); err == nil {
					r.qtype = uint16(n)
				} else if v, ok := dns.StringToType[strings.ToUpper(t)]; ok {
					r.qtype = v
				}
			}
			r.query = jsonQuery(r.name, r.qtype)
		}
	}
	if c.verdict == dohUnknown {
		if isDoH {
			c.verdict = dohYes
		} else {
			c.verdict = dohNo
		}
	}
}

// mediaType is a Content-Type without its parameters, lower case.
func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}

// requestMsgs are the DNS messages of a complete request: its query, from
// the URL or the body.
func requestMsgs(r *dohReq) []dohMsg {
	if r.kind == dohKindWire && r.method == "POST" {
		r.query = r.body
	}
	if r.kind == 0 || r.query == nil {
		return nil
	}
	return []dohMsg{{send: true, raw: r.query, host: r.host, path: r.path, json: r.kind == dohKindJSON}}
}

// responseMsgs are the DNS messages of a complete response to r.
func responseMsgs(r *dohReq, status, ctype string, body []byte) ([]dohMsg, error) {
	if r == nil || r.kind == 0 || status != "200" {
		return nil, nil
	}
	switch mediaType(ctype) {
	case "application/dns-message":
		return []dohMsg{{raw: body, host: r.host, path: r.path}}, nil
	case "application/dns-json", "application/json", "application/x-javascript":
		raw, err := jsonResponse(r, body)
		if err != nil {
			return nil, err
		}
		return []dohMsg{{raw: raw, host: r.host, path: r.path, json: true}}, nil
	}
	return nil, nil
}

// jsonQuery synthesises the DNS query a JSON API request stands for: id 0
// and RD, as the API has no id and resolves recursively.
func jsonQuery(name string, qtype uint16) []byte {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.Id = 0
	b, err := m.Pack()
	if err != nil {
		return nil
	}
	return b
}

// dohJSON is the JSON API's answer (the de facto format of Google's and
// Cloudflare's resolvers).
type dohJSON struct {
	Status   int
	TC       bool
	RD       bool
	RA       bool
	AD       bool
	CD       bool
	Question []dohJSONRR
	Answer   []dohJSONRR
}

type dohJSONRR struct {
	Name string `json:"name"`
	Type uint16 `json:"type"`
	TTL  uint32 `json:"TTL"`
	Data string `json:"data"`
}

// jsonResponse synthesises the DNS response a JSON answer stands for: the
// request's question, the status as rcode, the answers whose data parses
// as presentation format (others are left out).
func jsonResponse(r *dohReq, body []byte) ([]byte, error) {
	var j dohJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return nil, fmt.Errorf("JSON answer: %w", err)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(r.name), r.qtype)
	m.Id = 0
	m.Response = true
	m.Rcode = j.Status
	m.Truncated, m.RecursionDesired, m.RecursionAvailable = j.TC, j.RD, j.RA
	m.AuthenticatedData, m.CheckingDisabled = j.AD, j.CD
	for _, a := range j.Answer {
		t, ok := dns.TypeToString[a.Type]
		if !ok {
			t = "TYPE" + strconv.Itoa(int(a.Type))
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", dns.Fqdn(a.Name), a.TTL, t, a.Data))
		if err != nil || rr == nil {
			continue
		}
		m.Answer = append(m.Answer, rr)
	}
	return m.Pack()
}

// HTTP/2.

func (c *dohConn) initH2() {
	for _, d := range []*dohDir{&c.send, &c.recv} {
		d.fr = http2.NewFramer(io.Discard, &d.buf)
		d.fr.SetMaxReadFrameSize(1<<24 - 1)
		d.dec = hpack.NewDecoder(4096, nil)
		d.fr.ReadMetaHeaders = d.dec
		d.fr.MaxHeaderListSize = dohMaxBuf
	}
}

// h2Complete tells whether b starts with a whole frame, and for a header
// block, its CONTINUATION frames up to END_HEADERS: the Framer reads those
// in one go, and must not find them missing.
func h2Complete(b []byte) bool {
	first := true
	for {
		if len(b) < 9 {
			return false
		}
		n := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
		typ, flags := http2.FrameType(b[3]), http2.Flags(b[4])
		if len(b) < 9+n {
			return false
		}
		if first && typ != http2.FrameHeaders && typ != http2.FramePushPromise {
			return true
		}
		if flags&http2.FlagHeadersEndHeaders != 0 {
			return true
		}
		first = false
		b = b[9+n:]
	}
}

func (c *dohConn) h2Frames(send bool) ([]dohMsg, error) {
	d := &c.recv
	if send {
		d = &c.send
	}
	var out []dohMsg
	for h2Complete(d.buf.Bytes()) {
		f, err := d.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				// A header block that decoded but broke a rule: the
				// decoder's state is intact, the stream is lost.
				c.unparsed++
				delete(c.streams, se.StreamID)
				continue
			}
			return out, err
		}
		msgs, err := c.h2Frame(send, f)
		out = append(out, msgs...)
		if err != nil {
			return out, err
		}
		if c.verdict == dohNo {
			return out, nil
		}
	}
	return out, nil
}

func (c *dohConn) h2Frame(send bool, f http2.Frame) ([]dohMsg, error) {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		// A peer's table size is for the other direction's encoder.
		if v, ok := f.Value(http2.SettingHeaderTableSize); ok && !f.IsAck() {
			other := &c.send
			if send {
				other = &c.recv
			}
			other.dec.SetAllowedMaxDynamicTableSize(v)
		}
	case *http2.MetaHeadersFrame:
		id := f.StreamID
		if send {
			r := &dohReq{method: f.PseudoValue("method"), host: f.PseudoValue("authority"), path: f.PseudoValue("path")}
			for _, h := range f.RegularFields() {
				switch h.Name {
				case "content-type":
					r.ctype = h.Value
				case "accept":
					r.accept = h.Value
				case "host":
					if r.host == "" {
						r.host = h.Value
					}
				}
			}
			c.judge(r)
			if c.verdict == dohNo {
				return nil, nil
			}
			c.streams[id] = &dohStream{req: r}
			if f.StreamEnded() {
				return requestMsgs(r), nil
			}
			return nil, nil
		}
		s := c.streams[id]
		if s == nil {
			return nil, nil
		}
		if st := f.PseudoValue("status"); st != "" && !strings.HasPrefix(st, "1") {
			s.status = st
			for _, h := range f.RegularFields() {
				if h.Name == "content-type" {
					s.ctype = h.Value
				}
			}
		}
		if f.StreamEnded() {
			return c.h2Response(id, s)
		}
	case *http2.DataFrame:
		s := c.streams[f.StreamID]
		if s == nil {
			return nil, nil
		}
		if send {
			s.req.body = append(s.req.body, f.Data()...)
			if f.StreamEnded() {
				return requestMsgs(s.req), nil
			}
			return nil, nil
		}
		s.body = append(s.body, f.Data()...)
		if f.StreamEnded() {
			return c.h2Response(f.StreamID, s)
		}
	case *http2.RSTStreamFrame:
		delete(c.streams, f.StreamID)
	}
	return nil, nil
}

func (c *dohConn) h2Response(id uint32, s *dohStream) ([]dohMsg, error) {
	delete(c.streams, id)
	msgs, err := responseMsgs(s.req, s.status, s.ctype, s.body)
	if err != nil {
		c.unparsed++
		return nil, nil // one bad answer: the connection goes on
	}
	return msgs, nil
}

// HTTP/1.1.

// errIncomplete: the buffer ends inside a request or response.
var errIncomplete = errors.New("incomplete")

func (c *dohConn) h1(send bool) ([]dohMsg, error) {
	var out []dohMsg
	for {
		var msgs []dohMsg
		var err error
		if send {
			msgs, err = c.h1Request()
		} else {
			msgs, err = c.h1Response()
		}
		out = append(out, msgs...)
		if errors.Is(err, errIncomplete) {
			return out, nil
		}
		if err != nil || c.verdict == dohNo {
			return out, err
		}
	}
}

// h1Head parses the head of a message at the start of b; errIncomplete
// until it is all there.
func h1Head(b []byte) (int, error) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	if i < 0 {
		if len(b) > 64<<10 {
			return 0, errors.New("HTTP head longer than 64 KiB")
		}
		return 0, errIncomplete
	}
	return i + 4, nil
}

// h1Body reads a body framed by the head just parsed; errIncomplete until
// it is all there. consumed counts the bytes of b used.
func h1Body(b []byte, parse func(*bufio.Reader) (io.ReadCloser, error)) (body []byte, consumed int, err error) {
	rd := bytes.NewReader(b)
	br := bufio.NewReader(rd)
	rc, err := parse(br)
	if err != nil {
		return nil, 0, err
	}
	if rc != nil {
		// A body cut short reads as io.ErrUnexpectedEOF, or for a
		// chunked one without its trailer, another error: all are taken
		// as incomplete, and dohMaxBuf bounds the wait of a broken one.
		if body, err = io.ReadAll(rc); err != nil {
			return nil, 0, errIncomplete
		}
	}
	return body, len(b) - rd.Len() - br.Buffered(), nil
}

func (c *dohConn) h1Request() ([]dohMsg, error) {
	b := c.send.buf.Bytes()
	if len(b) == 0 {
		return nil, errIncomplete
	}
	if c.verdict == dohUnknown && !looksHTTP1(b) {
		return nil, errors.New("not HTTP")
	}
	if _, err := h1Head(b); err != nil {
		return nil, err
	}
	var r *dohReq
	body, n, err := h1Body(b, func(br *bufio.Reader) (io.ReadCloser, error) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return nil, err
		}
		r = &dohReq{method: req.Method, host: req.Host, path: req.RequestURI,
			ctype: req.Header.Get("Content-Type"), accept: req.Header.Get("Accept")}
		if c.verdict == dohUnknown {
			c.judge(r)
			if c.verdict == dohNo {
				return nil, nil
			}
		} else {
			c.judge(r)
		}
		return req.Body, nil
	})
	if c.verdict == dohNo {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c.send.buf.Next(n)
	r.body = body
	c.pending = append(c.pending, r)
	return requestMsgs(r), nil
}

func (c *dohConn) h1Response() ([]dohMsg, error) {
	b := c.recv.buf.Bytes()
	if len(b) == 0 {
		return nil, errIncomplete
	}
	if _, err := h1Head(b); err != nil {
		return nil, err
	}
	var status, ctype string
	body, n, err := h1Body(b, func(br *bufio.Reader) (io.ReadCloser, error) {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return nil, err
		}
		status, ctype = strconv.Itoa(resp.StatusCode), resp.Header.Get("Content-Type")
		// A body delimited by the connection's end (no length, not
		// chunked) is taken as far as it arrived.
		return resp.Body, nil
	})
	if err != nil {
		return nil, err
	}
	c.recv.buf.Next(n)
	if strings.HasPrefix(status, "1") {
		return nil, nil
	}
	var r *dohReq
	if len(c.pending) > 0 {
		r, c.pending = c.pending[0], c.pending[1:]
	}
	msgs, err := responseMsgs(r, status, ctype, body)
	if err != nil {
		c.unparsed++
		return nil, nil
	}
	return msgs, nil
}

// looksHTTP1 tells whether b starts like an HTTP/1.x request line: a
// method in capitals, then a space.
func looksHTTP1(b []byte) bool {
	for i, ch := range b {
		if ch == ' ' {
			return i > 0
		}
		if ch < 'A' || ch > 'Z' || i > 16 {
			return false
		}
	}
	return true // too short to tell yet
}
