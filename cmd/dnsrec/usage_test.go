package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestUsageErrors: a mistyped flag or command, or a value the flag cannot
// take, is one line on stderr that says what was meant or what the flag
// takes, with no help dumped on stdout.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "timeline", "--db", web, "--fromat", "csv"},
			"dnsrec: query timeline: unknown flag --fromat; did you mean --format?"},
		{[]string{"query", "who-resolve", "evil.com"},
			`dnsrec: query: unknown command "who-resolve"; did you mean who-resolved?`},
		{[]string{"recrod"},
			`dnsrec: unknown command "recrod"; did you mean record?`},
		{[]string{"query", "timeline", "--db", web, "--pid", "curl"},
			`dnsrec: query timeline: --pid "curl": takes a process id, a number; to pick processes by name use --comm curl (the command name) or --exe curl (the executable's path or base name)`},
		{[]string{"query", "stats", "--db", filepath.Join(dir, "nothing-*.db")},
			`dnsrec: query stats: --db: "` + filepath.Join(dir, "nothing-*.db") + `": the glob matches no file in ` + dir},
		{[]string{"query", "stats", "--db", web, "--limit"},
			"dnsrec: query stats: --limit needs a value"},
	} {
		r := dnsrec(t, dir, nil, tc.args...)
		if r.code == 0 || r.stdout != "" || r.stderr != tc.want+"\n" {
			t.Errorf("%q: exit %d\nstdout %q\nstderr %q\nwant   %q", tc.args, r.code, r.stdout, r.stderr, tc.want+"\n")
		}
	}
	// With nothing to correct, the help still comes.
	if r := dnsrec(t, dir, nil, "query"); r.code != 0 || !strings.Contains(r.stdout, "who-resolved") {
		t.Errorf("query: exit %d, stdout %q", r.code, r.stdout)
	}
}

// TestWhoResolvedEveryName: with no NAME, who-resolved lists every name
// asked, as '*' does.
func TestWhoResolvedEveryName(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	rows := func(args ...string) []map[string]any {
		t.Helper()
		r := dnsrec(t, dir, nil, append([]string{"query", "who-resolved", "--db", web, "--format", "json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d, stderr %s", args, r.code, r.stderr)
		}
		var out []map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := rows("*")
	names := map[any]bool{}
	for _, r := range all {
		names[r["qname"]] = true
	}
	if !names["www.evil.com"] || !names["notevil.com"] {
		t.Fatalf("'*': names %v", names)
	}
	for _, args := range [][]string{nil, {"."}} {
		if got := rows(args...); len(got) != len(all) {
			t.Errorf("%q: %d rows, '*' has %d", args, len(got), len(all))
		}
	}
}
