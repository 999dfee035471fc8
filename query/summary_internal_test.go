package query

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// writeSummaries writes path's summaries as a recorder's clean stop does
// (store.Store.summarize in record/store), and returns the rows each gave.
func writeSummaries(t *testing.T, path string) map[string]int64 {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := map[string]int64{}
	for _, s := range summary.All {
		var rows [][]any
		sum, err := s.Build(ctx, path, func(v []any) error {
			rows = append(rows, append([]any(nil), v...))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if _, err := db.Exec(s.InsertSQL(), r...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec("INSERT INTO summaries VALUES (?, ?, ?, 1)", s.Kind, sum.MsgsMax, sum.RRsMax); err != nil {
			t.Fatal(err)
		}
		out[s.Kind] = sum.Rows
	}
	return out
}

// sameRows asks d, read through its summaries, and without, the same file
// read from its messages alone (a copy at another path: file points at a
// row's file name, set to path), and fails unless both give the same rows.
// It returns how many rows it compared.
func sameRows[R any](t *testing.T, what, path string, d, without *DB, ask func(*DB) ([]R, error), file func(*R) *string) int {
	t.Helper()
	a, err := ask(d)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ask(without)
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		*file(&b[i]) = path
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("%s: from the summary\n%+v\nfrom the messages\n%+v", what, a, b)
	}
	return len(a)
}

// TestWhoSummaryExtent: on the incident fixture (unidentified processes,
// NXDOMAIN, unanswered and cut responses, CNAME chains, libc resolutions)
// the summaries give who-resolved's and resolved-to's answers, and are
// used only while they cover every message.
func TestWhoSummaryExtent(t *testing.T) {
	ctx := context.Background()
	p := querytest.IncidentFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
	if n := writeSummaries(t, p); n["who"] == 0 || n["addr"] == 0 {
		t.Fatalf("summary rows for the incident: %v", n)
	}
	d, err := Open(ctx, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	f := d.files[0]
	if ok, err := f.summarized(ctx, summary.Who); !ok || err != nil {
		t.Fatalf("summary not used (%v)", err)
	}
	without, err := Open(ctx, []string{WithoutSummaries(t, p)})
	if err != nil {
		t.Fatal(err)
	}
	defer without.Close()
	for _, s := range summary.All {
		if ok, err := without.files[0].summarized(ctx, s); ok || err != nil {
			t.Fatalf("the copy without summaries answers from its %s summary (%v)", s.Kind, err)
		}
	}
	var names []string
	rs, err := f.db.Query(`SELECT name FROM names`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var n string
		rs.Scan(&n)
		names = append(names, n)
	}
	rs.Close()
	names = append(names, "evil.com", "com", "*.evil.com")
	compared := 0
	for _, n := range names {
		for _, resolvers := range []bool{false, true} {
			opts := WhoResolvedOptions{Exact: !strings.Contains(n, "evil.com") && n != "com", Resolvers: resolvers}
			compared += sameRows(t, fmt.Sprintf("%q", n), p, d, without, func(db *DB) ([]WhoResolvedRow, error) {
				return db.WhoResolved(ctx, n, opts)
			}, func(r *WhoResolvedRow) *string { return &r.File })
		}
	}
	if compared == 0 {
		t.Fatal("nothing compared")
	}
	// resolved-to, for every address answered or returned by libc, and
	// their /24s.
	var addrs []string
	rs, err = f.db.Query(`SELECT data FROM rrs WHERE type IN (1, 28) UNION SELECT addr FROM resolution_addrs`)
	if err != nil {
		t.Fatal(err)
	}
	for rs.Next() {
		var a string
		rs.Scan(&a)
		addrs = append(addrs, a, a+"/24")
	}
	rs.Close()
	compared = 0
	for _, a := range addrs {
		if strings.Contains(a, ":") && strings.HasSuffix(a, "/24") {
			a = strings.TrimSuffix(a, "/24") + "/32"
		}
		prefix, err := ParsePrefix(a)
		if err != nil {
			t.Fatal(err)
		}
		compared += sameRows(t, "resolved-to "+a, p, d, without, func(db *DB) ([]ResolvedToRow, error) {
			return db.ResolvedTo(ctx, prefix, Filter{})
		}, func(r *ResolvedToRow) *string { return &r.File })
	}
	if compared == 0 {
		t.Fatal("no resolved-to rows compared")
	}
	d.Close()

	// A later recording into the file, killed: its messages are not in
	// the summary, which is then not used.
	db, err := sql.Open("sqlite", "file:"+p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`CREATE TEMP TABLE x AS SELECT * FROM msgs WHERE id = (SELECT max(id) FROM msgs)`,
		`UPDATE x SET id = id + 1`,
		`INSERT INTO msgs SELECT * FROM x`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	d, err = Open(ctx, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, s := range summary.All {
		if ok, err := d.files[0].summarized(ctx, s); ok || err != nil {
			t.Fatalf("a %s summary that does not cover the last message is used (%v)", s.Kind, err)
		}
	}
}

// TestWhoSummaryPlan: the summary is read through names_rev and
// who_summary_name (its building's plan is package summary's test).
func TestWhoSummaryPlan(t *testing.T) {
	p := querytest.IncidentFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
	d, err := Open(context.Background(), []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	f := d.files[0]
	for _, exact := range []bool{false, true} {
		pat, err := ParseName("evil.com", !exact)
		if err != nil {
			t.Fatal(err)
		}
		where, args := pat.where("n.")
		plan := planOf(t, f, strings.Replace(whoSummarySQL, "%s", where, 1), args)
		for _, ix := range []string{"names_rev", "who_summary_name"} {
			if !regexp.MustCompile(`USING (COVERING )?INDEX ` + ix + `\b`).MatchString(plan) {
				t.Errorf("exact=%v: the plan does not use %s:\n%s", exact, ix, plan)
			}
		}
		if strings.Contains(plan, "SCAN w") {
			t.Errorf("exact=%v: the plan scans the summary:\n%s", exact, plan)
		}
	}
}
