package query

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// writeWhoSummary writes path's summary as a recorder's clean stop does
// (record.Store.summarize).
func writeWhoSummary(t *testing.T, path string) WhoSummary {
	t.Helper()
	ctx := context.Background()
	var rows [][]any
	sum, err := SummarizeWho(ctx, path, func(v []any) error {
		rows = append(rows, append([]any(nil), v...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO who_summary ("+WhoSummaryColumns+") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", r...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO summaries VALUES ('who', ?, ?, 1)", sum.MsgsMax, sum.RRsMax); err != nil {
		t.Fatal(err)
	}
	return sum
}

// TestWhoSummaryExtent: on the incident fixture (unidentified processes,
// NXDOMAIN, unanswered and cut responses, CNAME chains) the summary gives
// who-resolved's answers, is used only while it covers every message,
// and is left for the messages when a filter is given.
func TestWhoSummaryExtent(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "case.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	b.Close()
	if sum := writeWhoSummary(t, p); sum.Rows == 0 {
		t.Fatal("no summary rows for the incident")
	}
	d, err := Open(ctx, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	f := d.files[0]
	if ok, err := f.whoSummarized(ctx); !ok || err != nil {
		t.Fatalf("summary not used (%v)", err)
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
			f.noSummary = false
			a, err := d.WhoResolved(ctx, n, opts)
			if err != nil {
				t.Fatal(err)
			}
			f.noSummary = true
			b, err := d.WhoResolved(ctx, n, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%q: from the summary\n%+v\nfrom the messages\n%+v", n, a, b)
			}
			compared += len(a)
		}
	}
	f.noSummary = false
	if compared == 0 {
		t.Fatal("nothing compared")
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
	if ok, err := d.files[0].whoSummarized(ctx); ok || err != nil {
		t.Fatalf("a summary that does not cover the last message is used (%v)", err)
	}
}

// TestWhoSummaryPlan: the summary is read through names_rev and
// who_summary_name, and built from msgs_name without a sort.
func TestWhoSummaryPlan(t *testing.T) {
	p := filepath.Join(t.TempDir(), "case.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	b.Close()
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
	plan := planOf(t, f, summaryScanSQL, nil)
	if !strings.Contains(plan, "INDEX msgs_name") || strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "INDEX rrs_message") {
		t.Errorf("the summary's scan is not in msgs_name order with rrs_message:\n%s", plan)
	}
}
