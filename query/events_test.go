package query_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// eventsDB is a file with two messages and, around and between them, the
// recorder's start, a detached hook, its re-attachment and the stop.
func eventsDB(t *testing.T) *query.DB {
	t.Helper()
	path := filepath.Join(t.TempDir(), "case.db")
	b := querytest.New(t, path)
	s := b.Session("web01", querytest.At(0))
	b.Message(querytest.Message{Session: s, PID: 10, Comm: "curl", TS: querytest.At(2 * time.Second), Direction: "send", QName: "before.test"})
	b.Message(querytest.Message{Session: s, PID: 10, Comm: "curl", TS: querytest.At(5 * time.Second), Direction: "send", QName: "after.test"})
	ev := func(at time.Duration, kind, detail string) {
		b.Exec(`INSERT INTO events (session_id, ts_ns, kind, detail) VALUES (?, ?, ?, ?)`, s, querytest.At(at).UnixNano(), kind, detail)
	}
	ev(time.Second, "start", "recorder pid 7")
	ev(3*time.Second, "detached", "link 9 of program dns_egress (id 4) is attached to no cgroup")
	ev(3*time.Second, "reattached", "dns_egress re-attached as link 11")
	// At the second message's very time: after it.
	ev(5*time.Second, "signal", "SIGTERM from pid 99 exe /usr/bin/kill")
	ev(6*time.Second, "stop", "stopped by SIGTERM from pid 99 exe /usr/bin/kill")
	b.Close()
	return open(t, path)
}

// timelineRows runs the timeline and returns each row's id, kind and note.
func timelineRows(t *testing.T, db *query.DB, opts query.TimelineOptions) ([]string, *query.Cursor) {
	t.Helper()
	tab := &rowsOf{}
	last, err := db.Timeline(context.Background(), opts, tab)
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range query.TimelineColumns {
		col[c] = i
	}
	var out []string
	for _, r := range tab.rows {
		note, _ := r[col["note"]].(string)
		out = append(out, fmt.Sprint(r[col["id"]])+" "+fmt.Sprint(r[col["kind"]])+" "+note)
	}
	return out, last
}

// rowsOf keeps the rows a RowWriter is given.
type rowsOf struct{ rows [][]any }

func (r *rowsOf) Row(cells []any) error { r.rows = append(r.rows, cells); return nil }
func (r *rowsOf) Close() error          { return nil }

func TestTimelineEvents(t *testing.T) {
	db := eventsDB(t)
	got, _ := timelineRows(t, db, query.TimelineOptions{})
	var ids []string
	for _, r := range got {
		ids = append(ids, strings.Fields(r)[0]+" "+strings.Fields(r)[1])
	}
	want := []string{"e1 recorder/start", "1 query", "e2 recorder/detached", "e3 recorder/reattached", "2 query", "e4 recorder/signal", "e5 recorder/stop"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("timeline rows:\n%q\nwant\n%q", got, want)
	}
	if got[2] != "e2 recorder/detached link 9 of program dns_egress (id 4) is attached to no cgroup" {
		t.Errorf("detached row %q: the note must be the event's detail", got[2])
	}

	// Page by page, one row at a time, the cursors of events included.
	var paged []string
	var after *query.Cursor
	for range 20 {
		page, last := timelineRows(t, db, query.TimelineOptions{Filter: query.Filter{Limit: 1}, After: after})
		if len(page) == 0 {
			break
		}
		c, err := query.ParseCursor(last.String())
		if err != nil || c != *last {
			t.Fatalf("cursor %s parses as %+v, %v", last, c, err)
		}
		paged = append(paged, page...)
		after = last
	}
	if !reflect.DeepEqual(paged, got) {
		t.Errorf("paged timeline:\n%q\nwant\n%q", paged, got)
	}

	// A time window keeps the events inside it; a name filter none.
	win, _ := timelineRows(t, db, query.TimelineOptions{Filter: query.Filter{Since: querytest.At(3 * time.Second), Until: querytest.At(6 * time.Second)}})
	if len(win) != 4 || !strings.HasPrefix(win[0], "e2 ") || !strings.HasPrefix(win[3], "e4 ") {
		t.Errorf("window 3s-6s: %q", win)
	}
	name, err := query.ParseName("after.test", false)
	if err != nil {
		t.Fatal(err)
	}
	named, _ := timelineRows(t, db, query.TimelineOptions{Filter: query.Filter{Names: []query.NamePattern{name}}})
	if len(named) != 1 || !strings.HasPrefix(named[0], "2 ") {
		t.Errorf("name filter: %q, want the one message", named)
	}
}

func TestInfoEvents(t *testing.T) {
	db := eventsDB(t)
	tab, err := db.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range tab.Columns {
		col[c] = i
	}
	r := tab.Rows[0]
	if r[col["events"]] != int64(5) {
		t.Errorf("events = %v, want 5", r[col["events"]])
	}
	blind, _ := r[col["blinded"]].([]string)
	if len(blind) != 1 || !strings.HasSuffix(blind[0], " detached: link 9 of program dns_egress (id 4) is attached to no cgroup") {
		t.Errorf("blinded = %q, want the one detachment", blind)
	}
	if r[col["stopped_by"]] != "stopped by SIGTERM from pid 99 exe /usr/bin/kill" {
		t.Errorf("stopped_by = %v", r[col["stopped_by"]])
	}
}
