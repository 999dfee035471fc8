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

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/internal/rawsqlite"
)

// The who-resolved summary (schema v6, table who_summary). who-resolved
// aggregates every client message of the names asked: for the busiest name
// of a day on a busy server, 157,000 messages and 2 s of work (about 13 µs
// each, with the resolver links). The recorder computes the same rows for every name once,
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

// summaryOwners reads every owners row.
func (f *file) summaryOwners(ctx context.Context) (map[int64]sumOwner, error) {
	owners := map[int64]sumOwner{}
	rs, err := f.db.QueryContext(ctx, `SELECT id, process_id, pid, comm, uid FROM owners`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var id int64
		var o sumOwner
		if err := rs.Scan(&id, &o.process, &o.pid, &o.comm, &o.uid); err != nil {
			return nil, err
		}
		owners[id] = o
	}
	return owners, rs.Err()
}

// sumOwner is an owners row, as the who-resolved queries join it.
type sumOwner struct {
	process, pid, uid sql.NullInt64
	comm              sql.NullString
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

// SummaryExtent is what a summary's builder computed: the largest msgs
// and rrs ids it covers, and the rows it gave.
type SummaryExtent struct {
	MsgsMax, RRsMax int64
	Rows            int64
}

// A Summary is one table a clean stop fills (schema v6 and later): its
// kind in the summaries table, its table and columns, and its builder.
type Summary struct {
	Kind, Table, Columns string
	Order                string // the table's order, which is Build's
	Version              int    // the schema version that has the table
	build                func(f *file, ctx context.Context, in *summaryInput, emit func(vals []any) error) error
}

// summaryInput is what every builder starts from: the extent the summary
// will cover (its Rows counted by the builder), the owners, and a
// statement that reads a name.
type summaryInput struct {
	sum    SummaryExtent
	owners map[int64]sumOwner
	names  *sql.Stmt // SELECT name FROM names WHERE id = ?
}

var (
	whoSummary  = Summary{Kind: "who", Table: "who_summary", Columns: WhoSummaryColumns, Order: "rowid", Version: 6, build: (*file).summarizeWho}
	addrSummary = Summary{Kind: "addr", Table: "addr_summary", Columns: AddrSummaryColumns, Order: "type, data, first_msg, first_rr", Version: 7, build: (*file).summarizeAddrs}
)

// Summaries are the summaries a clean stop writes, in order.
var Summaries = []Summary{whoSummary, addrSummary}

// InsertSQL is the statement that writes one row, its values in Columns'
// order.
func (s Summary) InsertSQL() string {
	marks := strings.TrimSuffix(strings.Repeat("?, ", strings.Count(s.Columns, ",")+1), ", ")
	return "INSERT INTO " + s.Table + " (" + s.Columns + ") VALUES (" + marks + ")"
}

// Build computes the summary's rows for the dnsrec file at path (with the
// stop indexes) and gives each to emit, as the values of Columns in order,
// in Order. It reads the file as `dnsrec query` does, so a recorder can
// summarize its own file before it closes it.
func (s Summary) Build(ctx context.Context, path string, emit func(vals []any) error) (SummaryExtent, error) {
	d, err := Open(ctx, []string{path})
	if err != nil {
		return SummaryExtent{}, err
	}
	defer d.Close()
	return s.buildOn(ctx, d.files[0], emit)
}

func (s Summary) buildOn(ctx context.Context, f *file, emit func(vals []any) error) (SummaryExtent, error) {
	if f.version < s.Version {
		return SummaryExtent{}, fmt.Errorf("schema v%d: %s needs v%d", f.version, s.Table, s.Version)
	}
	var in summaryInput
	var err error
	if in.sum, err = f.extent(ctx); err != nil {
		return in.sum, err
	}
	if in.owners, err = f.summaryOwners(ctx); err != nil {
		return in.sum, err
	}
	if in.names, err = f.db.PrepareContext(ctx, `SELECT name FROM names WHERE id = ?`); err != nil {
		return in.sum, err
	}
	defer in.names.Close()
	err = s.build(f, ctx, &in, emit)
	return in.sum, err
}

// SummarizeWho is Summaries' who_summary builder: see Summary.Build. The
// rows come in name order, and for a name in the order its processes
// first asked.
func SummarizeWho(ctx context.Context, path string, emit func(vals []any) error) (SummaryExtent, error) {
	return whoSummary.Build(ctx, path, emit)
}

// extent reads the largest msgs and rrs ids: what a summary built now
// covers.
func (f *file) extent(ctx context.Context) (SummaryExtent, error) {
	var sum SummaryExtent
	err := f.db.QueryRowContext(ctx, `SELECT (SELECT coalesce(max(id), 0) FROM msgs), (SELECT coalesce(max(id), 0) FROM rrs)`).Scan(&sum.MsgsMax, &sum.RRsMax)
	return sum, err
}

func (f *file) summarizeWho(ctx context.Context, in *summaryInput, emit func(vals []any) error) error {
	resolverNames := map[int64]string{}
	outcome := make(outcomes, in.sum.MsgsMax+1)
	err := f.rawRows(ctx, summaryOutcomesSQL, nil, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
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
		rows, err := f.summarizeName(ctx, curID, qname, cur, in.owners, resolverNames)
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
	err = f.rawRows(ctx, summaryScanSQL, nil, false, make(chan error, 1), func(r *rawsqlite.Stmt) error {
		nameID, id := r.Int64(0), r.Int64(1)
		if nameID != curID {
			if err := flush(); err != nil {
				return err
			}
			curID, last = nameID, nil
		}
		if last == nil || last.id != id {
			if len(cur) >= maxSummaryName {
				return fmt.Errorf("name %d: more than %d messages", nameID, maxSummaryName)
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
	if err != nil {
		return err
	}
	return flush()
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
			g = &sumGroup{sumGroupKey: k,
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
			answers[i] = dnstext.TypeName(uint16(a.typ)) + " " + dnstext.DisplayData(uint16(a.typ), a.data)
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

// summarized tells whether f holds summary s, covering all of its messages
// and answers: built at the last clean stop, with nothing recorded after
// it.
func (f *file) summarized(ctx context.Context, s Summary) (bool, error) {
	if f.version < s.Version || f.noSummary {
		return false, nil
	}
	var built SummaryExtent
	err := f.db.QueryRowContext(ctx, `SELECT msgs_max, rrs_max FROM summaries WHERE kind = ?`, s.Kind).Scan(&built.MsgsMax, &built.RRsMax)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the summary's extent: %w", err)
	}
	now, err := f.extent(ctx)
	if err != nil {
		return false, fmt.Errorf("read the summary's extent: %w", err)
	}
	return built.MsgsMax == now.MsgsMax && built.RRsMax == now.RRsMax, nil
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
		w.key = whoKey{session: r.Int64(0), process: rawNullInt(r, 1), pid: rawNullInt(r, 2), comm: in.nullText(r, 3), qname: string(r.View(4))}
		w.firstNS, w.lastNS, w.r.Count = r.Int64(5), r.Int64(6), r.Int64(7)
		w.pid, w.comm, w.r.Exe, w.uid, w.parent = rawNullInt(r, 8), in.nullText(r, 9), in.text(r.View(10)), rawNullInt(r, 11), rawNullInt(r, 12)
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
