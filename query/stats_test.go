package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
)

// tunnelFile records, besides the incident: a tunnel client sending 30
// queries for random 24-character labels under t.evil-tunnel.test, and a
// DGA-like process getting NXDOMAIN for 12 of its 15 lookups.
func tunnelFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "tunnel.db")
	b := querytest.New(t, p)
	querytest.Incident(b, "web01")
	s := int64(1)
	iod := b.Process(querytest.Process{Session: s, PID: 3000, Comm: "iodine", Exe: "/usr/sbin/iodine", UID: querytest.UID(0)})
	dga := b.Process(querytest.Process{Session: s, PID: 3100, Comm: "dga", Exe: "/tmp/.x/dga", UID: querytest.UID(0)})
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	for i := 0; i < 30; i++ {
		label := make([]byte, 24)
		for j := range label {
			label[j] = alphabet[r.IntN(len(alphabet))]
		}
		b.Message(querytest.Message{Session: s, Process: iod, PID: 3000, Comm: "iodine", TS: querytest.At(10*time.Second + time.Duration(i)*time.Millisecond),
			Direction: "send", QName: string(label) + ".t.evil-tunnel.test", QType: 16})
	}
	for i := 0; i < 15; i++ {
		name := fmt.Sprintf("x%dqz.example", i)
		ts := querytest.At(20*time.Second + time.Duration(i)*time.Second)
		b.Message(querytest.Message{Session: s, Process: dga, PID: 3100, Comm: "dga", TS: ts, Direction: "send", QName: name})
		rcode := 3
		if i%5 == 0 {
			rcode = 0
		}
		b.Message(querytest.Message{Session: s, Process: dga, PID: 3100, Comm: "dga", TS: ts.Add(time.Millisecond), Direction: "recv", Response: true, QName: name, Rcode: rcode})
	}
	b.Close()
	return p
}

func TestStats(t *testing.T) {
	db := open(t, tunnelFile(t))
	tbl, err := db.Stats(context.Background(), query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string][]string{}
	for _, r := range tbl.Rows {
		var cells []string
		for _, c := range r[2:] {
			cells = append(cells, fmt.Sprint(c))
		}
		rows[r[0].(string)] = append(rows[r[0].(string)], strings.Join(cells, "|"))
	}
	want := map[string][]string{
		"top_processes":   {"iodine(3000)|30|<nil>|/usr/sbin/iodine", "dga(3100)|15|<nil>|/tmp/.x/dga"},
		"nxdomain_rate":   {"dga(3100)|12|0.800|NXDOMAIN of 15 responses"},
		"tunnel_suspects": {"evil-tunnel.test|30|<nil>|distinct high-entropy names of 30"},
	}
	for section, w := range want {
		got := rows[section]
		if len(got) > len(w) {
			got = got[:len(w)]
		}
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s:\n\t%s\nwant\n\t%s", section, strings.Join(rows[section], "\n\t"), strings.Join(w, "\n\t"))
		}
	}
	if n := len(rows["high_entropy"]); n != query.StatsTop {
		t.Errorf("high_entropy: %d rows, want %d: %q", n, query.StatsTop, rows["high_entropy"])
	}
	for _, r := range rows["high_entropy"] {
		if !strings.Contains(r, ".t.evil-tunnel.test|1|") {
			t.Errorf("high_entropy lists %s", r)
		}
	}
	if got := rows["span"][0]; got != "first|<nil>|2024-03-01 12:00:01 +0000 UTC|<nil>" {
		t.Errorf("span: %s", got)
	}
	if got := rows["top_names"][0]; got != "www.evil.com|3|<nil>|<nil>" {
		t.Errorf("top_names: %s", got)
	}
	// A filter narrows every section.
	tbl, err = db.Stats(context.Background(), query.Filter{Comms: []string{"dga"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tbl.Rows {
		if r[0] == "top_processes" && r[2] != "dga(3100)" {
			t.Errorf("filtered by comm dga: %v", r)
		}
		if r[0] == "span" && r[2] == "queries" && r[3] != int64(15) {
			t.Errorf("filtered queries: %v", r)
		}
	}
}

func TestEntropy(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want float64
	}{{"", 0}, {"aaaa", 0}, {"abab", 1}, {"abcd", 2}} {
		if got := query.Entropy(tc.s); got != tc.want {
			t.Errorf("Entropy(%q) = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestStatsGolden(t *testing.T) {
	db := open(t, tunnelFile(t))
	tbl, err := db.Stats(context.Background(), query.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	goldenFormats(t, "stats-tunnel", tbl)
}
