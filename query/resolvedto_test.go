package query_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

func resolvedTo(t *testing.T, db *query.DB, arg string, f query.Filter) []string {
	t.Helper()
	p, err := query.ParsePrefix(arg)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.ResolvedTo(context.Background(), p, f)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rows {
		who := r.Client.Addr().String()
		if r.Proc != nil {
			who = r.Proc.String()
		}
		out = append(out, fmt.Sprintf("%s %s n=%d [%s]", r.Address, who, r.Count, r.Chain))
	}
	return out
}

func TestResolvedTo(t *testing.T) {
	dir := t.TempDir()
	web := incident(t, dir, "web01.db", "web01")
	db := open(t, web)
	const (
		w7  = "203.0.113.7 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > A 203.0.113.7]"
		w8  = "203.0.113.8 curl(901) n=2 [www.evil.com > CNAME cdn.evil.com > A 203.0.113.8]"
		w9  = "203.0.113.9 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > A 203.0.113.9]"
		lan = "203.0.113.66 10.0.0.1 n=1 [www.evil.com > A 203.0.113.66]"
		apx = "203.0.113.1 curl(901) n=1 [evil.com > A 203.0.113.1]"
	)
	tests := []struct {
		arg    string
		filter query.Filter
		want   []string
	}{
		{"203.0.113.8", query.Filter{}, []string{w8}},
		{"203.0.113.0/24", query.Filter{}, []string{w7, w8, w9, lan, apx}},
		// Not octet-aligned: 203.0.112.0/20 holds 203.0.112.0-203.0.127.255.
		{"203.0.112.0/20", query.Filter{}, []string{w7, w8, w9, lan, apx}},
		{"203.0.113.0/29", query.Filter{}, []string{w7, apx}},
		{"203.0.113.64/30", query.Filter{}, []string{lan}},
		{"203.0.114.0/23", query.Filter{}, nil},
		{"192.0.2.66", query.Filter{}, []string{"192.0.2.66 nc(4242) n=1 [c2.evil.com > A 192.0.2.66]"}},
		{"2001:db8::7", query.Filter{}, []string{"2001:db8::7 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > AAAA 2001:db8::7]"}},
		{"2001:db8::/32", query.Filter{}, []string{"2001:db8::7 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > AAAA 2001:db8::7]"}},
		{"2001:db9::/32", query.Filter{}, nil},
		{"::/0", query.Filter{}, []string{"2001:db8::7 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > AAAA 2001:db8::7]"}},
		{"203.0.113.0/24", query.Filter{PIDs: []int64{901}, Until: querytest.At(5 * 1e9)}, []string{w7, "203.0.113.8 curl(901) n=1 [www.evil.com > CNAME cdn.evil.com > A 203.0.113.8]"}},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			sameLines(t, resolvedTo(t, db, tt.arg, tt.filter), tt.want)
		})
	}
	// A crashed file (no stop-time indexes) answers the same.
	p := filepath.Join(dir, "crashed.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	b.CloseAsCrashed()
	if got := resolvedTo(t, open(t, p), "203.0.113.0/24", query.Filter{}); strings.Join(got, "\n") != strings.Join(tests[1].want, "\n") {
		t.Errorf("crashed file: %q", got)
	}
	for _, bad := range []string{"", "evil.com", "203.0.113.0/33", "1.2.3"} {
		if _, err := query.ParsePrefix(bad); err == nil {
			t.Errorf("ParsePrefix(%q) accepted", bad)
		}
	}
}

func TestResolvedToGolden(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "web01.db", "web01"))
	p, _ := query.ParsePrefix("203.0.113.0/24")
	rows, err := db.ResolvedTo(context.Background(), p, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	goldenFormats(t, "resolved-to-24", query.ResolvedToTable(rows, false))
}
