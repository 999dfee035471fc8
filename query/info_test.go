package query

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

func TestInfo(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.db"), filepath.Join(dir, "b.db")

	ba := querytest.New(t, a)
	s := ba.Session("web-1", querytest.At(0))
	ba.Exec(`UPDATE sessions SET hook = 'fentry', stopped_ns = ? WHERE id = ?`, querytest.At(time.Hour).UnixNano(), s)
	querytest.Incident(ba, "web-1")
	// Loss rows are cumulative: the newest one counts.
	ba.Exec(`INSERT INTO loss (session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, msg_drops) VALUES (?, 1, 1, 0, 0, 0), (?, 2, 7, 2, 3, 5)`, s, s)
	// Two messages that did not parse: they are stored, and counted.
	ba.Exec(`UPDATE msgs SET parse_error = 'dns: bad rdata' WHERE id IN (SELECT id FROM msgs ORDER BY id LIMIT 2)`)
	ba.Close()

	bb := querytest.New(t, b)
	never := bb.Session("db-1", querytest.At(time.Minute)) // never stopped, never lost anything
	bb.Exec(`UPDATE sessions SET stopped_ns = NULL WHERE id = ?`, never)
	bb.Close()

	db, err := Open(context.Background(), []string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	tab, err := db.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range tab.Columns {
		col[c] = i
	}
	if len(tab.Rows) < 2 {
		t.Fatalf("got %d rows, want one per session", len(tab.Rows))
	}
	var web, dbh []any
	for _, r := range tab.Rows {
		switch {
		case r[col["host"]] == "web-1" && r[col["hook"]] == "fentry":
			web = r
		case r[col["host"]] == "db-1":
			dbh = r
		}
	}
	if web == nil || dbh == nil {
		t.Fatalf("rows %v: want web-1 and db-1", tab.Rows)
	}
	if web[col["hook"]] != "fentry" || web[col["file"]] != a {
		t.Errorf("web-1 hook %v file %v", web[col["hook"]], web[col["file"]])
	}
	// Unanswered queries, counted the slow way.
	var unanswered, gotUnanswered int64
	// A query is sent by a client or received by a server, by the view's
	// roles; a response seen only arriving is not one.
	if err := db.files[0].db.QueryRow(`SELECT count(DISTINCT q.id) FROM messages q
		WHERE ((q.direction = 'send' AND q.role = 'client') OR (q.direction = 'recv' AND q.role = 'server'))
		AND NOT EXISTS (SELECT 1 FROM msgs r WHERE r.query_id = q.id)`).Scan(&unanswered); err != nil {
		t.Fatal(err)
	}
	for _, r := range tab.Rows {
		if n, ok := r[col["unanswered"]].(int64); ok {
			gotUnanswered += n
		}
	}
	if unanswered == 0 || gotUnanswered != unanswered {
		t.Errorf("unanswered %d in info, %d in the file", gotUnanswered, unanswered)
	}
	// The two are in whichever session holds the incident's messages.
	var parseErrs int64
	for _, r := range tab.Rows {
		parseErrs += r[col["parse_errors"]].(int64)
	}
	if parseErrs != 2 || dbh[col["parse_errors"]] != int64(0) {
		t.Errorf("parse_errors %d in all, %v for db-1; want 2 and 0", parseErrs, dbh[col["parse_errors"]])
	}
	if web[col["ringbuf_drops"]] != int64(7) || web[col["decode_errors"]] != int64(2) || web[col["unattributed"]] != int64(3) {
		t.Errorf("web-1 loss %v/%v/%v, want the newest row 7/2/3", web[col["ringbuf_drops"]], web[col["decode_errors"]], web[col["unattributed"]])
	}
	if web[col["stopped"]] == nil || dbh[col["stopped"]] != nil {
		t.Errorf("stopped: web-1 %v (want a time), db-1 %v (want empty)", web[col["stopped"]], dbh[col["stopped"]])
	}
	if dbh[col["ringbuf_drops"]] != int64(0) || dbh[col["messages"]] != int64(0) {
		t.Errorf("db-1 drops %v messages %v, want 0 and 0", dbh[col["ringbuf_drops"]], dbh[col["messages"]])
	}
	if web[col["msg_drops"]] != int64(5) || dbh[col["msg_drops"]] != int64(0) {
		t.Errorf("msg_drops: web-1 %v (want the newest row's 5), db-1 %v (want 0)", web[col["msg_drops"]], dbh[col["msg_drops"]])
	}
}

// oldInfo opens p, a file written at schema version v, for the rest of the
// test, and returns its info table, which must have one row.
func oldInfo(t *testing.T, p string, v int) (*DB, *format.Table) {
	t.Helper()
	db, err := Open(context.Background(), []string{p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	tab, err := db.Info(context.Background())
	if err != nil || len(tab.Rows) != 1 {
		t.Fatalf("info on a v%d file: %v, %v", v, tab, err)
	}
	return db, tab
}

// TestInfoBeforeMsgDrops: a file older than the message drop counter (v7)
// shows its loss, and no msg_drops (NULL), not 0.
func TestInfoBeforeMsgDrops(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v7.db")
	b := querytest.NewAtVersion(t, p, 7)
	s := b.Session("old-7", querytest.At(0))
	b.Exec(`INSERT INTO loss (session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, filtered, hook_misses) VALUES (?, 1, 4, 0, 0, 0, 0)`, s)
	b.Close()
	_, tab := oldInfo(t, p, 7)
	r := tab.Rows[0]
	for i, c := range tab.Columns {
		switch {
		case c == "msg_drops" && r[i] != nil:
			t.Errorf("msg_drops %v on a v7 file, want NULL", r[i])
		case c == "ringbuf_drops" && r[i] != int64(4):
			t.Errorf("ringbuf_drops %v, want 4", r[i])
		}
	}
}

// TestWarnings: a recording that never stopped is read with a warning that
// says whether its -wal is there; a cleanly stopped one has none.
func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	clean, killed, live := filepath.Join(dir, "clean.db"), filepath.Join(dir, "killed.db"), filepath.Join(dir, "live.db")
	b := querytest.New(t, clean)
	b.Session("web-1", querytest.At(0))
	b.Close()
	b = querytest.New(t, killed)
	s := b.Session("web-1", querytest.At(0))
	b.Exec(`UPDATE sessions SET stopped_ns = NULL WHERE id = ?`, s)
	b.Close() // the .db alone, as if copied without its -wal
	b = querytest.New(t, live)
	s = b.Session("web-1", querytest.At(0))
	b.Exec(`UPDATE sessions SET stopped_ns = NULL WHERE id = ?`, s) // still open: its -wal is there
	for _, tc := range []struct {
		path string
		want string
	}{
		{clean, ""},
		{killed, "there is no killed.db-wal beside it"},
		{live, "reading it with its -wal"},
	} {
		db, err := Open(ctx, []string{tc.path})
		if err != nil {
			t.Fatal(err)
		}
		w, err := db.Warnings(ctx)
		db.Close()
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		switch {
		case tc.want == "" && len(w) != 0:
			t.Errorf("%s: warnings %q, want none", tc.path, w)
		case tc.want != "" && (len(w) != 1 || !strings.Contains(w[0], tc.want)):
			t.Errorf("%s: warnings %q, want one saying %q", tc.path, w, tc.want)
		}
	}
}

// TestWarningsFiltered: a filtered recording says so, and a file whose
// sessions cannot be read (here: the context is cancelled) is an error,
// not a file without warnings.
func TestWarningsFiltered(t *testing.T) {
	p := filepath.Join(t.TempDir(), "filtered.db")
	b := querytest.New(t, p)
	s := b.Session("web-1", querytest.At(0))
	b.Exec(`UPDATE sessions SET filters = 'domain=evil.com' WHERE id = ?`, s)
	b.Close()
	db, err := Open(context.Background(), []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	w, err := db.Warnings(context.Background())
	if err != nil || len(w) != 1 || !strings.Contains(w[0], "a filtered recording (domain=evil.com)") {
		t.Errorf("warnings %q, %v; want the filtered recording's", w, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if w, err := db.Warnings(ctx); err == nil {
		t.Errorf("warnings %q and no error from sessions that could not be read", w)
	}
}

// TestOldFiles: a v1 file (written before the compact layout) still
// answers info, who-resolved and verify, each in its own terms.
func TestOldFiles(t *testing.T) {
	p := filepath.Join(t.TempDir(), "v1.db")
	b := querytest.NewAtVersion(t, p, 1)
	s := b.Session("old-1", querytest.At(0))
	b.Exec(`INSERT INTO messages (session_id, ts_ns, boot_ns, direction, role, proto, saddr, sport, daddr, dport,
		pid, comm, qr, qname, qname_rev, qtype, orig_len, raw)
		VALUES (?, 1, 1, 'send', 'client', 'udp', '10.0.0.5', 40000, '10.0.0.1', 53, 77, 'dig', 0, 'old.evil.com', 'com.evil.old', 1, 1, x'00')`, s)
	b.Close()
	db, _ := oldInfo(t, p, 1)
	rows, err := db.WhoResolved(context.Background(), "evil.com", WhoResolvedOptions{})
	if err != nil || len(rows) != 1 || rows[0].PID.V != 77 || rows[0].Status != "" {
		t.Errorf("who-resolved on a v1 file: %+v, %v", rows, err)
	}
	rs, err := db.Verify(context.Background())
	if err != nil || len(rs) != 1 || rs[0].OK() || rs[0].Problems[0].Kind != ProblemNoChain || !strings.Contains(rs[0].Problems[0].Text, "before dnsrec kept a hash chain") {
		t.Errorf("verify on a v1 file: %+v, %v", rs, err)
	}
}
