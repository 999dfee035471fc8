package relay

import (
	"database/sql"
	"reflect"
	"testing"
)

// TestFind covers each kind of link on hand-made timelines: a client
// (process 10) asks a local resolver (process 20), which asks upstream.
// Times are in microseconds for readability.
func TestFind(t *testing.T) {
	proc := func(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: true} }
	at := func(us int64) sql.NullInt64 { return sql.NullInt64{Int64: us * 1000, Valid: true} }
	id := func(n int64) sql.NullInt64 { return sql.NullInt64{Int64: n, Valid: true} }
	// client query: sent by 10, received by 20 at recv, answered by 20 at answered (0: never)
	down := func(msg, dnsID, recv, answered int64) *Msg {
		m := &Msg{ID: msg, QName: "evil.test", QType: 1, DNSID: id(dnsID), Client: proc(10), Server: proc(20),
			Sent: true, Received: true, TSend: (recv - 1) * 1000, TRecv: recv * 1000}
		if answered > 0 {
			m.RespSent = at(answered)
		}
		return m
	}
	// upstream query: sent by 20 at sent to a remote server, its answer back at back (0: never)
	up := func(msg, dnsID, sent, back int64) *Msg {
		m := &Msg{ID: msg, QName: "evil.test", QType: 1, DNSID: id(dnsID), Client: proc(20), Sent: true, TSend: sent * 1000}
		if back > 0 {
			m.RespRecv = at(back)
		}
		return m
	}
	tests := []struct {
		name     string
		msgs     []*Msg
		want     []Link
		fwd, own int
	}{
		{"likely: one upstream answer in the client's wait",
			[]*Msg{down(1, 7, 100, 400), up(2, 9, 150, 350)},
			[]Link{{10, 20, "evil.test", 2, "likely"}}, 1, 0},
		{"exact: the resolver kept the DNS id",
			[]*Msg{down(1, 7, 100, 400), up(2, 9, 120, 300), up(3, 7, 150, 350)},
			[]Link{{10, 20, "evil.test", 3, "exact"}}, 2, 0},
		{"ambiguous: two fit, the last answer before the client's is named",
			[]*Msg{down(1, 7, 100, 400), up(2, 9, 120, 300), up(3, 8, 150, 350)},
			[]Link{{10, 20, "evil.test", 3, "ambiguous"}}, 2, 0},
		{"cache: answered with nothing asked upstream; the later query is the resolver's own",
			[]*Msg{down(1, 7, 100, 110), up(2, 9, 500, 600)},
			[]Link{{10, 20, "evil.test", 0, "cache"}}, 0, 1},
		{"unanswered, but forwarded within the window",
			[]*Msg{down(1, 7, 100, 0), up(2, 9, 150, 0)},
			[]Link{{10, 20, "evil.test", 2, "likely"}}, 1, 0},
		{"unanswered, nothing sent",
			[]*Msg{down(1, 7, 100, 0)},
			[]Link{{10, 20, "evil.test", 0, "unanswered"}}, 0, 0},
		{"an upstream answer from before the client asked is not a link",
			[]*Msg{up(2, 9, 10, 50), down(1, 7, 100, 400)},
			[]Link{{10, 20, "evil.test", 0, "cache"}}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := NewSet(map[int64]string{20: "dnsmasq(812)"})
			r.Find(tc.msgs)
			if !reflect.DeepEqual(r.Links, tc.want) {
				t.Errorf("links %+v, want %+v", r.Links, tc.want)
			}
			k := key{20, "evil.test"}
			if r.forwarded[k] != tc.fwd || r.own[k] != tc.own {
				t.Errorf("forwarded %d, own %d; want %d, %d", r.forwarded[k], r.own[k], tc.fwd, tc.own)
			}
			if got := r.OnlyForwarding(20, "evil.test"); got != (tc.fwd > 0 && tc.own == 0) {
				t.Errorf("OnlyForwarding = %v", got)
			}
		})
	}
	r := NewSet(map[int64]string{20: "dnsmasq(812)"})
	r.Find([]*Msg{down(1, 7, 100, 400), up(2, 9, 150, 350), down(3, 5, 1000, 1010)})
	if got, want := r.Via(10, "evil.test"), "dnsmasq(812): likely 1, cache 1"; got != want {
		t.Errorf("via = %q, want %q", got, want)
	}
}
