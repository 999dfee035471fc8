package relay

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Window bounds how long after receiving an unanswered query a
// resolver's upstream query for the same question is linked to it.
const Window = 10 * time.Second

// Msg is one message of the questions looked at: queries with their local
// ends, and the times of their responses.
type Msg struct {
	ID             int64
	QName          string
	QType          int64
	DNSID          sql.NullInt64
	Client, Server sql.NullInt64 // processes.id of the local sender (the client end), receiver (the server end)
	TSend, TRecv   int64         // the client's send, the server's receipt (when seen)
	Sent, Received bool
	// Of the response: the server's send, the client's receipt.
	RespSent, RespRecv sql.NullInt64
}

// Link is what became of one client query at a local resolver.
type Link struct {
	Client     int64 // processes.id
	Resolver   int64
	QName      string
	Upstream   int64 // msgs id of the upstream query named, 0 for none
	Confidence string
}

// Set holds the links for a set of names in one file.
type Set struct {
	Links []Link
	// forwarded and own count each resolver's upstream queries per
	// (process, name): linked to some client query, or not.
	forwarded, own map[key]int
	procs          map[int64]string // resolver processes.id -> "dnsmasq(812)"
}

type key struct {
	process int64
	qname   string
}

// NewSet returns an empty set. procs caches the resolvers' names
// ("dnsmasq(812)", see NameResolvers) and may be shared by sets of the same
// file; nil starts an empty cache.
func NewSet(procs map[int64]string) *Set {
	if procs == nil {
		procs = map[int64]string{}
	}
	return &Set{forwarded: map[key]int{}, own: map[key]int{}, procs: procs}
}

// Collector keeps, of the messages of some names read in id order, the
// ones Find needs: local clients' queries to local servers, and the
// servers' own queries, with the times of their responses.
type Collector struct {
	Servers map[int64]bool // processes.id of the local servers asked
	// Process maps an owners id to its processes.id.
	Process func(owner sql.NullInt64) (sql.NullInt64, error)
	Msgs    []*Msg
	byID    map[int64]*Msg
}

// Add takes one message: m with its ID, QName, QType, DNSID, TSend and
// TRecv set; obs, its owners and query_id as stored.
func (c *Collector) Add(m Msg, obs int64, sOwner, rOwner, queryID sql.NullInt64) error {
	if obs&4 != 0 || obs&8 == 0 && obs&1 == 0 {
		// From the server end, or only seen arriving at a client: a
		// response. Rows come in id order, so its query came first.
		if q := c.byID[queryID.Int64]; queryID.Valid && q != nil {
			if obs&1 != 0 {
				q.RespSent = sql.NullInt64{Int64: m.TSend, Valid: true}
			}
			if obs&2 != 0 {
				q.RespRecv = sql.NullInt64{Int64: m.TRecv, Valid: true}
			}
		}
		return nil
	}
	var err error
	m.Sent, m.Received = obs&1 != 0, obs&2 != 0
	if m.Sent {
		if m.Client, err = c.Process(sOwner); err != nil {
			return err
		}
	}
	if m.Received {
		if m.Server, err = c.Process(rOwner); err != nil {
			return err
		}
	}
	// A client's query to a local server, or a local server's own.
	if !(m.Server.Valid && m.Client.Valid) && !(m.Client.Valid && c.Servers[m.Client.Int64]) {
		return nil
	}
	if c.byID == nil {
		c.byID = map[int64]*Msg{}
	}
	c.Msgs = append(c.Msgs, &m)
	c.byID[m.ID] = &m
	return nil
}

type questionKey struct {
	process int64
	qname   string
	qtype   int64
}

// Find computes the links; msgs are the queries of the names looked at.
func (r *Set) Find(msgs []*Msg) {
	// The upstream queries each local process sent, by question, in the
	// order of their answers' arrival and in the order they were sent.
	type sent struct{ byAnswer, bySend []*Msg }
	upstream := map[questionKey]*sent{}
	for _, m := range msgs {
		if m.Client.Valid {
			k := questionKey{m.Client.Int64, m.QName, m.QType}
			u := upstream[k]
			if u == nil {
				u = &sent{}
				upstream[k] = u
			}
			u.bySend = append(u.bySend, m)
			if m.RespRecv.Valid {
				u.byAnswer = append(u.byAnswer, m)
			}
		}
	}
	for _, u := range upstream {
		sort.Slice(u.byAnswer, func(i, j int) bool { return u.byAnswer[i].RespRecv.Int64 < u.byAnswer[j].RespRecv.Int64 })
		sort.Slice(u.bySend, func(i, j int) bool { return u.bySend[i].TSend < u.bySend[j].TSend })
	}
	candidate := map[int64]bool{} // upstream queries some client query may have caused
	served := map[questionKey]bool{}
	for _, d := range msgs {
		if !d.Server.Valid || !d.Client.Valid || d.Client.Int64 == d.Server.Int64 {
			continue // not a local client's query to a local server
		}
		k := questionKey{d.Server.Int64, d.QName, d.QType}
		served[k] = true
		var cands []*Msg
		if u := upstream[k]; u != nil {
			// The window: answers that reached the resolver while the
			// client waited, or for an unanswered query, what it sent
			// within Window.
			list, key, lo, hi := u.byAnswer, func(m *Msg) int64 { return m.RespRecv.Int64 }, d.TRecv, d.RespSent.Int64
			if !d.RespSent.Valid {
				list, key, hi = u.bySend, func(m *Msg) int64 { return m.TSend }, d.TRecv+int64(Window)
			}
			for i := sort.Search(len(list), func(i int) bool { return key(list[i]) >= lo }); i < len(list) && key(list[i]) <= hi; i++ {
				if list[i].ID != d.ID {
					cands = append(cands, list[i])
				}
			}
		}
		l := Link{Client: d.Client.Int64, Resolver: d.Server.Int64, QName: d.QName}
		switch {
		case len(cands) == 0 && d.RespSent.Valid:
			l.Confidence = "cache"
		case len(cands) == 0:
			l.Confidence = "unanswered"
		default:
			for _, u := range cands {
				candidate[u.ID] = true
			}
			var same []*Msg
			for _, u := range cands {
				if d.DNSID.Valid && u.DNSID == d.DNSID {
					same = append(same, u)
				}
			}
			if len(same) == 1 {
				l.Upstream, l.Confidence = same[0].ID, "exact"
				break
			}
			// The nearest: the last answer before the client's, or the
			// first query after an unanswered one.
			best := cands[0]
			for _, u := range cands[1:] {
				if d.RespSent.Valid && u.RespRecv.Int64 > best.RespRecv.Int64 || !d.RespSent.Valid && u.TSend < best.TSend {
					best = u
				}
			}
			l.Upstream, l.Confidence = best.ID, "likely"
			if len(cands) > 1 {
				l.Confidence = "ambiguous"
			}
		}
		r.Links = append(r.Links, l)
	}
	// A resolver's upstream queries for questions it was asked: forwarded
	// if some client query may have caused them, its own otherwise.
	for k, us := range upstream {
		if !served[k] {
			continue
		}
		for _, u := range us.bySend {
			rk := key{k.process, k.qname}
			if candidate[u.ID] {
				r.forwarded[rk]++
			} else {
				r.own[rk]++
			}
		}
	}
}

// NameResolvers names the resolvers of the links from the processes table
// of db: "dnsmasq(812)".
func (r *Set) NameResolvers(ctx context.Context, db *sql.DB) error {
	if len(r.Links) == 0 {
		return nil
	}
	stmt, err := db.PrepareContext(ctx, `SELECT pid, coalesce(comm, '?') FROM processes WHERE id = ?`)
	if err != nil {
		return fmt.Errorf("resolver names: %w", err)
	}
	defer stmt.Close()
	for _, l := range r.Links {
		if _, ok := r.procs[l.Resolver]; ok {
			continue
		}
		var pid int64
		var comm string
		if err := stmt.QueryRowContext(ctx, l.Resolver).Scan(&pid, &comm); err != nil {
			return fmt.Errorf("resolver names: %w", err)
		}
		r.procs[l.Resolver] = comm + "(" + strconv.FormatInt(pid, 10) + ")"
	}
	return nil
}

// Via summarizes how the client process's queries for qname went through
// local resolvers: "dnsmasq(812): likely 2, cache 1", one part per
// resolver, in order of first link.
func (r *Set) Via(client int64, qname string) string {
	var order []int64
	counts := map[int64]map[string]int{}
	for _, l := range r.Links {
		if l.Client != client || l.QName != qname {
			continue
		}
		if counts[l.Resolver] == nil {
			counts[l.Resolver] = map[string]int{}
			order = append(order, l.Resolver)
		}
		counts[l.Resolver][l.Confidence]++
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

// OnlyForwarding tells whether every query process sent for qname was
// forwarded for a local client: who-resolved then leaves the resolver out.
func (r *Set) OnlyForwarding(process int64, qname string) bool {
	k := key{process, qname}
	return r.forwarded[k] > 0 && r.own[k] == 0
}
