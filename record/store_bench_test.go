//go:build linux && amd64

package record

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// benchMessages is a pool of realistic rows: a query and its response (a
// CNAME and an A record) for each of 500 names, parsed ahead of time so that
// the benchmark measures the Store. With loopback set, each message was seen
// by both ends on this host (client and local resolver), as under dnsperf
// against a local dnsmasq; otherwise only by the local client.
func benchMessages(b *testing.B, client, server int64, loopback bool) []*MsgRow {
	b.Helper()
	var rows []*MsgRow
	serverIdent := &Identity{PID: 53, TID: 53, UID: 0, GID: 0, StartNs: 1_000_000_000, Comm: "dnsmasq", NetNS: 12, MntNS: 11, PidNS: 13}
	for i := range 500 {
		name := fmt.Sprintf("host%d.service%d.example.com.", i, i%37)
		q := new(dns.Msg)
		q.SetQuestion(name, dns.TypeA)
		q.Id = uint16(i)
		q.SetEdns0(1232, false)
		r := new(dns.Msg)
		r.SetReply(q)
		r.Compress = true
		cname, err := dns.NewRR(fmt.Sprintf("%s 300 IN CNAME edge%d.cdn.example.net.", name, i%11))
		if err != nil {
			b.Fatal(err)
		}
		a, err := dns.NewRR(fmt.Sprintf("edge%d.cdn.example.net. 20 IN A 198.51.100.%d", i%11, i%250))
		if err != nil {
			b.Fatal(err)
		}
		r.Answer = []dns.RR{cname, a}
		r.SetEdns0(1232, false)
		local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(30000+i))
		remote := netip.MustParseAddrPort("192.0.2.53:53")
		for j, m := range []*dns.Msg{q, r} {
			raw := pack(b, m)
			p := ParseDNS(raw)
			if p.Err != nil {
				b.Fatal(p.Err)
			}
			row := &MsgRow{Proto: "udp", DNS: p, OrigLen: len(raw), Raw: raw}
			clientSide := Side{Seen: true, Cookie: uint64(i) + 1<<40, ProcessID: client, Ident: sampleIdent}
			serverSide := Side{Seen: loopback, Server: true, Cookie: 7, ProcessID: server, Ident: serverIdent}
			if j == 0 {
				row.Src, row.Dst, row.Send, row.Recv = local, remote, clientSide, serverSide
			} else {
				row.Src, row.Dst, row.Send, row.Recv = remote, local, serverSide, clientSide
			}
			if !loopback {
				row.Send.Seen = j == 0
				row.Recv.Seen = j == 1
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// BenchmarkStoreInsert writes messages through the Store, committing every
// DefaultBatchSize observations as the pipeline does, and reports the rate
// in observations ("messages", as the recorder counts them: a message seen
// by its sender and its receiver is two) and the evidence file's size per
// observation after Finish, indexes included.
func BenchmarkStoreInsert(b *testing.B) {
	b.Run("loopback", func(b *testing.B) { benchStoreInsert(b, true) })
	b.Run("remote", func(b *testing.B) { benchStoreInsert(b, false) })
}

func benchStoreInsert(b *testing.B, loopback bool) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "bench.db")
	s, err := Create(ctx, path, false)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.BeginSession(ctx, testSession); err != nil {
		b.Fatal(err)
	}
	shell, err := s.InsertProcess(ctx, &ProcRow{PID: 900, StartTicks: 400, Comm: "bash", Exe: ptr("/usr/bin/bash"),
		Argv: ptr(`["bash"]`), Source: "procfs"})
	if err != nil {
		b.Fatal(err)
	}
	proc, err := s.InsertProcess(ctx, &ProcRow{PID: 4321, StartTicks: 900, PPID: ptr[uint32](900), ParentID: &shell,
		Comm: "curl", Exe: ptr("/usr/bin/curl"), Argv: ptr(`["curl","https://example.com/"]`), Source: "exec"})
	if err != nil {
		b.Fatal(err)
	}
	server, err := s.InsertProcess(ctx, &ProcRow{PID: 53, StartTicks: 100, Comm: "dnsmasq", Exe: ptr("/usr/sbin/dnsmasq"),
		Argv: ptr(`["dnsmasq"]`), Source: "procfs"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	pool := benchMessages(b, proc, server, loopback)
	perRow := 1
	if loopback {
		perRow = 2
	}

	b.ReportAllocs()
	b.ResetTimer()
	obs := 0
	for i := 0; obs < b.N; i++ {
		// A fresh row each time: the Store owns what it is given.
		m := *pool[i%len(pool)]
		m.Send.TsNs = testSession.AnchorWallNs + int64(i)*1000
		m.Recv.TsNs = m.Send.TsNs + 30_000
		if err := s.InsertMessage(ctx, &m); err != nil {
			b.Fatal(err)
		}
		obs += perRow
		if s.Pending()*perRow >= DefaultBatchSize {
			if err := s.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(obs)/b.Elapsed().Seconds(), "msgs/s")

	sum, err := s.Finish(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	if sum.Messages != int64(obs) {
		b.Fatalf("%d messages in the file, wrote %d", sum.Messages, obs)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(obs), "bytes/msg")
	if os.Getenv("DNSREC_BENCH_DBSTAT") != "" {
		db, err := sql.Open("sqlite", path)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		rows, err := db.Query(`SELECT name, sum(pgsize), sum(payload), count(*) FROM dbstat GROUP BY name ORDER BY 2 DESC`)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var size, payload, pages int64
			rows.Scan(&name, &size, &payload, &pages)
			b.Logf("%-16s %8.1f bytes/msg (payload %6.1f) %d pages", name, float64(size)/float64(obs), float64(payload)/float64(obs), pages)
		}
	}
}
