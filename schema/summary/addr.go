package summary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/rawsqlite"
)

// The resolved-to summary (schema v7, table addr_summary). resolved-to
// reads every answer with an address in the prefix, with its message, name
// and flow: for a CDN address shared by many names, a great many answers.
// A clean stop groups them once, the way query's resolvedTo does (per
// address, session, name and receiving process or remote client), and
// resolved-to without filters reads the groups. query's
// TestWhoSummaryMatches and TestWhoSummaryExtent hold the two to the same
// answers.

// AddrColumns are addr_summary's columns, in the order Addr's builder
// gives their values.
const AddrColumns = "type, data, first_msg, first_rr, rr_name_id, session_id, name_id, ts_ns, r_dt_ns, obs, r_owner, flow_id, last_ns, hits"

// addrScanSQL reads the answers of one address type in address order, with
// what resolvedToSQL reads of each.
var addrScanSQL = `
SELECT r.data, r.id, m.id, m.session_id, m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0), m.obs, m.r_owner, m.name_id,
       ` + ClientEnd("m") + `,
       m.r_dt_ns, m.flow_id, r.name_id
FROM rrs r INDEXED BY %s JOIN msgs m ON m.id = r.message_id LEFT JOIN flows f ON f.id = m.flow_id
WHERE r.type = %d
ORDER BY r.data`

// maxNameCache bounds the names the builder keeps from one address to the
// next.
const maxNameCache = 200_000

// addrHit is one answer with the address being summarized.
type addrHit struct {
	rr, msg, session, ts, recv, obs int64
	owner, nameID                   sql.NullInt64
	cport                           int64
	rdt, flow, rrName               sql.NullInt64 // as stored
}

// addrGroupKey is resolvedKey without the address: how resolvedTo groups
// one address's answers.
type addrGroupKey struct {
	session int64
	qname   string
	process int64  // local: processes.id or -owners.id; 0 remote
	client  string // remote: the client's address
}

func (f Source) addrs(ctx context.Context, in *input, emit func(vals []any) error) error {
	nameCache := map[int64]sql.NullString{}
	// The name as resolved-to shows it: '' for none, or a dangling id.
	qname := func(id sql.NullInt64) (string, error) {
		if !id.Valid {
			return "", nil
		}
		n, ok := nameCache[id.Int64]
		if !ok {
			err := in.names.QueryRowContext(ctx, id.Int64).Scan(&n)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return "", err
			}
			if len(nameCache) >= maxNameCache {
				clear(nameCache)
			}
			nameCache[id.Int64] = n
		}
		return n.String, nil
	}

	for _, t := range []struct {
		typ   uint16
		index string
	}{{dns.TypeA, "rrs_addr4"}, {dns.TypeAAAA, "rrs_addr6"}} {
		var (
			cur  addrGroups
			data string
		)
		flush := func() error {
			if cur.hits == 0 {
				return nil
			}
			for _, r := range cur.rows(t.typ, data) {
				if err := emit(r); err != nil {
					return err
				}
				in.sum.Rows++
			}
			cur.reset()
			return nil
		}
		err := f.rawRows(ctx, fmt.Sprintf(addrScanSQL, t.index, t.typ), func(r *rawsqlite.Stmt) error {
			if v := r.View(0); string(v) != data || cur.hits == 0 {
				if err := flush(); err != nil {
					return err
				}
				data = string(v)
			}
			if cur.hits >= maxName {
				return fmt.Errorf("address %s: more than %d answers", data, maxName)
			}
			h := addrHit{rr: r.Int64(1), msg: r.Int64(2), session: r.Int64(3), ts: r.Int64(4), recv: r.Int64(5), obs: r.Int64(6),
				owner: r.NullInt64(7), nameID: r.NullInt64(8), cport: r.Int64(10), rdt: r.NullInt64(11), flow: r.NullInt64(12), rrName: r.NullInt64(13)}
			k, err := addrKey(&h, r.View(9), in.owners, qname)
			if err != nil {
				return fmt.Errorf("address %s: %w", data, err)
			}
			cur.add(k, &h)
			return nil
		})
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// addrKey is the group of one answer as resolvedTo groups them.
func addrKey(h *addrHit, caddr []byte, owners map[int64]owner, qname func(sql.NullInt64) (string, error)) (addrGroupKey, error) {
	name, err := qname(h.nameID)
	if err != nil {
		return addrGroupKey{}, err
	}
	k := addrGroupKey{session: h.session, qname: name}
	local := h.obs&2 != 0 && h.obs&8 == 0 && h.owner.Valid
	if local {
		k.process = -h.owner.Int64
		if p := owners[h.owner.Int64].process; p.Valid && p.Int64 != 0 {
			k.process = p.Int64
		}
	} else if a, err := netip.ParseAddr(string(caddr)); err == nil {
		k.client = a.String()
	}
	return k, nil
}

// addrGroups are one address's groups as they are built: each keeps its
// first and last answer in resolved-to's order and a count, so that an
// address shared by millions of answers (a CDN's, a sinkhole's) costs a
// few groups, not its answers.
type addrGroups struct {
	groups map[addrGroupKey]*addrGroup
	hits   int
}

type addrGroup struct {
	first, last addrHit
	n           int64
}

func (a *addrGroups) add(k addrGroupKey, h *addrHit) {
	a.hits++
	if a.groups == nil {
		a.groups = map[addrGroupKey]*addrGroup{}
	}
	g := a.groups[k]
	if g == nil {
		a.groups[k] = &addrGroup{first: *h, last: *h, n: 1}
		return
	}
	g.n++
	if hitBefore(h, &g.first) {
		g.first = *h
	}
	if hitBefore(&g.last, h) {
		g.last = *h
	}
}

func (a *addrGroups) reset() {
	clear(a.groups)
	a.hits = 0
}

// rows are the groups' rows, in the table's order: by the first answer's
// ids.
func (a *addrGroups) rows(typ uint16, data string) [][]any {
	order := make([]*addrGroup, 0, len(a.groups))
	for _, g := range a.groups {
		order = append(order, g)
	}
	sort.Slice(order, func(i, j int) bool {
		x, y := &order[i].first, &order[j].first
		return x.msg < y.msg || x.msg == y.msg && x.rr < y.rr
	})
	out := make([][]any, len(order))
	for i, g := range order {
		h := &g.first
		out[i] = []any{int64(typ), data, h.msg, h.rr, sqlValue(h.rrName), h.session, sqlValue(h.nameID), h.ts, sqlValue(h.rdt), h.obs, sqlValue(h.owner), sqlValue(h.flow), g.last.recv, g.n}
	}
	return out
}

// AnswerOrder is an answer's place in resolved-to's order: by its
// message's time, the message's id, then the answer's id. The builder
// groups the answers in that order, and query sorts the groups read back
// by their first answers in it.
type AnswerOrder struct{ TS, Msg, RR int64 }

// Before tells whether a comes before b.
func (a AnswerOrder) Before(b AnswerOrder) bool {
	if a.TS != b.TS {
		return a.TS < b.TS
	}
	if a.Msg != b.Msg {
		return a.Msg < b.Msg
	}
	return a.RR < b.RR
}

func hitBefore(a, b *addrHit) bool {
	return AnswerOrder{a.ts, a.msg, a.rr}.Before(AnswerOrder{b.ts, b.msg, b.rr})
}
