package query

import (
	"database/sql"
	"reflect"
	"testing"
)

// TestRelayLink covers each kind of link on hand-made timelines: a client
// (process 10) asks a local resolver (process 20), which asks upstream.
// Times are in microseconds for readability.
func TestRelayLink(t *testing.T) {
	proc := func(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: true} }
	at := func(us int64) sql.NullInt64 { return sql.NullInt64{Int64: us * 1000, Valid: true} }
	id := func(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: true} }
	// client query: sent by 10, received by 20 at recv, answered by 20 at answered (0: never)
	down := func(msg, dnsID, recv, answered int64) *relayMsg {
		m := &relayMsg{id: msg, qname: "evil.test", qtype: 1, dnsID: id(dnsID), client: proc(10), server: proc(20),
			sent: true, received: true, tSend: (recv - 1) * 1000, tRecv: recv * 1000}
		if answered > 0 {
			m.respSent = at(answered)
		}
		return m
	}
	// upstream query: sent by 20 at sent to a remote server, its answer back at back (0: never)
	up := func(msg, dnsID, sent, back int64) *relayMsg {
		m := &relayMsg{id: msg, qname: "evil.test", qtype: 1, dnsID: id(dnsID), client: proc(20), sent: true, tSend: sent * 1000}
		if back > 0 {
			m.respRecv = at(back)
		}
		return m
	}
	tests := []struct {
		name     string
		msgs     []*relayMsg
		want     []relayLink
		fwd, own int
	}{
		{"likely: one upstream answer in the client's wait",
			[]*relayMsg{down(1, 7, 100, 400), up(2, 9, 150, 350)},
			[]relayLink{{10, 20, "evil.test", 2, "likely"}}, 1, 0},
		{"exact: the resolver kept the DNS id",
			[]*relayMsg{down(1, 7, 100, 400), up(2, 9, 120, 300), up(3, 7, 150, 350)},
			[]relayLink{{10, 20, "evil.test", 3, "exact"}}, 2, 0},
		{"ambiguous: two fit, the last answer before the client's is named",
			[]*relayMsg{down(1, 7, 100, 400), up(2, 9, 120, 300), up(3, 8, 150, 350)},
			[]relayLink{{10, 20, "evil.test", 3, "ambiguous"}}, 2, 0},
		{"cache: answered with nothing asked upstream; the later query is the resolver's own",
			[]*relayMsg{down(1, 7, 100, 110), up(2, 9, 500, 600)},
			[]relayLink{{10, 20, "evil.test", 0, "cache"}}, 0, 1},
		{"unanswered, but forwarded within the window",
			[]*relayMsg{down(1, 7, 100, 0), up(2, 9, 150, 0)},
			[]relayLink{{10, 20, "evil.test", 2, "likely"}}, 1, 0},
		{"unanswered, nothing sent",
			[]*relayMsg{down(1, 7, 100, 0)},
			[]relayLink{{10, 20, "evil.test", 0, "unanswered"}}, 0, 0},
		{"an upstream answer from before the client asked is not a link",
			[]*relayMsg{up(2, 9, 10, 50), down(1, 7, 100, 400)},
			[]relayLink{{10, 20, "evil.test", 0, "cache"}}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}, procs: map[int64]string{20: "dnsmasq(812)"}}
			r.link(tc.msgs)
			if !reflect.DeepEqual(r.links, tc.want) {
				t.Errorf("links %+v, want %+v", r.links, tc.want)
			}
			k := relayKey{20, "evil.test"}
			if r.forwarded[k] != tc.fwd || r.own[k] != tc.own {
				t.Errorf("forwarded %d, own %d; want %d, %d", r.forwarded[k], r.own[k], tc.fwd, tc.own)
			}
			if got := r.onlyForwarding(20, "evil.test"); got != (tc.fwd > 0 && tc.own == 0) {
				t.Errorf("onlyForwarding = %v", got)
			}
		})
	}
	r := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}, procs: map[int64]string{20: "dnsmasq(812)"}}
	r.link([]*relayMsg{down(1, 7, 100, 400), up(2, 9, 150, 350), down(3, 5, 1000, 1010)})
	if got, want := r.via(10, "evil.test"), "dnsmasq(812): likely 1, cache 1"; got != want {
		t.Errorf("via = %q, want %q", got, want)
	}
}
