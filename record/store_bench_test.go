//go:build linux

package record

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/miekg/dns"
)

// benchMessages is a pool of realistic rows: a query and its response (a
// CNAME and an A record) for each of 500 names, parsed ahead of time so that
// the benchmark measures the Store.
func benchMessages(b *testing.B, procID *int64) []*MsgRow {
	b.Helper()
	var rows []*MsgRow
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
		for j, m := range []*dns.Msg{q, r} {
			raw := pack(b, m)
			p := ParseDNS(raw)
			if p.Err != nil {
				b.Fatal(p.Err)
			}
			row := &MsgRow{Role: "client", Proto: "udp", ProcessID: procID, Ident: sampleIdent,
				Cookie: uint64(i) + 1<<40, DNS: p, OrigLen: len(raw), Raw: raw}
			local := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(30000+i))
			remote := netip.MustParseAddrPort("192.0.2.53:53")
			if j == 0 {
				row.Direction, row.Src, row.Sport, row.Dst, row.Dport = "send", local.Addr().String(), local.Port(), remote.Addr().String(), remote.Port()
			} else {
				row.Direction, row.Src, row.Sport, row.Dst, row.Dport = "recv", remote.Addr().String(), remote.Port(), local.Addr().String(), local.Port()
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// BenchmarkStoreInsert writes b.N messages through the Store, committing
// every DefaultBatchSize messages as the pipeline does, and reports the
// rate and the evidence file's size per message after Finish.
func BenchmarkStoreInsert(b *testing.B) {
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
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	pool := benchMessages(b, &proc)

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := pool[i%len(pool)]
		m.BootNs = int64(i) * 1000
		m.TsNs = testSession.AnchorWallNs + m.BootNs
		if err := s.InsertMessage(ctx, m); err != nil {
			b.Fatal(err)
		}
		if (i+1)%DefaultBatchSize == 0 {
			if err := s.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")

	sum, err := s.Finish(ctx, 1)
	if err != nil {
		b.Fatal(err)
	}
	if sum.Messages != int64(b.N) {
		b.Fatalf("%d messages in the file, wrote %d", sum.Messages, b.N)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/float64(b.N), "bytes/msg")
}
