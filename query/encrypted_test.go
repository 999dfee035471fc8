package query_test

import (
	"context"
	"encoding/csv"
	"fmt"
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

var encT0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// encFile is a recording with encrypted-DNS connections (schema v11):
// chrome(4100), a child of sh(4000), connected twice to Cloudflare's DoH on
// 1.1.1.1:443 and once over DoQ to 9.9.9.9:853; kdig(4200) to a DoT server
// on 127.0.0.1:853 with SNI dns.test; and a DNS message from kdig.
func encFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "enc.db")
	b := querytest.New(t, p)
	s := b.Session("web01", encT0)
	sh := b.Process(querytest.Process{Session: s, PID: 4000, Comm: "sh", Exe: "/usr/bin/sh", UID: querytest.UID(0)})
	chrome := b.Process(querytest.Process{Session: s, PID: 4100, Parent: sh, Comm: "chrome", Exe: "/opt/google/chrome/chrome", UID: querytest.UID(1000)})
	kdig := b.Process(querytest.Process{Session: s, PID: 4200, Parent: sh, Comm: "kdig", Exe: "/usr/bin/kdig", UID: querytest.UID(0)})
	b.Exec(`UPDATE processes SET argv = ? WHERE id = ?`, `["/opt/google/chrome/chrome","--incognito"]`, chrome)
	for i := range 2 {
		b.EncConn(querytest.EncConn{Session: s, Process: chrome, PID: 4100, Comm: "chrome", TS: encT0.Add(time.Duration(1+i) * time.Second),
			Kind: "doh-known", RAddr: "1.1.1.1", RPort: 443, LAddr: "10.0.0.5", LPort: 40000 + i, SNI: "cloudflare-dns.com", Resolver: "Cloudflare"})
	}
	b.EncConn(querytest.EncConn{Session: s, Process: chrome, PID: 4100, Comm: "chrome", TS: encT0.Add(3 * time.Second),
		Kind: "doq", Transport: "udp", RAddr: "9.9.9.9", RPort: 853, Resolver: "Quad9"})
	b.EncConn(querytest.EncConn{Session: s, Process: kdig, PID: 4200, Comm: "kdig", TS: encT0.Add(4 * time.Second),
		Kind: "dot", RAddr: "127.0.0.1", RPort: 853, LAddr: "127.0.0.1", LPort: 51000, SNI: "dns.test"})
	b.Message(querytest.Message{Session: s, Process: kdig, PID: 4200, Comm: "kdig", TS: encT0.Add(4 * time.Second), Direction: "send", QName: "www.evil.test"})
	b.Close()
	return p
}

func TestEncrypted(t *testing.T) {
	db := open(t, encFile(t))
	ctx := context.Background()
	line := func(r query.EncryptedRow) string {
		return strings.Join([]string{r.Kind, r.Transport, r.Remote, r.SNI, r.Resolver, r.Comm, r.Exe, query.ShellQuote(r.Argv), r.Ancestry.String(),
			r.FirstSeen.Format(time.TimeOnly), r.LastSeen.Format(time.TimeOnly), strconvI(r.Count)}, " | ")
	}
	doh := "doh-known | tcp | 1.1.1.1:443 | cloudflare-dns.com | Cloudflare | chrome | /opt/google/chrome/chrome | /opt/google/chrome/chrome --incognito | sh(4000) | 09:00:01 | 09:00:02 | 2"
	doq := "doq | udp | 9.9.9.9:853 |  | Quad9 | chrome | /opt/google/chrome/chrome | /opt/google/chrome/chrome --incognito | sh(4000) | 09:00:03 | 09:00:03 | 1"
	dot := "dot | tcp | 127.0.0.1:853 | dns.test |  | kdig | /usr/bin/kdig |  | sh(4000) | 09:00:04 | 09:00:04 | 1"
	for _, tc := range []struct {
		name string
		f    query.Filter
		want []string
	}{
		{name: "all", want: []string{doh, doq, dot}},
		{name: "pid", f: query.Filter{PIDs: []int64{4200}}, want: []string{dot}},
		{name: "exe", f: query.Filter{Exes: []string{"chrome"}}, want: []string{doh, doq}},
		{name: "since", f: query.Filter{Since: encT0.Add(2500 * time.Millisecond)}, want: []string{doq, dot}},
		{name: "a name matches no connection", f: query.Filter{Names: []query.NamePattern{mustName(t, "evil.test")}}, want: nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := db.Encrypted(ctx, tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rows {
				got = append(got, line(r))
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	// In the usual formats: CSV carries every column.
	rows, err := db.Encrypted(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	if err := format.Write(&buf, format.FormatCSV, query.EncryptedTable(rows, false)); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil || len(recs) != 4 || !slices.Equal(recs[0], query.EncryptedColumns) {
		t.Fatalf("CSV: %v\n%s", err, buf.String())
	}
	if recs[1][0] != "doh-known" || recs[1][5] != "4100" || recs[1][14] != "2" {
		t.Errorf("CSV first row %q", recs[1])
	}
}

// The timeline shows the connections as rows of their own, in time order
// with the messages; stats counts them.
func TestEncryptedTimelineStats(t *testing.T) {
	db := open(t, encFile(t))
	ctx := context.Background()
	var buf strings.Builder
	w, err := format.NewRowWriter(&buf, format.FormatCSV, db.TimelineColumnsFor(), format.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Timeline(ctx, query.TimelineOptions{}, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := func(name string) int { return slices.Index(recs[0], name) }
	var got []string
	for _, r := range recs[1:] {
		got = append(got, strings.Join([]string{r[col("id")], r[col("kind")], r[col("proto")], r[col("src")], r[col("src_pid")], r[col("dst")], r[col("qname")], r[col("note")]}, " | "))
	}
	want := []string{
		"c1 | encrypted doh-known | tcp | 10.0.0.5:40000 | 4100 | 1.1.1.1:443 |  | sni cloudflare-dns.com; resolver Cloudflare; content not read",
		"c2 | encrypted doh-known | tcp | 10.0.0.5:40001 | 4100 | 1.1.1.1:443 |  | sni cloudflare-dns.com; resolver Cloudflare; content not read",
		"c3 | encrypted doq | udp |  | 4100 | 9.9.9.9:853 |  | resolver Quad9; content not read",
	}
	if len(got) != 5 || !slices.Equal(got[:3], want) || !strings.Contains(got[3], "www.evil.test") ||
		got[4] != "c4 | encrypted dot | tcp | 127.0.0.1:51000 | 4200 | 127.0.0.1:853 |  | sni dns.test; content not read" {
		t.Errorf("timeline:\n%s", strings.Join(got, "\n"))
	}
	// Paging: resuming after the first connection gives the rest.
	buf.Reset()
	w, _ = format.NewRowWriter(&buf, format.FormatCSV, db.TimelineColumnsFor(), format.WriteOptions{})
	last, err := db.Timeline(ctx, query.TimelineOptions{Filter: query.Filter{Limit: 1}}, w)
	if err != nil || last == nil || !last.Enc || last.ID != 1 {
		t.Fatalf("first page's cursor %+v, %v", last, err)
	}
	after, err := query.ParseCursor(last.String())
	if err != nil || after != *last {
		t.Fatalf("cursor %q parses to %+v, %v", last.String(), after, err)
	}
	buf.Reset()
	w, _ = format.NewRowWriter(&buf, format.FormatCSV, db.TimelineColumnsFor(), format.WriteOptions{})
	if _, err := db.Timeline(ctx, query.TimelineOptions{After: &after}, w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if n := strings.Count(buf.String(), "\n"); n != 5 || !strings.Contains(buf.String(), "c2,") || strings.Contains(buf.String(), "c1,") {
		t.Errorf("after %s:\n%s", last, buf.String())
	}

	st, err := db.Stats(ctx, query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var stats []string
	for _, r := range st.Rows {
		if r[0] == "encrypted_dns" || r[2] == "encrypted_connections" {
			stats = append(stats, strings.TrimSpace(strings.Join([]string{r[0].(string), anyStr(r[1]), r[2].(string), anyStr(r[3]), anyStr(r[4])}, " ")))
		}
	}
	wantStats := []string{
		"span  encrypted_connections 4",
		"encrypted_dns 1 doh-known 1.1.1.1:443 cloudflare-dns.com 2 1",
		"encrypted_dns 2 doq 9.9.9.9:853 1 1",
		"encrypted_dns 3 dot 127.0.0.1:853 dns.test 1 1",
	}
	if !slices.Equal(stats, wantStats) {
		t.Errorf("stats:\n%s\nwant\n%s", strings.Join(stats, "\n"), strings.Join(wantStats, "\n"))
	}
}

func strconvI(n int64) string { return strconv.FormatInt(n, 10) }

func anyStr(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func mustName(t *testing.T, s string) query.NamePattern {
	t.Helper()
	p, err := query.ParseName(s, true)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
