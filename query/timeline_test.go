package query_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// incidentDB opens a clean file with querytest.Incident in it.
func incidentDB(t *testing.T) *query.DB {
	t.Helper()
	return open(t, incident(t, t.TempDir(), "case.db", "web01"))
}

// twoHostsDB opens a.db, the incident on web01, with b.db, the incident and
// the second host on web2: at the same times, so that every row of a.db
// ties with one in b.db and the two files' messages interleave.
func twoHostsDB(t *testing.T) *query.DB {
	t.Helper()
	dir := t.TempDir()
	a, b := incident(t, dir, "a.db", "web01"), filepath.Join(dir, "b.db")
	bb := querytest.New(t, b)
	querytest.Incident(bb, "web2")
	querytest.SecondHost(bb, "web2")
	bb.Close()
	return open(t, a, b)
}

// timelineIDs runs the timeline and returns "file:id" of each row.
func timelineIDs(t *testing.T, db *query.DB, opts query.TimelineOptions) ([]string, *query.Cursor) {
	t.Helper()
	var ids []string
	var last *query.Cursor
	err := db.Messages(context.Background(), query.MessageOptions{Filter: opts.Filter, After: opts.After}, func(m *query.Message) error {
		ids = append(ids, filepath.Base(m.File)+":"+m.QName+":"+m.Time.Format("05.000"))
		c := db.CursorOf(m)
		last = &c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids, last
}

func TestTimelineGolden(t *testing.T) {
	db := incidentDB(t)
	for _, f := range format.Formats {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			w, err := format.NewRowWriter(&buf, f, db.TimelineColumnsFor(), format.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Timeline(context.Background(), query.TimelineOptions{}, w); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join("testdata", "timeline-incident."+string(f)), buf.Bytes())
		})
	}
}

// TestTimelinePages checks that pages joined with their cursors are the
// whole timeline, in order, with nothing twice, across two files whose
// messages interleave in time.
func TestTimelinePages(t *testing.T) {
	db := twoHostsDB(t)

	all, _ := timelineIDs(t, db, query.TimelineOptions{})
	if len(all) < 30 {
		t.Fatalf("only %d messages in two incident files", len(all))
	}
	for _, size := range []int{1, 3, 7} {
		var got []string
		var after *query.Cursor
		for pages := 0; ; pages++ {
			if pages > len(all)+1 {
				t.Fatal("paging does not end")
			}
			page, last := timelineIDs(t, db, query.TimelineOptions{Filter: query.Filter{Limit: size}, After: after})
			if len(page) > size {
				t.Fatalf("page of %d rows with --limit %d", len(page), size)
			}
			got = append(got, page...)
			if len(page) < size {
				break
			}
			after = last
		}
		if strings.Join(got, "\n") != strings.Join(all, "\n") {
			t.Errorf("pages of %d:\n%s\nwant\n%s", size, strings.Join(got, "\n"), strings.Join(all, "\n"))
		}
	}
	// Time order, and the tie between the two files in file order.
	for i := 1; i < len(all); i++ {
		if all[i] < all[i-1] && all[i][strings.Index(all[i], ":"):] == all[i-1][strings.Index(all[i-1], ":"):] {
			t.Errorf("tie out of file order: %s after %s", all[i], all[i-1])
		}
	}
}

func TestTimelineFilters(t *testing.T) {
	db := incidentDB(t)
	name := func(s string) query.NamePattern {
		p, err := query.ParseName(s, true)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		filter query.Filter
		want   []string
	}{
		{"pid", query.Filter{PIDs: []int64{950}}, []string{
			"case.db:notevil.com:02.000", "case.db:notevil.com:02.009", "case.db:api.evil.com:03.000",
			"case.db:api.evil.com:03.020", "case.db:evil.com.example.net:03.500", "case.db:evil-x.com:03.600"}},
		{"exe base name", query.Filter{Exes: []string{"python3.11"}, Limit: 1}, []string{"case.db:notevil.com:02.000"}},
		{"exe path", query.Filter{Exes: []string{"/usr/bin/curl"}, QTypes: []uint16{28}}, []string{
			"case.db:www.evil.com:01.001", "case.db:www.evil.com:01.012"}},
		{"comm of a thread", query.Filter{Comms: []string{"curl-worker"}}, []string{"case.db:www.evil.com:05.000"}},
		{"uid", query.Filter{UIDs: []int64{65534}}, []string{"case.db:www.evil.com:06.000", "case.db:www.evil.com:06.001"}},
		{"rcode: the response and its query", query.Filter{Rcodes: []int{3}}, []string{"case.db:api.evil.com:03.000", "case.db:api.evil.com:03.020"}},
		{"subdomains only", query.Filter{Names: []query.NamePattern{name("*.evil.com")}, Comms: []string{"nc"}}, []string{
			"case.db:c2.evil.com:04.000", "case.db:c2.evil.com:04.011"}},
		{"name and subdomains, not evil-x", query.Filter{Names: []query.NamePattern{name("evil.com")}, PIDs: []int64{950}}, []string{
			"case.db:api.evil.com:03.000", "case.db:api.evil.com:03.020"}},
		{"glob", query.Filter{Names: []query.NamePattern{name("evil*.com")}}, []string{"case.db:evil-x.com:03.600", "case.db:evil.com:08.000", "case.db:evil.com:08.005"}},
		{"since until", query.Filter{Since: querytest.At(4 * time.Second), Until: querytest.At(5 * time.Second)}, []string{
			"case.db:c2.evil.com:04.000", "case.db:c2.evil.com:04.011"}},
		{"nothing", query.Filter{PIDs: []int64{1}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := timelineIDs(t, db, query.TimelineOptions{Filter: tc.filter})
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

// TestTimelineCrashedFile: a file without the stop-time indexes lists the
// same timeline.
func TestTimelineCrashedFile(t *testing.T) {
	clean := incidentDB(t)
	p := filepath.Join(t.TempDir(), "crashed.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	b.CloseAsCrashed()
	crashed := open(t, p)
	want, _ := timelineIDs(t, clean, query.TimelineOptions{})
	got, _ := timelineIDs(t, crashed, query.TimelineOptions{})
	for i := range want {
		want[i] = strings.Replace(want[i], "case.db", "crashed.db", 1)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("crashed file:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseCursor(t *testing.T) {
	c := query.Cursor{TS: 1716000000123456789, File: 2, ID: 4711}
	got, err := query.ParseCursor(c.String())
	if err != nil || got != c {
		t.Errorf("round trip %v: %v, %v", c, got, err)
	}
	for _, bad := range []string{"", "1.2", "a.b.c", "1.-1.3", "1.2.3.4"} {
		if _, err := query.ParseCursor(bad); err == nil {
			t.Errorf("ParseCursor(%q) accepted", bad)
		}
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		revs []string
		self bool
		glob string
	}{
		{"Evil.COM.", []string{"com.evil"}, true, ""},
		{"*.evil.com", []string{"com.evil"}, false, ""},
		{"bücher.evil.test", []string{"test.evil.xn--bcher-kva"}, true, ""},
		{"xn--bcher-kva.evil.test", []string{"test.evil.xn--bcher-kva"}, true, ""},
		// Typed as seen, and typed as stored: both find the stored form.
		{`a%b_c'd.evil.test`, []string{`test.evil.a%b_c\'d`}, true, ""},
		{`a%b_c\'d.evil.test`, []string{`test.evil.a%b_c\'d`, `test.evil.a%b_c\\\'d`}, true, ""},
		{"c2-*.evil.test", nil, true, "c2-*.evil.test"},
	}
	for _, tc := range tests {
		p, err := query.ParseName(tc.in, true)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if strings.Join(p.Revs, " ") != strings.Join(tc.revs, " ") || p.Self != tc.self || p.Glob != tc.glob {
			t.Errorf("%q: revs %q self %v glob %q, want %q %v %q", tc.in, p.Revs, p.Self, p.Glob, tc.revs, tc.self, tc.glob)
		}
	}
	for _, bad := range []string{"", ".", "a..b", strings.Repeat("x", 64) + ".test"} {
		if _, err := query.ParseName(bad, true); err == nil {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
}

// TestExportCSVIsTimeline: export --format csv|jsonl writes the timeline's
// rows in that format, each followed by both ends' exe, command line and
// parent chain.
func TestExportCSVIsTimeline(t *testing.T) {
	db := incidentDB(t)
	var exp bytes.Buffer
	st, err := export.Write(context.Background(), db, &exp, "csv", query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows != 19 {
		t.Errorf("export csv: %d rows, want 19", st.Rows)
	}
	got, err := csv.NewReader(&exp).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want, err := csv.NewReader(strings.NewReader(readFile(t, filepath.Join("testdata", "timeline-incident.csv")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	n := len(query.TimelineColumns)
	if len(got) != len(want) || !slices.Equal(got[0][n:], query.TimelineProcessColumns) {
		t.Fatalf("export csv: %d rows, header %q", len(got), got[0])
	}
	col := func(name string) int { return slices.Index(got[0], name) }
	curl := 0
	for i := range got {
		if !slices.Equal(got[i][:n], want[i]) {
			t.Errorf("row %d: %q, want the timeline's %q", i, got[i][:n], want[i])
		}
		if got[i][col("src_pid")] == "901" {
			curl++
			if got[i][col("src_exe")] != "/usr/bin/curl" || got[i][col("src_ancestry")] != "sh(812) > sshd(640) > systemd(1)" || got[i][col("dst_exe")] != "" {
				t.Errorf("curl's row %d: %q", i, got[i][n:])
			}
		}
	}
	if curl == 0 {
		t.Error("no row sent by curl")
	}
	var lines bytes.Buffer
	if _, err := export.Write(context.Background(), db, &lines, "jsonl", query.Filter{}); err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(strings.TrimSpace(lines.String()), "\n") {
		var row map[string]any
		if err := json.Unmarshal([]byte(l), &row); err != nil {
			t.Fatal(err)
		}
		for _, c := range append(slices.Clone(query.TimelineColumns), query.TimelineProcessColumns...) {
			if _, ok := row[c]; !ok {
				t.Errorf("jsonl line %d has no %s", i, c)
			}
		}
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestMessagesStreamMatchesPage: a stream (no limit, read by two statements
// at once, see messages.go) gives the same messages, answers and bytes
// included, as a page that holds them all; and a caller that stops early
// leaves no reader running.
func TestMessagesStreamMatchesPage(t *testing.T) {
	db := twoHostsDB(t)
	read := func(opts query.MessageOptions) []*query.Message {
		var out []*query.Message
		if err := db.Messages(context.Background(), opts, func(m *query.Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, raw := range []bool{false, true} {
		stream := read(query.MessageOptions{Raw: raw, Ancestry: true})
		page := read(query.MessageOptions{Filter: query.Filter{Limit: 10_000}, Raw: raw, Ancestry: true})
		answers := 0
		for _, m := range stream {
			answers += len(m.Answers)
		}
		if len(stream) < 30 || answers == 0 || !reflect.DeepEqual(stream, page) {
			t.Errorf("raw=%v: the stream's %d messages (%d answers) differ from the page's %d", raw, len(stream), answers, len(page))
		}
	}

	before := runtime.NumGoroutine()
	// A stream that cannot start (its context is done) fails, and ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.Messages(ctx, query.MessageOptions{}, func(*query.Message) error { return nil }); err == nil {
		t.Error("a stream with its context cancelled did not fail")
	}
	stop := errors.New("enough")
	for range 20 {
		n := 0
		err := db.Messages(context.Background(), query.MessageOptions{}, func(*query.Message) error {
			if n++; n == 3 {
				return stop
			}
			return nil
		})
		if !errors.Is(err, stop) {
			t.Fatalf("stopped early: %v", err)
		}
	}
	for range 100 {
		if runtime.NumGoroutine() <= before {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("%d goroutines after stopping streams early, %d before", runtime.NumGoroutine(), before)
}
