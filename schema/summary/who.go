package summary

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/internal/rawsqlite"
	"github.com/dnsrec/dnsrec/internal/relay"
)

// The who-resolved summary (schema v6, table who_summary). who-resolved
// aggregates every client message of the names asked, which for a busy
// name is many messages with their resolver links. A clean stop computes
// the same rows for every name once, and who-resolved without filters
// reads a name's few rows instead of its messages. The rows are what
// query's who-resolved and resolver links compute for one name, computed
// in one pass over the file in name order; query's TestWhoSummaryMatches
// holds the two to the same answers.

// WhoColumns are who_summary's columns, in the order Who's builder gives
// their values.
const WhoColumns = "name_id, session_id, process_id, gpid, gcomm, first_ns, last_ns, queries, mpid, mcomm, muid, statuses, qtypes, answers, via, relay_only"

// maxName bounds the messages of one name (or answers of one address) a
// builder holds in memory at once. A file with a name asked more often has
// no summary, and its questions read the messages.
const maxName = 4 << 20

// scanSQL reads every message of every name, in name order, with
// the answers of what each client received.
const scanSQL = `
SELECT m.name_id, m.id, m.session_id, m.obs, m.s_owner, m.r_owner, m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0),
       m.dns_id, m.qtype, m.query_id,
       a.id, a.type, a.data
FROM msgs m INDEXED BY msgs_name LEFT JOIN rrs a ON a.message_id = m.id AND m.obs & 10 = 2
WHERE m.name_id IS NOT NULL
ORDER BY m.name_id`

// outcomesSQL reads the responses linked to queries, in id order:
// the first for a query is the one query's queryStatusSQL takes (the least id).
// Read in table order, it costs a twentieth of a lookup per query in name
// order.
const outcomesSQL = `
SELECT query_id, CASE WHEN orig_len IS NOT NULL THEN -2 ELSE coalesce(rcode, -3) END
FROM msgs NOT INDEXED WHERE query_id IS NOT NULL`

// outcomes holds what became of each query, by msgs id, as queryStatusSQL
// gives it: one byte a message, 0 for no response. A status too large for
// the byte (an extended rcode, rare) is kept in more, by id: at ten million
// messages the byte is 10 MB of the finish's memory.
type outcomes struct {
	by   []uint8
	more map[int64]int64
}

const outcomeBias = 4 // stored status + outcomeBias; statuses start at -3

func newOutcomes(maxID int64) *outcomes {
	return &outcomes{by: make([]uint8, maxID+1), more: map[int64]int64{}}
}

func (o *outcomes) set(id, status int64) {
	if id <= 0 || id >= int64(len(o.by)) || o.by[id] != 0 || status+outcomeBias <= 0 {
		return
	}
	if status+outcomeBias < math.MaxUint8 {
		o.by[id] = uint8(status + outcomeBias)
		return
	}
	o.by[id] = math.MaxUint8
	o.more[id] = status
}

func (o *outcomes) of(id int64) int64 {
	if id <= 0 || id >= int64(len(o.by)) || o.by[id] == 0 {
		return -1 // unanswered
	}
	if o.by[id] == math.MaxUint8 {
		return o.more[id]
	}
	return int64(o.by[id]) - outcomeBias
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

// sumGroup is one who_summary row being built: one process and the name.
type sumGroup struct {
	sumGroupKey
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

func (f Source) who(ctx context.Context, in *input, emit func(vals []any) error) error {
	resolverNames := map[int64]string{}
	outcome := newOutcomes(in.sum.MsgsMax)
	err := f.rawRows(ctx, outcomesSQL, func(r *rawsqlite.Stmt) error {
		outcome.set(r.Int64(0), r.Int64(1))
		return nil
	})
	if err != nil {
		return err
	}

	var (
		cur   []*sumMsg
		curID int64
		last  *sumMsg
	)
	flush := func() error {
		if len(cur) == 0 {
			return nil
		}
		var qname string
		if err := in.names.QueryRowContext(ctx, curID).Scan(&qname); errors.Is(err, sql.ErrNoRows) {
			cur = cur[:0]
			return nil // a dangling name: who-resolved never finds it
		} else if err != nil {
			return err
		}
		rows, err := f.name(ctx, curID, qname, cur, in.owners, resolverNames)
		if err != nil {
			return fmt.Errorf("name %q: %w", qname, err)
		}
		for _, r := range rows {
			if err := emit(r); err != nil {
				return err
			}
			in.sum.Rows++
		}
		cur = cur[:0]
		return nil
	}
	err = f.rawRows(ctx, scanSQL, func(r *rawsqlite.Stmt) error {
		nameID, id := r.Int64(0), r.Int64(1)
		if nameID != curID {
			if err := flush(); err != nil {
				return err
			}
			curID, last = nameID, nil
		}
		if last == nil || last.id != id {
			if len(cur) >= maxName {
				return fmt.Errorf("name %d: more than %d messages", nameID, maxName)
			}
			last = &sumMsg{id: id, session: r.Int64(2), obs: r.Int64(3),
				sOwner: r.NullInt64(4), rOwner: r.NullInt64(5), tSend: r.Int64(6), tRecv: r.Int64(7),
				dnsID: r.NullInt64(8), qtype: r.NullInt64(9), queryID: r.NullInt64(10)}
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
	if err != nil {
		return err
	}
	return flush()
}

// name computes one name's rows: query's clientObsSQL, whoResolvedSQL
// and whoResolvedAnswersSQL's aggregates, and the resolver links of
// package relay, for the messages of the name.
//
// resolverNames caches the resolvers' names ("dnsmasq(812)") from one name
// to the next.
func (f Source) name(ctx context.Context, nameID int64, qname string, msgs []*sumMsg, owners map[int64]owner, resolverNames map[int64]string) ([][]any, error) {
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].id < msgs[j].id })
	ownerOf := func(id sql.NullInt64) owner {
		if !id.Valid {
			return owner{}
		}
		return owners[id.Int64]
	}
	groups := map[sumGroupKey]*sumGroup{}
	var order []*sumGroup
	group := func(session int64, o owner) *sumGroup {
		k := sumGroupKey{session: session, process: o.process}
		if !o.process.Valid {
			k.gpid, k.gcomm = o.pid, o.comm
		}
		g := groups[k]
		if g == nil {
			g = &sumGroup{sumGroupKey: k,
				first: math.MaxInt64, last: math.MinInt64, seenQType: map[int64]bool{}, seenAnswer: map[sumAnswerKey]int{}}
			groups[k] = g
			order = append(order, g)
		}
		return g
	}
	observe := func(g *sumGroup, o owner, ts int64) {
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
			o := ownerOf(m.sOwner)
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
			o := ownerOf(m.rOwner)
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
			if p := ownerOf(m.rOwner).process; p.Valid {
				servers[p.Int64] = true
			}
		}
	}
	if len(order) == 0 {
		return nil, nil
	}

	rel := relay.NewSet(resolverNames)
	if f.Version >= 3 && len(servers) > 0 {
		c := relay.Collector{Servers: servers, Process: func(id sql.NullInt64) (sql.NullInt64, error) {
			return ownerOf(id).process, nil
		}}
		for _, m := range msgs {
			qtype := int64(-1)
			if m.qtype.Valid {
				qtype = m.qtype.Int64
			}
			if err := c.Add(relay.Msg{ID: m.id, QName: qname, QType: qtype, DNSID: m.dnsID, TSend: m.tSend, TRecv: m.tRecv},
				m.obs, m.sOwner, m.rOwner, m.queryID); err != nil {
				return nil, err
			}
		}
		rel.Find(c.Msgs)
		if err := rel.NameResolvers(ctx, f.DB); err != nil {
			return nil, err
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
			answers[i] = dnstext.TypeName(uint16(a.typ)) + " " + dnstext.DisplayData(uint16(a.typ), a.data)
		}
		js, err := json.Marshal(answers)
		if err != nil {
			return nil, err
		}
		via, relayOnly := "", int64(0)
		if g.process.Valid {
			via = rel.Via(g.process.Int64, qname)
			if rel.OnlyForwarding(g.process.Int64, qname) {
				relayOnly = 1
			}
		}
		out = append(out, []any{nameID, g.session, sqlValue(g.process), sqlValue(g.gpid), sqlText(g.gcomm),
			g.first, g.last, g.queries, sqlValue(g.mpid), sqlText(g.mcomm), sqlValue(g.muid),
			joinOrNil(g.statuses), joinOrNil(g.qtypes), string(js), via, relayOnly})
	}
	return out, nil
}
