//go:build unix

package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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

// BenchmarkLargeMix: the loopback workload in two evidence
// files at once, parsing each message and storing it as the pipeline does:
// "small" as it is, and "1pct-large", where one response in a hundred is a
// TXT answer of 4 to 16 KB. The two take turns, one commit batch each, so a
// change in the machine's load falls on both alike. It reports each one's
// CPU time per message (user and system, all threads: the recorder's
// cost, on the thread that does the work; the garbage collector's
// background workers are left out) and file size per message,
// and their ratios ("x-small"). The bytes of the large answers themselves
// are extra evidence, so "bytes-x-small-excl-large" leaves them out.
func BenchmarkLargeMix(b *testing.B) {
	ctx := context.Background()
	type mix struct {
		s                 *Store
		path              string
		pool              []*MsgRow
		large             [][]byte
		largeEvery        int
		i, obs, largeSize int
		cpu               time.Duration
	}
	newMix := func(largeEvery int) *mix {
		s, path, proc, server := benchStore(b)
		m := &mix{s: s, path: path, pool: benchMessages(b, proc, server, true), largeEvery: largeEvery}
		if largeEvery > 0 {
			// Responses are the odd rows; sizes spread over 4 to 16 KB.
			for i := 1; i < len(m.pool); i += 2 * largeEvery {
				m.large = append(m.large, largeResponse(b, m.pool[i-1], 4096+(len(m.large)*4096)%12289))
			}
		}
		return m
	}
	// batch stores one commit's worth of observations.
	batch := func(m *mix) {
		cpu0 := cpuTime(b)
		for n := 0; n < DefaultBatchSize; n += 2 {
			row := *m.pool[m.i%len(m.pool)]
			raw := row.Raw
			if m.largeEvery > 0 && m.i%2 == 1 && (m.i/2)%m.largeEvery == 0 {
				raw = m.large[(m.i/2/m.largeEvery)%len(m.large)]
				m.largeSize += len(raw) - len(row.Raw)
			}
			row.Raw, row.OrigLen = raw, len(raw)
			row.DNS = ParseDNS(raw)
			row.Send.TsNs = testSession.AnchorWallNs + int64(m.i)*1000
			row.Recv.TsNs = row.Send.TsNs + 30_000
			if err := m.s.InsertMessage(ctx, &row); err != nil {
				b.Fatal(err)
			}
			m.i++
			m.obs += 2
		}
		if err := m.s.Commit(); err != nil {
			b.Fatal(err)
		}
		m.cpu += cpuTime(b) - cpu0
	}
	small, large := newMix(0), newMix(100)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	b.ReportAllocs()
	b.ResetTimer()
	for small.obs < b.N {
		batch(small)
		batch(large)
	}
	b.StopTimer()
	perMsg := func(m *mix) (cpu, size float64) {
		return float64(m.cpu) / float64(m.obs), float64(finishBench(b, m.s, m.path, m.obs)) / float64(m.obs)
	}
	sc, ss := perMsg(small)
	lc, ls := perMsg(large)
	b.ReportMetric(sc, "small-cpu-ns/msg")
	b.ReportMetric(lc, "large-cpu-ns/msg")
	b.ReportMetric(ss, "small-bytes/msg")
	b.ReportMetric(ls, "large-bytes/msg")
	b.ReportMetric(lc/sc, "cpu-x-small")
	b.ReportMetric(ls/ss, "bytes-x-small")
	b.ReportMetric((ls-float64(large.largeSize)/float64(large.obs))/ss, "bytes-x-small-excl-large")
}

// largeResponse is a TXT answer of about size bytes to the query q.
func largeResponse(b *testing.B, q *MsgRow, size int) []byte {
	var m dns.Msg
	if err := m.Unpack(q.Raw); err != nil {
		b.Fatal(err)
	}
	r := new(dns.Msg)
	r.SetReply(&m)
	r.Question[0].Qtype = dns.TypeTXT
	r.Compress = true
	for r.Len() < size-300 {
		r.Answer = append(r.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: m.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{fmt.Sprintf("%04d%s", len(r.Answer), strings.Repeat("x", 251))}})
	}
	return pack(b, r)
}

// cpuTime is the CPU time the calling thread has used, user and system
// (the benchmark locks its goroutine to its thread: the SQLite driver is
// pure Go and runs on it).
func cpuTime(b *testing.B) time.Duration {
	const rusageThread = 1 // RUSAGE_THREAD
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchStore creates an evidence file with a session and the processes of
// benchMessages: a curl, its shell, and a dnsmasq.
func benchStore(b *testing.B) (s *Store, path string, proc, server int64) {
	ctx := context.Background()
	path = filepath.Join(b.TempDir(), "bench.db")
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
	proc, err = s.InsertProcess(ctx, &ProcRow{PID: 4321, StartTicks: 900, PPID: ptr[uint32](900), ParentID: &shell,
		Comm: "curl", Exe: ptr("/usr/bin/curl"), Argv: ptr(`["curl","https://example.com/"]`), Source: "exec"})
	if err != nil {
		b.Fatal(err)
	}
	server, err = s.InsertProcess(ctx, &ProcRow{PID: 53, StartTicks: 100, Comm: "dnsmasq", Exe: ptr("/usr/sbin/dnsmasq"),
		Argv: ptr(`["dnsmasq"]`), Source: "procfs"})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	return s, path, proc, server
}

// finishBench closes the session and checks every observation is in the
// file; it returns the file's size.
func finishBench(b *testing.B, s *Store, path string, obs int) int64 {
	sum, err := s.Finish(context.Background(), 1)
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
	return fi.Size()
}

func benchStoreInsert(b *testing.B, loopback bool) {
	ctx := context.Background()
	s, path, proc, server := benchStore(b)
	pool := benchMessages(b, proc, server, loopback)
	perRow := 1
	if loopback {
		perRow = 2
	}

	b.ReportAllocs()
	b.ResetTimer()
	obs, pending := 0, 0
	for i := 0; obs < b.N; i++ {
		// A fresh row each time: the Store owns what it is given.
		m := *pool[i%len(pool)]
		m.Send.TsNs = testSession.AnchorWallNs + int64(i)*1000
		m.Recv.TsNs = m.Send.TsNs + 30_000
		if err := s.InsertMessage(ctx, &m); err != nil {
			b.Fatal(err)
		}
		obs += perRow
		if pending++; pending*perRow >= DefaultBatchSize {
			if err := s.Commit(); err != nil {
				b.Fatal(err)
			}
			pending = 0
		}
	}
	if err := s.Commit(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(obs)/b.Elapsed().Seconds(), "msgs/s")

	size := finishBench(b, s, path, obs)
	b.ReportMetric(float64(size)/float64(obs), "bytes/msg")
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
