package query_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

func spelledDB(t *testing.T) *query.DB {
	t.Helper()
	return open(t, querytest.SpelledFile(t, filepath.Join(t.TempDir(), "case.db"), "web01"))
}

// statsRows is the stats table as section -> "item|count|value|detail".
func statsRows(t *testing.T, db *query.DB, f query.Filter) map[string][]string {
	t.Helper()
	tbl, err := db.Stats(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, r := range tbl.Rows {
		var cells []string
		for _, c := range r[2:] {
			cells = append(cells, fmt.Sprint(c))
		}
		rows[r[0].(string)] = append(rows[r[0].(string)], strings.Join(cells, "|"))
	}
	return rows
}

// TestStatsSpelling: stats scores the labels as they were sent and shows
// the names so. The root label is random only in its case: lowercased it
// scores below the threshold, and the hello label scores lower.
func TestStatsSpelling(t *testing.T) {
	bits := func(label string) string { return strconv.FormatFloat(query.Entropy(label), 'f', 2, 64) }
	if query.Entropy("cm9vddp4oja6ma") >= 3.5 || query.Entropy("cm9vdDp4OjA6MA") < 3.5 ||
		bits("exfil-agvsbg8gd29ybgq") == bits("exfil-aGVsbG8gd29ybGQ") {
		t.Fatal("the fixture's labels no longer tell their case apart")
	}
	hello := querytest.SpelledHello + "|1|" + bits("exfil-aGVsbG8gd29ybGQ") + `|bits per character of "exfil-aGVsbG8gd29ybGQ"`
	root := querytest.SpelledRoot + "|2|" + bits("cm9vdDp4OjA6MA") + `|bits per character of "cm9vdDp4OjA6MA"`
	db := spelledDB(t)
	rows := statsRows(t, db, query.Filter{})
	for section, want := range map[string][]string{
		"high_entropy":    {hello, root},
		"long_names":      {querytest.SpelledHello + "|1|31|characters", querytest.SpelledRoot + "|2|24|characters", "www.example.test|1|16|characters"},
		"top_names":       {querytest.SpelledRoot + "|2|<nil>|<nil>", querytest.SpelledHello + "|1|<nil>|<nil>", "www.example.test|1|<nil>|<nil>"},
		"tunnel_suspects": {"evil.test|2|<nil>|distinct high-entropy names of 2"},
	} {
		if got := strings.Join(rows[section], "\n\t"); got != strings.Join(want, "\n\t") {
			t.Errorf("%s:\n\t%s\nwant\n\t%s", section, got, strings.Join(want, "\n\t"))
		}
	}
	// Matching stays case-insensitive: a lowercase name finds the
	// spelled one, and shows it as sent.
	pat, err := query.ParseName(strings.ToLower(querytest.SpelledRoot), false)
	if err != nil {
		t.Fatal(err)
	}
	rows = statsRows(t, db, query.Filter{Names: []query.NamePattern{pat}})
	if got := strings.Join(rows["high_entropy"], "\n"); got != root {
		t.Errorf("stats for %s: high_entropy\n\t%s\nwant\n\t%s", pat.Input, got, root)
	}
}

// TestResolvedToSpelling: resolved-to shows the name as it was sent, the
// first spelling that was not lowercase, from the messages and from libc,
// and one row for a name whatever its case.
func TestResolvedToSpelling(t *testing.T) {
	db := spelledDB(t)
	line := func(r query.ResolvedToRow) string {
		return fmt.Sprintf("%s | %s | %s | %d", r.QName, r.Chain, r.Proc.Comm, r.Count)
	}
	for _, tc := range []struct {
		prefix string
		f      query.Filter
		want   string
	}{
		{"203.0.113.7", query.Filter{}, querytest.SpelledRoot + " | " + querytest.SpelledRoot + " > A 203.0.113.7 | python3 | 2"},
		{"203.0.113.7", query.Filter{Comms: []string{"python3"}}, querytest.SpelledRoot + " | " + querytest.SpelledRoot + " > A 203.0.113.7 | python3 | 2"},
		{"203.0.113.9", query.Filter{}, querytest.SpelledLibc + " | " + querytest.SpelledLibc + " > libc getaddrinfo > A 203.0.113.9 | python3 | 1"},
		{"192.0.2.1", query.Filter{}, "www.example.test | www.example.test > A 192.0.2.1 | python3 | 1"},
	} {
		rows, err := db.ResolvedTo(context.Background(), netip.MustParsePrefix(tc.prefix+"/32"), tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, line(r))
		}
		if strings.Join(got, "\n") != tc.want {
			t.Errorf("resolved-to %s %+v:\n\t%s\nwant\n\t%s", tc.prefix, tc.f, strings.Join(got, "\n\t"), tc.want)
		}
	}
}

// TestProcessSpelling: process lists the names it asked for, by DNS and
// through libc, as sent: one entry per name whatever its case.
func TestProcessSpelling(t *testing.T) {
	db := spelledDB(t)
	rows, err := db.Processes(context.Background(), "4100", query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("process 4100: %d rows", len(rows))
	}
	var names, libc []string
	for _, n := range rows[0].Names {
		names = append(names, n.String())
	}
	for _, n := range rows[0].LibcNames {
		libc = append(libc, n.String())
	}
	want := []string{querytest.SpelledHello + " (1)", querytest.SpelledRoot + " (2)", "www.example.test (1)"}
	if strings.Join(names, ", ") != strings.Join(want, ", ") || rows[0].Queries != 4 {
		t.Errorf("names %q (%d queries), want %q (4)", names, rows[0].Queries, want)
	}
	if w := querytest.SpelledLibc + " (1)"; strings.Join(libc, ", ") != w {
		t.Errorf("libc names %q, want %q", libc, w)
	}
}
