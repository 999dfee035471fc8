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
	benchOnce  sync.Once
	benchDir   string
	benchPaths map[int]string // by schema version
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDir != "" {
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

// benchFile generates, once per test binary, the same traffic in a file of
// each schema version (v1: one messages row per observation; v2: the
// compact layout, as a clean stop leaves it), so that the query cost of the
// two layouts is compared in one run: benchMessages messages, half queries,
// half responses with two answers each, from 500 processes (each with a
// parent chain) over 5,000 names in 1,000 domains. About 1% of the traffic
// is for evil.com and its subdomains.
func benchFile(b *testing.B, version int) string {
	benchOnce.Do(func() {
		dir, err := os.MkdirTemp("", "dnsrec-bench")
		if err != nil {
			b.Fatal(err)
		}
		benchDir = dir
		benchPaths = map[int]string{}
		for _, v := range []int{1, schema.Version()} {
			p := filepath.Join(dir, fmt.Sprintf("bench-v%d.db", v))
			writeBenchFile(b, p, v)
			benchPaths[v] = p
		}
	})
	p := benchPaths[version]
	if p == "" {
		b.Fatal("benchmark file generation failed earlier")
	}
	return p
}

func writeBenchFile(b *testing.B, p string, version int) {
	var qb *querytest.Builder
	if version == 1 {
		qb = querytest.NewAtVersion(b, p, 1)
	} else {
		qb = querytest.New(b, p)
	}
	s := qb.Session("bench", querytest.Base)
	tx, err := qb.DB.Begin()
	if err != nil {
		b.Fatal(err)
	}
	exec := func(q string, args ...any) int64 {
		res, err := tx.Exec(q, args...)
		if err != nil {
			b.Fatalf("%s: %v", q, err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	var procs, owners []int64
	parent := int64(0)
	for i := range 500 {
		if i%10 == 0 {
			parent = 0 // a new tree every ten processes
		}
		id := exec(`INSERT INTO processes (session_id, boot_id, pid, start_ticks, parent_id, comm, exe, uid, source)
			VALUES (?, 'boot', ?, ?, ?, ?, ?, 1000, 'exec')`,
			s, 1000+i, i, nullID(parent), fmt.Sprintf("proc%d", i), fmt.Sprintf("/usr/bin/proc%d", i))
		procs, parent = append(procs, id), id
		if version > 1 {
			owners = append(owners, exec(`INSERT INTO owners (process_id, pid, tid, uid, gid, comm) VALUES (?, ?, ?, 1000, 1000, ?)`,
				id, 1000+i, 1000+i, fmt.Sprintf("proc%d", i)))
		}
	}
	names := map[string]int64{}
	nameID := func(n string) int64 {
		if id, ok := names[n]; ok {
			return id
		}
		id := exec(`INSERT INTO names (name, rev) VALUES (?, ?)`, n, schema.ReverseName(n))
		names[n] = id
		return id
	}
	var flow int64
	if version > 1 {
		flow = exec(`INSERT INTO flows (proto, a_addr, a_port, b_addr, b_port) VALUES ('udp', '10.0.0.5', 40000, '10.0.0.1', 53)`)
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
		var resp int64
		if version == 1 {
			const msg = `INSERT INTO messages (session_id, ts_ns, boot_ns, direction, role, proto,
				saddr, sport, daddr, dport, process_id, pid, comm, uid, qr, qname, qname_rev, qtype, orig_len, raw)
				VALUES (?, ?, ?, ?, 'client', 'udp', '10.0.0.5', 40000, '10.0.0.1', 53, ?, ?, ?, 1000, ?, ?, ?, 1, 40, x'00')`
			exec(msg, s, ts, ts, "send", procs[pi], 1000+pi, fmt.Sprintf("proc%d", pi), 0, name, rev)
			resp = exec(msg, s, ts+1e6, ts+1e6, "recv", procs[pi], 1000+pi, fmt.Sprintf("proc%d", pi), 1, name, rev)
		} else {
			// The client's send of the query, and its receipt of the
			// response (whose sender, a remote server, is not seen here).
			const msg = `INSERT INTO msgs (session_id, ts_ns, flow_id, obs, s_owner, r_owner, r_dt_ns, flags, rcode, name_id, qtype, qclass, raw)
				VALUES (?, ?, ?, ?, ?, ?, 0, ?, 0, ?, 1, 1, x'00')`
			exec(msg, s, ts, flow, 1, owners[pi], nil, 0x0100, nameID(name))
			resp = exec(msg, s, ts+1e6, flow, 2|16, nil, owners[pi], 0x8180, nameID(name))
		}
		for j := range 2 {
			data := fmt.Sprintf("198.51.%d.%d", rng.IntN(4), j)
			if version == 1 {
				exec(`INSERT INTO answers (message_id, section, name, type, class, ttl, data) VALUES (?, 'answer', ?, 1, 1, 60, ?)`, resp, name, data)
			} else {
				exec(`INSERT INTO rrs (message_id, name_id, type, class, ttl, data) VALUES (?, ?, 1, 1, 60, ?)`, resp, nameID(name), data)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	qb.Close()
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// BenchmarkWhoResolved runs the same questions on the same traffic stored
// in schema v1 and in the current layout: v1 is the baseline the compact
// layout must not be slower than.
func BenchmarkWhoResolved(b *testing.B) {
	for _, v := range []int{1, schema.Version()} {
		b.Run(fmt.Sprintf("v%d", v), func(b *testing.B) { benchWhoResolved(b, benchFile(b, v)) })
	}
}

func benchWhoResolved(b *testing.B, p string) {
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
