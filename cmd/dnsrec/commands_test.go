package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestQueryCommands runs each analyst command as a user would, against the
// golden output the query package renders, and checks the evidence is
// unchanged afterwards.
func TestQueryCommands(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	before := querytest.Sum(t, web)
	tests := []struct {
		name   string
		args   []string
		golden string // from query/testdata; "" checks want instead
		want   []string
		code   int
	}{
		{name: "timeline", args: []string{"query", "timeline", "--db", web, "--format", "csv"}, golden: "timeline-incident.csv"},
		{name: "resolved-to", args: []string{"query", "resolved-to", "203.0.113.0/24", "--db", web, "--format", "table"}, golden: "resolved-to-24.table"},
		{name: "process", args: []string{"query", "process", "curl", "--db", web, "--format", "jsonl"}, golden: "process-curl.jsonl"},
		{name: "timeline filters", args: []string{"query", "timeline", "--db", web, "--name", "*.evil.com", "--rcode", "nxdomain", "--format", "csv"},
			want: []string{"api.evil.com,A,,", "api.evil.com,A,NXDOMAIN,"}},
		{name: "relative --since finds nothing in an old file", args: []string{"query", "timeline", "--db", web, "--since", "2h"},
			want: []string{"time,host,id,kind"}},
		{name: "--local", args: []string{"query", "timeline", "--db", web, "--limit", "1", "--local", "--format", "csv"},
			want: []string{"2024-03-01T"}},
		{name: "stats", args: []string{"query", "stats", "--db", web, "--format", "csv"}, want: []string{"top_names,1,www.evil.com,3,,"}},
		{name: "sql", args: []string{"query", "sql", "SELECT count(*) AS n FROM processes", "--db", web}, want: []string{"n\n8\n"}},
		{name: "sql refuses a write", args: []string{"query", "sql", "DELETE FROM msgs", "--db", web}, code: 1,
			want: []string{"refused: the evidence is opened read-only"}},
		{name: "bad --since", args: []string{"query", "timeline", "--db", web, "--since", "yesterday"}, code: 1,
			want: []string{`--since: bad time "yesterday"`}},
		{name: "bad --qtype", args: []string{"query", "who-resolved", "evil.com", "--db", web, "--qtype", "BOGUS"}, code: 1,
			want: []string{`unknown query type "BOGUS"`}},
		{name: "bad prefix", args: []string{"query", "resolved-to", "evil.com", "--db", web}, code: 1,
			want: []string{`"evil.com" is not an address or CIDR prefix`}},
		{name: "bad cursor", args: []string{"query", "timeline", "--db", web, "--after", "x"}, code: 1,
			want: []string{`bad cursor "x"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dnsrec(t, dir, nil, tt.args...)
			if r.code != tt.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", r.code, tt.code, r.stderr)
			}
			if tt.golden != "" {
				if want := readGolden(t, tt.golden); r.stdout != want {
					t.Errorf("stdout:\n%s\nwant (%s):\n%s", r.stdout, tt.golden, want)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(r.stdout+r.stderr, w) {
					t.Errorf("output lacks %q:\nstdout:\n%s\nstderr:\n%s", w, r.stdout, r.stderr)
				}
			}
		})
	}
	if querytest.Sum(t, web) != before {
		t.Error("SHA-256 of the evidence changed")
	}
}

// TestTimelinePaging follows the cursor a page prints to the end, and gets
// the whole timeline once.
func TestTimelinePaging(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	all := dnsrec(t, dir, nil, "query", "timeline", "--db", web, "--format", "csv")
	if all.code != 0 {
		t.Fatal(all.stderr)
	}
	cursor := regexp.MustCompile(`--after (\S+)`)
	var got []string
	args := []string{"query", "timeline", "--db", web, "--format", "csv", "--limit", "4"}
	for page := 0; page < 20; page++ {
		r := dnsrec(t, dir, nil, args...)
		if r.code != 0 {
			t.Fatal(r.stderr)
		}
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if page == 0 {
			got = append(got, lines[0])
		}
		got = append(got, lines[1:]...)
		m := cursor.FindStringSubmatch(r.stderr)
		if m == nil {
			break
		}
		args = []string{"query", "timeline", "--db", web, "--format", "csv", "--limit", "4", "--after", m[1]}
	}
	if strings.Join(got, "\n")+"\n" != all.stdout {
		t.Errorf("pages:\n%s\nwhole:\n%s", strings.Join(got, "\n"), all.stdout)
	}
}

// TestDBGlob: --db takes a glob, given to the subcommand or to `query`
// itself, and opens every file it matches in name order; a glob that
// matches nothing is an error naming it.
func TestDBGlob(t *testing.T) {
	dir := t.TempDir()
	build(t, dir, "case-0001.db", querytest.Incident, "web01")
	build(t, dir, "case-0002.db", querytest.Incident, "web02")
	build(t, dir, "other.db", querytest.Incident, "db01")
	glob := dir + "/case-*.db"
	for _, args := range [][]string{
		{"query", "info", "--db", glob, "--format", "csv"},
		{"query", "--db", glob, "info", "--format", "csv"},
	} {
		r := dnsrec(t, dir, nil, args...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d\n%s", args, r.code, r.stderr)
		}
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 3 || !strings.Contains(lines[1], "case-0001.db") || !strings.Contains(lines[2], "case-0002.db") || strings.Contains(r.stdout, "db01") {
			t.Errorf("%q: want the two case files in order:\n%s", args, r.stdout)
		}
	}
	r := dnsrec(t, dir, nil, "query", "info", "--db", dir+"/nope-*.db")
	if r.code == 0 || !strings.Contains(r.stderr, "matches no file") {
		t.Errorf("a glob matching nothing: exit %d\n%s", r.code, r.stderr)
	}
}
