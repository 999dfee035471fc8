package query_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/querytest"
	"github.com/dnsrec/dnsrec/schema"
)

// benchMessages is the size of the generated benchmark file.
const benchMessages = 200_000

var (
	benchOnce sync.Once
	benchDir  string
	benchPath string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchFile generates, once per test binary, a file of benchMessages
// messages: half queries, half responses with two answers each, from 500
// processes (each with a parent chain) over 5,000 names in 1,000 domains.
// About 1% of the traffic is for evil.com and its subdomains.
func benchFile(b *testing.B) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dnsrec-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		p := filepath.Join(dir, "bench.db")
		qb := querytest.New(b, p)
		s := qb.Session("bench", querytest.Base)
		tx, err := qb.DB.Begin()
		if err != nil {
			b.Fatal(err)
		}
		var procs []int64
		parent := int64(0)
		for i := range 500 {
			if i%10 == 0 {
				parent = 0 // a new tree every ten processes
			}
			res, err := tx.Exec(`INSERT INTO processes (session_id, boot_id, pid, start_ticks, parent_id, comm, exe, uid, source)
				VALUES (?, 'boot', ?, ?, ?, ?, ?, 1000, 'exec')`,
				s, 1000+i, i, nullID(parent), fmt.Sprintf("proc%d", i), fmt.Sprintf("/usr/bin/proc%d", i))
			if err != nil {
				b.Fatal(err)
			}
			id, _ := res.LastInsertId()
			procs, parent = append(procs, id), id
		}
		msg, err := tx.Prepare(`INSERT INTO messages (session_id, ts_ns, boot_ns, direction, role, proto,
			saddr, sport, daddr, dport, process_id, pid, comm, uid, qr, qname, qname_rev, qtype, orig_len, raw)
			VALUES (?, ?, ?, ?, 'client', 'udp', '10.0.0.5', 40000, '10.0.0.1', 53, ?, ?, ?, 1000, ?, ?, ?, 1, 40, x'00')`)
		if err != nil {
			b.Fatal(err)
		}
		ans, err := tx.Prepare(`INSERT INTO answers (message_id, section, name, type, class, ttl, data)
			VALUES (?, 'answer', ?, 1, 1, 60, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		ts := querytest.Base.UnixNano()
		for i := 0; i < benchMessages/2; i++ {
			var name string
			if rng.IntN(100) == 0 {
				name = fmt.Sprintf("h%d.evil.com", rng.IntN(20))
			} else {
				name = fmt.Sprintf("h%d.domain%d.com", rng.IntN(5), rng.IntN(1000))
			}
			rev := schema.ReverseName(name)
			pi := rng.IntN(len(procs))
			ts += int64(rng.IntN(50_000_000))
			if _, err := msg.Exec(s, ts, ts, "send", procs[pi], 1000+pi, fmt.Sprintf("proc%d", pi), 0, name, rev); err != nil {
				b.Fatal(err)
			}
			res, err := msg.Exec(s, ts+1e6, ts+1e6, "recv", procs[pi], 1000+pi, fmt.Sprintf("proc%d", pi), 1, name, rev)
			if err != nil {
				b.Fatal(err)
			}
			id, _ := res.LastInsertId()
			for j := range 2 {
				if _, err := ans.Exec(id, name, fmt.Sprintf("198.51.%d.%d", rng.IntN(4), j)); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		qb.Close()
		benchPath = p
	})
	if benchPath == "" {
		b.Fatal("benchmark file generation failed earlier")
	}
	return benchPath
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func BenchmarkWhoResolved(b *testing.B) {
	p := benchFile(b)
	db, err := query.Open(context.Background(), []string{p})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	for _, bc := range []struct {
		name  string
		query string
		exact bool
	}{
		{"subdomains", "evil.com", false},
		{"exact", "h3.evil.com", true},
		{"none", "example.org", false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var rows int
			for b.Loop() {
				rs, err := db.WhoResolved(context.Background(), bc.query, query.WhoResolvedOptions{Exact: bc.exact})
				if err != nil {
					b.Fatal(err)
				}
				rows = len(rs)
			}
			b.ReportMetric(float64(rows), "rows/op")
		})
	}
}
