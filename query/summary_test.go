package query_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/internal/gen"
	"github.com/dnsrec/dnsrec/query"
)

// TestWhoSummaryMatches: who-resolved answers the same from the summary a
// clean stop writes as from the messages, for 2,000 names of a generated
// day and for its domains, with and without the resolvers' own rows.
func TestWhoSummaryMatches(t *testing.T) {
	if raceEnabled {
		t.Skip("compares thousands of answers: minutes under -race, and the race detector has nothing to find in it that the other tests do not run")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gen.db")
	start := time.Now()
	facts, err := gen.Write(ctx, path, gen.Config{Messages: 200_000, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("generated %d messages in %v", facts.Messages, time.Since(start))
	withSum, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer withSum.Close()
	if ok, err := query.Summarized(ctx, withSum, "who"); !ok || err != nil {
		t.Fatalf("the generated file has no summary covering it (%v)", err)
	}
	live, err := query.Open(ctx, []string{query.WithoutSummaries(t, path)})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	if ok, err := query.Summarized(ctx, live, "who"); ok || err != nil {
		t.Fatalf("the copy without summaries answers from one (%v)", err)
	}

	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.Query(`SELECT name FROM names ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for rs.Next() {
		var n string
		if err := rs.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	rs.Close()
	type q struct {
		name  string
		exact bool
	}
	// Comparing every name takes too long: 2,000 of them, spread over the ids
	// (names are numbered in order of first sight, so the busiest come
	// first and the tunnel's last).
	var qs []q
	for i := 0; i < len(names); i += max(1, len(names)/2000) {
		qs = append(qs, q{names[i], true})
	}
	qs = append(qs, q{facts.Incident.Domain, false}, q{facts.Tunnel.Domain, false}, q{"com", false}, q{"*.evil.test", false})
	rows := 0
	for _, x := range qs {
		for _, resolvers := range []bool{false, true} {
			opts := query.WhoResolvedOptions{Exact: x.exact, Resolvers: resolvers}
			a, err := withSum.WhoResolved(ctx, x.name, opts)
			if err != nil {
				t.Fatalf("%q from the summary: %v", x.name, err)
			}
			b, err := live.WhoResolved(ctx, x.name, opts)
			if err != nil {
				t.Fatalf("%q from the messages: %v", x.name, err)
			}
			for i := range b {
				b[i].File = path
			}
			if !reflect.DeepEqual(a, b) {
				for i := range min(len(a), len(b)) {
					if !reflect.DeepEqual(a[i], b[i]) {
						t.Fatalf("%q (exact %v, resolvers %v), row %d:\nsummary  %+v\nmessages %+v", x.name, x.exact, resolvers, i, a[i], b[i])
					}
				}
				t.Fatalf("%q: %d rows from the summary, %d from the messages", x.name, len(a), len(b))
			}
			rows += len(a)
		}
	}
	t.Logf("%d questions, %d rows alike", len(qs)*2, rows)
	if rows == 0 {
		t.Fatal("no rows compared")
	}
	testAddrSummaryMatches(t, db, withSum, live)
	withSum.Close()
	live.Close()
	db.Close()
	testSummaryVerify(t, path)
}

// testAddrSummaryMatches: resolved-to answers the same from the summary as
// from the messages, for every address answered in the file, and for each
// one's /24 (IPv4) or /32 and /64 (IPv6): 600 of them, spread.
func testAddrSummaryMatches(t *testing.T, db *sql.DB, withSum, live *query.DB) {
	ctx := context.Background()
	if ok, err := query.Summarized(ctx, withSum, "addr"); !ok || err != nil {
		t.Fatalf("the generated file has no address summary covering it (%v)", err)
	}
	rs, err := db.Query(`SELECT DISTINCT data FROM rrs WHERE type IN (1, 28)`)
	if err != nil {
		t.Fatal(err)
	}
	prefixes := map[netip.Prefix]bool{}
	for rs.Next() {
		var d string
		if err := rs.Scan(&d); err != nil {
			t.Fatal(err)
		}
		a, err := netip.ParseAddr(d)
		if err != nil {
			continue
		}
		prefixes[netip.PrefixFrom(a, a.BitLen())] = true
		if a.Is4() {
			prefixes[netip.PrefixFrom(a, 24).Masked()] = true
		} else {
			prefixes[netip.PrefixFrom(a, 32).Masked()] = true
			prefixes[netip.PrefixFrom(a, 64).Masked()] = true
		}
	}
	rs.Close()
	// Every one would take minutes: a spread of them, in sorted order.
	all := make([]netip.Prefix, 0, len(prefixes))
	for p := range prefixes {
		all = append(all, p)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].String() < all[j].String() })
	var some []netip.Prefix
	for i := 0; i < len(all); i += max(1, len(all)/600) {
		some = append(some, all[i])
	}
	rows := 0
	for _, p := range some {
		a, err := withSum.ResolvedTo(ctx, p, query.Filter{})
		if err != nil {
			t.Fatalf("%s from the summary: %v", p, err)
		}
		b, err := live.ResolvedTo(ctx, p, query.Filter{})
		if err != nil {
			t.Fatalf("%s from the messages: %v", p, err)
		}
		for i := range b {
			b[i].File = withSum.Paths()[0]
		}
		if !reflect.DeepEqual(a, b) {
			for i := range min(len(a), len(b)) {
				if !reflect.DeepEqual(a[i], b[i]) {
					t.Fatalf("%s, row %d:\nsummary  %+v %+v\nmessages %+v %+v", p, i, a[i], a[i].Proc, b[i], b[i].Proc)
				}
			}
			t.Fatalf("%s: %d rows from the summary, %d from the messages", p, len(a), len(b))
		}
		rows += len(a)
	}
	t.Logf("resolved-to: %d of %d prefixes, %d rows alike", len(some), len(all), rows)
	if rows == 0 {
		t.Fatal("no resolved-to rows compared")
	}
}

// testSummaryVerify: `query verify` passes the generated file, and finds
// its summary edited, or left without its extent.
func testSummaryVerify(t *testing.T, path string) {
	ctx := context.Background()
	verify := func(p string) query.VerifyReport {
		t.Helper()
		d, err := query.Open(ctx, []string{p})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		reps, err := d.Verify(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return reps[0]
	}
	if r := verify(path); !r.OK() {
		t.Fatalf("verify of the generated file: %v", r.Problems)
	}
	differs, extent := query.ProblemSummaryDiffers, query.ProblemSummaryExtent
	for _, tc := range []struct {
		edit  string
		kind  query.ProblemKind
		table string
		want  string
	}{
		{`UPDATE who_summary SET queries = queries + 1 WHERE rowid = (SELECT max(rowid) FROM who_summary)`, differs, "who_summary", "who_summary: row "},
		{`UPDATE who_summary SET via = '' WHERE rowid = (SELECT min(rowid) FROM who_summary WHERE via != '')`, differs, "who_summary", "(via: , not "},
		{`DELETE FROM who_summary WHERE rowid = (SELECT min(rowid) FROM who_summary WHERE process_id = (SELECT process_id FROM who_summary GROUP BY 1 ORDER BY count(*) DESC LIMIT 1))`, differs, "who_summary", "who_summary: row "},
		{`DELETE FROM summaries`, extent, "who_summary", "no summaries row"},
		{`DELETE FROM summaries`, extent, "addr_summary", "no summaries row"},
		{`UPDATE addr_summary SET hits = hits + 1 WHERE first_rr = (SELECT first_rr FROM addr_summary ORDER BY type, data, first_msg, first_rr LIMIT 1 OFFSET 6)`, differs, "addr_summary", "addr_summary: row 7 differs from what the messages give (hits: "},
		{`DELETE FROM addr_summary WHERE first_rr = (SELECT first_rr FROM addr_summary ORDER BY type DESC, data DESC, first_msg DESC, first_rr DESC LIMIT 1)`, differs, "addr_summary", "addr_summary: "},
	} {
		p := filepath.Join(t.TempDir(), "edited.db")
		copyFile(t, path, p)
		db, err := sql.Open("sqlite", "file:"+p)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := db.Exec(tc.edit); err != nil {
			t.Fatalf("%s: %v", tc.edit, err)
		} else if n, _ := res.RowsAffected(); n != 1 && !strings.HasPrefix(tc.edit, "DELETE FROM summaries") {
			t.Fatalf("%s: %d rows edited", tc.edit, n)
		}
		db.Close()
		r := verify(p)
		if !slices.ContainsFunc(r.Problems, func(p query.VerifyProblem) bool {
			return p.Kind == tc.kind && p.Table == tc.table && p.Batch == 0 && strings.Contains(p.Text, tc.want)
		}) {
			var got []string
			for _, p := range r.Problems {
				got = append(got, fmt.Sprintf("%s of %s: %s", p.Kind, p.Table, p.Text))
			}
			t.Errorf("%s: verify says %q, want a %s problem of %s with %q", tc.edit, got, tc.kind, tc.table, tc.want)
		}
	}
}
