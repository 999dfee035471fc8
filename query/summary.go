package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/internal/rawsqlite"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// Reading the summaries (package summary) that a clean stop wrote: who-resolved
// and resolved-to without filters answer from them while they are current.

// summarized tells whether f holds summary s, covering all of its
// messages and answers: only then may a question answer from it.
func (f *file) summarized(ctx context.Context, s summary.Summary) (bool, error) {
	return s.Current(ctx, f.summarySource())
}

// summarySource is f as package summary reads it.
func (f *file) summarySource() summary.Source {
	return summary.Source{DB: f.db, Path: f.path, Immutable: f.immutable, Version: f.version}
}

// whoSummarySQL reads the summary's rows for the names matching a pattern
// (%s), with the same columns as whoResolvedSQL and the answers, resolver
// links and relay flag after them.
const whoSummarySQL = `
SELECT w.session_id, w.process_id, w.gpid, w.gcomm, n.name,
       w.first_ns, w.last_ns, w.queries,
       coalesce(p.pid, w.mpid), coalesce(p.comm, w.mcomm), coalesce(p.exe, ''),
       coalesce(p.uid, w.muid), p.parent_id, coalesce(s.hostname, ''), w.statuses, w.qtypes, p.argv, coalesce(p.container, ''),
       w.answers, w.via, w.relay_only
FROM names n JOIN who_summary w ON w.name_id = n.id
LEFT JOIN processes p ON p.id = w.process_id
LEFT JOIN sessions s ON s.id = w.session_id
WHERE %s`

// whoResolvedSummary answers who-resolved for pat from the summary. Rows
// of a local resolver that only forwarded its clients' queries are left
// out unless resolvers.
func (f *file) whoResolvedSummary(ctx context.Context, pat NamePattern, resolvers bool) ([]WhoResolvedRow, error) {
	where, args := pat.where("n.")
	var (
		rows    []WhoResolvedRow
		parents []sql.NullInt64
		in      interner
	)
	// Read through rawsqlite: a tunnel's domain is tens of thousands of
	// rows, and the driver's locks and boxing were half of their cost.
	err := f.rawRows(ctx, fmt.Sprintf(whoSummarySQL, where), args, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
		if r.Int64(20) != 0 && !resolvers {
			return nil
		}
		var w whoScan
		w.key = whoKey{session: r.Int64(0), process: r.NullInt64(1), pid: r.NullInt64(2), comm: in.nullText(r, 3), qname: string(r.View(4))}
		w.firstNS, w.lastNS, w.r.Count = r.Int64(5), r.Int64(6), r.Int64(7)
		w.pid, w.comm, w.r.Exe, w.uid, w.parent = r.NullInt64(8), in.nullText(r, 9), in.text(r.View(10)), r.NullInt64(11), r.NullInt64(12)
		w.r.Host, w.sts, w.qtypes, w.argv, w.r.Container = in.text(r.View(13)), in.nullText(r, 14), in.nullText(r, 15), in.nullText(r, 16), in.text(r.View(17))
		row, parent := w.row(f.path)
		if err := json.Unmarshal(r.View(18), &row.Answers); err != nil {
			return fmt.Errorf("answers of %q: %w", row.QName, err)
		}
		if len(row.Answers) == 0 {
			row.Answers = nil
		}
		row.Via = in.text(r.View(19))
		rows = append(rows, row)
		parents = append(parents, parent)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the summary: %w", err)
	}
	return rows, f.walkAncestries(ctx, rows, parents)
}

// addrSummarySQL reads the summary's groups for the prefix's conditions
// (%s, on s.type and s.data), with what their first answers' messages
// give: the columns resolvedToSQL reads.
var addrSummarySQL = `
SELECT s.data, s.first_rr, s.first_msg, s.session_id, s.ts_ns, s.ts_ns + coalesce(s.r_dt_ns, 0), s.obs, s.r_owner, coalesce(n.name, ''),
       ` + summary.ClientEnd("s") + `,
       s.last_ns, s.hits, s.rr_name_id IS NOT NULL AND s.rr_name_id IS s.name_id
FROM addr_summary s LEFT JOIN names n ON n.id = s.name_id LEFT JOIN flows f ON f.id = s.flow_id
WHERE %s`

// resolvedToSummary answers resolved-to for prefix from the summary, in
// the order resolvedTo gives.
func (fl *file) resolvedToSummary(ctx context.Context, prefix netip.Prefix) ([]ResolvedToRow, error) {
	where, args, exact, typ := typedAddrRanges(prefix, "s")
	type sumRow struct {
		row   ResolvedToRow
		first summary.AnswerOrder // of the group's first answer
		// Of its message: the session, the receipt, how it was
		// observed and who received it.
		session, recv, obs int64
		owner              sql.NullInt64
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
		s.first = summary.AnswerOrder{RR: r.Int64(1), Msg: r.Int64(2), TS: r.Int64(4)}
		s.session, s.recv, s.obs, s.owner = r.Int64(3), r.Int64(5), r.Int64(6), r.NullInt64(7)
		s.row.QName = in.text(r.View(8))
		s.row.File = fl.path
		s.row.Client = addrPort(in.text(r.View(9)), r.Int64(10))
		s.row.FirstSeen, s.row.LastSeen = time.Unix(0, s.recv).UTC(), time.Unix(0, r.Int64(11)).UTC()
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
	sort.Slice(sums, func(i, j int) bool { return sums[i].first.Before(sums[j].first) })

	var msgs []int64
	for i := range sums {
		if sums[i].row.Chain == "" {
			msgs = append(msgs, sums[i].first.Msg)
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
		if row.Host, err = dict.host(ctx, s.session); err != nil {
			return nil, err
		}
		if s.obs&2 != 0 && s.obs&8 == 0 && s.owner.Valid {
			if row.Proc, err = dict.owner(ctx, s.owner.Int64); err != nil {
				return nil, err
			}
			if row.Proc != nil && row.Proc.Ancestry == nil && row.Proc.ID != 0 {
				if row.Proc.Ancestry, err = dict.ancestry(ctx, row.Proc.ParentID); err != nil {
					return nil, err
				}
			}
		}
		if row.Chain == "" {
			row.Chain = Chain(row.QName, row.Address, chains[s.first.Msg])
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
