package query

import (
	"context"
	"database/sql"
	"fmt"
	"math"
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
	// Enc, if set, makes this an encrypted-DNS connection (schema v11),
	// not a resolution: Func, Name, RC, Flags and Addrs are empty. It
	// shares the resolutions' stream into the timeline.
	Enc *EncConnEvent
}

// EncConnEvent is one encrypted-DNS connection as the timeline shows it.
type EncConnEvent struct {
	Kind, Transport, Via string
	Local, Remote        string // addr:port; Local "" when unknown
	SNI, Resolver        string
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
	if e := r.Enc; e != nil {
		// An encrypted-DNS connection: id "c" and its id, kind "encrypted"
		// and dot, doq or doh-known, the transport as proto, the process
		// at the local end; the server name and the resolver in the note.
		var notes []string
		if e.SNI != "" {
			notes = append(notes, "sni "+e.SNI)
		}
		if e.Resolver != "" {
			notes = append(notes, "resolver "+e.Resolver)
		}
		notes = append(notes, "content not read")
		return []any{
			r.Time, r.Host, "c" + strconv.FormatInt(r.ID, 10), "encrypted " + e.Kind, e.Transport,
			nullString(e.Local), pid, comm, e.Remote, nil, nil,
			nil, nil, container, nil,
			nil, nil, nil, nil, nil, nil, nil, strings.Join(notes, "; "),
			nil, nil,
		}
	}
	return []any{
		r.Time, r.Host, "r" + strconv.FormatInt(r.ID, 10), libcSource(r.Func), nil,
		nil, pid, comm, nil, nil, nil,
		nil, nil, container, nil,
		nullString(r.Name), nil, r.Status(), r.Answers(), nil, Millis(r.Duration), nil, nullString(r.Note()),
		nil, nil,
	}
}

// resolutionsWhere is the condition on resolutions r that selects file
// number idx's resolutions after the cursor. At one time in one file the
// timeline puts messages first, then resolutions, each by id.
func resolutionsWhere(idx int, f *Filter, c *Cursor) (string, []any) {
	where, args := f.resWhere()
	if c != nil {
		cc := *c
		if cc.Enc {
			cc.ID = math.MaxInt64
		}
		w, a := cc.where(idx, "r", cc.Res || cc.Enc)
		where, args = where+w, append(args, a...)
	}
	return where, args
}

// encWhere is resolutionsWhere for enc_conns e: at one time in one file
// they come last.
func encConnsWhere(idx int, f *Filter, c *Cursor) (string, []any) {
	where, args := f.encWhere()
	if c != nil {
		w, a := c.where(idx, "e", c.Enc)
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
	enc  bool // enc_conns, not resolutions
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
		// The name as the program passed it (schema v15).
		name, join := "coalesce(n.name, '')", ""
		if fl.hasSpellings() {
			name, join = "coalesce(sp.name, n.name, '')", " LEFT JOIN spellings sp ON sp.id = r.spelling_id"
		}
		q := `SELECT r.id, r.session_id, r.ts_ns, r.dur_ns, r.owner, r.func, ` + name + `, r.rc, r.flags,
       (SELECT group_concat(addr, ';') FROM (SELECT addr FROM resolution_addrs WHERE resolution_id = r.id ORDER BY id))
FROM resolutions r LEFT JOIN names n ON n.id = r.name_id` + join + `
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
	for i, fl := range d.files {
		if fl.version < 11 {
			continue
		}
		where, args := encConnsWhere(i, f, after)
		q := `SELECT e.id, e.session_id, e.ts_ns, e.owner, e.kind, e.transport, e.via, e.r_addr, e.r_port,
       coalesce(e.l_addr, ''), coalesce(e.l_port, 0), coalesce(e.sni, ''), coalesce(e.resolver, '')
FROM enc_conns e WHERE ` + where + ` ORDER BY e.ts_ns, e.id`
		if f.Limit > 0 {
			q += " LIMIT " + strconv.Itoa(f.Limit)
		}
		rows, err := fl.db.QueryContext(ctx, q, args...)
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: read encrypted-DNS connections: %w", fl.path, err)
		}
		src := &resSource{fl: fl, idx: i, enc: true, rows: rows, dict: fl.dicts()}
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

// resBefore orders the stream: time, file, resolutions before connections.
func resBefore(a, b *Resolution) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	if a.fileIdx != b.fileIdx {
		return a.fileIdx < b.fileIdx
	}
	return a.Enc == nil && b.Enc != nil
}

// peek is the next resolution, nil at the end.
func (s *resolutionStream) peek() *Resolution {
	var best *Resolution
	for _, h := range s.heads {
		if h != nil && (best == nil || resBefore(h, best)) {
			best = h
		}
	}
	return best
}

// pop moves past the resolution peek returned.
func (s *resolutionStream) pop(ctx context.Context) error {
	best := -1
	for i, h := range s.heads {
		if h != nil && (best < 0 || resBefore(h, s.heads[best])) {
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
	if src.enc {
		return src.nextEnc(ctx, r)
	}
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

// nextEnc reads an encrypted-DNS connection into r.
func (src *resSource) nextEnc(ctx context.Context, r *Resolution) (*Resolution, error) {
	var (
		ts, session, rport, lport int64
		owner                     sql.NullInt64
		raddr, laddr              string
	)
	e := &EncConnEvent{}
	if err := src.rows.Scan(&r.ID, &session, &ts, &owner, &e.Kind, &e.Transport, &e.Via, &raddr, &rport, &laddr, &lport, &e.SNI, &e.Resolver); err != nil {
		return nil, fmt.Errorf("%s: read encrypted-DNS connections: %w", src.fl.path, err)
	}
	r.Enc = e
	r.Time = time.Unix(0, ts).UTC()
	e.Remote = joinHostPort(raddr, rport)
	if laddr != "" {
		e.Local = joinHostPort(laddr, lport)
	}
	var err error
	if r.Host, err = src.dict.host(ctx, session); err != nil {
		return nil, err
	}
	if owner.Valid {
		if r.Proc, err = src.dict.owner(ctx, owner.Int64); err != nil {
			return nil, err
		}
	}
	return r, nil
}
