package query

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// InfoColumns are the columns of `dnsrec query info`, one row per recording
// session in each file.
var InfoColumns = []string{
	"file", "host", "hook", "kernel", "version", "started", "stopped", "messages", "processes",
	"ringbuf_drops", "decode_errors", "unattributed", "parse_errors", "unanswered", "ports", "snaplen", "boot_id", "machine_id", "cmdline",
}

// Info describes every recording session in the files: where and how it
// was recorded (the hook tier among it), how much, and what was lost.
// stopped is empty for a recording still running or one that did not stop
// cleanly.
func (d *DB) Info(ctx context.Context) (*Table, error) {
	t := &Table{Columns: InfoColumns}
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
	// A v2 msgs row holds one or two observations (bits 1 and 2 of obs);
	// counting them there avoids the view's joins.
	count := `(SELECT coalesce(sum((m.obs & 1) + (m.obs >> 1 & 1)), 0) FROM msgs m WHERE m.session_id = s.id)`
	parseErrs := `(SELECT coalesce(sum((m.obs & 1) + (m.obs >> 1 & 1)), 0) FROM msgs m WHERE m.session_id = s.id AND m.parse_error IS NOT NULL)`
	// Queries (sent by the client end) that no response names.
	unanswered := `((SELECT count(*) FROM msgs m WHERE m.session_id = s.id AND m.obs & 4 = 0) -
		(SELECT count(DISTINCT m.query_id) FROM msgs m WHERE m.session_id = s.id AND m.query_id IS NOT NULL))`
	if f.version < 3 {
		unanswered = `NULL`
	}
	if f.version < 2 {
		count = `(SELECT count(*) FROM messages m WHERE m.session_id = s.id)`
		parseErrs = `(SELECT count(*) FROM messages m WHERE m.session_id = s.id AND m.parse_error IS NOT NULL)`
	}
	q, err := f.db.QueryContext(ctx, `
SELECT s.hostname, s.hook, s.kernel, s.version, s.started_ns, s.stopped_ns,
       `+count+`,
       (SELECT count(*) FROM processes p WHERE p.session_id = s.id),
       l.ringbuf_drops, l.decode_errors, l.unattributed, `+parseErrs+`, `+unanswered+`,
       s.ports, s.snaplen, s.boot_id, s.machine_id, s.cmdline
FROM sessions s
LEFT JOIN loss l ON l.id = (SELECT max(id) FROM loss WHERE session_id = s.id)
ORDER BY s.started_ns`)
	if err != nil {
		return nil, fmt.Errorf("read sessions: %w", err)
	}
	defer q.Close()
	var out [][]any
	for q.Next() {
		var host, hook, kernel, version, ports, bootID, cmdline string
		var machineID sql.NullString
		var started int64
		var stopped, drops, decodeErrs, unattributed sql.Null[int64]
		var messages, processes, snaplen, parseErrors int64
		var unanswered sql.Null[int64]
		if err := q.Scan(&host, &hook, &kernel, &version, &started, &stopped, &messages, &processes,
			&drops, &decodeErrs, &unattributed, &parseErrors, &unanswered, &ports, &snaplen, &bootID, &machineID, &cmdline); err != nil {
			return nil, fmt.Errorf("read sessions: %w", err)
		}
		var stop any
		if stopped.Valid {
			stop = time.Unix(0, stopped.V).UTC()
		}
		// No loss row means nothing was ever lost: rows are written when a
		// counter changes.
		out = append(out, []any{
			f.path, host, hook, kernel, version, time.Unix(0, started).UTC(), stop, messages, processes,
			drops.V, decodeErrs.V, unattributed.V, parseErrors, nullInt(unanswered), ports, snaplen, bootID, nullString(machineID.String), cmdline,
		})
	}
	return out, q.Err()
}
