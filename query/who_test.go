package query_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// incident builds querytest.Incident for host into dir/name, closed as the
// recorder leaves it, and returns its path.
func incident(t testing.TB, dir, name, host string) string {
	t.Helper()
	return querytest.IncidentFile(t, filepath.Join(dir, name), host)
}

func secondHost(t testing.TB, dir, name, host string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	b := querytest.New(t, p)
	querytest.SecondHost(b, host)
	b.Close()
	return p
}

func open(t testing.TB, paths ...string) *query.DB {
	t.Helper()
	db, err := query.Open(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return db
}

// whoResolved runs who-resolved for q and returns each row as line gives it.
func whoResolved(t *testing.T, db *query.DB, q string, opts query.WhoResolvedOptions, line func(query.WhoResolvedRow) string) []string {
	t.Helper()
	rows, err := db.WhoResolved(context.Background(), q, opts)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, line(r))
	}
	return got
}

// sameLines reports where got and want, lines in order, differ.
func sameLines(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// summary is one row in a form that a test case can spell out.
func summary(r query.WhoResolvedRow) string {
	pid := "?"
	if r.PID.Valid {
		pid = fmt.Sprint(r.PID.V)
	}
	uid := "?"
	if r.UID.Valid {
		uid = fmt.Sprint(r.UID.V)
	}
	return fmt.Sprintf("%s %s %s(%s) uid=%s exe=%s n=%d [%s] < %s",
		r.Host, r.QName, r.Comm, pid, uid, r.Exe, r.Count, strings.Join(r.Answers, " "), r.Ancestry)
}

var (
	curlWWW = "web01 www.evil.com curl(901) uid=1000 exe=/usr/bin/curl n=3 " +
		"[CNAME cdn.evil.com A 203.0.113.7 A 203.0.113.8 AAAA 2001:db8::7 A 203.0.113.9] < sh(812) > sshd(640) > systemd(1)"
	pyAPI     = "web01 api.evil.com python3(950) uid=1000 exe=/usr/bin/python3.11 n=1 [] < sh(812) > sshd(640) > systemd(1)"
	nc        = "web01 c2.evil.com nc(4242) uid=0 exe= n=1 [A 192.0.2.66] < "
	beacon    = "web01 beacon.evil.com evil(2000) uid=33 exe= n=1 [] < spawner(2001) > evil(2000)"
	curlApex  = "web01 evil.com curl(901) uid=1000 exe=/usr/bin/curl n=1 [A 203.0.113.1] < sh(812) > sshd(640) > systemd(1)"
	wget      = "db02 www.evil.com wget(77) uid=0 exe=/usr/bin/wget n=1 [A 203.0.113.7] < bash(70) > systemd(1)"
	pyNotEvil = "web01 notevil.com python3(950) uid=1000 exe=/usr/bin/python3.11 n=1 [A 198.51.100.1] < sh(812) > sshd(640) > systemd(1)"
)

func TestWhoResolved(t *testing.T) {
	dir := t.TempDir()
	one := incident(t, dir, "web01.db", "web01")
	two := secondHost(t, dir, "db02.db", "db02")
	tests := []struct {
		name  string
		files []string
		query string
		exact bool
		want  []string
	}{
		{
			name: "subdomains, in first-seen order", files: []string{one}, query: "evil.com",
			// notevil.com, evil-x.com and evil.com.example.net do not match;
			// dnsmasq answering as a server does not count.
			want: []string{curlWWW, pyAPI, nc, beacon, curlApex},
		},
		{name: "exact", files: []string{one}, query: "evil.com", exact: true, want: []string{curlApex}},
		{name: "exact subdomain", files: []string{one}, query: "www.evil.com", exact: true, want: []string{curlWWW}},
		{name: "case and trailing dot", files: []string{one}, query: "WWW.Evil.COM.", want: []string{curlWWW}},
		{name: "suffix that is not a label boundary", files: []string{one}, query: "vil.com", want: nil},
		{name: "notevil.com only", files: []string{one}, query: "notevil.com", want: []string{pyNotEvil}},
		{name: "tld", files: []string{one}, query: "net", want: []string{
			"web01 evil.com.example.net python3(950) uid=1000 exe=/usr/bin/python3.11 n=1 [] < sh(812) > sshd(640) > systemd(1)"}},
		{name: "no match", files: []string{one}, query: "example.org", want: nil},
		{
			name: "two hosts merge by time", files: []string{one, two}, query: "www.evil.com",
			want: []string{curlWWW, wget},
		},
		{
			name: "two hosts, order of files does not matter", files: []string{two, one}, query: "evil.com",
			want: []string{curlWWW, wget, pyAPI, nc, beacon, curlApex},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := whoResolved(t, open(t, tt.files...), tt.query, query.WhoResolvedOptions{Exact: tt.exact}, summary)
			sameLines(t, got, tt.want)
		})
	}
}

func TestWhoResolvedTimes(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "case.db", "web01"))
	rows, err := db.WhoResolved(context.Background(), "www.evil.com", query.WhoResolvedOptions{Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("got %d rows, want 1", len(rows))
	}
	// First query at +1s; last message is the response to the thread's
	// lookup at +5.020s.
	if got, want := rows[0].FirstSeen, querytest.At(1e9); !got.Equal(want) {
		t.Errorf("first_seen %v, want %v", got, want)
	}
	if got, want := rows[0].LastSeen, querytest.At(5020e6); !got.Equal(want) {
		t.Errorf("last_seen %v, want %v", got, want)
	}
}

// TestWhoResolvedEmptyName: "" and "." are every name (TestWhoResolvedAllNames);
// the root's subdomains only ("*.") is still no name.
func TestWhoResolvedEmptyName(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "case.db", "web01"))
	for _, name := range []string{"*.", "*.."} {
		if _, err := db.WhoResolved(context.Background(), name, query.WhoResolvedOptions{}); err == nil {
			t.Errorf("WhoResolved(%q): no error", name)
		}
	}
}

// TestWhoResolvedGolden pins the exact output of every format.
func TestWhoResolvedGolden(t *testing.T) {
	dir := t.TempDir()
	one := incident(t, dir, "web01.db", "web01")
	two := secondHost(t, dir, "db02.db", "db02")
	cases := []struct {
		name  string
		files []string
		query string
		exact bool
	}{
		{"evil.com", []string{one}, "evil.com", false},
		{"evil.com-exact", []string{one}, "evil.com", true},
		{"two-hosts", []string{one, two}, "www.evil.com", false},
		{"none", []string{one}, "example.org", false},
	}
	for _, c := range cases {
		db := open(t, c.files...)
		rows, err := db.WhoResolved(context.Background(), c.query, query.WhoResolvedOptions{Exact: c.exact})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range format.Formats {
			t.Run(c.name+"/"+string(f), func(t *testing.T) {
				var buf bytes.Buffer
				if err := format.Write(&buf, f, query.WhoResolvedTable(rows, false)); err != nil {
					t.Fatal(err)
				}
				golden(t, filepath.Join("testdata", "who-resolved-"+c.name+"."+string(f)), buf.Bytes())
			})
		}
	}
}

// goldenFormats renders tbl in every format and compares each with
// testdata/NAME.FORMAT.
func goldenFormats(t *testing.T, name string, tbl *format.Table) {
	t.Helper()
	for _, f := range format.Formats {
		var buf bytes.Buffer
		if err := format.Write(&buf, f, tbl); err != nil {
			t.Fatal(err)
		}
		golden(t, filepath.Join("testdata", name+"."+string(f)), buf.Bytes())
	}
}

// golden compares got with the file at path (querytest.Golden).
func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	querytest.Golden(t, path, got)
}

// TestWhoResolvedCrashedFile: a recorder that was killed leaves no stop-time
// indexes; the file must give the same answers, by scanning.
func TestWhoResolvedCrashedFile(t *testing.T) {
	dir := t.TempDir()
	clean := incident(t, dir, "clean.db", "web01")
	crashed := filepath.Join(dir, "crashed.db")
	b := querytest.New(t, crashed)
	querytest.Incident(b, "web01")
	b.CloseAsCrashed()
	for _, exact := range []bool{false, true} {
		var got [2][]string
		for i, p := range []string{clean, crashed} {
			rows, err := open(t, p).WhoResolved(context.Background(), "evil.com", query.WhoResolvedOptions{Exact: exact})
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			for _, r := range rows {
				got[i] = append(got[i], summary(r))
			}
		}
		if len(got[0]) == 0 || strings.Join(got[0], "\n") != strings.Join(got[1], "\n") {
			t.Errorf("exact=%v: clean file:\n%s\ncrashed file:\n%s", exact, strings.Join(got[0], "\n"), strings.Join(got[1], "\n"))
		}
	}
}

func TestWhoResolvedFilters(t *testing.T) {
	db := open(t, incident(t, t.TempDir(), "web01.db", "web01"))
	tests := []struct {
		name   string
		query  string
		filter query.Filter
		want   []string
	}{
		{"subdomains only", "*.evil.com", query.Filter{}, []string{curlWWW, pyAPI, nc, beacon}},
		{"glob", "*w.evil.com", query.Filter{}, []string{curlWWW}},
		{"pid", "evil.com", query.Filter{PIDs: []int64{950}}, []string{pyAPI}},
		{"exe base name", "evil.com", query.Filter{Exes: []string{"curl"}}, []string{curlWWW, curlApex}},
		{"uid of the message when the process row has none", "evil.com", query.Filter{UIDs: []int64{33}}, []string{beacon}},
		// The process filter is the client's: dnsmasq answered www.evil.com
		// as a server, which who-resolved never lists.
		{"server is not a client", "evil.com", query.Filter{Comms: []string{"dnsmasq"}}, nil},
		{"rcode", "evil.com", query.Filter{Rcodes: []int{3}}, []string{pyAPI}},
		{"until", "evil.com", query.Filter{Until: querytest.At(3 * time.Second)}, []string{
			"web01 www.evil.com curl(901) uid=1000 exe=/usr/bin/curl n=2 [CNAME cdn.evil.com A 203.0.113.7 A 203.0.113.8 AAAA 2001:db8::7] < sh(812) > sshd(640) > systemd(1)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sameLines(t, whoResolved(t, db, tt.query, query.WhoResolvedOptions{Filter: tt.filter}, summary), tt.want)
		})
	}
}
