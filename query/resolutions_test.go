package query_test

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

var libcT0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// libcFile is a recording with libc resolutions (schema v5): getent(3100),
// a child of sh(3000), resolved hosts-only.evil.test twice through
// getaddrinfo and asked for a name that does not exist; curl(3200) sent a
// DNS query for www.evil.test.
func libcFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "libc.db")
	b := querytest.New(t, p)
	s := b.Session("web01", libcT0)
	sh := b.Process(querytest.Process{Session: s, PID: 3000, Comm: "sh", Exe: "/usr/bin/sh", UID: querytest.UID(0)})
	getent := b.Process(querytest.Process{Session: s, PID: 3100, Parent: sh, Comm: "getent", Exe: "/usr/bin/getent", UID: querytest.UID(0)})
	curl := b.Process(querytest.Process{Session: s, PID: 3200, Parent: sh, Comm: "curl", Exe: "/usr/bin/curl", UID: querytest.UID(1000)})
	b.Resolution(querytest.Resolution{Session: s, Process: getent, PID: 3100, Comm: "getent", TS: libcT0.Add(time.Second),
		Name: "hosts-only.evil.test", Addrs: []string{"192.0.2.55", "2001:db8::55"}})
	b.Resolution(querytest.Resolution{Session: s, Process: getent, PID: 3100, Comm: "getent", TS: libcT0.Add(2 * time.Second),
		Func: "gethostbyname2_r", Name: "Hosts-Only.evil.test.", Addrs: []string{"192.0.2.55"}})
	b.Resolution(querytest.Resolution{Session: s, Process: getent, PID: 3100, Comm: "getent", TS: libcT0.Add(3 * time.Second),
		Name: "nx.evil.test", RC: -2})
	b.Message(querytest.Message{Session: s, Process: curl, PID: 3200, Comm: "curl", TS: libcT0.Add(4 * time.Second), Direction: "send", QName: "www.evil.test"})
	b.Message(querytest.Message{Session: s, Process: curl, PID: 3200, Comm: "curl", TS: libcT0.Add(4*time.Second + time.Millisecond), Direction: "recv",
		Response: true, QName: "www.evil.test", Answers: []querytest.Answer{{Data: "192.0.2.80"}}})
	b.Close()
	return p
}

func whoLine(r query.WhoResolvedRow) string {
	return strings.Join([]string{r.QName, r.Comm, r.Exe, r.Ancestry.String(), r.Via, r.Status, strings.Join(r.Answers, " "),
		r.FirstSeen.Format(time.TimeOnly), r.LastSeen.Format(time.TimeOnly)}, " | ")
}

func TestWhoResolvedLibc(t *testing.T) {
	db := open(t, libcFile(t))
	hosts := "hosts-only.evil.test | getent | /usr/bin/getent | sh(3000) | libc getaddrinfo, gethostbyname2_r | answered (2) | A 192.0.2.55 AAAA 2001:db8::55 | 12:00:01 | 12:00:02"
	nx := "nx.evil.test | getent | /usr/bin/getent | sh(3000) | libc getaddrinfo | EAI_NONAME |  | 12:00:03 | 12:00:03"
	curl := "www.evil.test | curl | /usr/bin/curl | sh(3000) |  | NOERROR | A 192.0.2.80 | 12:00:04 | 12:00:04"
	for _, tc := range []struct {
		name, q string
		f       query.Filter
		want    []string
	}{
		{name: "all", q: "evil.test", want: []string{hosts, nx, curl}},
		{name: "one name", q: "hosts-only.evil.test", want: []string{hosts}},
		{name: "pid", q: "evil.test", f: query.Filter{PIDs: []int64{3100}}, want: []string{hosts, nx}},
		{name: "exe", q: "evil.test", f: query.Filter{Exes: []string{"curl"}}, want: []string{curl}},
		{name: "since", q: "evil.test", f: query.Filter{Since: libcT0.Add(2500 * time.Millisecond)}, want: []string{nx, curl}},
		{name: "until", q: "evil.test", f: query.Filter{Until: libcT0.Add(1500 * time.Millisecond)},
			want: []string{"hosts-only.evil.test | getent | /usr/bin/getent | sh(3000) | libc getaddrinfo | answered | A 192.0.2.55 AAAA 2001:db8::55 | 12:00:01 | 12:00:01"}},
		{name: "a query type leaves libc out", q: "evil.test", f: query.Filter{QTypes: []uint16{1}}, want: []string{curl}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sameLines(t, whoResolved(t, db, tc.q, query.WhoResolvedOptions{Filter: tc.f}, whoLine), tc.want)
		})
	}
}

func TestResolvedToLibc(t *testing.T) {
	db := open(t, libcFile(t))
	ctx := context.Background()
	line := func(r query.ResolvedToRow) string {
		comm := ""
		if r.Proc != nil {
			comm = r.Proc.Comm
		}
		return strings.Join([]string{r.Address, r.QName, r.Chain, comm, r.FirstSeen.Format(time.TimeOnly)}, " | ") + " | " + strconv.FormatInt(r.Count, 10)
	}
	for _, tc := range []struct {
		prefix string
		f      query.Filter
		want   []string
	}{
		{prefix: "192.0.2.0/24", want: []string{
			"192.0.2.55 | hosts-only.evil.test | hosts-only.evil.test > libc getaddrinfo > A 192.0.2.55 | getent | 12:00:01 | 1",
			"192.0.2.55 | hosts-only.evil.test | hosts-only.evil.test > libc gethostbyname2_r > A 192.0.2.55 | getent | 12:00:02 | 1",
			"192.0.2.80 | www.evil.test | www.evil.test > A 192.0.2.80 | curl | 12:00:04 | 1",
		}},
		{prefix: "2001:db8::/32", want: []string{
			"2001:db8::55 | hosts-only.evil.test | hosts-only.evil.test > libc getaddrinfo > AAAA 2001:db8::55 | getent | 12:00:01 | 1",
		}},
		{prefix: "192.0.2.55", f: query.Filter{PIDs: []int64{3200}}, want: nil},
		{prefix: "0.0.0.0/0", f: query.Filter{Until: libcT0.Add(1500 * time.Millisecond)}, want: []string{
			"192.0.2.55 | hosts-only.evil.test | hosts-only.evil.test > libc getaddrinfo > A 192.0.2.55 | getent | 12:00:01 | 1",
		}},
	} {
		p, err := query.ParsePrefix(tc.prefix)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := db.ResolvedTo(ctx, p, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, line(r))
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s: got\n\t%s\nwant\n\t%s", tc.prefix, strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
		}
	}
}

// TestTimelineLibc: libc resolutions are timeline rows in time order among
// the messages, and pages of every size joined by their cursors give the
// whole timeline once, across two files.
func TestTimelineLibc(t *testing.T) {
	one := libcFile(t)
	two := libcFile(t) // the same times: ties between files
	db := open(t, one, two)
	ctx := context.Background()
	page := func(limit int, after *query.Cursor) ([]string, *query.Cursor) {
		var buf strings.Builder
		w, err := format.NewRowWriter(&buf, format.FormatCSV, db.TimelineColumnsFor(), format.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := db.Timeline(ctx, query.TimelineOptions{Filter: query.Filter{Limit: limit}, After: after}, w)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		for i, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if i > 0 && l != "" { // after the header
				f := strings.Split(l, ",")
				// file, time, host, id, kind, ..., qname (16), qtype, rcode (18)
				lines = append(lines, f[3]+" "+f[4]+" "+f[16]+" "+f[18])
			}
		}
		return lines, c
	}
	all, _ := page(0, nil)
	want := []string{
		"r1 libc getaddrinfo hosts-only.evil.test answered", "r1 libc getaddrinfo hosts-only.evil.test answered",
		"r2 libc gethostbyname2_r hosts-only.evil.test answered", "r2 libc gethostbyname2_r hosts-only.evil.test answered",
		"r3 libc getaddrinfo nx.evil.test EAI_NONAME", "r3 libc getaddrinfo nx.evil.test EAI_NONAME",
		"1 query www.evil.test ", "1 query www.evil.test ",
		"2 response www.evil.test NOERROR", "2 response www.evil.test NOERROR",
	}
	if strings.Join(all, "\n") != strings.Join(want, "\n") {
		t.Fatalf("timeline:\n\t%s\nwant\n\t%s", strings.Join(all, "\n\t"), strings.Join(want, "\n\t"))
	}
	for limit := 1; limit <= 4; limit++ {
		var got []string
		var after *query.Cursor
		for i := 0; i < 20; i++ {
			rows, c := page(limit, after)
			if len(rows) == 0 {
				break
			}
			if len(rows) > limit {
				t.Fatalf("limit %d: a page of %d rows", limit, len(rows))
			}
			got = append(got, rows...)
			if after != nil && c.String() == after.String() {
				t.Fatalf("limit %d: the cursor did not move", limit)
			}
			after = c
			back, err := query.ParseCursor(c.String())
			if err != nil || back != *c {
				t.Fatalf("cursor %v printed %q parses back as %v, %v", *c, c.String(), back, err)
			}
		}
		if strings.Join(got, "\n") != strings.Join(all, "\n") {
			t.Errorf("limit %d: pages joined:\n\t%s\nwant\n\t%s", limit, strings.Join(got, "\n\t"), strings.Join(all, "\n\t"))
		}
	}
}

func TestProcessLibcNames(t *testing.T) {
	db := open(t, libcFile(t))
	rows, err := db.Processes(context.Background(), "getent", query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows for getent, want 1", len(rows))
	}
	var got []string
	for _, n := range rows[0].LibcNames {
		got = append(got, n.String())
	}
	if want := "hosts-only.evil.test (2);nx.evil.test (1)"; strings.Join(got, ";") != want || rows[0].Queries != 0 {
		t.Errorf("getent: libc names %q, queries %d; want %q, 0", strings.Join(got, ";"), rows[0].Queries, want)
	}
	rows, err = db.Processes(context.Background(), "3100", query.Filter{Since: libcT0.Add(2500 * time.Millisecond)})
	if err != nil || len(rows) != 1 || len(rows[0].LibcNames) != 1 || rows[0].LibcNames[0].Name != "nx.evil.test" {
		t.Errorf("getent since 12:00:02.5: %+v, %v", rows, err)
	}
}

func TestInfoCountsResolutions(t *testing.T) {
	db := open(t, libcFile(t))
	tab, err := db.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(tab.Columns, "libc_calls")
	if col < 0 || len(tab.Rows) != 1 || tab.Rows[0][col] != int64(3) {
		t.Errorf("info: columns %v, rows %v; want 3 resolutions", tab.Columns, tab.Rows)
	}
}
