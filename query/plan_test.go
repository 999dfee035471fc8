package query

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestWhoResolvedPlanNeedsStopIndexes runs EXPLAIN QUERY PLAN on every
// statement who-resolved sends to a file (the names probe, the rows query
// and the answers query, exact and with subdomains): on a cleanly stopped
// file each finds the name through names_rev, its messages through
// msgs_name and their answers through rrs_message, and none scans msgs or
// rrs (on a 10-million-message file a scan takes seconds, the indexes
// milliseconds). On a file whose recorder was killed the stop-time indexes
// do not exist and the same check must see msgs scanned: that shows it
// would catch an index gone missing or no longer usable.
func TestWhoResolvedPlanNeedsStopIndexes(t *testing.T) {
	for _, clean := range []bool{true, false} {
		p := filepath.Join(t.TempDir(), "case.db")
		b := querytest.New(t, p)
		querytest.Incident(b, "web01")
		if clean {
			b.Close()
		} else {
			b.CloseAsCrashed()
		}
		db, err := Open(context.Background(), []string{p})
		if err != nil {
			t.Fatal(err)
		}
		f := db.files[0]
		for _, exact := range []bool{false, true} {
			pat, err := ParseName("evil.com", !exact)
			if err != nil {
				t.Fatal(err)
			}
			where, pargs := pat.where("")
			rows, answers, rargs, aargs := whoSQL(f.version, pat, &Filter{})
			for _, s := range []struct {
				name string
				q    string
				args []any
				want []string // indexes a clean file's plan uses
			}{
				{"probe", "SELECT 1 FROM names WHERE " + where + " LIMIT 1", pargs, []string{"names_rev"}},
				{"rows", rows, rargs, []string{"names_rev", "msgs_name"}},
				{"answers", answers, aargs, []string{"names_rev", "msgs_name", "rrs_message"}},
			} {
				plan := planOf(t, f, s.q, s.args)
				scans := fullScans(plan)
				if !clean {
					if s.name != "probe" && len(scans) == 0 {
						t.Errorf("exact=%v %s: no scan of msgs or rrs on a file without the stop indexes, so this test could not tell:\n%s", exact, s.name, plan)
					}
					continue
				}
				for _, ix := range s.want {
					if !regexp.MustCompile(`USING (COVERING )?INDEX ` + ix + `\b`).MatchString(plan) {
						t.Errorf("exact=%v %s: the plan does not use %s:\n%s", exact, s.name, ix, plan)
					}
				}
				if len(scans) > 0 {
					t.Errorf("exact=%v %s: the plan scans %q:\n%s", exact, s.name, scans, plan)
				}
			}
		}
		db.Close()
	}
}

// scanRE matches a plan step that reads a whole table of messages or
// answers: "SCAN msgs" or "SCAN rrs", or their aliases in who.go (m and r
// for msgs, a for rrs). "SCAN n", the few matching names, is fine.
var scanRE = regexp.MustCompile(`\bSCAN (msgs|rrs|m|r|a)\b`)

func fullScans(plan string) []string {
	var out []string
	for line := range strings.SplitSeq(plan, "\n") {
		if scanRE.MatchString(line) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}

func planOf(t *testing.T, f *file, q string, args []any) string {
	t.Helper()
	return querytest.Plan(t, f.db, q, args...)
}
