package query_test

import (
	"bytes"
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// unitsFile holds 4 DNS messages, 2 of them seen at both ends (loopback):
// 6 observations; and 3 libc calls.
func unitsFile(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "units.db")
	b := querytest.New(t, p)
	s := b.Session("h", querytest.Base)
	proc := b.Process(querytest.Process{Session: s, PID: 10, Comm: "app"})
	for i, name := range []string{"a.test", "b.test"} {
		ts := querytest.At(time.Duration(i+1) * time.Second)
		q := b.Message(querytest.Message{Session: s, Process: proc, PID: 10, Comm: "app", TS: ts, Direction: "send", QName: name})
		b.Message(querytest.Message{Session: s, Process: proc, PID: 10, Comm: "app", TS: ts.Add(time.Millisecond), Direction: "recv", Response: true, QName: name})
		if i == 0 {
			// The query and its response crossed loopback: both ends saw them.
			b.Exec(`UPDATE msgs SET obs = obs | 3 WHERE id IN (?, ?)`, q, q+1)
		}
	}
	for i := range 3 {
		b.Resolution(querytest.Resolution{Session: s, Process: proc, PID: 10, Comm: "app", TS: querytest.At(time.Duration(5+i) * time.Second), Name: "c.test", Addrs: []string{"192.0.2.1"}})
	}
	b.Close()
	return p
}

// TestCountUnits: stats and info count messages, observations and libc
// calls apart; the timeline export says how many of its rows are which.
func TestCountUnits(t *testing.T) {
	db := open(t, unitsFile(t))
	ctx := context.Background()
	tbl, err := db.Stats(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	span := map[string]any{}
	for _, r := range tbl.Rows {
		if r[0] == "span" {
			span[r[2].(string)] = r[3]
		}
	}
	if span["messages"] != int64(4) || span["observations"] != int64(6) || span["libc_calls"] != int64(3) {
		t.Errorf("stats span: %v; want 4 messages, 6 observations, 3 libc calls", span)
	}
	info, err := db.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) any { return info.Rows[0][slices.Index(info.Columns, name)] }
	if col("messages") != int64(4) || col("observations") != int64(6) || col("libc_calls") != int64(3) {
		t.Errorf("info: messages %v observations %v libc_calls %v; want 4, 6, 3", col("messages"), col("observations"), col("libc_calls"))
	}
	var buf bytes.Buffer
	st, err := export.Write(ctx, db, &buf, "csv", query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := export.Summary("csv", st), "7 rows: 4 DNS messages and 3 libc calls"; got != want {
		t.Errorf("csv export: %q, want %q", got, want)
	}
	// The recorder's events and encrypted-DNS connections are rows too.
	st.Rows += 2
	if got, want := export.Summary("csv", st), "9 rows: 4 DNS messages, 3 libc calls and 2 of the recorder's events and encrypted-DNS connections"; got != want {
		t.Errorf("csv export with other rows: %q, want %q", got, want)
	}
}
