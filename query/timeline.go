package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query/format"
)

// TimelineColumns are the columns of `dnsrec query timeline`, one row per
// DNS message. A message seen on both ends of this host (loopback) is one
// row naming both processes. "file" is added first when several files are
// queried.
var TimelineColumns = []string{
	"time", "host", "id", "kind", "proto",
	"src", "src_pid", "src_comm", "dst", "dst_pid", "dst_comm",
	"src_iface", "dst_iface", "src_container", "dst_container",
	"qname", "qtype", "rcode", "answers", "reply_to", "latency_ms", "via", "note",
	"url_host", "url_path",
}

// TimelineRow renders one message as TimelineColumns; via is its link
// through a local resolver (see relay.go), or "". The cells are those
// timelineCells gives a format.CellRowWriter, as values.
func TimelineRow(m *Message, via string) []any {
	var scratch [64]byte
	c := anyCells{row: make([]any, 0, len(TimelineColumns))}
	timelineCells(&c, "", m, via, &scratch)
	return c.row
}

// anyCells collects a row's cells as the values Table and the writers
// take: NULL as nil, strings (copied: timelineCells may lend a scratch
// buffer), int64, time.Time, Millis and lists as []string (nil when empty,
// as TypedAnswers gives them).
type anyCells struct {
	row  []any
	list []string
}

func (c *anyCells) Null()                  { c.row = append(c.row, nil) }
func (c *anyCells) Str(s string)           { c.row = append(c.row, strings.Clone(s)) }
func (c *anyCells) NStr(s string)          { c.row = append(c.row, nullString(strings.Clone(s))) }
func (c *anyCells) Int(v int64)            { c.row = append(c.row, v) }
func (c *anyCells) Time(t time.Time)       { c.row = append(c.row, t) }
func (c *anyCells) Millis(d time.Duration) { c.row = append(c.row, Millis(d)) }
func (c *anyCells) BeginList()             { c.list = nil }
func (c *anyCells) Item(a, b, d string)    { c.list = append(c.list, a+b+d) }
func (c *anyCells) EndList()               { c.row = append(c.row, c.list) }

// Note says what a reader must know about a message's bytes: cut at
// snaplen, undecodable, or a QR bit that contradicts the roles.
func (m *Message) Note() string {
	var notes []string
	if m.Cut {
		notes = append(notes, fmt.Sprintf("cut at snaplen (%d bytes on the wire)", m.Size))
	}
	if m.ParseErr != "" {
		notes = append(notes, "undecodable: "+m.ParseErr)
	}
	if m.QRMismatch {
		notes = append(notes, "QR bit contradicts the ports")
	}
	if m.FromJSON {
		notes = append(notes, "synthesised from the DoH JSON API")
	}
	return strings.Join(notes, "; ")
}

// Millis renders a duration as milliseconds with microsecond precision.
type Millis time.Duration

func (d Millis) String() string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 3, 64)
}

// TypedAnswers renders answer records as "CNAME cdn.evil.test",
// "A 203.0.113.7": the type, then the data as stored, with the trailing
// dot of names inside rdata removed so that every name prints alike.
func TypedAnswers(rrs []RR) []string {
	if len(rrs) == 0 {
		return nil
	}
	out := make([]string, len(rrs))
	for i, r := range rrs {
		out[i] = dnstext.TypeName(r.Type) + " " + dnstext.DisplayData(r.Type, r.Data)
	}
	return out
}

// TimelineOptions refine Timeline.
type TimelineOptions struct {
	Filter
	After *Cursor
	// NoLinks leaves the via column empty: the resolver links cost a
	// lookup per client query to a local resolver, which a page can
	// afford and a whole-file export should not (see relay.go).
	NoLinks bool
	// Processes adds TimelineProcessColumns: each end's executable,
	// command line and parent chain, for reports (export csv and jsonl).
	Processes bool
	// Counts, if set, counts the rows written by kind.
	Counts *TimelineCounts
}

// TimelineCounts are the rows Timeline wrote: DNS messages (one row each,
// whether seen at one end or both) and libc calls.
type TimelineCounts struct {
	Messages, LibcCalls int64
}

// Timeline streams every message that passes the filter, and every libc
// resolution (schema v5), in time order, to out, and returns the cursor of
// the last one written (nil if none), which resumes after it. At one time
// in one file messages come before resolutions.
func (d *DB) Timeline(ctx context.Context, opts TimelineOptions, out format.RowWriter) (*Cursor, error) {
	multi := len(d.files) > 1
	files := map[string]*file{}
	for _, f := range d.files {
		files[f.path] = f
	}
	resAfter := opts.After
	if resAfter != nil && resAfter.Ev {
		// After an event: after every resolution and encrypted-DNS
		// connection of its time and file.
		resAfter = &Cursor{TS: resAfter.TS, File: resAfter.File, ID: math.MaxInt64, Enc: true}
	}
	res, err := d.resolutions(ctx, &opts.Filter, resAfter, opts.Processes)
	if err != nil {
		return nil, err
	}
	defer res.close()
	evs, err := d.timelineEvents(ctx, &opts.Filter, opts.After)
	if err != nil {
		return nil, err
	}
	var last *Cursor
	n, limit := 0, opts.Limit
	full := func() bool { return limit > 0 && n >= limit }
	counts := opts.Counts
	if counts == nil {
		counts = &TimelineCounts{}
	}
	write := func(row []any, c Cursor) error {
		if multi {
			row = append([]any{d.files[c.File].path}, row...)
		}
		last = &c
		n++
		return out.Row(row)
	}
	// writeEvents writes the events that come before a row at t in file
	// idx; all of them with t zero.
	writeEvents := func(t time.Time, idx int) error {
		for len(evs) > 0 && (t.IsZero() || eventBeforeRow(evs[0], t, idx)) {
			if full() {
				return errPageFull
			}
			e := evs[0]
			row := EventTimelineRow(e)
			if opts.Processes {
				row = append(row, nil, nil, nil, nil, nil, nil)
			}
			if err := write(row, Cursor{TS: e.Time.UnixNano(), File: e.fileIdx, ID: e.ID, Ev: true}); err != nil {
				return err
			}
			evs = evs[1:]
		}
		return nil
	}
	writeRes := func(r *Resolution) error {
		if err := writeEvents(r.Time, r.fileIdx); err != nil {
			return err
		}
		if full() {
			return errPageFull
		}
		if r.Enc == nil {
			counts.LibcCalls++
		}
		row := ResolutionTimelineRow(r)
		if opts.Processes {
			row = append(append(row, processCells(r.Proc)...), nil, nil, nil)
		}
		return write(row, Cursor{TS: r.Time.UnixNano(), File: r.fileIdx, ID: r.ID, Res: r.Enc == nil, Enc: r.Enc != nil})
	}
	// A writer that takes cells one by one is spared the []any row.
	cw, _ := out.(format.CellRowWriter)
	var scratch [64]byte
	err = d.Messages(ctx, MessageOptions{Filter: opts.Filter, After: opts.After.messagesAfter(), Ancestry: opts.Processes}, func(m *Message) error {
		c := d.CursorOf(m)
		for r := res.peek(); r != nil && resolutionFirst(r, m, c.File); r = res.peek() {
			if full() {
				return errPageFull
			}
			if err := writeRes(r); err != nil {
				return err
			}
			if err := res.pop(ctx); err != nil {
				return err
			}
		}
		if err := writeEvents(m.Time, c.File); err != nil {
			return err
		}
		if full() {
			return errPageFull
		}
		var via string
		if f := files[m.File]; f != nil && !opts.NoLinks {
			var err error
			if via, err = f.relayOf(ctx, m); err != nil {
				return err
			}
		}
		counts.Messages++
		if cw != nil {
			var file string
			if multi {
				file = d.files[c.File].path
			}
			last = &c
			n++
			if opts.Processes {
				cells := cw.BeginRow()
				timelineCells(cells, file, m, via, &scratch)
				for _, p := range [2]*Party{m.Sender, m.Receiver} {
					for _, v := range processCells(partyProc(p)) {
						if v == nil {
							cells.Null()
						} else {
							cells.Str(v.(string))
						}
					}
				}
				return cw.EndRow()
			}
			return messageRow(cw, file, m, via, &scratch)
		}
		row := TimelineRow(m, via)
		if opts.Processes {
			row = append(append(row, processCells(partyProc(m.Sender))...), processCells(partyProc(m.Receiver))...)
		}
		return write(row, c)
	})
	if err != nil && !errors.Is(err, errPageFull) {
		return last, err
	}
	for r := res.peek(); r != nil && !full(); r = res.peek() {
		if err := writeRes(r); err != nil {
			if errors.Is(err, errPageFull) {
				return last, nil
			}
			return last, err
		}
		if err := res.pop(ctx); err != nil {
			return last, err
		}
	}
	if err := writeEvents(time.Time{}, 0); err != nil && !errors.Is(err, errPageFull) {
		return last, err
	}
	return last, nil
}

// errPageFull stops the messages when resolutions filled the page.
var errPageFull = errors.New("page full")

// TimelineColumnsFor returns the timeline's columns for this set of files.
func (d *DB) TimelineColumnsFor() []string {
	return d.withFile(TimelineColumns)
}

// TimelineProcessColumns are what TimelineOptions.Processes adds after
// TimelineColumns: the sender's, then the receiver's, executable, command
// line (shell-quoted) and parent chain (nearest first).
var TimelineProcessColumns = []string{"src_exe", "src_argv", "src_ancestry", "dst_exe", "dst_argv", "dst_ancestry"}

// TimelineColumnsWithProcesses is TimelineColumnsFor plus
// TimelineProcessColumns.
func (d *DB) TimelineColumnsWithProcesses() []string {
	return d.withFile(append(slices.Clone(TimelineColumns), TimelineProcessColumns...))
}

// processCells are one end's TimelineProcessColumns: strings, or nil.
func processCells(p *Process) []any {
	if p == nil {
		return []any{nil, nil, nil}
	}
	return []any{nullString(p.Exe), nullString(ShellQuote(p.Argv)), nullString(p.Ancestry.String())}
}

func partyProc(p *Party) *Process {
	if p == nil {
		return nil
	}
	return p.Proc
}

// withFile prepends a "file" column when several files are queried.
func (d *DB) withFile(cols []string) []string {
	if len(d.files) < 2 {
		return cols
	}
	return append([]string{"file"}, cols...)
}
