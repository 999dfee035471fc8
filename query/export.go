package query

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ExportFormats are the formats Export writes. EXPORTS.md documents each
// one's fields.
var ExportFormats = []string{"pcapng", "zeek", "ocsf", "parquet", "csv", "jsonl"}

// ExportStats counts what an export read and wrote.
type ExportStats struct {
	Messages   int64 // DNS messages read from the evidence
	Rows       int64 // packets (pcapng), log rows (zeek), events (ocsf) or table rows (parquet) written
	Unanswered int64 // queries written without a response (transaction formats)
	Alone      int64 // responses written without their query (transaction formats)
}

// txnWriter writes transactions in one format.
type txnWriter interface {
	write(t *Transaction) error
	close() error // writes what ends the file; the caller closes w
}

// Export writes the messages that pass f to w in format (one of
// ExportFormats), streaming: memory does not grow with the evidence.
//
// pcapng writes one packet per message; the other formats one row or event
// per transaction (a query and its response, see Transactions). f.Limit
// counts what is written: packets or transactions. Nothing is written to
// the evidence, which is opened read-only.
func (d *DB) Export(ctx context.Context, w io.Writer, format string, f Filter) (ExportStats, error) {
	if err := d.checkFilter(&f); err != nil {
		return ExportStats{}, err
	}
	for _, fl := range d.files {
		if fl.version < 2 {
			return ExportStats{}, fmt.Errorf("%s: %w", fl.path, ErrOldSchema)
		}
	}
	switch format {
	case "pcapng":
		return d.exportPcapng(ctx, w, f)
	case "csv", "jsonl":
		return d.exportTimeline(ctx, w, Format(format), f)
	}
	var tw txnWriter
	raw := false
	switch format {
	case "zeek":
		tw = newZeekWriter(w)
	case "ocsf":
		tw = newOCSFWriter(ctx, w, d)
		raw = true // the answers' classes are only in the bytes
	case "parquet":
		pw, err := newParquetWriter(w)
		if err != nil {
			return ExportStats{}, err
		}
		tw = pw
	default:
		return ExportStats{}, fmt.Errorf("unknown export format %q (want one of %s)", format, strings.Join(ExportFormats, ", "))
	}
	st, err := d.transactions(ctx, MessageOptions{Filter: f, Raw: raw, Ancestry: true}, tw.write)
	if err != nil {
		if a, ok := tw.(interface{ abort() error }); ok {
			a.abort() // its goroutine ends; the error is err's
		}
		return st, err
	}
	return st, tw.close()
}

// cmdLine renders a process's argv as one shell-quoted line.
func cmdLine(p *Process) string {
	if p == nil {
		return ""
	}
	return ShellQuote(p.Argv)
}

// ancestryList renders a parent chain as "sh(812)", "sshd(640)", ...
func ancestryList(a Ancestry) []string {
	if len(a) == 0 {
		return nil
	}
	out := make([]string, len(a))
	for i, p := range a {
		c := p.Comm
		if c == "" {
			c = "?"
		}
		out[i] = c + "(" + strconv.FormatInt(p.PID, 10) + ")"
	}
	return out
}

// exportTimeline writes the timeline's rows (one per message) as CSV or
// JSON lines: the columns of `query timeline`, with the file first when
// several are open.
func (d *DB) exportTimeline(ctx context.Context, w io.Writer, format Format, f Filter) (ExportStats, error) {
	var st ExportStats
	rw, err := NewRowWriter(w, format, d.TimelineColumnsFor(), WriteOptions{})
	if err != nil {
		return st, err
	}
	counter := &countingRows{RowWriter: rw, n: &st.Rows}
	if _, err := d.Timeline(ctx, TimelineOptions{Filter: f, NoLinks: true}, counter); err != nil {
		return st, err
	}
	st.Messages = st.Rows
	return st, rw.Close()
}

type countingRows struct {
	RowWriter
	n *int64
}

func (c *countingRows) Row(cells []any) error {
	*c.n++
	return c.RowWriter.Row(cells)
}
