package export

import (
	"database/sql"
	"io"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/query"
)

// benchTransactions makes n loopback exchanges like a busy host's: a
// client process among a few hundred asking a local resolver, both ends
// seen, three answers each, real bytes.
func benchTransactions(tb testing.TB, n int) []*query.Transaction {
	tb.Helper()
	resolver := &query.Process{ID: 1, PID: 300, TID: 300, Comm: "dnsmasq", Exe: "/usr/sbin/dnsmasq", UID: sql.Null[int64]{V: 65534, Valid: true},
		Argv: []string{"dnsmasq", "-k"}, Ancestry: query.Ancestry{{PID: 1, Comm: "systemd"}}}
	clients := make([]*query.Process, 300)
	for i := range clients {
		pid := int64(1000 + i)
		clients[i] = &query.Process{ID: pid, PID: pid, TID: pid, Comm: "curl", Exe: "/usr/bin/curl", UID: sql.Null[int64]{V: 1000, Valid: true},
			Argv: []string{"curl", "-s", "https://www.example.com/" + strconv.Itoa(i)}, Ancestry: query.Ancestry{{PID: 812, Comm: "sh"}, {PID: 640, Comm: "sshd"}, {PID: 1, Comm: "systemd"}}}
	}
	base := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	out := make([]*query.Transaction, n)
	for i := range out {
		name := "host" + strconv.Itoa(i%5000) + ".example.com"
		q := new(dns.Msg).SetQuestion(name+".", dns.TypeA)
		q.Id = uint16(i)
		qraw, err := q.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		r := new(dns.Msg).SetReply(q)
		var answers []query.RR
		for j := range 3 {
			a := &dns.A{Hdr: dns.RR_Header{Name: name + ".", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 300}, A: []byte{203, 0, 113, byte(j)}}
			r.Answer = append(r.Answer, a)
			answers = append(answers, query.RR{Name: name, Type: dns.TypeA, TTL: 300, Data: a.A.String()})
		}
		rraw, err := r.Pack()
		if err != nil {
			tb.Fatal(err)
		}
		c := clients[i%len(clients)]
		ts := base.Add(time.Duration(i) * time.Millisecond)
		cli := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(30000+i%30000))
		srv := netip.MustParseAddrPort("127.0.0.53:53")
		qm := &query.Message{File: "/evidence/case.db", Host: "web1", Session: 1, ID: int64(2*i + 1), Time: ts, Proto: "udp", Src: cli, Dst: srv,
			Sender: &query.Party{Time: ts, Proc: c}, Receiver: &query.Party{Time: ts.Add(20 * time.Microsecond), Server: true, Proc: resolver},
			DNSID: q.Id, Flags: 1 << 8, QName: name, QType: dns.TypeA, QClass: dns.ClassINET, Raw: qraw, Size: len(qraw)}
		rm := &query.Message{File: "/evidence/case.db", Host: "web1", Session: 1, ID: int64(2*i + 2), Time: ts.Add(300 * time.Microsecond), Proto: "udp", Src: srv, Dst: cli,
			Sender:   &query.Party{Time: ts.Add(300 * time.Microsecond), Server: true, Proc: resolver},
			Receiver: &query.Party{Time: ts.Add(320 * time.Microsecond), Proc: c}, Response: true,
			DNSID: q.Id, Flags: 1<<15 | 1<<8 | 1<<7, QName: name, QType: dns.TypeA, QClass: dns.ClassINET, Answers: answers,
			Raw: rraw, Size: len(rraw), QueryID: qm.ID, Latency: 320 * time.Microsecond}
		out[i] = &query.Transaction{Query: qm, Response: rm}
	}
	return out
}

// BenchmarkExportWriters times each export format's writer alone, on
// transactions already in memory: what the format costs on top of reading
// the evidence (BenchmarkBig's export-* measure both). rows/s counts
// transactions; pcapng writes two packets for each.
func BenchmarkExportWriters(b *testing.B) {
	txns := benchTransactions(b, 20000)
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			rows := 0
			for b.Loop() {
				var err error
				switch format {
				case "csv", "jsonl":
					b.Skip("the timeline's rows: BenchmarkBig/export-csv times them with the reading")
				case "pcapng":
					var pw *pcapngWriter
					if pw, err = newPcapngWriter(io.Discard, []string{"/evidence/case.db"}); err != nil {
						b.Fatal(err)
					}
					for _, t := range txns {
						if err = pw.write(t.Query); err == nil {
							err = pw.write(t.Response)
						}
						if err != nil {
							b.Fatal(err)
						}
					}
					err = pw.close()
				default:
					var tw txnWriter
					switch format {
					case "zeek":
						tw = newZeekWriter(io.Discard)
					case "ocsf":
						ow := newOCSFWriter(b.Context(), io.Discard, &query.DB{})
						ow.versions[sessionKey{"/evidence/case.db", 1}] = "bench"
						tw = ow
					case "parquet":
						if tw, err = newParquetWriter(io.Discard); err != nil {
							b.Fatal(err)
						}
					}
					for _, t := range txns {
						if err := tw.write(t); err != nil {
							b.Fatal(err)
						}
					}
					err = tw.close()
				}
				if err != nil {
					b.Fatal(err)
				}
				rows += len(txns)
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}
