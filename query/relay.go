package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Resolver chains (issue 9). On most hosts the process that puts a query on
// the wire is a local forwarding resolver (dnsmasq, unbound,
// systemd-resolved) acting for the process that wanted the name. The
// recording holds both legs: the client's query as the resolver received it
// (a loopback message with both processes), and the query the resolver
// then sent upstream. They are linked here, when a question is asked, from
// what the file holds: no link is stored.
//
// A client query D, received by a local server process R at tD and
// answered by R at tA, is linked to the upstream queries U that R sent for
// the same question (name and type) whose answers reached R between tD and
// tA: R answered D after, and so with, what came back. An unanswered D is
// linked to R's queries for the same question sent within relayWindow after
// tD. Then:
//
//	exact      one candidate carries D's own DNS id (dnsmasq keeps it over TCP)
//	likely     one candidate
//	ambiguous  several candidates (clients asking the same name at once, a
//	           retry, a UDP answer truncated and asked again over TCP); the
//	           nearest (the last answer before tA) is named
//	cache      R answered with no upstream query for the question in between:
//	           from its cache, or its own data (/etc/hosts, a local zone)
//	unanswered R never answered, and sent nothing upstream for it
//
// Upstream queries that are a candidate of some client query are R's
// "forwarded" ones; the others are R's own (a prefetch, a DNSSEC lookup, or
// the resolver process resolving for itself).

// relayWindow bounds how long after receiving an unanswered query a
// resolver's upstream query for the same question is linked to it.
const relayWindow = 10 * time.Second

// relayMsg is one message of the questions looked at: queries with their
// local ends, and the times of their responses.
type relayMsg struct {
	id             int64
	qname          string
	qtype          int64
	dnsID          sql.NullInt64
	client, server sql.NullInt64 // processes.id of the local sender (the client end), receiver (the server end)
	tSend, tRecv   int64         // the client's send, the server's receipt (when seen)
	sent, received bool
	// Of the response: the server's send, the client's receipt.
	respSent, respRecv sql.NullInt64
}

// relayLink is what became of one client query at a local resolver.
type relayLink struct {
	client     int64 // processes.id
	resolver   int64
	qname      string
	upstream   int64 // msgs id of the upstream query named, 0 for none
	confidence string
}

// relays holds the links for a set of names in one file.
type relays struct {
	links []relayLink
	// forwarded and own count each resolver's upstream queries per
	// (process, name): linked to some client query, or not.
	forwarded, own map[relayKey]int
	procs          map[int64]string // resolver processes.id -> "dnsmasq(812)"
}

type relayKey struct {
	process int64
	qname   string
}

// relaysSQL reads every message of the matching names with its local
// ends (owners rows, mapped to processes in Go: a join per row costs more
// than the scan); responses carry query_id (schema v3).
const relaysSQL = `
WITH n AS (SELECT id, name FROM names WHERE %s)
SELECT m.id, n.id, coalesce(m.qtype, -1), m.dns_id, m.obs, m.s_owner, m.r_owner,
       m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0), m.query_id
FROM n JOIN msgs m ON m.name_id = n.id
ORDER BY m.id`

// relaysServersSQL lists the owners of the local servers that local
// clients asked about the names.
const relaysServersSQL = `
WITH n AS (SELECT id FROM names WHERE %s)
SELECT DISTINCT m.r_owner FROM n JOIN msgs m ON m.name_id = n.id WHERE m.obs & 15 = 11`

// relaysAnySQL tells whether any query for the names went from a local
// client to a local server: most questions have none, and are answered from
// the name index alone.
const relaysAnySQL = `
WITH n AS (SELECT id FROM names WHERE %s)
SELECT 1 FROM n JOIN msgs m ON m.name_id = n.id WHERE m.obs & 15 = 11 LIMIT 1`

// relays links the client queries for the names matching pat to what the
// local resolvers that received them sent upstream. Files before schema v3
// (no query-response links) have none.
func (f *file) relays(ctx context.Context, pat NamePattern) (*relays, error) {
	out := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}, procs: map[int64]string{}}
	if f.version < 3 {
		return out, nil
	}
	where, args := pat.where("")
	var one int
	switch err := f.db.QueryRowContext(ctx, fmt.Sprintf(relaysAnySQL, where), args...).Scan(&one); {
	case errors.Is(err, sql.ErrNoRows):
		return out, nil
	case err != nil:
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	owners, err := f.db.PrepareContext(ctx, `SELECT process_id FROM owners WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	defer owners.Close()
	procOf := map[int64]sql.NullInt64{}
	process := func(owner sql.NullInt64) (sql.NullInt64, error) {
		if !owner.Valid {
			return owner, nil
		}
		p, ok := procOf[owner.Int64]
		if !ok {
			if err := owners.QueryRowContext(ctx, owner.Int64).Scan(&p); err != nil && !errors.Is(err, sql.ErrNoRows) {
				return p, err
			}
			procOf[owner.Int64] = p
		}
		return p, nil
	}
	names := map[int64]string{}
	nrows, err := f.db.QueryContext(ctx, "SELECT id, name FROM names WHERE "+where, args...)
	if err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	for nrows.Next() {
		var id int64
		var name string
		if err := nrows.Scan(&id, &name); err != nil {
			nrows.Close()
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		names[id] = name
	}
	nrows.Close()
	// The local servers local clients asked: only their upstream queries
	// can be links, so only those are kept (a busy name has many
	// queries, and few of them through a local resolver).
	servers := map[int64]bool{}
	srows, err := f.db.QueryContext(ctx, fmt.Sprintf(relaysServersSQL, where), args...)
	if err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	var serverOwners []sql.NullInt64
	for srows.Next() {
		var o sql.NullInt64
		if err := srows.Scan(&o); err != nil {
			srows.Close()
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		serverOwners = append(serverOwners, o)
	}
	srows.Close()
	for _, o := range serverOwners {
		p, err := process(o)
		if err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		if p.Valid {
			servers[p.Int64] = true
		}
	}
	rows, err := f.db.QueryContext(ctx, fmt.Sprintf(relaysSQL, where), args...)
	if err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	defer rows.Close()
	c := relayCollector{servers: servers, process: process, byID: map[int64]*relayMsg{}}
	for rows.Next() {
		var (
			m                       relayMsg
			nameID, obs             int64
			sOwner, rOwner, queryID sql.NullInt64
		)
		if err := rows.Scan(&m.id, &nameID, &m.qtype, &m.dnsID, &obs, &sOwner, &rOwner, &m.tSend, &m.tRecv, &queryID); err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		m.qname = names[nameID]
		if err := c.add(m, obs, sOwner, rOwner, queryID); err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	rows.Close()
	msgs := c.msgs
	out.link(msgs)
	if len(out.links) > 0 {
		if err := f.relayNames(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// relayCollector keeps, of the messages of some names read in id order,
// the ones link needs: local clients' queries to local servers, and the
// servers' own queries, with the times of their responses.
type relayCollector struct {
	servers map[int64]bool // processes.id of the local servers asked
	process func(owner sql.NullInt64) (sql.NullInt64, error)
	msgs    []*relayMsg
	byID    map[int64]*relayMsg
}

// add takes one message: m with its id, qname, qtype, dnsID, tSend and
// tRecv set; obs, its owners and query_id as stored.
func (c *relayCollector) add(m relayMsg, obs int64, sOwner, rOwner, queryID sql.NullInt64) error {
	if obs&4 != 0 || obs&8 == 0 && obs&1 == 0 {
		// From the server end, or only seen arriving at a client: a
		// response. Rows come in id order, so its query came first.
		if q := c.byID[queryID.Int64]; queryID.Valid && q != nil {
			if obs&1 != 0 {
				q.respSent = sql.NullInt64{Int64: m.tSend, Valid: true}
			}
			if obs&2 != 0 {
				q.respRecv = sql.NullInt64{Int64: m.tRecv, Valid: true}
			}
		}
		return nil
	}
	var err error
	m.sent, m.received = obs&1 != 0, obs&2 != 0
	if m.sent {
		if m.client, err = c.process(sOwner); err != nil {
			return err
		}
	}
	if m.received {
		if m.server, err = c.process(rOwner); err != nil {
			return err
		}
	}
	// A client's query to a local server, or a local server's own.
	if !(m.server.Valid && m.client.Valid) && !(m.client.Valid && c.servers[m.client.Int64]) {
		return nil
	}
	c.msgs = append(c.msgs, &m)
	c.byID[m.id] = &m
	return nil
}

type questionKey struct {
	process int64
	qname   string
	qtype   int64
}

// link computes the links; msgs are the queries of the names looked at.
func (r *relays) link(msgs []*relayMsg) {
	// The upstream queries each local process sent, by question, in the
	// order of their answers' arrival and in the order they were sent.
	type sent struct{ byAnswer, bySend []*relayMsg }
	upstream := map[questionKey]*sent{}
	for _, m := range msgs {
		if m.client.Valid {
			k := questionKey{m.client.Int64, m.qname, m.qtype}
			u := upstream[k]
			if u == nil {
				u = &sent{}
				upstream[k] = u
			}
			u.bySend = append(u.bySend, m)
			if m.respRecv.Valid {
				u.byAnswer = append(u.byAnswer, m)
			}
		}
	}
	for _, u := range upstream {
		sort.Slice(u.byAnswer, func(i, j int) bool { return u.byAnswer[i].respRecv.Int64 < u.byAnswer[j].respRecv.Int64 })
		sort.Slice(u.bySend, func(i, j int) bool { return u.bySend[i].tSend < u.bySend[j].tSend })
	}
	candidate := map[int64]bool{} // upstream queries some client query may have caused
	served := map[questionKey]bool{}
	for _, d := range msgs {
		if !d.server.Valid || !d.client.Valid || d.client.Int64 == d.server.Int64 {
			continue // not a local client's query to a local server
		}
		k := questionKey{d.server.Int64, d.qname, d.qtype}
		served[k] = true
		var cands []*relayMsg
		if u := upstream[k]; u != nil {
			// The window: answers that reached the resolver while the
			// client waited, or for an unanswered query, what it sent
			// within relayWindow.
			list, key, lo, hi := u.byAnswer, func(m *relayMsg) int64 { return m.respRecv.Int64 }, d.tRecv, d.respSent.Int64
			if !d.respSent.Valid {
				list, key, hi = u.bySend, func(m *relayMsg) int64 { return m.tSend }, d.tRecv+int64(relayWindow)
			}
			for i := sort.Search(len(list), func(i int) bool { return key(list[i]) >= lo }); i < len(list) && key(list[i]) <= hi; i++ {
				if list[i].id != d.id {
					cands = append(cands, list[i])
				}
			}
		}
		l := relayLink{client: d.client.Int64, resolver: d.server.Int64, qname: d.qname}
		switch {
		case len(cands) == 0 && d.respSent.Valid:
			l.confidence = "cache"
		case len(cands) == 0:
			l.confidence = "unanswered"
		default:
			for _, u := range cands {
				candidate[u.id] = true
			}
			var same []*relayMsg
			for _, u := range cands {
				if d.dnsID.Valid && u.dnsID == d.dnsID {
					same = append(same, u)
				}
			}
			if len(same) == 1 {
				l.upstream, l.confidence = same[0].id, "exact"
				break
			}
			// The nearest: the last answer before the client's, or the
			// first query after an unanswered one.
			best := cands[0]
			for _, u := range cands[1:] {
				if d.respSent.Valid && u.respRecv.Int64 > best.respRecv.Int64 || !d.respSent.Valid && u.tSend < best.tSend {
					best = u
				}
			}
			l.upstream, l.confidence = best.id, "likely"
			if len(cands) > 1 {
				l.confidence = "ambiguous"
			}
		}
		r.links = append(r.links, l)
	}
	// A resolver's upstream queries for questions it was asked: forwarded
	// if some client query may have caused them, its own otherwise.
	for k, us := range upstream {
		if !served[k] {
			continue
		}
		for _, u := range us.bySend {
			rk := relayKey{k.process, k.qname}
			if candidate[u.id] {
				r.forwarded[rk]++
			} else {
				r.own[rk]++
			}
		}
	}
}

// relayNames names the resolvers: "dnsmasq(812)".
func (f *file) relayNames(ctx context.Context, r *relays) error {
	stmt, err := f.db.PrepareContext(ctx, `SELECT pid, coalesce(comm, '?') FROM processes WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("resolver names: %w", err)
	}
	defer stmt.Close()
	for _, l := range r.links {
		if _, ok := r.procs[l.resolver]; ok {
			continue
		}
		var pid int64
		var comm string
		if err := stmt.QueryRowContext(ctx, l.resolver).Scan(&pid, &comm); err != nil {
			return fmt.Errorf("resolver names: %w", err)
		}
		r.procs[l.resolver] = comm + "(" + strconv.FormatInt(pid, 10) + ")"
	}
	return nil
}

// via summarizes how the client process's queries for qname went through
// local resolvers: "dnsmasq(812): likely 2, cache 1", one part per
// resolver, in order of first link.
func (r *relays) via(client int64, qname string) string {
	var order []int64
	counts := map[int64]map[string]int{}
	for _, l := range r.links {
		if l.client != client || l.qname != qname {
			continue
		}
		if counts[l.resolver] == nil {
			counts[l.resolver] = map[string]int{}
			order = append(order, l.resolver)
		}
		counts[l.resolver][l.confidence]++
	}
	parts := make([]string, 0, len(order))
	for _, res := range order {
		c := counts[res]
		var kinds []string
		for _, k := range []string{"exact", "likely", "ambiguous", "cache", "unanswered"} {
			if c[k] > 0 {
				kinds = append(kinds, k+" "+strconv.Itoa(c[k]))
			}
		}
		parts = append(parts, r.procs[res]+": "+strings.Join(kinds, ", "))
	}
	return strings.Join(parts, "; ")
}

// onlyForwarding tells whether every query process sent for qname was
// forwarded for a local client: who-resolved then leaves the resolver out.
func (r *relays) onlyForwarding(process int64, qname string) bool {
	k := relayKey{process, qname}
	return r.forwarded[k] > 0 && r.own[k] == 0
}

// relayOneSQL reads the upstream queries one local server process sent for
// a question around one client query: the candidates of its link. The time
// range (an index range on msgs_ts at a clean stop) reaches back
// relayLookback before the client's query, for an upstream query already
// in flight when it arrived. The unary + keeps SQLite from preferring the
// name or owner indexes, which for a busy name or a busy resolver are far
// longer than the time range.
const relayOneSQL = `
SELECT u.id, u.dns_id, u.ts_ns,
       (SELECT r.ts_ns + coalesce(r.r_dt_ns, 0) FROM msgs r WHERE r.query_id = u.id AND r.obs & 2 LIMIT 1)
FROM msgs u
WHERE u.ts_ns BETWEEN ? AND ? AND +u.name_id = ? AND coalesce(u.qtype, -1) = ? AND u.obs & 5 = 1
  AND +u.s_owner IN (SELECT id FROM owners WHERE process_id = ?) AND u.id != ?`

// relayLookback is how long before a client's query an upstream query for
// the same question may have been sent and still be its link.
const relayLookback = 2 * time.Second

// relayOf links one message, if it is a local client's query to a local
// server, to what the server sent upstream for it: "dnsmasq(812):
// likely, upstream #1234" for the timeline. "" for any other message.
func (f *file) relayOf(ctx context.Context, m *Message) (string, error) {
	if f.version < 3 || m.Response || m.Sender == nil || m.Receiver == nil || m.Sender.Proc == nil || m.Receiver.Proc == nil ||
		m.Sender.Proc.ID == 0 || m.Receiver.Proc.ID == 0 || m.Sender.Proc.ID == m.Receiver.Proc.ID || m.QName == "" {
		return "", nil
	}
	var nameID int64
	var answered sql.NullInt64
	err := f.db.QueryRowContext(ctx, `SELECT m.name_id, (SELECT r.ts_ns FROM msgs r WHERE r.query_id = m.id AND r.obs & 1 LIMIT 1)
		FROM msgs m WHERE m.id = ?`, m.ID).Scan(&nameID, &answered)
	if err != nil {
		return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
	}
	qtype := int64(m.QType)
	d := &relayMsg{id: m.ID, qname: m.QName, qtype: qtype, dnsID: sql.NullInt64{Int64: int64(m.DNSID), Valid: true},
		client: sql.NullInt64{Int64: m.Sender.Proc.ID, Valid: true}, server: sql.NullInt64{Int64: m.Receiver.Proc.ID, Valid: true},
		sent: true, received: true, tSend: m.Sender.Time.UnixNano(), tRecv: m.Receiver.Time.UnixNano(), respSent: answered}
	hi := d.tRecv + int64(relayWindow)
	if answered.Valid {
		hi = answered.Int64
	}
	rows, err := f.db.QueryContext(ctx, relayOneSQL, d.tRecv-int64(relayLookback), hi, nameID, qtype, m.Receiver.Proc.ID, m.ID)
	if err != nil {
		return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
	}
	defer rows.Close()
	msgs := []*relayMsg{d}
	for rows.Next() {
		u := &relayMsg{qname: m.QName, qtype: qtype, client: d.server, sent: true}
		if err := rows.Scan(&u.id, &u.dnsID, &u.tSend, &u.respRecv); err != nil {
			return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
		}
		msgs = append(msgs, u)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
	}
	r := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}}
	r.link(msgs)
	if len(r.links) != 1 {
		return "", nil
	}
	l := r.links[0]
	name := fmt.Sprintf("%s(%d)", m.Receiver.Proc.Comm, m.Receiver.Proc.PID)
	if l.upstream == 0 {
		return name + ": " + l.confidence, nil
	}
	return fmt.Sprintf("%s: %s, upstream #%d", name, l.confidence, l.upstream), nil
}
