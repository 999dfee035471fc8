package query

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"os"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/internal/rawsqlite"
	"github.com/dnsrec/dnsrec/query/format"
)

// InfoColumns are the columns of `dnsrec query info`, one row per recording
// session in each file. messages counts DNS messages, observations a
// message seen at one end (a loopback message is seen at both, so counts
// twice there), libc_calls the resolver calls through the C library.
var InfoColumns = []string{
	"file", "size", "host", "hook", "kernel", "version", "started", "stopped", "first_message", "last_message", "messages", "observations", "libc_calls", "processes",
	"ringbuf_drops", "msg_drops", "hook_misses", "decode_errors", "unattributed", "parse_errors", "unanswered", "filters", "filtered", "part", "ports", "snaplen", "boot_id", "machine_id", "cmdline",
	"recording_id", "anchors",
	"events", "blinded", "stopped_by",
	"tls_cut", "tls_unbound", "doh_unparsed",
	"probed",
}

// Info describes every recording session in the files: where and how it
// was recorded (the hook tier among it), how much, and what was lost.
// stopped is empty for a recording still running or one that did not stop
// cleanly.
func (d *DB) Info(ctx context.Context) (*format.Table, error) {
	t := &format.Table{Columns: InfoColumns}
	for _, f := range d.files {
		rows, err := f.info(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		t.Rows = append(t.Rows, rows...)
	}
	return t, nil
}

func (f *file) info(ctx context.Context) ([][]any, error) {
	// Each session's counts and span: sessionAggs from msgs (v2 and
	// later), overriding the NULLs of agg; from v1's messages table, agg.
	agg := `SELECT NULL AS session_id, NULL AS n, NULL AS perr, NULL AS first, NULL AS last WHERE 0`
	// v4: record-time filters and what they left out; a rotated file's
	// number in its series.
	v4 := `s.filters, l.filtered, s.part, l.hook_misses`
	if f.version < 4 {
		v4 = `NULL, NULL, NULL, NULL`
	}
	// v5: libc resolutions; NULL before the recorder captured them.
	resolutions := `(SELECT count(*) FROM resolutions r WHERE r.session_id = s.id AND r.flags & 4 = 0)`
	if f.version < 5 {
		resolutions = `NULL`
	}
	// v8: the message records among ringbuf_drops; NULL before.
	msgDrops := `l.msg_drops`
	if f.version < 8 {
		msgDrops = `NULL`
	}
	// v10: TLS plaintext that did not become messages; NULL before.
	tlsLoss := `l.tls_cut, l.tls_unbound, l.doh_unparsed`
	if f.version < 10 {
		tlsLoss = `NULL, NULL, NULL`
	}
	var aggs map[int64]*msgAgg
	if f.version < 2 {
		agg = `SELECT session_id, count(*) AS n, sum(parse_error IS NOT NULL) AS perr, min(ts_ns) AS first, max(ts_ns) AS last
			FROM messages GROUP BY session_id`
	} else {
		// One pass in Go: msgs has no index on session_id, so SQLite's
		// GROUP BY sorted every row first, three quarters of the time
		// info took on a large file.
		var err error
		if aggs, err = f.sessionAggs(ctx); err != nil {
			return nil, fmt.Errorf("count messages: %w", err)
		}
	}
	q, err := f.db.QueryContext(ctx, `
SELECT s.hostname, s.hook, s.kernel, s.version, s.started_ns, s.stopped_ns, a.first, a.last,
       coalesce(a.n, 0), `+resolutions+`,
       (SELECT count(*) FROM processes p WHERE p.session_id = s.id),
       l.ringbuf_drops, l.decode_errors, l.unattributed, coalesce(a.perr, 0), NULL,
       `+v4+`, `+msgDrops+`, s.ports, s.snaplen, s.boot_id, s.machine_id, s.cmdline, s.id, `+tlsLoss+`
FROM sessions s
LEFT JOIN (`+agg+`) a ON a.session_id = s.id
LEFT JOIN loss l ON l.id = (SELECT max(id) FROM loss WHERE session_id = s.id)
ORDER BY s.started_ns`)
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	defer q.Close()
	probed, err := f.probed(ctx)
	if err != nil {
		return nil, err
	}
	size, err := fileSize(f.path)
	if err != nil {
		return nil, err
	}
	evs, err := f.events(ctx, 0)
	if err != nil {
		return nil, err
	}
	var out [][]any
	for q.Next() {
		var host, hook, kernel, version, ports, bootID, cmdline string
		var machineID sql.NullString
		var started, id int64
		var stopped, drops, decodeErrs, unattributed, first, last sql.Null[int64]
		var observations, processes, snaplen, parseErrors int64
		var messages any // unknown in v1 files, which stored each end apart
		var unanswered, filtered, part, misses, msgDrops, resolutions sql.Null[int64]
		var filters sql.NullString
		var tlsCut, tlsUnbound, dohUnparsed sql.Null[int64]
		if err := q.Scan(&host, &hook, &kernel, &version, &started, &stopped, &first, &last, &observations, &resolutions, &processes,
			&drops, &decodeErrs, &unattributed, &parseErrors, &unanswered, &filters, &filtered, &part, &misses, &msgDrops, &ports, &snaplen, &bootID, &machineID, &cmdline, &id, &tlsCut, &tlsUnbound, &dohUnparsed); err != nil {
			return nil, fmt.Errorf("read sessions: %w", err)
		}
		if f.version >= 2 {
			messages = int64(0)
		}
		if a := aggs[id]; a != nil {
			observations, messages, parseErrors = a.n, a.rows, a.perr
			first, last = sql.Null[int64]{V: a.first, Valid: true}, sql.Null[int64]{V: a.last, Valid: true}
			if f.version >= 3 {
				unanswered = sql.Null[int64]{V: a.queries - a.answered, Valid: true}
			}
		}
		var stop any
		if stopped.Valid {
			stop = time.Unix(0, stopped.V).UTC()
		}
		rec, anchors, err := f.anchorInfo(ctx, id)
		if err != nil {
			return nil, err
		}
		// No loss row means nothing was ever lost: rows are written when a
		// counter changes.
		events, blinded, stoppedBy := eventCells(f.version, evs, id)
		out = append(out, []any{
			f.path, size, host, hook, kernel, version, time.Unix(0, started).UTC(), stop, nullTime(first), nullTime(last), messages, observations, nullInt(resolutions), processes,
			drops.V, sinceVersion(f.version, 8, msgDrops), sinceVersion(f.version, 4, misses), decodeErrs.V, unattributed.V, parseErrors, nullInt(unanswered), nullString(filters.String), filteredCount(filters, filtered), nullInt(part), ports, snaplen, bootID, nullString(machineID.String), cmdline,
			rec, anchors,
			events, blinded, stoppedBy,
			sinceVersion(f.version, 10, tlsCut), sinceVersion(f.version, 10, tlsUnbound), sinceVersion(f.version, 10, dohUnparsed),
			probedText(f.version, probed[id]),
		})
	}
	return out, q.Err()
}

// anchorInfo is a session's recording id (v12, with --anchor) and each
// anchor's last counts of checkpoints: "DEST made=N sent=N dropped=N
// queued=N", and its last error, joined by "; ". The counts are as of the
// last batch: those of the final checkpoint are in the recorder's log.
func (f *file) anchorInfo(ctx context.Context, session int64) (rec, anchors any, err error) {
	if f.version < 12 {
		return nil, nil, nil
	}
	var id sql.NullString
	if err := f.db.QueryRowContext(ctx, `SELECT recording_id FROM sessions WHERE id = ?`, session).Scan(&id); err != nil {
		return nil, nil, fmt.Errorf("read sessions: %w", err)
	}
	rows, err := f.db.QueryContext(ctx, `SELECT dest, made, sent, dropped, queued, error FROM anchors
WHERE id IN (SELECT max(id) FROM anchors WHERE session_id = ? GROUP BY dest) ORDER BY id`, session)
	if err != nil {
		return nil, nil, fmt.Errorf("read anchors: %w", err)
	}
	defer rows.Close()
	var parts []string
	for rows.Next() {
		var dest string
		var made, sent, dropped, queued int64
		var e sql.NullString
		if err := rows.Scan(&dest, &made, &sent, &dropped, &queued, &e); err != nil {
			return nil, nil, fmt.Errorf("read anchors: %w", err)
		}
		p := fmt.Sprintf("%s made=%d sent=%d dropped=%d queued=%d", dest, made, sent, dropped, queued)
		if e.Valid {
			p += " error=" + e.String
		}
		parts = append(parts, p)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	return nullString(id.String), nullString(strings.Join(parts, "; ")), nil
}

// eventCells are a session's events in info: how many, the blinding
// ones (a hook detached or replaced, a check that failed: each one's
// detail, for a responder to read at once), and the stop event's detail.
// NULL before schema v13, which had no events.
func eventCells(version int, evs []*Event, session int64) (n, blinded, stoppedBy any) {
	if version < 13 {
		return nil, nil, nil
	}
	var count int64
	var blind []string
	for _, e := range evs {
		if e.session != session {
			continue
		}
		count++
		if e.Blinding() {
			blind = append(blind, e.Time.Format(time.RFC3339Nano)+" "+e.Kind+": "+e.Detail)
		}
		if e.Kind == "stop" {
			stoppedBy = e.Detail
		}
	}
	return count, blind, stoppedBy
}

// msgAgg is one session's counts over msgs (see sessionAggs).
type msgAgg struct {
	n, perr           int64 // observations, and those of messages that did not parse
	rows              int64 // messages: a msgs row is one message, seen at one end or both
	first, last       int64 // the first observation's time, and the last's
	queries, answered int64 // queries, and those a response names (v3)
}

// sessionAggs reads msgs once, in whatever order the table is stored, and
// counts each session's messages the way info shows them. A v2 msgs row
// holds one or two observations (bits 1 and 2 of obs); a query is a
// message whose sender is not the server end, and that was sent, or
// received by the server end (a response seen only arriving has no role
// bits and is not one); the recorder links a response to a query at most
// once.
func (f *file) sessionAggs(ctx context.Context) (map[int64]*msgAgg, error) {
	linked := "query_id IS NOT NULL"
	if f.version < 3 {
		linked = "0"
	}
	q := `SELECT session_id, obs, parse_error IS NOT NULL, ts_ns, ts_ns + coalesce(r_dt_ns, 0), ` + linked + ` FROM msgs`
	aggs := map[int64]*msgAgg{}
	var cur *msgAgg
	curID := int64(0)
	started := make(chan error, 1)
	err := f.rawRows(ctx, q, nil, true, started, func(r *rawsqlite.Stmt) error {
		if id := r.Int64(0); cur == nil || id != curID {
			if cur = aggs[id]; cur == nil {
				cur = &msgAgg{first: math.MaxInt64, last: math.MinInt64}
				aggs[id] = cur
			}
			curID = id
		}
		obs := r.Int64(1)
		n := obs&1 + obs>>1&1
		cur.n += n
		cur.rows++
		if r.Int64(2) != 0 {
			cur.perr += n
		}
		cur.first = min(cur.first, r.Int64(3))
		cur.last = max(cur.last, r.Int64(4))
		if obs&4 == 0 && obs&9 != 0 {
			cur.queries++
		}
		cur.answered += r.Int64(5)
		return nil
	})
	return aggs, err
}

// sinceVersion is a loss counter that schema version since added: 0 until
// a loss row says more, NULL where the file predates it (hook_misses v4,
// msg_drops v8, tls_cut, tls_unbound and doh_unparsed v10).
func sinceVersion(version, since int, n sql.Null[int64]) any {
	if version < since {
		return nil
	}
	return n.V
}

// filteredCount is what a filtered recording left out: 0 until its first
// loss row says more, nothing (NULL) for a recording without filters.
func filteredCount(filters sql.NullString, n sql.Null[int64]) any {
	if !filters.Valid {
		return nil
	}
	return n.V
}

func nullTime(ns sql.Null[int64]) any {
	if !ns.Valid {
		return nil
	}
	return time.Unix(0, ns.V).UTC()
}

// fileSize is the evidence's size on disk: the file and its -wal, which
// holds the newest transactions of a recording that did not stop cleanly.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	n := fi.Size()
	if wi, err := os.Stat(path + "-wal"); err == nil {
		n += wi.Size()
	}
	return n, nil
}

// probed reads which files each session probed (schema v14): one line per
// file, "kind path [go version] [pid N] (functions)".
func (f *file) probed(ctx context.Context) (map[int64][]string, error) {
	if f.version < 14 {
		return nil, nil
	}
	q, err := f.db.QueryContext(ctx, `SELECT session_id, kind, path, pid, go_version, symbols FROM probes ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read probes: %w", err)
	}
	defer q.Close()
	out := map[int64][]string{}
	for q.Next() {
		var sess int64
		var kind, path, symbols string
		var pid sql.Null[int64]
		var gov sql.NullString
		if err := q.Scan(&sess, &kind, &path, &pid, &gov, &symbols); err != nil {
			return nil, fmt.Errorf("read probes: %w", err)
		}
		s := kind + " " + path
		if gov.Valid {
			s += " " + gov.String
		}
		if pid.Valid {
			s += fmt.Sprintf(" pid %d", pid.V)
		}
		out[sess] = append(out[sess], s+" ("+symbols+")")
	}
	return out, q.Err()
}

// probedText is info's probed column: the session's probed files, "; "
// between them; empty for a file written before schema v14.
func probedText(version int, files []string) any {
	if version < 14 {
		return nil
	}
	return strings.Join(files, "; ")
}
