package query_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
)

// TestTreeFilter: --tree PID keeps the messages of PID and every
// descendant, in the timeline, who-resolved, stats and exports. In the
// incident, sh(812) asked nothing itself; its children curl(901) and
// python3(950) did.
func TestTreeFilter(t *testing.T) {
	db := incidentDB(t)
	children := query.Filter{PIDs: []int64{901, 950}}
	for _, root := range []int64{812, 640} {
		tree := query.Filter{Trees: []int64{root}}
		got, _ := timelineIDs(t, db, query.TimelineOptions{Filter: tree})
		want, _ := timelineIDs(t, db, query.TimelineOptions{Filter: children})
		if len(want) == 0 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("timeline --tree %d:\n%s\nwant curl's and python3's\n%s", root, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		sameLines(t, whoResolved(t, db, "*", query.WhoResolvedOptions{Filter: tree}, summary),
			whoResolved(t, db, "*", query.WhoResolvedOptions{Filter: children}, summary))
		st1, err := db.Stats(context.Background(), tree)
		if err != nil {
			t.Fatal(err)
		}
		st2, err := db.Stats(context.Background(), children)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(st1.Rows) != fmt.Sprint(st2.Rows) {
			t.Errorf("stats --tree %d:\n%v\nwant\n%v", root, st1.Rows, st2.Rows)
		}
		for _, f := range []string{"zeek", "jsonl"} {
			var a, b bytes.Buffer
			if _, err := export.Write(context.Background(), db, &a, f, tree); err != nil {
				t.Fatal(err)
			}
			if _, err := export.Write(context.Background(), db, &b, f, children); err != nil {
				t.Fatal(err)
			}
			if a.String() != b.String() || !strings.Contains(a.String(), "notevil.com") {
				t.Errorf("export %s --tree %d:\n%s\nwant\n%s", f, root, a.String(), b.String())
			}
		}
	}
	// --pid is the process alone: sh asked nothing.
	if got, _ := timelineIDs(t, db, query.TimelineOptions{Filter: query.Filter{PIDs: []int64{812}}}); len(got) != 0 {
		t.Errorf("--pid 812: %v", got)
	}
	// A cycle in the parent links ends: evil(2000) and spawner(2001).
	if got, _ := timelineIDs(t, db, query.TimelineOptions{Filter: query.Filter{Trees: []int64{2001}}}); strings.Join(got, " ") != "case.db:beacon.evil.com:07.000" {
		t.Errorf("--tree 2001: %v", got)
	}
}

// TestProcessTree: the tree under sshd(640), depth-first, children by start,
// each with its command line and names.
func TestProcessTree(t *testing.T) {
	db := incidentDB(t)
	rows, err := db.ProcessTree(context.Background(), 640, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		var names []string
		for _, n := range r.Names {
			names = append(names, n.String())
		}
		got = append(got, fmt.Sprintf("%s%s(%d) %s [%s]", strings.Repeat(" ", r.Depth), r.Proc.Comm, r.Proc.PID, r.Proc.Exe, strings.Join(names, ", ")))
	}
	want := []string{
		"sshd(640) /usr/sbin/sshd []",
		" sh(812) /usr/bin/dash []",
		"  curl(901) /usr/bin/curl [www.evil.com (3), evil.com (1)]",
		"  python3(950) /usr/bin/python3.11 [notevil.com (1), api.evil.com (1), evil.com.example.net (1), evil-x.com (1)]",
	}
	sameLines(t, got, want)
	tbl := query.ProcessTreeTable(rows, false)
	if tbl.Columns[0] != "tree" || tbl.Rows[2][0] != "    curl(901)" {
		t.Errorf("table: %v %q", tbl.Columns, tbl.Rows[2][0])
	}
	// The corrupt chain ends.
	rows, err = db.ProcessTree(context.Background(), 2000, query.Filter{})
	if err != nil || len(rows) != 2 {
		t.Errorf("tree of 2000: %d rows, %v", len(rows), err)
	}
}
