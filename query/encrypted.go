package query

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/dnsrec/dnsrec/query/format"
)

// Encrypted-DNS connections (schema v11): connections processes opened to
// a DoT port (dot), over UDP to one (doq), or to port 443 of a known
// DoH/DoT resolver (doh-known), with the TLS server name of the first
// ClientHello. Their content was not read: they answer "which processes used
// encrypted DNS, to where", not which names.

// EncryptedRow is one process's connections to one server under one server
// name.
type EncryptedRow struct {
	File      string
	Kind      string // dot, doq, doh-known
	Transport string // tcp, udp
	Remote    string // addr:port
	SNI       string
	Resolver  string // the listed resolver the address or name belongs to
	PID       sql.Null[int64]
	Comm      string
	Exe       string
	Argv      []string
	UID       sql.Null[int64]
	Ancestry  Ancestry
	Container string
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int64 // connections
	Host      string
}

// EncryptedColumns are EncryptedTable's columns.
var EncryptedColumns = []string{"kind", "transport", "remote", "sni", "resolver", "pid", "comm", "exe", "argv", "uid", "ancestry", "container", "first_seen", "last_seen", "connections", "host"}

// EncryptedTable renders rows; withFile adds the file column first.
func EncryptedTable(rows []EncryptedRow, withFile bool) *format.Table {
	cols := EncryptedColumns
	if withFile {
		cols = append([]string{"file"}, cols...)
	}
	t := &format.Table{Columns: cols, Rows: make([][]any, len(rows))}
	for i, r := range rows {
		row := []any{r.Kind, r.Transport, r.Remote, nullString(r.SNI), nullString(r.Resolver), nullInt(r.PID), nullString(r.Comm),
			nullString(r.Exe), nullString(ShellQuote(r.Argv)), nullInt(r.UID), nullString(r.Ancestry.String()), nullString(r.Container),
			r.FirstSeen, r.LastSeen, r.Count, r.Host}
		if withFile {
			row = append([]any{r.File}, row...)
		}
		t.Rows[i] = row
	}
	return t
}

// encWhere is the condition on enc_conns e for the filter. A connection
// has no name, query type or response code: a filter on any leaves all of
// them out.
func (f *Filter) encWhere() (string, []any) {
	var w sqlWhere
	if len(f.QTypes) > 0 || len(f.Rcodes) > 0 || len(f.Names) > 0 {
		w.add("0")
	}
	if !f.Since.IsZero() {
		w.add("e.ts_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("e.ts_ns < ?", f.Until.UnixNano())
	}
	if f.hasProcess() {
		c, a := f.ownerWhere()
		w.add("e.owner IN (SELECT o.id FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE "+c+")", a...)
	}
	return w.String(), w.args
}

// Grouped per process (or, unidentified, per pid and comm), server, server
// name and kind.
const encryptedSQL = `
SELECT g.kind, g.transport, g.r_addr, g.r_port, g.sni, g.resolver, g.first_ns, g.last_ns, g.n,
       coalesce(p.pid, g.mpid), coalesce(p.comm, g.mcomm), coalesce(p.exe, ''), coalesce(p.uid, g.muid), p.parent_id,
       coalesce(s.hostname, ''), p.argv, coalesce(p.container, '')
FROM (
	SELECT e.session_id, w.process_id,
	       CASE WHEN w.process_id IS NULL THEN w.pid END AS gpid,
	       CASE WHEN w.process_id IS NULL THEN w.comm END AS gcomm,
	       e.kind, e.transport, e.r_addr, e.r_port, coalesce(e.sni, '') AS sni, coalesce(max(e.resolver), '') AS resolver,
	       min(e.ts_ns) AS first_ns, max(e.ts_ns) AS last_ns, count(*) AS n,
	       min(w.pid) AS mpid, min(w.comm) AS mcomm, min(w.uid) AS muid
	FROM enc_conns e LEFT JOIN owners w ON w.id = e.owner
	WHERE %s
	GROUP BY e.session_id, w.process_id, gpid, gcomm, e.kind, e.transport, e.r_addr, e.r_port, sni
) g
LEFT JOIN processes p ON p.id = g.process_id
LEFT JOIN sessions s ON s.id = g.session_id
ORDER BY g.first_ns, g.r_addr, g.r_port`

// Encrypted lists the encrypted-DNS connections in every file, oldest
// first. Files from before schema v11 have none.
func (d *DB) Encrypted(ctx context.Context, filter Filter) ([]EncryptedRow, error) {
	if err := d.CheckFilter(&filter); err != nil {
		return nil, err
	}
	var rows []EncryptedRow
	for _, f := range d.files {
		rs, err := f.encrypted(ctx, &filter)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

func (f *file) encrypted(ctx context.Context, filter *Filter) ([]EncryptedRow, error) {
	if f.version < 11 {
		return nil, nil
	}
	w, args := filter.encWhere()
	rs, err := f.db.QueryContext(ctx, fmt.Sprintf(encryptedSQL, w), args...)
	if err != nil {
		return nil, fmt.Errorf("query encrypted-DNS connections: %w", err)
	}
	defer rs.Close()
	var (
		rows    []WhoResolvedRow // for walkAncestries
		out     []EncryptedRow
		parents []sql.NullInt64
	)
	for rs.Next() {
		var (
			r                EncryptedRow
			addr             string
			port             int64
			firstNS, lastNS  int64
			pid, uid, parent sql.NullInt64
			comm, argv       sql.NullString
		)
		if err := rs.Scan(&r.Kind, &r.Transport, &addr, &port, &r.SNI, &r.Resolver, &firstNS, &lastNS, &r.Count,
			&pid, &comm, &r.Exe, &uid, &parent, &r.Host, &argv, &r.Container); err != nil {
			return nil, fmt.Errorf("query encrypted-DNS connections: %w", err)
		}
		r.Remote = joinHostPort(addr, port)
		r.PID = sql.Null[int64]{V: pid.Int64, Valid: pid.Valid}
		r.UID = sql.Null[int64]{V: uid.Int64, Valid: uid.Valid}
		r.Comm = comm.String
		r.Argv = parseArgv(argv)
		r.FirstSeen = time.Unix(0, firstNS).UTC()
		r.LastSeen = time.Unix(0, lastNS).UTC()
		r.File = f.path
		out = append(out, r)
		rows = append(rows, WhoResolvedRow{})
		parents = append(parents, parent)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("query encrypted-DNS connections: %w", err)
	}
	rs.Close()
	if err := f.walkAncestries(ctx, rows, parents); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Ancestry = rows[i].Ancestry
	}
	return out, nil
}

// joinHostPort is addr:port, [addr]:port for IPv6.
func joinHostPort(addr string, port int64) string {
	if ap := addrPort(addr, port); ap.IsValid() {
		return ap.String()
	}
	return fmt.Sprintf("%s:%d", addr, port)
}
