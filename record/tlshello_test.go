package record

import (
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
)

// clientHello captures the first TLS record crypto/tls sends for a
// connection to serverName.
func clientHello(t *testing.T, serverName string) []byte {
	t.Helper()
	c, s := net.Pipe()
	defer s.Close()
	go func() {
		tls.Client(c, &tls.Config{ServerName: serverName}).Handshake()
		c.Close()
	}()
	head := make([]byte, 5)
	if _, err := io.ReadFull(s, head); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, binary.BigEndian.Uint16(head[3:]))
	if _, err := io.ReadFull(s, body); err != nil {
		t.Fatal(err)
	}
	return append(head, body...)
}

func TestClientHelloSNI(t *testing.T) {
	hello := clientHello(t, "DNS.Example.test")
	if sni, err := ClientHelloSNI(hello); err != nil || sni != "dns.example.test" {
		t.Fatalf("ClientHelloSNI(crypto/tls hello) = %q, %v; want dns.example.test", sni, err)
	}
	// Cut anywhere, the parser never reads past the end, and a hello cut
	// before the name gives no name.
	for n := range len(hello) {
		sni, err := ClientHelloSNI(hello[:n])
		if err == nil && sni != "dns.example.test" {
			t.Fatalf("hello cut at %d bytes: %q", n, sni)
		}
		if n < 50 && err == nil {
			t.Fatalf("hello cut at %d bytes, before its extensions, gave %q", n, sni)
		}
	}
	// No server name: crypto/tls sends none for an IP address.
	if sni, err := ClientHelloSNI(clientHello(t, "127.0.0.1")); err == nil {
		t.Errorf("a hello without server_name gave %q", sni)
	}
	for _, bad := range [][]byte{nil, []byte("GET / HTTP/1.1\r\n"), {22, 3, 1, 0, 4, 2, 0, 0, 0}} {
		if sni, err := ClientHelloSNI(bad); err == nil {
			t.Errorf("ClientHelloSNI(%q) = %q, want an error", bad, sni)
		}
	}
}

func TestResolverSet(t *testing.T) {
	s, err := newResolverSet([]string{"192.0.2.53", "DoH.Corp.Example.", "2001:db8::53"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ addr, want string }{
		{"1.1.1.1", "Cloudflare"},
		{"2001:4860:4860::8888", "Google"},
		{"::ffff:9.9.9.9", "Quad9"},
		{"192.0.2.53", "192.0.2.53"},
		{"2001:db8::53", "2001:db8::53"},
		{"192.0.2.54", ""},
		{"127.0.0.1", ""},
	} {
		if got := s.addr(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("addr(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	for _, tc := range []struct{ host, want string }{
		{"dns.google", "Google"},
		{"Cloudflare-DNS.com.", "Cloudflare"},
		{"doh.corp.example", "doh.corp.example"},
		{"www.google.com", ""},
	} {
		if got := s.host(tc.host); got != tc.want {
			t.Errorf("host(%s) = %q, want %q", tc.host, got, tc.want)
		}
	}
	// An answer for a listed name teaches its address, once; an answer for
	// another name teaches nothing.
	a := netip.MustParseAddr("203.0.113.9")
	if s.learn("www.example.test", a) || s.addr(a) != "" {
		t.Error("learnt an address from an unlisted name")
	}
	if !s.learn("doh.corp.example", a) || s.learn("doh.corp.example", a) || s.addr(a) != "doh.corp.example" {
		t.Errorf("learn(doh.corp.example, %s): addr now %q", a, s.addr(a))
	}
	for _, bad := range []string{"", "not a host", "1.2.3.4/24", "fe80::1%eth0", "nodot"} {
		if _, err := newResolverSet([]string{bad}); err == nil {
			t.Errorf("--doh-server %q accepted", bad)
		}
	}
	// Every listed address parses to itself and belongs to its resolver.
	for _, r := range KnownResolvers {
		for _, a := range r.Addrs {
			if s.addr(a) != r.Name {
				t.Errorf("%s: address %s matches %q", r.Name, a, s.addr(a))
			}
		}
	}
}
