package query

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"
)

// The recorder's own events (schema v13): its start and stop, signals
// from other processes, and its BPF hooks found detached or replaced and
// re-attached. They are few, so they are read whole.

// Event is one row of the events table.
type Event struct {
	Time    time.Time
	Host    string
	ID      int64
	Kind    string
	Detail  string
	fileIdx int
	session int64
}

// Blinding kinds: a hook found detached or replaced, or a check that
// could not be made.
func (e *Event) Blinding() bool {
	return e.Kind == "detached" || e.Kind == "replaced" || e.Kind == "watch-error"
}

// EventTimelineRow renders an event as TimelineColumns: its id is "e" and
// the event's id, its kind "recorder/" and the event's kind, and the note
// its detail.
func EventTimelineRow(e *Event) []any {
	return []any{
		e.Time, e.Host, "e" + strconv.FormatInt(e.ID, 10), "recorder/" + e.Kind, nil,
		nil, nil, nil, nil, nil, nil,
		nil, nil, nil, nil,
		nil, nil, nil, nil, nil, nil, nil, e.Detail,
		nil, nil,
	}
}

// events reads a file's events, in id order; none before schema v13.
func (f *file) events(ctx context.Context, idx int) ([]*Event, error) {
	if f.version < 13 {
		return nil, nil
	}
	rows, err := f.db.QueryContext(ctx, `SELECT e.id, e.session_id, e.ts_ns, e.kind, e.detail, coalesce(s.hostname, '')
FROM events e LEFT JOIN sessions s ON s.id = e.session_id ORDER BY e.id`)
	if err != nil {
		return nil, fmt.Errorf("%s: read events: %w", f.path, err)
	}
	defer rows.Close()
	var evs []*Event
	for rows.Next() {
		e := &Event{fileIdx: idx}
		var ts int64
		if err := rows.Scan(&e.ID, &e.session, &ts, &e.Kind, &e.Detail, &e.Host); err != nil {
			return nil, fmt.Errorf("%s: read events: %w", f.path, err)
		}
		e.Time = time.Unix(0, ts).UTC()
		evs = append(evs, e)
	}
	return evs, rows.Err()
}

// Events returns every file's events in timeline order (time, file, id).
func (d *DB) Events(ctx context.Context) ([]*Event, error) {
	var all []*Event
	for i, f := range d.files {
		evs, err := f.events(ctx, i)
		if err != nil {
			return nil, err
		}
		all = append(all, evs...)
	}
	sort.SliceStable(all, func(i, j int) bool { return eventBefore(all[i], all[j]) })
	return all, nil
}

func eventBefore(a, b *Event) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.fileIdx != b.fileIdx {
		return a.fileIdx < b.fileIdx
	}
	return a.ID < b.ID
}

// timelineEvents are the events a timeline shows: none when the filter
// narrows by process or by message (an event has neither), else those in
// its time window after the cursor. At one time in one file events come
// after messages and resolutions.
func (d *DB) timelineEvents(ctx context.Context, f *Filter, after *Cursor) ([]*Event, error) {
	if f.hasProcess() || len(f.QTypes) > 0 || len(f.Rcodes) > 0 || len(f.Names) > 0 {
		return nil, nil
	}
	all, err := d.Events(ctx)
	if err != nil {
		return nil, err
	}
	keep := all[:0]
	for _, e := range all {
		if !f.Since.IsZero() && e.Time.Before(f.Since) || !f.Until.IsZero() && !e.Time.Before(f.Until) {
			continue
		}
		if after != nil && !eventAfter(e, after) {
			continue
		}
		keep = append(keep, e)
	}
	return keep, nil
}

// eventAfter tells whether e comes after the cursor in the timeline.
func eventAfter(e *Event, c *Cursor) bool {
	ts := e.Time.UnixNano()
	switch {
	case ts != c.TS:
		return ts > c.TS
	case e.fileIdx != c.File:
		return e.fileIdx > c.File
	case c.Ev:
		return e.ID > c.ID
	}
	return true // after every message and resolution of its time and file
}

// eventBeforeRow tells whether e comes before a message or resolution at
// t in file idx.
func eventBeforeRow(e *Event, t time.Time, idx int) bool {
	if !e.Time.Equal(t) {
		return e.Time.Before(t)
	}
	return e.fileIdx < idx
}
