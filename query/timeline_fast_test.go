package query

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestMessageRowMatchesCells: the writers' own rendering of a message
// (messageRow) is byte for byte what Row(TimelineRow(...)) writes, in every
// format that has one, for awkward values too.
func TestMessageRowMatchesCells(t *testing.T) {
	ts := time.Date(2024, 3, 1, 12, 0, 0, 123456789, time.UTC)
	proc := &Process{PID: 4242, Comm: "cu\"rl, x", Container: "abc\n"}
	plain := &Process{PID: 7, Comm: "dnsmasq"}
	msgs := []*Message{
		{Host: "web1", ID: 1, Time: ts, Proto: "udp", Src: netip.MustParseAddrPort("127.0.0.1:40000"), Dst: netip.MustParseAddrPort("127.0.0.53:53"),
			Sender: &Party{Proc: plain, Iface: "lo"}, QName: "example.com", QType: dns.TypeA, QClass: 1},
		{Host: "web1", ID: 2, Time: ts.Add(time.Millisecond), Proto: "udp", Src: netip.MustParseAddrPort("127.0.0.53:53"), Dst: netip.MustParseAddrPort("127.0.0.1:40000"),
			Sender: &Party{Proc: plain}, Receiver: &Party{Proc: proc, Iface: "eth 0"}, Response: true, Rcode: 0, QName: "example.com", QType: dns.TypeA,
			Answers: []RR{{Type: dns.TypeCNAME, Data: "a.example.com"}, {Type: dns.TypeMX, Data: "10 mx.example.com."}, {Type: dns.TypeA, Data: "192.0.2.1"}},
			QueryID: 1, Latency: 1234567 * time.Nanosecond},
		{Host: "", ID: 3, Time: ts.In(time.FixedZone("X", 3600)), Proto: "tcp", Src: netip.MustParseAddrPort("[2001:db8::1]:53"), Dst: netip.MustParseAddrPort("[::ffff:192.0.2.1]:5353"),
			Response: true, Rcode: -1, Cut: true, Size: 900, ParseErr: "bad \"label\"", QRMismatch: true},
		{Host: " lead", ID: 4, Time: ts, Proto: "udp", Src: netip.MustParseAddrPort("[fe80::1%eth0]:53"), Response: true, Rcode: 3, QName: "ex\\\"ample.é", QType: 65534,
			Answers: []RR{{Type: dns.TypeTXT, Data: "\"v=spf1\" \\010"}}, Latency: -1},
		{ID: 5, Time: ts, Receiver: &Party{}, Sender: &Party{Proc: &Process{}}, Rcode: 5000, Response: true},
	}
	for _, f := range []Format{FormatCSV, FormatJSON, FormatJSONL} {
		for _, multi := range []bool{false, true} {
			cols := TimelineColumns
			if multi {
				cols = append([]string{"file"}, cols...)
			}
			var want, got bytes.Buffer
			wa, err := NewRowWriter(&want, f, cols, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := NewRowWriter(&got, f, cols, WriteOptions{})
			for i, m := range msgs {
				via := []string{"", "dnsmasq(7)", "a\tb"}[i%3]
				row := TimelineRow(m, via)
				file := ""
				if multi {
					file = "/ev/\"case\".db"
					row = append([]any{file}, row...)
				}
				if err := wa.Row(row); err != nil {
					t.Fatal(err)
				}
				if err := wb.(messageRowWriter).messageRow(file, m, via); err != nil {
					t.Fatal(err)
				}
			}
			wa.Close()
			wb.Close()
			if want.String() != got.String() {
				t.Errorf("%s multi=%v: messageRow wrote\n%s\nRow wrote\n%s", f, multi, got.String(), want.String())
			}
		}
	}
}
