package export

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
)

// Formats are the formats Write writes. query/EXPORTS.md documents each
// one's fields.
var Formats = []string{"pcapng", "zeek", "ocsf", "parquet", "csv", "jsonl"}

// Stats counts what an export read and wrote.
type Stats struct {
	Messages   int64 // DNS messages read from the evidence
	LibcCalls  int64 // libc resolver calls written (csv, jsonl: the timeline's rows)
	Rows       int64 // packets (pcapng), log rows (zeek), events (ocsf) or table rows (parquet) written
	Unanswered int64 // queries written without a response (transaction formats)
	Alone      int64 // responses written without their query (transaction formats)
}

// Summary says what an export in format as wrote, each count in its unit:
// DNS messages (one however many ends saw it), libc calls, and the
// format's own rows.
func Summary(as string, st Stats) string {
	switch as {
	case "pcapng":
		return fmt.Sprintf("%d packets, one per DNS message", st.Rows)
	case "csv", "jsonl":
		if other := st.Rows - st.Messages - st.LibcCalls; other > 0 {
			return fmt.Sprintf("%d rows: %d DNS messages, %d libc calls and %d of the recorder's events and encrypted-DNS connections", st.Rows, st.Messages, st.LibcCalls, other)
		}
		return fmt.Sprintf("%d rows: %d DNS messages and %d libc calls", st.Rows, st.Messages, st.LibcCalls)
	}
	what := "rows"
	if as == "ocsf" {
		what = "events"
	}
	return fmt.Sprintf("%d %s from %d DNS messages (%d queries unanswered, %d responses without their query)", st.Rows, what, st.Messages, st.Unanswered, st.Alone)
}

// txnWriter writes transactions in one format.
type txnWriter interface {
	write(t *query.Transaction) error
	close() error // writes what ends the file; the caller closes w
}

// Write writes the messages of d that pass f to w in format as (one of
// Formats), streaming: memory does not grow with the evidence.
//
// pcapng writes one packet per message; the other formats one row or event
// per transaction (a query and its response, see query.Transactions).
// f.Limit counts what is written: packets or transactions. Nothing is
// written to the evidence, which is opened read-only.
func Write(ctx context.Context, d *query.DB, w io.Writer, as string, f query.Filter) (Stats, error) {
	return WriteColumns(ctx, d, w, as, f, nil)
}

// WriteColumns is Write with only columns, in their order, for csv and
// jsonl (nil: all); the other formats have fixed fields.
func WriteColumns(ctx context.Context, d *query.DB, w io.Writer, as string, f query.Filter, columns []string) (Stats, error) {
	if len(columns) > 0 && as != "csv" && as != "jsonl" {
		return Stats{}, fmt.Errorf("--columns: %s has fixed fields; columns are picked for csv and jsonl", as)
	}
	if err := d.CheckFilter(&f); err != nil {
		return Stats{}, err
	}
	if err := d.CheckVersion(2); err != nil {
		return Stats{}, err
	}
	switch as {
	case "pcapng":
		return writePcapng(ctx, d, w, f)
	case "csv", "jsonl":
		return writeTimeline(ctx, d, w, format.Format(as), f, columns)
	}
	var tw txnWriter
	raw := false
	switch as {
	case "zeek":
		tw = newZeekWriter(w)
	case "ocsf":
		tw = newOCSFWriter(ctx, w, d)
		raw = true // the answers' classes are only in the bytes
	case "parquet":
		pw, err := newParquetWriter(w)
		if err != nil {
			return Stats{}, err
		}
		tw = pw
	default:
		return Stats{}, fmt.Errorf("unknown export format %q (want one of %s)", as, strings.Join(Formats, ", "))
	}
	ts, err := d.Transactions(ctx, query.MessageOptions{Filter: f, Raw: raw, Ancestry: true}, tw.write)
	st := Stats{Messages: ts.Messages, Rows: ts.Transactions, Unanswered: ts.Unanswered, Alone: ts.Alone}
	if err != nil {
		if a, ok := tw.(interface{ abort() error }); ok {
			a.abort() // its goroutine ends; the error is err's
		}
		return st, err
	}
	return st, tw.close()
}

// cmdLine renders a process's argv as one shell-quoted line.
func cmdLine(p *query.Process) string {
	if p == nil {
		return ""
	}
	return query.ShellQuote(p.Argv)
}

// writeTimeline writes the timeline's rows (one per message) as CSV or
// JSON lines: the columns of `query timeline`, with the file first when
// several are open, then each end's exe, command line and parent chain
// (query.TimelineProcessColumns), which a report needs.
func writeTimeline(ctx context.Context, d *query.DB, w io.Writer, as format.Format, f query.Filter, columns []string) (Stats, error) {
	var st Stats
	rw, err := format.NewRowWriter(w, as, d.TimelineColumnsWithProcesses(), format.WriteOptions{Columns: columns})
	if err != nil {
		return st, err
	}
	counter := query.CountRows(rw, &st.Rows)
	var n query.TimelineCounts
	if _, err := d.Timeline(ctx, query.TimelineOptions{Filter: f, NoLinks: true, Processes: true, Counts: &n}, counter); err != nil {
		return st, err
	}
	st.Messages, st.LibcCalls = n.Messages, n.LibcCalls
	return st, rw.Close()
}
