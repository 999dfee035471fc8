package query

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// WhoResolvedOptions refines WhoResolved.
type WhoResolvedOptions struct {
	// Exact matches NAME only. By default NAME's subdomains match too.
	Exact bool
	// Filter narrows the client messages counted (schema v2 and later).
	Filter
	// Resolvers keeps the rows of local resolvers for the names they only
	// asked on behalf of their clients (see relay.go), which are left out
	// by default: the clients' rows name them in Via.
	Resolvers bool
}

// WhoResolvedColumns are the column names of WhoResolvedTable, in order: the
// CSV header and the JSON keys.
var WhoResolvedColumns = []string{
	"qname", "qtype", "pid", "comm", "exe", "argv", "uid", "ancestry", "container",
	"first_seen", "last_seen", "count", "answers", "status", "via", "host",
}

// WhoResolvedRow is one process that looked up one name: the client side of
// the DNS traffic for that name, as that process saw it.
type WhoResolvedRow struct {
	// QName is the name asked for, no trailing dot, in the case the
	// process sent it (schema v15; lowercase in older files). A process
	// that sent it in more than one spelling is one row, QName its first
	// spelling that was not all lowercase, and Spellings lists them all.
	QName string
	// QTypes are the query types asked, in the order first asked.
	QTypes []string
	File   string // the evidence file, as given to Open
	// PID, Comm, Exe and UID identify the process. Exe is "" when unknown,
	// and always for a message whose process could not be identified, which
	// is then grouped by the pid and comm the message carried.
	PID  sql.Null[int64]
	Comm string
	Exe  string
	Argv []string
	UID  sql.Null[int64]
	// Ancestry is the parent chain, direct parent first.
	Ancestry Ancestry
	// Container is the process's container id (schema v4; "" when not
	// in a container, or unknown).
	Container string
	FirstSeen time.Time // first client message (query or response) of this process for QName
	LastSeen  time.Time // last one
	Count     int64     // messages the process sent for QName as a client: its queries
	// Answers are the distinct answer-section records of the responses
	// the process received for QName, typed ("CNAME cdn.evil.test",
	// "A 203.0.113.7"), in the order they were first seen: a CNAME chain
	// reads in order.
	Answers []string
	// Status is what became of the process's queries for QName: the
	// response codes they got (NOERROR, NXDOMAIN, ...), "unanswered", or
	// "cut at snaplen", each with a count when more than one. Empty for
	// files from before queries were paired with responses (schema v3).
	Status string
	// Via names the local resolvers the process's queries went through,
	// with how sure each link to the resolver's upstream queries is:
	// "dnsmasq(812): likely 2, cache 1" (see relay.go). Empty when the
	// queries went straight to a server that is not a local process.
	// For a row of libc resolutions (schema v5) it is "libc" and the
	// functions called, "libc getaddrinfo": the process asked the C
	// library, and Answers are the addresses the calls returned.
	Via  string
	Host string // sessions.hostname of the recording
	// Spellings are the spellings other than all-lowercase that the
	// process sent QName in, first seen first, when there were more than
	// one; nil otherwise. The table shows QName, the first.
	Spellings []string

	processID sql.NullInt64 // processes.id, for the resolver links
}

// Ancestor is one process in a parent chain.
type Ancestor struct {
	PID  int64
	Comm string
}

// Ancestry is a parent chain, nearest first.
type Ancestry []Ancestor

// String renders the chain as "sh(812) > sshd(640) > systemd(1)".
func (a Ancestry) String() string {
	return strings.Join(a.Names(), " > ")
}

// Names renders each process of the chain as "sh(812)", nil for an empty
// chain. An unknown comm shows as "?".
func (a Ancestry) Names() []string {
	if len(a) == 0 {
		return nil
	}
	parts := make([]string, len(a))
	for i, p := range a {
		c := p.Comm
		if c == "" {
			c = "?"
		}
		parts[i] = c + "(" + strconv.FormatInt(p.PID, 10) + ")"
	}
	return parts
}

// maxAncestry bounds the parent walk. Real chains are short; a corrupt or
// hostile file may hold a cycle.
const maxAncestry = 64

// WhoResolvedTable converts rows for Write. withFile adds a first column
// naming each row's file, for several files.
func WhoResolvedTable(rows []WhoResolvedRow, withFile bool) *format.Table {
	cols := WhoResolvedColumns
	if withFile {
		cols = append([]string{"file"}, cols...)
	}
	t := &format.Table{Columns: cols, Rows: make([][]any, len(rows))}
	for i, r := range rows {
		row := []any{
			r.QName, r.QTypes, nullInt(r.PID), nullString(r.Comm), nullString(r.Exe), nullString(ShellQuote(r.Argv)), nullInt(r.UID),
			nullString(r.Ancestry.String()), nullString(r.Container), r.FirstSeen, r.LastSeen, r.Count, r.Answers, nullString(r.Status), nullString(r.Via), r.Host,
		}
		if withFile {
			row = append([]any{r.File}, row...)
		}
		t.Rows[i] = row
	}
	return t
}

// ShellQuote renders argv as a command line a shell would split back into
// the same words: words with anything but safe characters are single-quoted.
func ShellQuote(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		safe := a != ""
		for _, r := range a {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
				safe = false
				break
			}
		}
		if safe {
			parts[i] = a
		} else {
			parts[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(parts, " ")
}

func nullInt(n sql.Null[int64]) any {
	if !n.Valid {
		return nil
	}
	return n.V
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Messages of a process that is not identified (process_id NULL) are grouped
// by the pid and comm they carry instead; for identified ones those two
// columns are NULL in the key, so a thread renaming itself does not split
// a process into several rows.
const groupKey = `m.session_id, m.process_id,
	CASE WHEN m.process_id IS NULL THEN m.pid END,
	CASE WHEN m.process_id IS NULL THEN m.comm END,
	coalesce(m.qname, '')`

// clientObsSQL (schema v2) is the client-side observations of the matching
// names, one row per observation, with the columns of v1's messages table
// that the queries below read. A msgs row holds up to two observations: its
// sender's (bit 1 of obs; bit 4 if the sender is the server) and its
// receiver's (bit 2; bit 8). Only role=client counts: a local resolver
// answering others is not the process that wanted the name.
const clientObsSQL = `
WITH n AS (SELECT id, name, rev FROM names WHERE %[1]s),
o AS (
	SELECT m.session_id, m.id, n.name AS qname, m.ts_ns, m.s_owner AS owner, m.flags >> 15 AS qr, 'send' AS direction,
	       %[2]s AS st, m.qtype
	FROM n JOIN msgs m ON m.name_id = n.id WHERE m.obs & 5 = 1 AND %[3]s
	UNION ALL
	SELECT m.session_id, m.id, n.name, m.ts_ns + coalesce(m.r_dt_ns, 0), m.r_owner, m.flags >> 15, 'recv', NULL, NULL
	FROM n JOIN msgs m ON m.name_id = n.id WHERE m.obs & 10 = 2 AND %[3]s
),
cm AS (
	SELECT o.session_id, o.id, o.qname, o.ts_ns, o.qr, o.direction, o.st, o.qtype,
	       w.process_id, w.pid, w.comm, w.uid
	FROM o LEFT JOIN owners w ON w.id = o.owner
	WHERE %[4]s
)`

// queryStatusSQL (schema v3) is what became of a query (msgs row m): the
// rcode of the response linked to it, -1 when none was, -2 when the
// response was cut at snaplen, -3 when it had no readable rcode.
const queryStatusSQL = `coalesce((SELECT CASE WHEN r.orig_len IS NOT NULL THEN -2 ELSE coalesce(r.rcode, -3) END
	       FROM msgs r WHERE r.query_id = m.id LIMIT 1), -1)`

// clientRecvSQL (schema v2) is what the clients received: all the answers
// query needs, without the send side's half of the work. Roles come from the
// transport, so what a client receives is a response whatever its QR bit.
const clientRecvSQL = `
WITH n AS (SELECT id, name, rev FROM names WHERE %[1]s),
cm AS (
	SELECT m.session_id, m.id, n.name AS qname, m.ts_ns + coalesce(m.r_dt_ns, 0) AS ts_ns, 1 AS qr, 'recv' AS direction,
	       w.process_id, w.pid, w.comm, w.uid
	FROM n JOIN msgs m ON m.name_id = n.id LEFT JOIN owners w ON w.id = m.r_owner
	WHERE m.obs & 10 = 2 AND %[2]s AND %[3]s
)`

// clientObsSQLv1 is the same for schema v1 files, where messages is a table.
const clientObsSQLv1 = `
WITH cm AS (
	SELECT m.session_id, m.id, m.qname, m.ts_ns, m.qr, m.direction, NULL AS st, m.qtype, m.process_id, m.pid, m.comm, m.uid
	FROM messages m WHERE %s AND m.role = 'client'
)`

// whoResolvedSQL aggregates the client-side messages per (process, qname).
// Process columns fall back to what the messages carried when the process
// row is missing or incomplete.
const whoResolvedSQL = `
SELECT g.session_id, g.process_id, g.gpid, g.gcomm, g.qname,
       g.first_ns, g.last_ns, g.queries,
       coalesce(p.pid, g.mpid), coalesce(p.comm, g.mcomm), coalesce(p.exe, ''),
       coalesce(p.uid, g.muid), p.parent_id, coalesce(s.hostname, ''), g.sts, g.qtypes, p.argv, coalesce(p.container, '')
FROM (
	SELECT m.session_id, m.process_id,
	       CASE WHEN m.process_id IS NULL THEN m.pid END AS gpid,
	       CASE WHEN m.process_id IS NULL THEN m.comm END AS gcomm,
	       coalesce(m.qname, '') AS qname,
	       min(m.ts_ns) AS first_ns, max(m.ts_ns) AS last_ns,
	       coalesce(sum(m.direction = 'send'), 0) AS queries,
	       min(m.pid) AS mpid, min(m.comm) AS mcomm, min(m.uid) AS muid,
	       group_concat(m.st) AS sts, group_concat(DISTINCT m.qtype) AS qtypes
	FROM cm m
	GROUP BY ` + groupKey + `
) g
LEFT JOIN processes p ON p.id = g.process_id
LEFT JOIN sessions s ON s.id = g.session_id`

// whoResolvedAnswersSQL lists the distinct answer data per (process, qname),
// with when each was first received, so that the caller can keep first-seen
// order. Authority and additional records are not answers to the question.
const whoResolvedAnswersSQL = `
SELECT ` + groupKey + `, a.type, a.data, min(m.ts_ns) AS first_ns, min(a.id) AS first_id
FROM cm m JOIN %s a ON a.message_id = m.id
WHERE m.direction = 'recv' %s
GROUP BY ` + groupKey + `, a.type, a.data
ORDER BY first_ns, first_id`

// whoSQL builds the two queries for a file of the given schema version,
// and the arguments of each: the name's, then the filter's (v2 and later).
func whoSQL(version int, name NamePattern, filter *Filter) (rows, answers string, rowArgs, ansArgs []any) {
	if version < 2 {
		where, args := name.whereCols("m.qname", "m.qname_rev")
		cte := fmt.Sprintf(clientObsSQLv1, where)
		return strings.Replace(cte+whoResolvedSQL, "coalesce(p.container, '')", "''", 1), cte + fmt.Sprintf(whoResolvedAnswersSQL, "answers", "AND a.section = 'answer'"), args, args
	}
	where, args := name.where("")
	// The process filters apply to the observing client, not to whichever
	// end of the message matches.
	msgF := *filter
	msgF.PIDs, msgF.Exes, msgF.Comms, msgF.UIDs = nil, nil, nil, nil
	msgF.Trees = nil
	if version < 3 {
		msgF.Rcodes = nil // no query-response links to follow
	}
	fw, fargs := msgF.msgsWhere(false)
	ownerW, ownerArgs := "1", []any(nil)
	if filter.hasProcess() {
		c, a := filter.ownerWhere()
		ownerW, ownerArgs = "owner IN (SELECT o.id FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE "+c+")", a
	}
	status := "NULL"
	if version >= 3 {
		status = queryStatusSQL
	}
	// clientObsSQL has the filter once per side, then the owner condition;
	// clientRecvSQL once, then the owner condition.
	rowArgs = concat(args, fargs, fargs, ownerArgs)
	ansArgs = concat(args, fargs, ownerArgs)
	recvOwner := strings.ReplaceAll(ownerW, "owner IN", "m.r_owner IN")
	rows = fmt.Sprintf(clientObsSQL, where, status, fw, ownerW) + whoResolvedSQL
	if version < 4 {
		rows = strings.Replace(rows, "coalesce(p.container, '')", "''", 1)
	}
	return rows,
		fmt.Sprintf(clientRecvSQL, where, fw, recvOwner) + fmt.Sprintf(whoResolvedAnswersSQL, "rrs", ""),
		rowArgs, ansArgs
}

func concat(lists ...[]any) []any {
	var out []any
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// whoScan is a row of whoResolvedSQL (and the first columns of
// whoSummarySQL): a process's messages for a name, aggregated.
type whoScan struct {
	key              whoKey
	r                WhoResolvedRow
	firstNS, lastNS  int64
	pid, uid, parent sql.NullInt64
	comm, sts        sql.NullString
	qtypes, argv     sql.NullString
}

func (w *whoScan) dest() []any {
	return []any{&w.key.session, &w.key.process, &w.key.pid, &w.key.comm, &w.key.qname,
		&w.firstNS, &w.lastNS, &w.r.Count,
		&w.pid, &w.comm, &w.r.Exe, &w.uid, &w.parent, &w.r.Host, &w.sts, &w.qtypes, &w.argv, &w.r.Container}
}

// row is the scanned row as who-resolved shows it (without its answers,
// resolver links and ancestry), and its process's parent.
func (w *whoScan) row(path string) (WhoResolvedRow, sql.NullInt64) {
	r := w.r
	r.QName = w.key.qname
	r.PID = sql.Null[int64]{V: w.pid.Int64, Valid: w.pid.Valid}
	r.UID = sql.Null[int64]{V: w.uid.Int64, Valid: w.uid.Valid}
	r.Comm = w.comm.String
	r.FirstSeen = time.Unix(0, w.firstNS).UTC()
	r.LastSeen = time.Unix(0, w.lastNS).UTC()
	r.Status = statusOf(w.sts)
	r.QTypes = qtypeNames(w.qtypes)
	r.Argv = parseArgv(w.argv)
	r.File = path
	r.processID = w.key.process
	return r, w.parent
}

type whoKey struct {
	session int64
	process sql.NullInt64
	pid     sql.NullInt64
	comm    sql.NullString
	qname   string
}

// WhoResolved lists the processes that looked up name (and, unless
// opts.Exact, its subdomains), one row per process and queried name, across
// every file, ordered by first_seen. "", "." and "*" are every name; an IP
// address is an error that points to ResolvedTo.
func (d *DB) WhoResolved(ctx context.Context, name string, opts WhoResolvedOptions) ([]WhoResolvedRow, error) {
	name, err := nameArg(name)
	if err != nil {
		return nil, err
	}
	pat, err := ParseName(name, !opts.Exact)
	if err != nil {
		return nil, err
	}
	if err := d.CheckFilter(&opts.Filter); err != nil {
		return nil, err
	}
	var rows []WhoResolvedRow
	for _, f := range d.files {
		if f.version >= 2 {
			// Most names were never asked for: say so from the names
			// index alone, without preparing the two large queries.
			var one int
			w, args := pat.where("")
			err := f.db.QueryRowContext(ctx, "SELECT 1 FROM names WHERE "+w+" LIMIT 1", args...).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.path, err)
			}
		} else if !opts.Filter.empty() {
			return nil, fmt.Errorf("%s: filters: %w", f.path, ErrOldSchema)
		}
		libc, err := f.whoResolvedLibc(ctx, pat, &opts.Filter)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		if err := f.spell(ctx, pat, libc, true); err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		rows = append(rows, libc...)
		// Without filters, a file that stopped cleanly answers from its
		// summary (summary.go).
		if opts.Filter.empty() {
			ok, err := f.summarized(ctx, summary.Who)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.path, err)
			}
			if ok {
				rs, err := f.whoResolvedSummary(ctx, pat, opts.Resolvers)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", f.path, err)
				}
				if err := f.spell(ctx, pat, rs, false); err != nil {
					return nil, fmt.Errorf("%s: %w", f.path, err)
				}
				rows = append(rows, rs...)
				continue
			}
		}
		q, aq, args, aargs := whoSQL(f.version, pat, &opts.Filter)
		rs, err := f.whoResolved(ctx, q, aq, args, aargs)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		rel, err := f.relays(ctx, pat)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		var kept []WhoResolvedRow
		for _, r := range rs {
			if r.processID.Valid {
				if !opts.Resolvers && rel.OnlyForwarding(r.processID.Int64, r.QName) {
					continue
				}
				r.Via = rel.Via(r.processID.Int64, r.QName)
			}
			kept = append(kept, r)
		}
		if err := f.spell(ctx, pat, kept, false); err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		rows = append(rows, kept...)
	}
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := &rows[i], &rows[j]
		if !a.FirstSeen.Equal(b.FirstSeen) {
			return a.FirstSeen.Before(b.FirstSeen)
		}
		if a.Host != b.Host {
			return a.Host < b.Host
		}
		if a.QName != b.QName {
			return a.QName < b.QName
		}
		if a.PID.V != b.PID.V {
			return a.PID.V < b.PID.V
		}
		return a.Comm < b.Comm
	})
	return rows, nil
}

func (f *file) whoResolved(ctx context.Context, q, aq string, args, aargs []any) ([]WhoResolvedRow, error) {
	answers, err := f.whoResolvedAnswers(ctx, aq, aargs)
	if err != nil {
		return nil, err
	}
	rs, err := f.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	defer rs.Close()
	var (
		rows    []WhoResolvedRow
		parents []sql.NullInt64
	)
	for rs.Next() {
		var w whoScan
		if err := rs.Scan(w.dest()...); err != nil {
			return nil, fmt.Errorf("query messages: %w", err)
		}
		r, parent := w.row(f.path)
		r.Answers = answers[w.key]
		rows = append(rows, r)
		parents = append(parents, parent)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("query messages: %w", err)
	}
	// The walk runs after the result set is closed: it needs a connection of
	// its own, and holding two would be pointless for a read-only scan.
	rs.Close()
	return rows, f.walkAncestries(ctx, rows, parents)
}

// walkAncestries fills each row's Ancestry from its process's parent
// (parents[i] for rows[i]).
func (f *file) walkAncestries(ctx context.Context, rows []WhoResolvedRow, parents []sql.NullInt64) error {
	w, err := f.newAncestryWalker(ctx)
	if err != nil {
		return err
	}
	defer w.close()
	for i := range rows {
		if rows[i].Ancestry, err = w.walk(ctx, parents[i]); err != nil {
			return err
		}
	}
	return nil
}

func (f *file) whoResolvedAnswers(ctx context.Context, aq string, args []any) (map[whoKey][]string, error) {
	rs, err := f.db.QueryContext(ctx, aq, args...)
	if err != nil {
		return nil, fmt.Errorf("query answers: %w", err)
	}
	defer rs.Close()
	answers := make(map[whoKey][]string)
	for rs.Next() {
		var (
			k         whoKey
			typ       sql.NullInt64
			data      string
			first, id int64
		)
		if err := rs.Scan(&k.session, &k.process, &k.pid, &k.comm, &k.qname, &typ, &data, &first, &id); err != nil {
			return nil, fmt.Errorf("query answers: %w", err)
		}
		answers[k] = append(answers[k], dnstext.TypeName(uint16(typ.Int64))+" "+dnstext.DisplayData(uint16(typ.Int64), data))
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("query answers: %w", err)
	}
	return answers, nil
}

// qtypeNames turns group_concat(DISTINCT qtype) into type names.
func qtypeNames(s sql.NullString) []string {
	if !s.Valid || s.String == "" {
		return nil
	}
	var out []string
	for _, f := range strings.Split(s.String, ",") {
		if n, err := strconv.ParseUint(f, 10, 16); err == nil {
			out = append(out, dnstext.TypeName(uint16(n)))
		}
	}
	return out
}

// parseArgv decodes processes.argv, a JSON array; a malformed one is shown
// whole rather than lost.
func parseArgv(s sql.NullString) []string {
	if !s.Valid {
		return nil
	}
	var argv []string
	if json.Unmarshal([]byte(s.String), &argv) != nil {
		return []string{s.String}
	}
	return argv
}

// statusOf turns the group's list of query outcomes (group_concat of
// queryStatusSQL) into "NOERROR (2);NXDOMAIN": each outcome once, in order
// of first appearance, with a count when more than one.
func statusOf(sts sql.NullString) string {
	if !sts.Valid || sts.String == "" {
		return ""
	}
	var names []string
	for _, f := range strings.Split(sts.String, ",") {
		if st, err := strconv.ParseInt(f, 10, 64); err == nil {
			names = append(names, statusName(st))
		}
	}
	return countedNames(names)
}

// countedNames renders outcomes as "NOERROR (2);NXDOMAIN": each once, in
// order of first appearance, with a count when more than one.
func countedNames(names []string) string {
	var order []string
	count := map[string]int{}
	for _, name := range names {
		if count[name] == 0 {
			order = append(order, name)
		}
		count[name]++
	}
	for i, name := range order {
		if n := count[name]; n > 1 {
			order[i] = fmt.Sprintf("%s (%d)", name, n)
		}
	}
	return strings.Join(order, ";")
}

func statusName(st int64) string {
	switch st {
	case -1:
		return "unanswered"
	case -2:
		return "cut at snaplen"
	case -3:
		return "undecodable"
	}
	if name, ok := dns.RcodeToString[int(st)]; ok {
		return name
	}
	return fmt.Sprintf("RCODE%d", st)
}

// ancestryWalker follows processes.parent_id, caching rows: the processes of
// one query usually share most of their ancestors.
type ancestryWalker struct {
	stmt  *sql.Stmt
	cache map[int64]procLink
}

type procLink struct {
	pid    sql.NullInt64
	comm   sql.NullString
	parent sql.NullInt64
}

func (f *file) newAncestryWalker(ctx context.Context) (*ancestryWalker, error) {
	stmt, err := f.db.PrepareContext(ctx, `SELECT pid, comm, parent_id FROM processes WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("ancestry: %w", err)
	}
	return &ancestryWalker{stmt: stmt, cache: make(map[int64]procLink)}, nil
}

func (w *ancestryWalker) close() { w.stmt.Close() }

// walk returns the chain starting at process id (the direct parent of the
// process the row is about). It stops at a NULL or dangling parent, at a
// process already in the chain, or after maxAncestry hops.
func (w *ancestryWalker) walk(ctx context.Context, id sql.NullInt64) (Ancestry, error) {
	var chain Ancestry
	seen := make(map[int64]bool)
	for hops := 0; id.Valid && hops < maxAncestry && !seen[id.Int64]; hops++ {
		seen[id.Int64] = true
		p, ok := w.cache[id.Int64]
		if !ok {
			err := w.stmt.QueryRowContext(ctx, id.Int64).Scan(&p.pid, &p.comm, &p.parent)
			if errors.Is(err, sql.ErrNoRows) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("ancestry of process %d: %w", id.Int64, err)
			}
			w.cache[id.Int64] = p
		}
		chain = append(chain, Ancestor{PID: p.pid.Int64, Comm: p.comm.String})
		id = p.parent
	}
	return chain, nil
}
