// Package dnstest holds helpers for the recorder's and the store's tests:
// DNS messages to feed them, and evidence files opened as a reader would.
// Tests only; no product code imports it.
package dnstest

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dnsrec/dnsrec/query"
)

// Pack packs m, failing the test if it cannot.
func Pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

// MustRR parses a resource record in zone file form.
func MustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("rr %q: %v", s, err)
	}
	return rr
}

// Query is a query for name and qtype, with DNS id 0x1234.
func Query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	return m
}

// Response answers www.example.com A with a CNAME chain, an A, an AAAA and
// an MX, compressed the way resolvers send them.
func Response(t testing.TB) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(Query("www.example.com.", dns.TypeA))
	m.RecursionAvailable = true
	m.Compress = true
	m.Answer = []dns.RR{
		MustRR(t, "www.example.com. 300 IN CNAME Web.Example.com."),
		MustRR(t, "web.example.com. 60 IN A 192.0.2.1"),
		MustRR(t, "web.example.com. 60 IN AAAA 2001:db8::1"),
		MustRR(t, "example.com. 3600 IN MX 10 mail.example.com."),
	}
	return m
}

// RODSN names path read-only, percent-encoding it the way an analyst's tool
// should, independently of the writer's own DSN.
func RODSN(path string) string {
	abs, _ := filepath.Abs(path)
	return (&url.URL{Scheme: "file", Path: abs}).String() + "?mode=ro"
}

// OpenRO opens path read-only for the rest of the test.
func OpenRO(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", RODSN(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("open %s read-only: %v", path, err)
	}
	return db
}

// Verify runs `dnsrec query verify` on path.
func Verify(t testing.TB, path string) query.VerifyReport {
	t.Helper()
	db, err := query.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}

// Deref shows a pointer's value, or nil.
func Deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
