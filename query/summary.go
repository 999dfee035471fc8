package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/query/internal/rawsqlite"
)

// The who-resolved summary (schema v6, table who_summary). who-resolved
// aggregates every client message of the names asked: for the busiest name
// of a day on a server that is a million messages, seconds of work at
// about 2 µs each. The recorder computes the same rows for every name once,
// when it stops cleanly (SummarizeWho), and who-resolved without filters
// reads them: a name's few rows instead of its messages. The rows are what
// whoSQL and relays compute for one name, computed in one pass over the
// file in name order; TestWhoSummaryMatches holds the two to the same
// answers.

// WhoSummaryColumns are who_summary's columns, in the order SummarizeWho
// gives their values.
const WhoSummaryColumns = "name_id, session_id, process_id, gpid, gcomm, first_ns, last_ns, queries, mpid, mcomm, muid, statuses, qtypes, answers, via, relay_only"

// maxSummaryName bounds the messages of one name the summary holds in
// memory at once. A file with a name asked more often has no summary, and
// who-resolved reads its messages as before.
const maxSummaryName = 4 << 20

// summaryScanSQL reads every message of every name, in name order, with
// the answers of what each client received.
const summaryScanSQL = `
SELECT m.name_id, m.id, m.session_id, m.obs, m.s_owner, m.r_owner, m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0),
       m.dns_id, m.qtype, m.query_id,
       a.id, a.type, a.data
FROM msgs m INDEXED BY msgs_name LEFT JOIN rrs a ON a.message_id = m.id AND m.obs & 10 = 2
WHERE m.name_id IS NOT NULL
ORDER BY m.name_id`

// summaryOutcomesSQL reads the responses linked to queries, in id order:
// the first for a query is the one queryStatusSQL takes (the least id).
// Read in table order, it costs a twentieth of a lookup per query in name
// order.
const summaryOutcomesSQL = `
SELECT query_id, CASE WHEN orig_len IS NOT NULL THEN -2 ELSE coalesce(rcode, -3) END
FROM msgs NOT INDEXED WHERE query_id IS NOT NULL`

// outcomes holds what became of each query, by msgs id, as queryStatusSQL
// gives it: two bytes a message, 0 for no response.
type outcomes []int16

const outcomeBias = 4 // stored status + outcomeBias; statuses start at -3

func (o outcomes) set(id, status int64) {
	if id > 0 && id < int64(len(o)) && o[id] == 0 && status+outcomeBias > 0 && status+outcomeBias <= math.MaxInt16 {
		o[id] = int16(status + outcomeBias)
	}
}

func (o outcomes) of(id int64) int64 {
	if id > 0 && id < int64(len(o)) && o[id] != 0 {
		return int64(o[id]) - outcomeBias
	}
	return -1 // unanswered
}

// sumMsg is one message of the name being summarized.
type sumMsg struct {
	id, session, obs int64
	sOwner, rOwner   sql.NullInt64
	tSend, tRecv     int64
	dnsID, qtype     sql.NullInt64
	queryID, status  sql.NullInt64
	rrs              []sumRR
}

type sumRR struct {
	id   int64
	typ  int64
	data string
}

// sumOwner is an owners row, as the who-resolved queries join it.
type sumOwner struct {
	process, pid, uid sql.NullInt64
	comm              sql.NullString
}

// sumGroup is one who_summary row being built: one process and the name.
type sumGroup struct {
	session          int64
	process, gpid    sql.NullInt64
	gcomm            sql.NullString
	first, last      int64
	queries          int64
	mpid, muid       sql.NullInt64
	mcomm            sql.NullString
	statuses, qtypes []string
	seenQType        map[int64]bool
	answers          []sumAnswer
	seenAnswer       map[sumAnswerKey]int
}

type sumAnswerKey struct {
	typ  int64
	data string
}

type sumAnswer struct {
	sumAnswerKey
	first, firstID int64
}

type sumGroupKey struct {
	session       int64
	process, gpid sql.NullInt64
	gcomm         sql.NullString
}

// WhoSummary is what SummarizeWho computed: the largest msgs and rrs ids
// it covers, and the rows it gave.
type WhoSummary struct {
	MsgsMax, RRsMax int64
	Rows            int64
}

// SummarizeWho computes the who_summary rows of the dnsrec file at path
// (schema v6, with the stop indexes) and gives each to emit, as the
// values of WhoSummaryColumns in order. The rows come in name order, and
// for a name in the order its processes first asked. It reads the file as
// `dnsrec query` does, so a recorder can summarize its own file before it
// closes it.
func SummarizeWho(ctx context.Context, path string, emit func(vals []any) error) (WhoSummary, error) {
	d, err := Open(ctx, []string{path})
	if err != nil {
		return WhoSummary{}, err
	}
	defer d.Close()
	return d.files[0].summarizeWho(ctx, emit)
}

func (f *file) summarizeWho(ctx context.Context, emit func(vals []any) error) (WhoSummary, error) {
	var sum WhoSummary
	if f.version < 6 {
		return sum, fmt.Errorf("schema v%d: the summary needs v6", f.version)
	}
	if err := f.db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM msgs`).Scan(&sum.MsgsMax); err != nil {
		return sum, err
	}
	if err := f.db.QueryRowContext(ctx, `SELECT coalesce(max(id), 0) FROM rrs`).Scan(&sum.RRsMax); err != nil {
		return sum, err
	}
	owners := map[int64]sumOwner{}
	rs, err := f.db.QueryContext(ctx, `SELECT id, process_id, pid, comm, uid FROM owners`)
	if err != nil {
		return sum, err
	}
	for rs.Next() {
		var id int64
		var o sumOwner
		if err := rs.Scan(&id, &o.process, &o.pid, &o.comm, &o.uid); err != nil {
			rs.Close()
			return sum, err
		}
		owners[id] = o
	}
	if err := rs.Close(); err != nil {
		return sum, err
	}
	names, err := f.db.PrepareContext(ctx, `SELECT name FROM names WHERE id = ?`)
	if err != nil {
		return sum, err
	}
	defer names.Close()

	resolverNames := map[int64]string{}
	outcome := make(outcomes, sum.MsgsMax+1)
	err = f.rawRows(ctx, summaryOutcomesSQL, nil, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
		outcome.set(r.Int64(0), r.Int64(1))
		return nil
	})
	if err != nil {
		return sum, err
	}

	var (
		cur    []*sumMsg
		curID  int64
		last   *sumMsg
		failed error
	)
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		var qname string
		if err := names.QueryRowContext(ctx, curID).Scan(&qname); errors.Is(err, sql.ErrNoRows) {
			cur = cur[:0]
			return nil // a dangling name: who-resolved never finds it
		} else if err != nil {
			return err
		}
		rows, err := f.summarizeName(ctx, curID, qname, cur, owners, resolverNames)
		if err != nil {
			return fmt.Errorf("name %q: %w", qname, err)
		}
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
			sum.Rows++
		}
		cur = cur[:0]
		return nil
	}
	started := make(chan error, 1)
	err = f.rawRows(ctx, summaryScanSQL, nil, false, started, func(r *rawsqlite.Stmt) error {
		nameID, id := r.Int64(0), r.Int64(1)
		if nameID != curID {
			if err := flush(); err != nil {
				failed = err
				return err
			}
			curID, last = nameID, nil
		}
		if last == nil || last.id != id {
			if len(cur) >= maxSummaryName {
				failed = fmt.Errorf("name %d: more than %d messages", nameID, maxSummaryName)
				return failed
			}
			last = &sumMsg{id: id, session: r.Int64(2), obs: r.Int64(3),
				sOwner: rawNullInt(r, 4), rOwner: rawNullInt(r, 5), tSend: r.Int64(6), tRecv: r.Int64(7),
				dnsID: rawNullInt(r, 8), qtype: rawNullInt(r, 9), queryID: rawNullInt(r, 10)}
			if last.obs&5 == 1 {
				last.status = sql.NullInt64{Int64: outcome.of(id), Valid: true}
			}
			cur = append(cur, last)
		}
		if !r.Null(11) {
			last.rrs = append(last.rrs, sumRR{id: r.Int64(11), typ: r.Int64(12), data: string(r.View(13))})
		}
		return nil
	})
	if failed != nil {
		return sum, failed
	}
	if err != nil {
		return sum, err
	}
	return sum, flush()
}

func rawNullInt(r *rawsqlite.Stmt, i int) sql.NullInt64 {
	if r.Null(i) {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: r.Int64(i), Valid: true}
}

// summarizeName computes one name's rows: clientObsSQL, whoResolvedSQL
// and whoResolvedAnswersSQL's aggregates, and the resolver links of
// relays, for the messages of the name.
//
// resolverNames caches the resolvers' names ("dnsmasq(812)") from one name
// to the next.
func (f *file) summarizeName(ctx context.Context, nameID int64, qname string, msgs []*sumMsg, owners map[int64]sumOwner, resolverNames map[int64]string) ([][]any, error) {
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].id < msgs[j].id })
	owner := func(id sql.NullInt64) sumOwner {
		if !id.Valid {
			return sumOwner{}
		}
		return owners[id.Int64]
	}
	groups := map[sumGroupKey]*sumGroup{}
	var order []*sumGroup
	group := func(session int64, o sumOwner) *sumGroup {
		k := sumGroupKey{session: session, process: o.process}
		if !o.process.Valid {
			k.gpid, k.gcomm = o.pid, o.comm
		}
		g := groups[k]
		if g == nil {
			g = &sumGroup{session: session, process: k.process, gpid: k.gpid, gcomm: k.gcomm,
				first: math.MaxInt64, last: math.MinInt64, seenQType: map[int64]bool{}, seenAnswer: map[sumAnswerKey]int{}}
			groups[k] = g
			order = append(order, g)
		}
		return g
	}
	observe := func(g *sumGroup, o sumOwner, ts int64) {
		g.first, g.last = min(g.first, ts), max(g.last, ts)
		if o.pid.Valid && (!g.mpid.Valid || o.pid.Int64 < g.mpid.Int64) {
			g.mpid = o.pid
		}
		if o.uid.Valid && (!g.muid.Valid || o.uid.Int64 < g.muid.Int64) {
			g.muid = o.uid
		}
		if o.comm.Valid && (!g.mcomm.Valid || o.comm.String < g.mcomm.String) {
			g.mcomm = o.comm
		}
	}
	servers := map[int64]bool{}
	for _, m := range msgs {
		if m.obs&5 == 1 { // sent by a client
			o := owner(m.sOwner)
			g := group(m.session, o)
			observe(g, o, m.tSend)
			g.queries++
			if m.status.Valid {
				g.statuses = append(g.statuses, strconv.FormatInt(m.status.Int64, 10))
			}
			if m.qtype.Valid && !g.seenQType[m.qtype.Int64] {
				g.seenQType[m.qtype.Int64] = true
				g.qtypes = append(g.qtypes, strconv.FormatInt(m.qtype.Int64, 10))
			}
		}
		if m.obs&10 == 2 { // received by a client
			o := owner(m.rOwner)
			g := group(m.session, o)
			observe(g, o, m.tRecv)
			for _, a := range m.rrs {
				k := sumAnswerKey{a.typ, a.data}
				if i, ok := g.seenAnswer[k]; ok {
					x := &g.answers[i]
					if m.tRecv < x.first {
						x.first = m.tRecv
					}
					x.firstID = min(x.firstID, a.id)
					continue
				}
				g.seenAnswer[k] = len(g.answers)
				g.answers = append(g.answers, sumAnswer{k, m.tRecv, a.id})
			}
		}
		if m.obs&15 == 11 {
			if p := owner(m.rOwner).process; p.Valid {
				servers[p.Int64] = true
			}
		}
	}
	if len(order) == 0 {
		return nil, nil
	}

	rel := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}, procs: resolverNames}
	if f.version >= 3 && len(servers) > 0 {
		c := relayCollector{servers: servers, byID: map[int64]*relayMsg{}, process: func(id sql.NullInt64) (sql.NullInt64, error) {
			return owner(id).process, nil
		}}
		for _, m := range msgs {
			qtype := int64(-1)
			if m.qtype.Valid {
				qtype = m.qtype.Int64
			}
			if err := c.add(relayMsg{id: m.id, qname: qname, qtype: qtype, dnsID: m.dnsID, tSend: m.tSend, tRecv: m.tRecv},
				m.obs, m.sOwner, m.rOwner, m.queryID); err != nil {
				return nil, err
			}
		}
		rel.link(c.msgs)
		if len(rel.links) > 0 {
			if err := f.relayNames(ctx, rel); err != nil {
				return nil, err
			}
		}
	}

	out := make([][]any, 0, len(order))
	for _, g := range order {
		sort.SliceStable(g.answers, func(i, j int) bool {
			a, b := g.answers[i], g.answers[j]
			if a.first != b.first {
				return a.first < b.first
			}
			return a.firstID < b.firstID
		})
		answers := make([]string, len(g.answers))
		for i, a := range g.answers {
			answers[i] = TypeName(uint16(a.typ)) + " " + DisplayData(uint16(a.typ), a.data)
		}
		js, err := json.Marshal(answers)
		if err != nil {
			return nil, err
		}
		via, relayOnly := "", int64(0)
		if g.process.Valid {
			via = rel.via(g.process.Int64, qname)
			if rel.onlyForwarding(g.process.Int64, qname) {
				relayOnly = 1
			}
		}
		out = append(out, []any{nameID, g.session, sqlValue(g.process), sqlValue(g.gpid), sqlText(g.gcomm),
			g.first, g.last, g.queries, sqlValue(g.mpid), sqlText(g.mcomm), sqlValue(g.muid),
			joinOrNil(g.statuses), joinOrNil(g.qtypes), string(js), via, relayOnly})
	}
	return out, nil
}

func sqlValue(n sql.NullInt64) any {
	if !n.Valid {
		return nil
	}
	return n.Int64
}

func sqlText(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

func joinOrNil(list []string) any {
	if len(list) == 0 {
		return nil
	}
	return strings.Join(list, ",")
}

// whoSummarized tells whether f holds a who_summary that covers all of its
// messages and answers: built at the last clean stop, with nothing
// recorded after it.
func (f *file) whoSummarized(ctx context.Context) (bool, error) {
	if f.version < 6 || f.noSummary {
		return false, nil
	}
	var msgsMax, rrsMax, haveMsgs, haveRRs int64
	err := f.db.QueryRowContext(ctx, `SELECT msgs_max, rrs_max, (SELECT coalesce(max(id), 0) FROM msgs), (SELECT coalesce(max(id), 0) FROM rrs)
		FROM summaries WHERE kind = 'who'`).Scan(&msgsMax, &rrsMax, &haveMsgs, &haveRRs)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the summary's extent: %w", err)
	}
	return msgsMax == haveMsgs && rrsMax == haveRRs, nil
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
	rs, err := f.db.QueryContext(ctx, fmt.Sprintf(whoSummarySQL, where), args...)
	if err != nil {
		return nil, fmt.Errorf("read the summary: %w", err)
	}
	defer rs.Close()
	var (
		rows    []WhoResolvedRow
		parents []sql.NullInt64
	)
	for rs.Next() {
		var (
			k                whoKey
			r                WhoResolvedRow
			firstNS, lastNS  int64
			pid, uid, parent sql.NullInt64
			comm, sts        sql.NullString
			qtypes, argv     sql.NullString
			answers          string
			relayOnly        bool
		)
		if err := rs.Scan(&k.session, &k.process, &k.pid, &k.comm, &k.qname,
			&firstNS, &lastNS, &r.Count,
			&pid, &comm, &r.Exe, &uid, &parent, &r.Host, &sts, &qtypes, &argv, &r.Container,
			&answers, &r.Via, &relayOnly); err != nil {
			return nil, fmt.Errorf("read the summary: %w", err)
		}
		if relayOnly && !resolvers {
			continue
		}
		if err := json.Unmarshal([]byte(answers), &r.Answers); err != nil {
			return nil, fmt.Errorf("read the summary: answers of %q: %w", k.qname, err)
		}
		if len(r.Answers) == 0 {
			r.Answers = nil
		}
		r.QName = k.qname
		r.PID = sql.Null[int64]{V: pid.Int64, Valid: pid.Valid}
		r.UID = sql.Null[int64]{V: uid.Int64, Valid: uid.Valid}
		r.Comm = comm.String
		r.FirstSeen = time.Unix(0, firstNS).UTC()
		r.LastSeen = time.Unix(0, lastNS).UTC()
		r.Status = statusOf(sts)
		r.QTypes = qtypeNames(qtypes)
		r.Argv = parseArgv(argv)
		r.File = f.path
		r.processID = k.process
		rows = append(rows, r)
		parents = append(parents, parent)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read the summary: %w", err)
	}
	rs.Close()
	return rows, f.walkAncestries(ctx, rows, parents)
}
