//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"

	dnsquery "github.com/dnsrec/dnsrec/query"
)

// Helpers shared by the recorder's tests. The store's tests (record/store)
// have their own: test files are not shared between packages.

// openRO opens path read-only, as an analyst's tool would.
func openRO(t *testing.T, path string) *sql.DB {
	t.Helper()
	abs, _ := filepath.Abs(path)
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs}).String()+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Ping(); err != nil {
		t.Fatalf("open %s read-only: %v", path, err)
	}
	return db
}

func verify(t *testing.T, path string) dnsquery.VerifyReport {
	t.Helper()
	db, err := dnsquery.Open(context.Background(), []string{path})
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

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatalf("pack: %v", err)
	}
	return b
}

func mustRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("rr %q: %v", s, err)
	}
	return rr
}

func query(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0x1234
	return m
}

// response answers www.example.com A with a CNAME chain, an A, an AAAA and an
// MX, compressed the way resolvers send them.
func response(t testing.TB) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(query("www.example.com.", dns.TypeA))
	m.RecursionAvailable = true
	m.Compress = true
	m.Answer = []dns.RR{
		mustRR(t, "www.example.com. 300 IN CNAME Web.Example.com."),
		mustRR(t, "web.example.com. 60 IN A 192.0.2.1"),
		mustRR(t, "web.example.com. 60 IN AAAA 2001:db8::1"),
		mustRR(t, "example.com. 3600 IN MX 10 mail.example.com."),
	}
	return m
}

// deref shows a pointer's value, or nil.
func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
