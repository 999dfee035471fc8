// Command dohclient resolves one name's A record over DNS over HTTPS with
// Go's net/http and crypto/tls, as a Go program with its own resolver
// would: one RFC 8484 GET (?dns=, base64url) and one POST
// (application/dns-message), over HTTP/2 negotiated with ALPN, on one
// connection. The tests build it with the toolchains they cover.
//
//	dohclient URL CA.pem QNAME WAIT
//
// It sleeps WAIT first (a Go duration), so that a recorder started before
// it has found and probed its executable; then it prints, per request, the
// method, the HTTP version the response came over and the first address of
// the answer.
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: dohclient URL CA.pem QNAME WAIT")
		os.Exit(2)
	}
	url, ca, qname := os.Args[1], os.Args[2], os.Args[3]
	wait, err := time.ParseDuration(os.Args[4])
	check(err)
	time.Sleep(wait)
	pem, err := os.ReadFile(ca)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		check(fmt.Errorf("%s: no certificate", ca))
	}
	// A TLSClientConfig of its own turns HTTP/2 off unless asked for.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}}

	// The query: id 0 (RFC 8484 asks for it, for caches), RD, one
	// question, type A, class IN.
	msg := []byte{0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(strings.TrimSuffix(qname, "."), ".") {
		msg = append(append(msg, byte(len(l))), l...)
	}
	msg = append(msg, 0, 0, 1, 0, 1)

	get, err := http.NewRequest(http.MethodGet, url+"?dns="+base64.RawURLEncoding.EncodeToString(msg), nil)
	check(err)
	get.Header.Set("Accept", "application/dns-message")
	do(client, get)

	post, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(msg))
	check(err)
	post.Header.Set("Content-Type", "application/dns-message")
	post.Header.Set("Accept", "application/dns-message")
	do(client, post)
}

func do(client *http.Client, req *http.Request) {
	resp, err := client.Do(req)
	check(err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	check(err)
	if resp.StatusCode != http.StatusOK {
		check(fmt.Errorf("%s: %s: %q", req.Method, resp.Status, body))
	}
	// The answer is last: with one A record, its 4 bytes end the message.
	if len(body) < 16 || body[7] == 0 {
		check(fmt.Errorf("%s: no answer: % x", req.Method, body))
	}
	fmt.Println(req.Method, resp.Proto, net.IP(body[len(body)-4:]))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "dohclient:", err)
		os.Exit(1)
	}
}
