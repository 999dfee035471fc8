package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/internal/rawsqlite"
)

// The resolved-to summary (schema v7, table addr_summary). resolved-to
// reads every answer with an address in the prefix, with its message, name
// and flow: for a CDN address shared by thousands of names that is tens of
// thousands of answers and hundreds of milliseconds. The recorder groups
// them once, the way resolvedTo does (per address, session, name and
// receiving process or remote client), when it stops cleanly
// (SummarizeAddrs), and resolved-to without filters reads the groups.
// TestWhoSummaryMatches and TestWhoSummaryExtent hold the two to the same
// answers.

// AddrSummaryColumns are addr_summary's columns, in the order
// SummarizeAddrs gives their values.
const AddrSummaryColumns = "type, data, first_msg, first_rr, rr_name_id, session_id, name_id, ts_ns, r_dt_ns, obs, r_owner, flow_id, last_ns, hits"

// addrScanSQL reads the answers of one address type in address order, with
// what resolvedToSQL reads of each.
var addrScanSQL = `
SELECT r.data, r.id, m.id, m.session_id, m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0), m.obs, m.r_owner, m.name_id,
       ` + clientEndSQL("m") + `,
       m.r_dt_ns, m.flow_id, r.name_id
FROM rrs r INDEXED BY %s JOIN msgs m ON m.id = r.message_id LEFT JOIN flows f ON f.id = m.flow_id
WHERE r.type = %d
ORDER BY r.data`

// addrHit is one answer with the address being summarized.
type addrHit struct {
	rr, msg, session, ts, recv, obs int64
	owner, nameID                   sql.NullInt64
	caddr                           string
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

// SummarizeAddrs is Summaries' addr_summary builder: see Summary.Build.
// The rows come in the table's order.
func SummarizeAddrs(ctx context.Context, path string, emit func(vals []any) error) (SummaryExtent, error) {
	return addrSummary.Build(ctx, path, emit)
}

func (f *file) summarizeAddrs(ctx context.Context, in *summaryInput, emit func(vals []any) error) error {
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
			if len(nameCache) >= maxDictCache {
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
			hits []addrHit
			cur  string
		)
		flush := func() error {
			if len(hits) == 0 {
				return nil
			}
			rows, err := summarizeAddr(t.typ, cur, hits, in.owners, qname)
			if err != nil {
				return fmt.Errorf("address %s: %w", cur, err)
			}
			for _, r := range rows {
				if err := emit(r); err != nil {
					return err
				}
				in.sum.Rows++
			}
			hits = hits[:0]
			return nil
		}
		err := f.rawRows(ctx, fmt.Sprintf(addrScanSQL, t.index, t.typ), nil, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
			if data := r.View(0); string(data) != cur || len(hits) == 0 {
				if err := flush(); err != nil {
					return err
				}
				cur = string(data)
			}
			if len(hits) >= maxSummaryName {
				return fmt.Errorf("address %s: more than %d answers", cur, maxSummaryName)
			}
			hits = append(hits, addrHit{rr: r.Int64(1), msg: r.Int64(2), session: r.Int64(3), ts: r.Int64(4), recv: r.Int64(5), obs: r.Int64(6),
				owner: rawNullInt(r, 7), nameID: rawNullInt(r, 8), caddr: string(r.View(9)), cport: r.Int64(10), rdt: rawNullInt(r, 11), flow: rawNullInt(r, 12), rrName: rawNullInt(r, 13)})
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

// summarizeAddr groups one address's answers as resolvedTo does.
func summarizeAddr(typ uint16, data string, hits []addrHit, owners map[int64]sumOwner,
	qname func(sql.NullInt64) (string, error)) ([][]any, error) {
	sort.Slice(hits, func(i, j int) bool { return hitBefore(&hits[i], &hits[j]) })
	type group struct {
		first   *addrHit
		last, n int64
	}
	groups := map[addrGroupKey]*group{}
	var order []*group
	for i := range hits {
		h := &hits[i]
		name, err := qname(h.nameID)
		if err != nil {
			return nil, err
		}
		k := addrGroupKey{session: h.session, qname: name}
		local := h.obs&2 != 0 && h.obs&8 == 0 && h.owner.Valid
		if local {
			k.process = -h.owner.Int64
			if p := owners[h.owner.Int64].process; p.Valid && p.Int64 != 0 {
				k.process = p.Int64
			}
		} else if a, err := netip.ParseAddr(h.caddr); err == nil {
			k.client = a.String()
		}
		if g := groups[k]; g != nil {
			g.n++
			g.last = h.recv
			continue
		}
		g := &group{first: h, last: h.recv, n: 1}
		groups[k] = g
		order = append(order, g)
	}
	// In the table's order: by the first answer's ids.
	sort.Slice(order, func(i, j int) bool {
		a, b := order[i].first, order[j].first
		return a.msg < b.msg || a.msg == b.msg && a.rr < b.rr
	})
	out := make([][]any, len(order))
	for i, g := range order {
		h := g.first
		out[i] = []any{int64(typ), data, h.msg, h.rr, sqlValue(h.rrName), h.session, sqlValue(h.nameID), h.ts, sqlValue(h.rdt), h.obs, sqlValue(h.owner), sqlValue(h.flow), g.last, g.n}
	}
	return out, nil
}

// hitBefore is resolved-to's order of answers: by the message's time, its
// id, then the answer's.
func hitBefore(a, b *addrHit) bool {
	if a.ts != b.ts {
		return a.ts < b.ts
	}
	if a.msg != b.msg {
		return a.msg < b.msg
	}
	return a.rr < b.rr
}

// addrSummarySQL reads the summary's groups for the prefix's conditions
// (%s, on s.type and s.data), with what their first answers' messages
// give: the columns resolvedToSQL reads.
var addrSummarySQL = `
SELECT s.data, s.first_rr, s.first_msg, s.session_id, s.ts_ns, s.ts_ns + coalesce(s.r_dt_ns, 0), s.obs, s.r_owner, coalesce(n.name, ''),
       ` + clientEndSQL("s") + `,
       s.last_ns, s.hits, s.rr_name_id IS NOT NULL AND s.rr_name_id IS s.name_id
FROM addr_summary s LEFT JOIN names n ON n.id = s.name_id LEFT JOIN flows f ON f.id = s.flow_id
WHERE %s`

// resolvedToSummary answers resolved-to for prefix from the summary, in
// the order resolvedTo gives.
func (fl *file) resolvedToSummary(ctx context.Context, prefix netip.Prefix) ([]ResolvedToRow, error) {
	where, args, exact, typ := typedAddrRanges(prefix, "s")
	type sumRow struct {
		row   ResolvedToRow
		first addrHit
	}
	var (
		sums []sumRow
		in   interner
	)
	err := fl.rawRows(ctx, fmt.Sprintf(addrSummarySQL, where), args, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
		var s sumRow
		s.row.Address = string(r.View(0))
		if !exact {
			if a, err := netip.ParseAddr(s.row.Address); err != nil || !prefix.Contains(a) {
				return nil
			}
		}
		s.first = addrHit{rr: r.Int64(1), msg: r.Int64(2), session: r.Int64(3), ts: r.Int64(4), recv: r.Int64(5), obs: r.Int64(6), owner: rawNullInt(r, 7)}
		s.row.QName = in.text(r.View(8))
		s.row.File = fl.path
		s.row.Client = addrPort(in.text(r.View(9)), r.Int64(10))
		s.row.FirstSeen, s.row.LastSeen = time.Unix(0, s.first.recv).UTC(), time.Unix(0, r.Int64(11)).UTC()
		s.row.Count = r.Int64(12)
		if r.Int64(13) != 0 {
			// The answer's own name is the question: Chain would find it
			// first, with nothing to follow.
			s.row.Chain = s.row.QName + " > " + dnstext.TypeName(typ) + " " + s.row.Address
		}
		sums = append(sums, s)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the summary: %w", err)
	}
	sort.Slice(sums, func(i, j int) bool { return hitBefore(&sums[i].first, &sums[j].first) })

	var msgs []int64
	for i := range sums {
		if sums[i].row.Chain == "" {
			msgs = append(msgs, sums[i].first.msg)
		}
	}
	rwhere, rargs, _, _ := typedAddrRanges(prefix, "r")
	chains, err := fl.chainRecords(ctx, msgs, "r.type = "+strconv.Itoa(int(dns.TypeCNAME))+" OR "+rwhere, rargs)
	if err != nil {
		return nil, err
	}
	dict := fl.dicts()
	out := make([]ResolvedToRow, len(sums))
	for i := range sums {
		s := &sums[i]
		row := s.row
		if row.Host, err = dict.host(ctx, s.first.session); err != nil {
			return nil, err
		}
		if s.first.obs&2 != 0 && s.first.obs&8 == 0 && s.first.owner.Valid {
			if row.Proc, err = dict.owner(ctx, s.first.owner.Int64); err != nil {
				return nil, err
			}
			if row.Proc != nil && row.Proc.Ancestry == nil && row.Proc.ID != 0 {
				if row.Proc.Ancestry, err = dict.ancestry(ctx, row.Proc.ParentID); err != nil {
					return nil, err
				}
			}
		}
		if row.Chain == "" {
			row.Chain = Chain(row.QName, row.Address, chains[s.first.msg])
		}
		out[i] = row
	}
	return out, nil
}

// chainRecords reads, of the answer records of messages ids, those Chain
// can use: the CNAMEs, and the address records that where (with args)
// selects, in one statement. Chain reads the same from all of them.
func (fl *file) chainRecords(ctx context.Context, ids []int64, where string, args []any) (map[int64][]RR, error) {
	out := map[int64][]RR{}
	if len(ids) == 0 {
		return out, nil
	}
	js, err := json.Marshal(ids)
	if err != nil {
		return nil, err
	}
	var in interner
	err = fl.rawRows(ctx, `SELECT r.message_id, coalesce(n.name, ''), r.type, r.data FROM rrs r LEFT JOIN names n ON n.id = r.name_id
		WHERE r.message_id IN (SELECT value FROM json_each(?)) AND (`+where+`) ORDER BY r.message_id, r.id`, append([]any{string(js)}, args...), false, make(chan error, 1),
		func(r *rawsqlite.Stmt) error {
			id := r.Int64(0)
			out[id] = append(out[id], RR{Name: in.text(r.View(1)), Type: uint16(r.Int64(2)), Data: in.text(r.View(3))})
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("answers of %d messages: %w", len(ids), err)
	}
	return out, nil
}
