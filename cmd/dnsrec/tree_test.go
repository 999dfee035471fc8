package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestTreeFlag: --tree 812 (sh, which asked nothing itself) answers for its
// children curl(901) and python3(950) in every listing, and process --tree
// prints the tree.
func TestTreeFlag(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	run := func(args ...string) string {
		t.Helper()
		r := dnsrec(t, dir, nil, append(args, "--db", web)...)
		if r.code != 0 {
			t.Fatalf("%q: exit %d, stderr %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	for _, cmd := range [][]string{
		{"query", "timeline", "--format", "csv"},
		{"query", "who-resolved", "--format", "csv"},
		{"query", "stats", "--format", "csv"},
		{"query", "export", "--format", "zeek", "-o", "-"},
	} {
		tree := run(append(cmd, "--tree", "812")...)
		kids := run(append(cmd, "--pid", "901", "--pid", "950")...)
		all := run(cmd...)
		if tree != kids || tree == all {
			t.Errorf("%q --tree 812:\n%s\nwant as --pid 901 --pid 950:\n%s", cmd, tree, kids)
		}
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(run("query", "process", "812", "--tree", "--format", "json")), &rows); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, r["tree"].(string)+" "+r["exe"].(string)+" "+strings.Join(strs(r["names"]), ","))
	}
	want := "sh(812) /usr/bin/dash ; " +
		"  curl(901) /usr/bin/curl www.evil.com (3),evil.com (1); " +
		"  python3(950) /usr/bin/python3.11 notevil.com (1),api.evil.com (1),evil.com.example.net (1),evil-x.com (1)"
	if strings.Join(got, "; ") != want {
		t.Errorf("process 812 --tree:\n%s\nwant\n%s", strings.Join(got, "; "), want)
	}
	if r := dnsrec(t, dir, nil, "query", "process", "curl", "--tree", "--db", web); r.code == 0 || !strings.Contains(r.stderr, "give the PID of the tree's root") {
		t.Errorf("process curl --tree: exit %d, stderr %s", r.code, r.stderr)
	}
}

func strs(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}
