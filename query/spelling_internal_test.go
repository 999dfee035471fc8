package query

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// TestResolvedToSpellingSummary: the address summary keeps lowercase
// names only, so a file where a name was sent in another case answers
// resolved-to from its messages, and shows the name as sent.
func TestResolvedToSpellingSummary(t *testing.T) {
	ctx := context.Background()
	p := querytest.SpelledFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
	if n := writeSummaries(t, p); n["addr"] == 0 {
		t.Fatalf("summary rows: %v", n)
	}
	d, err := Open(ctx, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if ok, err := d.files[0].summarized(ctx, summary.Addr); !ok || err != nil {
		t.Fatalf("no current address summary (%v)", err)
	}
	rows, err := d.ResolvedTo(ctx, netip.MustParsePrefix("203.0.113.7/32"), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].QName != querytest.SpelledRoot || rows[0].Count != 2 {
		t.Errorf("resolved-to 203.0.113.7: %+v, want one row of %s, count 2", rows, querytest.SpelledRoot)
	}
}
