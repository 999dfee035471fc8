package main

import (
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestQueryVerify: on a file written without a hash chain, verify fails
// and says why: each problem on stderr as text, the first in the table's
// problem column, and in JSON every problem with its kind, table and batch.
func TestQueryVerify(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	const first = "sessions: 1 rows that no committed batch wrote (added to the file afterwards)"

	r := dnsrec(t, dir, nil, "query", "verify", "--db", web, "--format", "csv")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	}
	sum := querytest.Sum(t, web)
	if want := "file,result,sha256,links,rows,head,problem\n" + web + ",FAILED," + hex.EncodeToString(sum[:]) + ",0,0,," + first + " (and 7 more)\n"; r.stdout != want {
		t.Errorf("csv:\n%s\nwant:\n%s", r.stdout, want)
	}
	for _, line := range []string{
		"dnsrec: verify: " + web + ": " + first + "\n",
		"dnsrec: verify: " + web + ": sessions: stopped_ns was set outside the recorder (the chain has no clean stop)\n",
	} {
		if !strings.Contains(r.stderr, line) {
			t.Errorf("stderr lacks %q:\n%s", line, r.stderr)
		}
	}

	r = dnsrec(t, dir, nil, "query", "verify", "--db", web, "--format", "json")
	var reports []struct {
		Problem  string
		Problems []query.VerifyProblem
	}
	if err := json.Unmarshal([]byte(r.stdout), &reports); err != nil || len(reports) != 1 {
		t.Fatalf("json: %v\n%s", err, r.stdout)
	}
	ps := reports[0].Problems
	if len(ps) != 8 || reports[0].Problem != first+" (and 7 more)" {
		t.Fatalf("json: %s", r.stdout)
	}
	tables := []string{"sessions", "names", "flows", "processes", "owners", "msgs", "rrs"}
	for i, table := range tables {
		if p := ps[i]; p.Kind != query.ProblemRowsAdded || p.Table != table || p.Batch != 0 || !strings.HasPrefix(p.Text, table+": ") {
			t.Errorf("problem %d: %s of %q batch %d, %q; want rows-added of %s", i, p.Kind, p.Table, p.Batch, p.Text, table)
		}
	}
	if p := ps[7]; p.Kind != query.ProblemStopAdded || p.Table != "sessions" || p.Batch != 0 {
		t.Errorf("last problem: %s of %q batch %d, %q; want stop-added of sessions", p.Kind, p.Table, p.Batch, p.Text)
	}
}
