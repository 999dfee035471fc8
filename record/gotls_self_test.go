//go:build linux && (amd64 || arm64)

package record_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/record"
)

// envGoTLSClient makes the test binary a Go DoT client (goTLSClientMain).
const envGoTLSClient = "DNSREC_TEST_GOTLS_CLIENT"

// The test binary is a Go program with crypto/tls: re-executed as a DoT
// client, it exercises the Go probes wherever the tests run (the QEMU
// kernel matrix has no Go toolchain and no unbound). Before flag parsing.
func init() {
	if os.Getenv(envGoTLSClient) != "" {
		os.Exit(goTLSClientMain(os.Args[1:]))
	}
}

// goTLSClientMain: ADDR CA.pem QNAME. One query for QNAME's A record over
// DoT, framed and read as most clients do; prints the first address.
func goTLSClientMain(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "go tls client: want ADDR CA.pem QNAME")
		return 2
	}
	pemBytes, err := os.ReadFile(args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	c, err := tls.Dial("tcp", args[0], &tls.Config{RootCAs: pool, ServerName: "dns.test"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(args[2]), dns.TypeA)
	q, err := m.Pack()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.Write(binary.BigEndian.AppendUint16(nil, uint16(len(q)))); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if _, err := c.Write(q); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	resp, err := readFramed(c)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	r := new(dns.Msg)
	if err := r.Unpack(resp); err != nil || len(r.Answer) == 0 {
		fmt.Fprintln(os.Stderr, "bad answer:", err, r)
		return 1
	}
	fmt.Println(r.Answer[0].(*dns.A).A)
	return 0
}

func readFramed(r io.Reader) ([]byte, error) {
	var n [2]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.BigEndian.Uint16(n[:]))
	_, err := io.ReadFull(r, b)
	return b, err
}

// serveGoDoT serves DoT on addr with crypto/tls until the test ends,
// answering every A question with 127.0.0.1; it returns the CA file.
func serveGoDoT(t *testing.T, addr string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "dns.test"}, DNSNames: []string{"dns.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatalf("listen DoT %s: %v", addr, err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					q, err := readFramed(c)
					if err != nil {
						return
					}
					m, r := new(dns.Msg), new(dns.Msg)
					if m.Unpack(q) != nil || len(m.Question) != 1 {
						return
					}
					r.SetReply(m)
					r.Answer = append(r.Answer, &dns.A{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 1)})
					b, err := r.Pack()
					if err != nil {
						return
					}
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...))
				}
			}()
		}
	}()
	return ca
}

// TestGoDoTSelf: the test binary, a Go program, re-executed as a DoT client
// against a crypto/tls DoT server in this test, is recorded in clear with
// its exact pid, exe, argv and parent, the question, the answer, the query
// and the response as proto dot. It needs no toolchain and no unbound, so
// it runs in the QEMU kernel matrix on every kernel and arch: it checks the
// Go probes (register ABI, goroutine key, RET offsets) there.
func TestGoDoTSelf(t *testing.T) {
	requireRoot(t)
	ca := serveGoDoT(t, "127.0.0.1:853")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const qname = "self.gotls.test"
	argv := []string{exe, "127.0.0.1:853", ca, qname}

	path := filepath.Join(t.TempDir(), "case.db")
	stop := startRecorder(t, path, record.Options{})
	cmd := exec.Command(exe, argv[1:]...)
	cmd.Env = append(os.Environ(), envGoTLSClient+"=1")
	pid, out := run(t, cmd)
	stop()
	if strings.TrimSpace(out) != "127.0.0.1" {
		t.Fatalf("Go DoT client printed %q, want 127.0.0.1", out)
	}

	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.WhoResolved(ctx, qname, query.WhoResolvedOptions{Exact: true, Filter: query.Filter{PIDs: []int64{int64(pid)}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("who-resolved %s, pid %d: %d rows, want 1: %+v", qname, pid, len(rows), rows)
	}
	r := rows[0]
	if r.PID.V != int64(pid) || r.Exe != exe || !slices.Equal(r.Argv, argv) || r.Count != 1 ||
		strings.Join(r.Answers, ";") != "A 127.0.0.1" || r.Status != "NOERROR" ||
		len(r.Ancestry) < 1 || r.Ancestry[0].PID != int64(os.Getpid()) {
		t.Errorf("who-resolved %s: pid %d exe %q argv %q count %d answers %q status %q ancestry %s;\n"+
			"want pid %d exe %q argv %q count 1 answers \"A 127.0.0.1\" status NOERROR, child of %d",
			qname, r.PID.V, r.Exe, r.Argv, r.Count, r.Answers, r.Status, r.Ancestry, pid, exe, argv, os.Getpid())
	}
	var q, resp bool
	for _, row := range timelineRows(t, db, pid) {
		switch {
		case row["kind"] == "query" && row["proto"] == "dot" && row["src_pid"] == strconv.Itoa(pid) &&
			row["dst"] == "127.0.0.1:853" && row["qname"] == qname && row["qtype"] == "A":
			q = true
		case row["kind"] == "response" && row["proto"] == "dot" && row["dst_pid"] == strconv.Itoa(pid) &&
			row["src"] == "127.0.0.1:853" && row["rcode"] == "NOERROR" && row["answers"] == "A 127.0.0.1":
			resp = true
		}
	}
	if !q || !resp {
		t.Errorf("timeline of the Go client (pid %d): query over dot %v, response over dot %v", pid, q, resp)
	}
}
