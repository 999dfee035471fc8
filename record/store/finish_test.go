package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/schema"
)

// TestFinishSummaries: the rows a clean stop's summaries hold, for a
// flood shaped like the benchmark's (every answer the same address, a
// few names, a second address now and then), are the counts, first and
// last times computed here from what was written, and the file has every
// stop index and passes integrity_check. The finish builds them with a
// small page cache and keeps an address's groups, not its answers.
func TestFinishSummaries(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "case.db")
	s := createStore(t, path)
	dig, err := s.InsertProcess(ctx, &ProcRow{PID: 4321, StartTicks: 900, Comm: "dig", Source: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	type span struct{ n, first, last int64 }
	type addrName struct{ addr, name string }
	queries := map[string]*span{}
	answers := map[addrName]*span{}
	see := func(m map[string]*span, k string, ts int64) {
		if sp := m[k]; sp != nil {
			sp.n, sp.last = sp.n+1, ts
		} else {
			m[k] = &span{1, ts, ts}
		}
	}
	const n, names = 6000, 40
	ts := int64(1_700_000_001_000_000_000)
	for i := range n {
		name := fmt.Sprintf("host%d.flood.test.", (i*7)%names)
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = uint16(i)
		r := new(dns.Msg)
		r.SetReply(q)
		addrs := []string{"192.0.2.1"}
		if i%9 == 0 {
			addrs = append(addrs, fmt.Sprintf("198.51.100.%d", i%4))
		}
		for _, a := range addrs {
			r.Answer = append(r.Answer, mustRR(t, name+" 60 IN A "+a))
		}
		src := fmt.Sprintf("10.0.0.2:%d", 20000+i%30000)
		qb, rb := pack(t, q), pack(t, r)
		qm := oneSide(true, ts, "udp", src, "192.0.2.53:53", 1, dig, sampleIdent, qb, len(qb))
		if err := s.InsertMessage(ctx, qm); err != nil {
			t.Fatal(err)
		}
		see(queries, name, ts)
		ts += 1000
		rm := oneSide(false, ts, "udp", "192.0.2.53:53", src, 1, dig, sampleIdent, rb, len(rb))
		if err := s.InsertMessage(ctx, rm); err != nil {
			t.Fatal(err)
		}
		queries[name].last = ts // who-resolved's times span its responses too
		for _, a := range addrs {
			k := addrName{a, name}
			if sp := answers[k]; sp != nil {
				sp.n, sp.last = sp.n+1, ts
			} else {
				answers[k] = &span{1, ts, ts}
			}
		}
		ts += 1000
		if i%1000 == 999 {
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := s.Finish(ctx, ts); err != nil {
		t.Fatal(err)
	}

	db := openRO(t, path)
	var ok string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %s %v", ok, err)
	}
	for _, idx := range stopIndexNames() {
		var got string
		if err := db.QueryRow(`SELECT name FROM sqlite_master WHERE type = 'index' AND name = ?`, idx).Scan(&got); err != nil {
			t.Errorf("stop index %s: %v", idx, err)
		}
	}

	rows, err := db.Query(`SELECT n.name, w.queries, w.first_ns, w.last_ns FROM who_summary w JOIN names n ON n.id = w.name_id`)
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for rows.Next() {
		var name string
		var sp span
		if err := rows.Scan(&name, &sp.n, &sp.first, &sp.last); err != nil {
			t.Fatal(err)
		}
		got++
		if want := queries[name+"."]; want == nil || *want != sp {
			t.Errorf("who_summary %s: queries, first, last %v, want %v", name, sp, want)
		}
	}
	if rows.Err() != nil || got != len(queries) {
		t.Errorf("who_summary has %d rows, want %d (%v)", got, len(queries), rows.Err())
	}

	rows, err = db.Query(`SELECT a.data, n.name, a.hits, a.ts_ns, a.last_ns FROM addr_summary a JOIN names n ON n.id = a.name_id WHERE a.type = 1`)
	if err != nil {
		t.Fatal(err)
	}
	got = 0
	for rows.Next() {
		var a, name string
		var sp span
		if err := rows.Scan(&a, &name, &sp.n, &sp.first, &sp.last); err != nil {
			t.Fatal(err)
		}
		got++
		if want := answers[addrName{a, name + "."}]; want == nil || *want != sp {
			t.Errorf("addr_summary %s %s: hits, first, last %v, want %v", a, name, sp, want)
		}
	}
	if rows.Err() != nil || got != len(answers) {
		t.Errorf("addr_summary has %d rows, want %d (%v)", got, len(answers), rows.Err())
	}
}

// stopIndexNames are the names of schema.StopIndexes' indexes.
func stopIndexNames() []string {
	var names []string
	for _, line := range strings.Split(schema.StopIndexes, "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[0] == "CREATE" {
			names = append(names, f[5])
		}
	}
	return names
}
