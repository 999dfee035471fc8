package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/dnsrec/dnsrec/internal/relay"
)

// Resolver chains: the links between a local resolver's clients and its
// upstream queries (package relay) computed from what a file holds, for
// who-resolved's via column and the timeline's.

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
func (f *file) relays(ctx context.Context, pat NamePattern) (*relay.Set, error) {
	out := relay.NewSet(nil)
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
	c := relay.Collector{Servers: servers, Process: process}
	for rows.Next() {
		var (
			m                       relay.Msg
			nameID, obs             int64
			sOwner, rOwner, queryID sql.NullInt64
		)
		if err := rows.Scan(&m.ID, &nameID, &m.QType, &m.DNSID, &obs, &sOwner, &rOwner, &m.TSend, &m.TRecv, &queryID); err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
		m.QName = names[nameID]
		if err := c.Add(m, obs, sOwner, rOwner, queryID); err != nil {
			return nil, fmt.Errorf("resolver links: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("resolver links: %w", err)
	}
	rows.Close()
	out.Find(c.Msgs)
	if err := out.NameResolvers(ctx, f.db); err != nil {
		return nil, err
	}
	return out, nil
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
	d := &relay.Msg{ID: m.ID, QName: m.QName, QType: qtype, DNSID: sql.NullInt64{Int64: int64(m.DNSID), Valid: true},
		Client: sql.NullInt64{Int64: m.Sender.Proc.ID, Valid: true}, Server: sql.NullInt64{Int64: m.Receiver.Proc.ID, Valid: true},
		Sent: true, Received: true, TSend: m.Sender.Time.UnixNano(), TRecv: m.Receiver.Time.UnixNano(), RespSent: answered}
	hi := d.TRecv + int64(relay.Window)
	if answered.Valid {
		hi = answered.Int64
	}
	rows, err := f.db.QueryContext(ctx, relayOneSQL, d.TRecv-int64(relayLookback), hi, nameID, qtype, m.Receiver.Proc.ID, m.ID)
	if err != nil {
		return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
	}
	defer rows.Close()
	msgs := []*relay.Msg{d}
	for rows.Next() {
		u := &relay.Msg{QName: m.QName, QType: qtype, Client: d.Server, Sent: true}
		if err := rows.Scan(&u.ID, &u.DNSID, &u.TSend, &u.RespRecv); err != nil {
			return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
		}
		msgs = append(msgs, u)
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("resolver link of message %d: %w", m.ID, err)
	}
	r := relay.NewSet(nil)
	r.Find(msgs)
	if len(r.Links) != 1 {
		return "", nil
	}
	l := r.Links[0]
	name := fmt.Sprintf("%s(%d)", m.Receiver.Proc.Comm, m.Receiver.Proc.PID)
	if l.Upstream == 0 {
		return name + ": " + l.Confidence, nil
	}
	return fmt.Sprintf("%s: %s, upstream #%d", name, l.Confidence, l.Upstream), nil
}
