package query

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestWhoResolvedPlanNeedsStopIndexes runs EXPLAIN QUERY PLAN on every
// statement who-resolved sends to a file (the names probe, the rows query
// and the answers query, exact and with subdomains): on a cleanly stopped
// file each finds the name through names_rev, its messages through
// msgs_name and their answers through rrs_message, and none scans msgs or
// rrs (on a large file a scan takes seconds, the indexes
// milliseconds). On a file whose recorder was killed the stop-time indexes
// do not exist and the same check must see msgs scanned: that shows it
// would catch an index gone missing or no longer usable.
func TestWhoResolvedPlanNeedsStopIndexes(t *testing.T) {
	for _, clean := range []bool{true, false} {
		db := incidentPlanDB(t, clean)
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

// incidentPlanDB opens the incident fixture, cleanly stopped (with the
// stop-time indexes) or as a killed recorder leaves it (without them).
func incidentPlanDB(t *testing.T, clean bool) *DB {
	t.Helper()
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
	return db
}

// TestTimelineUsesIndex: a timeline page, first or after a cursor, walks
// msgs_ts and finds each message's answers through rrs_message; it never
// sorts msgs. Without the stop-time indexes (a crashed file) the
// same statement must sort, which shows the test can tell.
func TestTimelineUsesIndex(t *testing.T) {
	for _, clean := range []bool{true, false} {
		db := incidentPlanDB(t, clean)
		for _, after := range []*Cursor{nil, {TS: querytest.At(3 * time.Second).UnixNano(), ID: 11}} {
			opts := &MessageOptions{Filter: Filter{Limit: 100}, After: after}
			q, args := db.files[0].messagesSQL(0, opts)
			plan := planOf(t, db.files[0], q, args)
			// "LAST TERM OF ORDER BY" is r.id within one message's answers.
			uses := strings.Contains(plan, " m USING INDEX msgs_ts") && strings.Contains(plan, "USING INDEX rrs_message") &&
				!strings.Contains(plan, "TEMP B-TREE FOR ORDER BY")
			if uses != clean {
				t.Errorf("clean=%v after=%v: plan\n%s", clean, after != nil, plan)
			}
			// A stream (an export) reads the messages and their answers
			// in two statements that sort nothing, not even each
			// message's answers.
			opts.Limit = 0
			q, args = db.files[0].messagesSQL(0, opts)
			plan = planOf(t, db.files[0], q, args)
			q, args = answersSQL(0, opts)
			answers := planOf(t, db.files[0], q, args)
			uses = strings.Contains(plan, " m USING INDEX msgs_ts") && !strings.Contains(plan, "TEMP B-TREE") &&
				strings.Contains(answers, " m USING COVERING INDEX msgs_ts") && strings.Contains(answers, "USING INDEX rrs_message") &&
				!strings.Contains(answers, "TEMP B-TREE")
			if uses != clean {
				t.Errorf("clean=%v after=%v stream: plans\n%s\n%s", clean, after != nil, plan, answers)
			}
		}
		db.Close()
	}
}

// TestResolvedToUsesIndex: an address or IPv4 prefix is found through
// rrs_addr4 or rrs_addr6 (the partial indexes of A and AAAA data), never by
// scanning rrs.
func TestResolvedToUsesIndex(t *testing.T) {
	p := querytest.IncidentFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
	db, err := Open(context.Background(), []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, arg := range []string{"203.0.113.7", "203.0.113.0/24", "203.0.112.0/20", "2001:db8::7", "2001:db8::/32"} {
		prefix, err := ParsePrefix(arg)
		if err != nil {
			t.Fatal(err)
		}
		q, args, _ := resolvedToSQL(db.files[0].version, prefix, &Filter{})
		plan := planOf(t, db.files[0], q, args)
		if !strings.Contains(plan, "USING INDEX rrs_addr") || strings.Contains(plan, "SCAN r") {
			t.Errorf("%s: plan\n%s", arg, plan)
		}
	}
}
