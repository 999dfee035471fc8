package summary

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// incident writes query's incident fixture (unidentified processes,
// NXDOMAIN, unanswered and cut responses, CNAME chains, libc resolutions).
func incident(t *testing.T) string {
	t.Helper()
	return querytest.IncidentFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
}

// TestBuild: each summary of the fixture has rows, as many as it gave to
// emit, each with a value for every column, and an extent that covers the
// file.
func TestBuild(t *testing.T) {
	ctx := context.Background()
	p := incident(t)
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var msgsMax, rrsMax int64
	if err := db.QueryRow(`SELECT max(id) FROM msgs`).Scan(&msgsMax); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT max(id) FROM rrs`).Scan(&rrsMax); err != nil {
		t.Fatal(err)
	}
	for _, s := range All {
		var n int64
		cols := strings.Count(s.Columns, ",") + 1
		ext, err := s.Build(ctx, p, func(v []any) error {
			n++
			if len(v) != cols {
				t.Fatalf("%s: a row of %d values, for %d columns", s.Table, len(v), cols)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v", s.Table, err)
		}
		if n == 0 || ext.Rows != n {
			t.Errorf("%s: %d rows given, %d counted", s.Table, n, ext.Rows)
		}
		if ext.MsgsMax != msgsMax || ext.RRsMax != rrsMax {
			t.Errorf("%s: extent %d/%d, the file's %d/%d", s.Table, ext.MsgsMax, ext.RRsMax, msgsMax, rrsMax)
		}
	}
}

// TestScanPlan: the who summary is built from msgs_name, with each
// message's answers through rrs_message, without a sort.
func TestScanPlan(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+incident(t)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	plan := querytest.Plan(t, db, scanSQL)
	if !strings.Contains(plan, "INDEX msgs_name") || strings.Contains(plan, "TEMP B-TREE") || !strings.Contains(plan, "INDEX rrs_message") {
		t.Errorf("the summary's scan is not in msgs_name order with rrs_message:\n%s", plan)
	}
}
