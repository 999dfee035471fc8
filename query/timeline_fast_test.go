package query

import (
	"bytes"
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/query/querytest"

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
	for _, f := range []format.Format{format.FormatCSV, format.FormatJSON, format.FormatJSONL} {
		for _, multi := range []bool{false, true} {
			cols := TimelineColumns
			if multi {
				cols = append([]string{"file"}, cols...)
			}
			var want, got bytes.Buffer
			wa, err := format.NewRowWriter(&want, f, cols, format.WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wb, _ := format.NewRowWriter(&got, f, cols, format.WriteOptions{})
			var scratch [64]byte
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
				if err := messageRow(wb.(format.CellRowWriter), file, m, via, &scratch); err != nil {
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

// TestStreamExtremeValues: a stream (read through rawsqlite) and a page
// (through database/sql) give the same messages, also where fields hold
// values no recorder writes: huge, negative, past 32 bits.
func TestStreamExtremeValues(t *testing.T) {
	p := querytest.IncidentFile(t, filepath.Join(t.TempDir(), "case.db"), "web01")
	raw, err := sql.Open("sqlite", p)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE msgs SET rcode = 9000 WHERE id = (SELECT min(id) FROM msgs WHERE rcode IS NOT NULL)`,
		`UPDATE msgs SET orig_len = 5000000 WHERE id = (SELECT max(id) FROM msgs)`,
		`UPDATE msgs SET s_owner = 3000000000 WHERE id = (SELECT min(id) FROM msgs WHERE s_owner IS NOT NULL)`,
		`UPDATE msgs SET r_owner = -2 WHERE id = (SELECT max(id) FROM msgs WHERE r_owner IS NOT NULL)`,
		`UPDATE msgs SET s_socket = 9000000000 WHERE id = (SELECT min(id) FROM msgs WHERE s_socket IS NOT NULL)`,
		`UPDATE msgs SET r_dt_ns = -5 WHERE id = (SELECT min(id) FROM msgs WHERE r_dt_ns IS NOT NULL)`,
		`UPDATE msgs SET latency_ns = 99000000000 WHERE id = (SELECT max(id) FROM msgs WHERE latency_ns IS NOT NULL)`,
		`UPDATE msgs SET query_id = 5000000000 WHERE id = (SELECT min(id) FROM msgs WHERE query_id IS NOT NULL)`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(q, err)
		}
	}
	raw.Close()
	db, err := Open(context.Background(), []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	read := func(opts MessageOptions) []*Message {
		var out []*Message
		if err := db.Messages(context.Background(), opts, func(m *Message) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, rawBytes := range []bool{false, true} {
		stream := read(MessageOptions{Raw: rawBytes, Ancestry: true})
		page := read(MessageOptions{Filter: Filter{Limit: 10_000}, Raw: rawBytes, Ancestry: true})
		if len(stream) < 10 || !reflect.DeepEqual(stream, page) {
			t.Errorf("raw=%v: the stream's %d messages differ from the page's %d", rawBytes, len(stream), len(page))
			for i := range min(len(stream), len(page)) {
				if !reflect.DeepEqual(stream[i], page[i]) {
					t.Errorf("first difference at %d:\n%+v\n%+v", i, *stream[i], *page[i])
					break
				}
			}
		}
	}
}
