// Command dotclient resolves one name's A record over DNS over TLS with Go's
// crypto/tls, as a Go program with its own resolver would: nothing of libc,
// OpenSSL or GnuTLS. The tests build it with the toolchains they cover.
//
//	dotclient ADDR:PORT CA.pem SERVERNAME QNAME WAIT
//
// It sleeps WAIT first (a Go duration), so that a recorder started before
// it has found and probed its executable; then it prints the first address
// of the answer.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, "usage: dotclient ADDR:PORT CA.pem SERVERNAME QNAME WAIT")
		os.Exit(2)
	}
	addr, ca, server, qname := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	wait, err := time.ParseDuration(os.Args[5])
	check(err)
	time.Sleep(wait)
	pem, err := os.ReadFile(ca)
	check(err)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		check(fmt.Errorf("%s: no certificate", ca))
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: server})
	check(err)
	defer c.Close()

	// The query: id 0x4242, RD, one question, type A, class IN.
	msg := []byte{0x42, 0x42, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(strings.TrimSuffix(qname, "."), ".") {
		msg = append(append(msg, byte(len(l))), l...)
	}
	msg = append(msg, 0, 0, 1, 0, 1)
	_, err = c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(msg))))
	check(err)
	_, err = c.Write(msg)
	check(err)

	// The response, read as most clients do: the length, then the message.
	var n [2]byte
	_, err = io.ReadFull(c, n[:])
	check(err)
	resp := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err = io.ReadFull(c, resp)
	check(err)
	// The answer is last: with one A record, its 4 bytes end the message.
	if len(resp) < 16 || resp[7] == 0 {
		check(fmt.Errorf("no answer: % x", resp))
	}
	fmt.Println(net.IP(resp[len(resp)-4:]))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "dotclient:", err)
		os.Exit(1)
	}
}
