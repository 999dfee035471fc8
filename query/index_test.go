package query

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestTimelineUsesIndex: a timeline page, first or after a cursor, walks
// msgs_ts and finds each message's answers through rrs_message; it never
// sorts msgs. Without the stop-time indexes (a crashed file) the
// same statement must sort, which shows the test can tell.
func TestTimelineUsesIndex(t *testing.T) {
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
	p := filepath.Join(t.TempDir(), "case.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	b.Close()
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
		q, args, _ := resolvedToSQL(prefix, &Filter{})
		plan := planOf(t, db.files[0], q, args)
		if !strings.Contains(plan, "USING INDEX rrs_addr") || strings.Contains(plan, "SCAN r") {
			t.Errorf("%s: plan\n%s", arg, plan)
		}
	}
}
