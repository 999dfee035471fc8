package query_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
)

// TestWhoResolvedAllNames: no NAME, "." and "*" all list every name asked,
// the same rows as the union of the names one by one.
func TestWhoResolvedAllNames(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "case.db", "web01"))
	want := whoResolved(t, db, "*", query.WhoResolvedOptions{}, summary)
	for _, must := range []string{curlWWW, pyAPI, nc, beacon, curlApex, pyNotEvil} {
		if !slices.Contains(want, must) {
			t.Fatalf("'*' misses %s; got\n\t%s", must, strings.Join(want, "\n\t"))
		}
	}
	for _, q := range []string{"", ".", " * "} {
		sameLines(t, whoResolved(t, db, q, query.WhoResolvedOptions{}, summary), want)
	}
}

// TestWhoResolvedAddress: an address is never a name; the error says which
// command answers it.
func TestWhoResolvedAddress(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "case.db", "web01"))
	for _, q := range []string{"203.0.113.7", "2001:db8::7", "203.0.113.0/24"} {
		_, err := db.WhoResolved(context.Background(), q, query.WhoResolvedOptions{})
		if err == nil || !strings.Contains(err.Error(), "try resolved-to "+q) {
			t.Errorf("%s: err %v, want it to point to resolved-to", q, err)
		}
	}
	// A reverse name is a name.
	if _, err := db.WhoResolved(context.Background(), "7.113.0.203.in-addr.arpa", query.WhoResolvedOptions{}); err != nil {
		t.Errorf("reverse name: %v", err)
	}
}
