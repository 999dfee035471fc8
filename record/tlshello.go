package record

import (
	"encoding/binary"
	"errors"
	"strings"
)

// ClientHelloSNI returns the server_name (RFC 6066) of the TLS ClientHello
// that data begins with: a TLS record of type handshake, holding a
// ClientHello. It reads only as far as the extension, so a hello cut short
// after it still gives the name. An Encrypted Client Hello hides the real
// name: this is then the outer, public one.
func ClientHelloSNI(data []byte) (string, error) {
	r := helloReader(data)
	if t, ok := r.u8(); !ok || t != 22 {
		return "", errors.New("not a TLS handshake record")
	}
	if !r.skip(2) { // legacy record version
		return "", errShortHello
	}
	rlen, ok := r.u16()
	if !ok {
		return "", errShortHello
	}
	r = r.upTo(int(rlen))
	if t, ok := r.u8(); !ok || t != 1 {
		return "", errors.New("the handshake is not a ClientHello")
	}
	hlen, ok := r.u24()
	if !ok {
		return "", errShortHello
	}
	r = r.upTo(hlen)
	if !r.skip(2 + 32) { // client version, random
		return "", errShortHello
	}
	for _, lenBytes := range []int{1, 2, 1} { // session id, cipher suites, compression methods
		if !r.skipVec(lenBytes) {
			return "", errShortHello
		}
	}
	elen, ok := r.u16()
	if !ok {
		return "", errors.New("the ClientHello has no extensions")
	}
	r = r.upTo(int(elen))
	for len(r) > 0 {
		typ, ok1 := r.u16()
		n, ok2 := r.u16()
		if !ok1 || !ok2 {
			return "", errShortHello
		}
		body := r.upTo(int(n))
		if len(body) < int(n) {
			return "", errShortHello
		}
		r = r[n:]
		if typ != 0 { // server_name
			continue
		}
		// ServerNameList: a 2-byte length, then (type, 2-byte length, name).
		if !body.skip(2) {
			return "", errShortHello
		}
		for len(body) > 0 {
			nt, ok1 := body.u8()
			nl, ok2 := body.u16()
			if !ok1 || !ok2 || len(body) < int(nl) {
				return "", errors.New("malformed server_name extension")
			}
			name := string(body[:nl])
			body = body[nl:]
			if nt == 0 { // host_name
				return strings.ToLower(strings.TrimSuffix(name, ".")), nil
			}
		}
		return "", errors.New("server_name extension without a host name")
	}
	return "", errNoSNI
}

var (
	errShortHello = errors.New("the ClientHello is cut short before its server name")
	errNoSNI      = errors.New("the ClientHello names no server")
)

// helloReader reads big-endian TLS fields; every read checks its bounds.
type helloReader []byte

func (r *helloReader) u8() (uint8, bool) {
	if len(*r) < 1 {
		return 0, false
	}
	v := (*r)[0]
	*r = (*r)[1:]
	return v, true
}

func (r *helloReader) u16() (uint16, bool) {
	if len(*r) < 2 {
		return 0, false
	}
	v := binary.BigEndian.Uint16(*r)
	*r = (*r)[2:]
	return v, true
}

func (r *helloReader) u24() (int, bool) {
	if len(*r) < 3 {
		return 0, false
	}
	v := int((*r)[0])<<16 | int((*r)[1])<<8 | int((*r)[2])
	*r = (*r)[3:]
	return v, true
}

func (r *helloReader) skip(n int) bool {
	if len(*r) < n {
		return false
	}
	*r = (*r)[n:]
	return true
}

// skipVec skips a vector with a length prefix of lenBytes (1 or 2).
func (r *helloReader) skipVec(lenBytes int) bool {
	var n int
	if lenBytes == 1 {
		v, ok := r.u8()
		if !ok {
			return false
		}
		n = int(v)
	} else {
		v, ok := r.u16()
		if !ok {
			return false
		}
		n = int(v)
	}
	return r.skip(n)
}

// upTo is the first n bytes, or all there are if fewer (a cut hello).
func (r helloReader) upTo(n int) helloReader {
	if n < len(r) {
		return r[:n]
	}
	return r
}
