package query

import (
	"context"
	"database/sql"
	"fmt"
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
// ends; responses carry query_id (schema v3).
const relaysSQL = `
WITH n AS (SELECT id, name FROM names WHERE %s)
SELECT m.id, n.name, coalesce(m.qtype, -1), m.dns_id, m.obs, so.process_id, ro.process_id,
       m.ts_ns, m.ts_ns + coalesce(m.r_dt_ns, 0), m.query_id
FROM n JOIN msgs m ON m.name_id = n.id
LEFT JOIN owners so ON so.id = m.s_owner
LEFT JOIN owners ro ON ro.id = m.r_owner`

// relays links the client queries for the names matching pat to what the
// local resolvers that received them sent upstream. Files before schema v3
// (no query-response links) have none.
func (f *file) relays(ctx context.Context, pat NamePattern) (*relays, error) {
	out := &relays{forwarded: map[relayKey]int{}, own: map[relayKey]int{}, procs: map[int64]string{}}
	if f.version < 3 {
		return out, nil
	}
	where, args := pat.where("")
	rows, err := f.db.QueryContext(ctx, fmt.Sprintf(relaysSQL, where), args...)
	if err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	defer rows.Close()
	var msgs []*relayMsg
	byID := map[int64]*relayMsg{}
	type resp struct {
		query          int64
		sent, received bool
		tSend, tRecv   int64
	}
	var resps []resp
	for rows.Next() {
		var (
			m        relayMsg
			obs      int64
			queryID  sql.NullInt64
			sendProc sql.NullInt64
			recvProc sql.NullInt64
		)
		if err := rows.Scan(&m.id, &m.qname, &m.qtype, &m.dnsID, &obs, &sendProc, &recvProc, &m.tSend, &m.tRecv, &queryID); err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		m.sent, m.received = obs&1 != 0, obs&2 != 0
		if obs&4 != 0 || obs&8 == 0 && obs&1 == 0 {
			// From the server end, or only seen arriving at a client: a
			// response.
			if queryID.Valid {
				resps = append(resps, resp{queryID.Int64, m.sent, m.received, m.tSend, m.tRecv})
			}
			continue
		}
		m.client, m.server = sendProc, recvProc
		if !m.sent {
			m.client = sql.NullInt64{}
		}
		if !m.received {
			m.server = sql.NullInt64{}
		}
		msgs = append(msgs, &m)
		byID[m.id] = &m
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	rows.Close()
	for _, r := range resps {
		if q := byID[r.query]; q != nil {
			if r.sent {
				q.respSent = sql.NullInt64{Int64: r.tSend, Valid: true}
			}
			if r.received {
				q.respRecv = sql.NullInt64{Int64: r.tRecv, Valid: true}
			}
		}
	}
	out.link(msgs)
	if len(out.links) > 0 {
		if err := f.relayNames(ctx, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

type questionKey struct {
	process int64
	qname   string
	qtype   int64
}

// link computes the links; msgs are the queries of the names looked at.
func (r *relays) link(msgs []*relayMsg) {
	// The upstream queries each local process sent, by question.
	upstream := map[questionKey][]*relayMsg{}
	for _, m := range msgs {
		if m.client.Valid {
			k := questionKey{m.client.Int64, m.qname, m.qtype}
			upstream[k] = append(upstream[k], m)
		}
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
		for _, u := range upstream[k] {
			if u.id == d.id {
				continue
			}
			if d.respSent.Valid {
				if u.respRecv.Valid && u.respRecv.Int64 >= d.tRecv && u.respRecv.Int64 <= d.respSent.Int64 {
					cands = append(cands, u)
				}
			} else if u.tSend >= d.tRecv && u.tSend <= d.tRecv+int64(relayWindow) {
				cands = append(cands, u)
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
		for _, u := range us {
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
