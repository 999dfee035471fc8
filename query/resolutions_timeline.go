package query

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/internal/dnstext"
)

// Resolution is a libc resolver call (schema v5), as the timeline and the
// process view show it.
type Resolution struct {
	File     string
	fileIdx  int
	ID       int64
	Host     string
	Time     time.Time // when the call returned
	Duration time.Duration
	Func     string // getaddrinfo, gethostbyname_r, gethostbyname2_r
	Name     string
	RC       int64
	Flags    int64
	Addrs    []string
	Proc     *Process // nil when the caller could not be identified
}

// Status is what the call returned: "answered", EAI_NONAME, ...
func (r *Resolution) Status() string { return dnstext.ResolutionStatus(r.Func, r.RC) }

// Note says what was not kept of the call.
func (r *Resolution) Note() string {
	var notes []string
	if r.Flags&1 != 0 {
		notes = append(notes, "name cut at 255 bytes")
	}
	if r.Flags&2 != 0 {
		notes = append(notes, "more addresses than the 16 kept")
	}
	return strings.Join(notes, "; ")
}

// Answers are the addresses typed as answers: "A 192.0.2.7".
func (r *Resolution) Answers() []string {
	out := make([]string, len(r.Addrs))
	for i, a := range r.Addrs {
		out[i] = dnstext.AddrAnswer(a)
	}
	return out
}

// ResolutionTimelineRow renders a libc resolution as TimelineColumns: its
// id is "r" and the resolution's id, its kind "libc" and the function, the
// caller is the source end, and the outcome stands in the rcode column.
func ResolutionTimelineRow(r *Resolution) []any {
	var pid, comm, container any
	if r.Proc != nil {
		pid, comm, container = r.Proc.PID, nullString(r.Proc.Comm), nullString(r.Proc.Container)
	}
	return []any{
		r.Time, r.Host, "r" + strconv.FormatInt(r.ID, 10), libcSource(r.Func), nil,
		nil, pid, comm, nil, nil, nil,
		nil, nil, container, nil,
		nullString(r.Name), nil, r.Status(), r.Answers(), nil, Millis(r.Duration), nil, nullString(r.Note()),
	}
}

// resolutionsWhere is the condition on resolutions r that selects file
// number idx's resolutions after the cursor. At one time in one file the
// timeline puts messages first, then resolutions, each by id.
func resolutionsWhere(idx int, f *Filter, c *Cursor) (string, []any) {
	where, args := f.resWhere()
	if c != nil {
		w, a := c.where(idx, "r", c.Res)
		where, args = where+w, append(args, a...)
	}
	return where, args
}

// resolutionStream yields the libc resolutions that pass a filter after a
// cursor, across files, in timeline order (time, file, id): a k-way merge
// of one statement per file, so that memory does not grow with the result.
type resolutionStream struct {
	srcs  []*resSource
	heads []*Resolution
}

type resSource struct {
	fl   *file
	idx  int
	rows *sql.Rows
	dict *dicts
	// ancestry: walk each caller's parent chain.
	ancestry bool
}

// resolutions opens the stream; close it when done. With ancestry each
// caller's parent chain is filled.
func (d *DB) resolutions(ctx context.Context, f *Filter, after *Cursor, ancestry bool) (*resolutionStream, error) {
	s := &resolutionStream{}
	for i, fl := range d.files {
		if fl.version < 5 {
			continue
		}
		where, args := resolutionsWhere(i, f, after)
		q := `SELECT r.id, r.session_id, r.ts_ns, r.dur_ns, r.owner, r.func, coalesce(n.name, ''), r.rc, r.flags,
       (SELECT group_concat(addr, ';') FROM (SELECT addr FROM resolution_addrs WHERE resolution_id = r.id ORDER BY id))
FROM resolutions r LEFT JOIN names n ON n.id = r.name_id
WHERE ` + where + ` ORDER BY r.ts_ns, r.id`
		if f.Limit > 0 {
			q += " LIMIT " + strconv.Itoa(f.Limit)
		}
		rows, err := fl.db.QueryContext(ctx, q, args...)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: read libc resolutions: %w", fl.path, err)
		}
		src := &resSource{fl: fl, idx: i, rows: rows, dict: fl.dicts(), ancestry: ancestry}
		s.srcs = append(s.srcs, src)
		head, err := src.next(ctx)
		if err != nil {
			s.close()
			return nil, err
		}
		s.heads = append(s.heads, head)
	}
	return s, nil
}

// peek is the next resolution, nil at the end.
func (s *resolutionStream) peek() *Resolution {
	var best *Resolution
	for _, h := range s.heads {
		if h != nil && (best == nil || h.Time.Before(best.Time)) {
			best = h // ties: the lower file first, as the heads are in file order
		}
	}
	return best
}

// pop moves past the resolution peek returned.
func (s *resolutionStream) pop(ctx context.Context) error {
	best := -1
	for i, h := range s.heads {
		if h != nil && (best < 0 || h.Time.Before(s.heads[best].Time)) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	next, err := s.srcs[best].next(ctx)
	s.heads[best] = next
	return err
}

func (s *resolutionStream) close() {
	for _, src := range s.srcs {
		src.rows.Close()
	}
}

// next reads the source's next resolution; nil at the end.
func (src *resSource) next(ctx context.Context) (*Resolution, error) {
	if !src.rows.Next() {
		if err := src.rows.Err(); err != nil {
			return nil, fmt.Errorf("%s: read libc resolutions: %w", src.fl.path, err)
		}
		return nil, nil
	}
	r := &Resolution{File: src.fl.path, fileIdx: src.idx}
	var ts, dur, session int64
	var owner sql.NullInt64
	var addrs sql.NullString
	if err := src.rows.Scan(&r.ID, &session, &ts, &dur, &owner, &r.Func, &r.Name, &r.RC, &r.Flags, &addrs); err != nil {
		return nil, fmt.Errorf("%s: read libc resolutions: %w", src.fl.path, err)
	}
	r.Time, r.Duration = time.Unix(0, ts).UTC(), time.Duration(dur)
	if addrs.String != "" {
		r.Addrs = strings.Split(addrs.String, ";")
	}
	var err error
	if r.Host, err = src.dict.host(ctx, session); err != nil {
		return nil, err
	}
	if owner.Valid {
		if r.Proc, err = src.dict.owner(ctx, owner.Int64); err != nil {
			return nil, err
		}
		if p := r.Proc; src.ancestry && p != nil && p.ID != 0 && p.Ancestry == nil {
			if p.Ancestry, err = src.dict.ancestry(ctx, p.ParentID); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// resolutionFirst tells whether r comes before message m, of file number
// mFile, in the timeline: at one time in one file, messages come first.
func resolutionFirst(r *Resolution, m *Message, mFile int) bool {
	if !r.Time.Equal(m.Time) {
		return r.Time.Before(m.Time)
	}
	return r.fileIdx < mFile
}
