package format

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Table is a listing in a shape that every output format can render:
// named columns and rows of cells. Commands build one from their typed rows
// and hand it to Write, so adding a command never means adding a formatter.
//
// A cell is nil (unknown: empty in text formats, null in JSON), a string, an
// integer, a time.Time (rendered with TimeLayout in UTC), or a []string (joined
// with ";" in text formats, an array in JSON).
type Table struct {
	Columns []string
	Rows    [][]any
}

// TimeLayout renders timestamps: RFC 3339 in UTC with all nine fractional
// digits, so that values line up in a table and sort as text.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// ListSeparator joins list cells ([]string) in the text formats.
const ListSeparator = ";"

// Format is an output format.
type Format string

// The output formats.
const (
	FormatTable Format = "table" // aligned columns for a human at a terminal
	FormatCSV   Format = "csv"   // RFC 4180 with a header line
	FormatJSON  Format = "json"  // one JSON array of objects keyed by column
	FormatJSONL Format = "jsonl" // one JSON object per line
)

// Formats lists the accepted formats, for usage text.
var Formats = []Format{FormatTable, FormatCSV, FormatJSON, FormatJSONL}

// ParseFormat validates a --format value. The empty string selects the
// default for out: see DefaultFormat.
func ParseFormat(s string, out io.Writer) (Format, error) {
	if s == "" {
		return DefaultFormat(out), nil
	}
	for _, f := range Formats {
		if Format(s) == f {
			return f, nil
		}
	}
	names := make([]string, len(Formats))
	for i, f := range Formats {
		names[i] = string(f)
	}
	return "", fmt.Errorf("unknown format %q: want one of %s", s, strings.Join(names, ", "))
}

// DefaultFormat is the table when out is a terminal, and CSV otherwise, so
// that `dnsrec query ... > report.csv` needs no flag.
func DefaultFormat(out io.Writer) Format {
	if f, ok := out.(*os.File); ok && isTerminal(f.Fd()) {
		return FormatTable
	}
	return FormatCSV
}

// WriteOptions change how cells are rendered.
type WriteOptions struct {
	// Location renders times in this zone instead of UTC (--local).
	Location *time.Location
	// MaxCell cuts table cells longer than this many characters, marking
	// the cut with "…"; 0 keeps them whole. Only the table format cuts:
	// CSV and JSON are for machines and always whole.
	MaxCell int
	// Columns, if set, are the columns to write, in this order (--columns):
	// names of the listing's columns. An unknown name is an error that
	// lists the known ones.
	Columns []string
}

// RowWriter writes a listing row by row, so that a command streams its
// result instead of holding it in memory.
type RowWriter interface {
	Row(cells []any) error
	// Close writes what the format needs at the end and flushes.
	Close() error
}

// NewRowWriter starts a listing with the given columns in format f.
func NewRowWriter(w io.Writer, f Format, columns []string, opts WriteOptions) (RowWriter, error) {
	if len(opts.Columns) > 0 {
		pick, err := pickColumns(columns, opts.Columns)
		if err != nil {
			return nil, err
		}
		picked := make([]string, len(pick))
		for i, j := range pick {
			picked[i] = columns[j]
		}
		inner := opts
		inner.Columns = nil
		rw, err := NewRowWriter(w, f, picked, inner)
		if err != nil {
			return nil, err
		}
		return &pickingWriter{rw: rw, pick: pick}, nil
	}
	loc := opts.Location
	if loc == nil {
		loc = time.UTC
	}
	switch f {
	case FormatTable:
		return newTableWriter(w, columns, loc, opts.MaxCell)
	case FormatCSV:
		return newCSVWriter(w, columns, loc)
	case FormatJSON, FormatJSONL:
		return newJSONWriter(w, columns, loc, f == FormatJSONL)
	}
	return nil, fmt.Errorf("unknown format %q", f)
}

// pickColumns returns the index in columns of each name in want.
func pickColumns(columns, want []string) ([]int, error) {
	pick := make([]int, 0, len(want))
	for _, name := range want {
		name = strings.TrimSpace(name)
		i := slices.Index(columns, name)
		if i < 0 {
			return nil, fmt.Errorf("no column %q: this listing has %s", name, strings.Join(columns, ","))
		}
		pick = append(pick, i)
	}
	return pick, nil
}

// ParseColumns reads --columns: names separated by commas.
func ParseColumns(s string) []string {
	var out []string
	for _, c := range strings.Split(s, ",") {
		if c = strings.TrimSpace(c); c != "" {
			out = append(out, c)
		}
	}
	return out
}

// pickingWriter writes the picked cells of each row. It does not take
// rows cell by cell: the listing then gives whole rows.
type pickingWriter struct {
	rw   RowWriter
	pick []int
}

func (p *pickingWriter) Row(cells []any) error {
	row := make([]any, len(p.pick)) // a writer may keep the row
	for i, j := range p.pick {
		row[i] = cells[j]
	}
	return p.rw.Row(row)
}

func (p *pickingWriter) Close() error { return p.rw.Close() }

// Write renders t to w in format f, in UTC and without cutting cells.
func Write(w io.Writer, f Format, t *Table) error {
	return WriteWith(w, f, t, WriteOptions{})
}

// WriteWith renders t to w in format f.
func WriteWith(w io.Writer, f Format, t *Table, opts WriteOptions) error {
	rw, err := NewRowWriter(w, f, t.Columns, opts)
	if err != nil {
		return err
	}
	for _, r := range t.Rows {
		if err := rw.Row(r); err != nil {
			return err
		}
	}
	return rw.Close()
}

// text renders a cell for the text formats; null is what nil becomes.
func text(v any, null string, loc *time.Location) string {
	switch v := v.(type) {
	case nil:
		return null
	case string:
		return v
	case []string:
		if len(v) == 0 {
			return null
		}
		return strings.Join(v, ListSeparator)
	case time.Time:
		return v.In(loc).Format(TimeLayout)
	case int64:
		return strconv.FormatInt(v, 10)
	case int:
		return strconv.Itoa(v)
	case uint64:
		return strconv.FormatUint(v, 10)
	case fmt.Stringer:
		return v.String()
	}
	return fmt.Sprint(v)
}

// tableFlushRows bounds what the table format holds to align its columns:
// a long listing is aligned in blocks of this many rows.
const tableFlushRows = 1000

type tableWriter struct {
	tw      *tabwriter.Writer
	row     []string
	loc     *time.Location
	max     int
	pending int
	chain   []bool // columns holding a parent chain, cut in the middle
}

func newTableWriter(w io.Writer, columns []string, loc *time.Location, max int) (*tableWriter, error) {
	t := &tableWriter{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0), row: make([]string, len(columns)), loc: loc, max: max}
	t.chain = make([]bool, len(columns))
	for i, c := range columns {
		t.row[i] = strings.ToUpper(c)
		t.chain[i] = strings.HasSuffix(c, "ancestry")
	}
	return t, t.line()
}

func (t *tableWriter) line() error {
	_, err := io.WriteString(t.tw, strings.Join(t.row, "\t")+"\n")
	return err
}

func (t *tableWriter) Row(cells []any) error {
	for i := range t.row {
		if t.chain[i] {
			t.row[i] = cutMiddle(sanitize(text(cells[i], "-", t.loc)), t.max)
		} else {
			t.row[i] = cut(sanitize(text(cells[i], "-", t.loc)), t.max)
		}
	}
	if err := t.line(); err != nil {
		return err
	}
	if t.pending++; t.pending >= tableFlushRows {
		t.pending = 0
		return t.tw.Flush()
	}
	return nil
}

func (t *tableWriter) Close() error { return t.tw.Flush() }

// cut shortens s to max runes, the last being "…".
func cut(s string, max int) string {
	if max <= 0 || utf8.RuneCountInString(s) <= max {
		return s
	}
	r := []rune(s)
	return string(r[:max-1]) + "…"
}

// cutMiddle shortens s to at most width runes by cutting its middle,
// marked "…": a parent chain ("sh(812) > sshd(640) > ... > systemd(1)")
// keeps its nearest parents and its root, which say the most about where a
// process came from. Whole links are kept where they fit.
func cutMiddle(s string, width int) string {
	n := utf8.RuneCountInString
	if width <= 0 || n(s) <= width {
		return s
	}
	const sep, gap = " > ", " > … > "
	if links := strings.Split(s, sep); len(links) > 2 {
		root := links[len(links)-1]
		head := links[0]
		if n(head)+n(gap)+n(root) <= width {
			for _, l := range links[1 : len(links)-1] {
				if n(head)+n(sep)+n(l)+n(gap)+n(root) > width {
					break
				}
				head += sep + l
			}
			return head + gap + root
		}
	}
	if width < 3 {
		return cut(s, width)
	}
	r := []rune(s)
	right := (width - 1) / 2
	left := width - 1 - right
	return string(r[:left]) + "…" + string(r[len(r)-right:])
}

// sanitize makes a cell safe to print on a terminal. Process names, paths
// and DNS names are chosen by whoever is under investigation: an escape
// sequence in a comm must not rewrite the analyst's screen, and a tab or
// newline must not shift the columns. Such runes are shown Go-escaped.
func sanitize(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i, w := 0, 0; i < len(s); i += w {
		r, n := utf8.DecodeRuneInString(s[i:])
		w = n
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			q := strconv.QuoteRune(r) // 'x' with Go escapes inside
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

type csvWriter struct {
	cw    *csv.Writer
	rec   []string
	loc   *time.Location
	cells csvCells // for BeginRow
}

func newCSVWriter(w io.Writer, columns []string, loc *time.Location) (*csvWriter, error) {
	c := &csvWriter{cw: csv.NewWriter(w), rec: make([]string, len(columns)), loc: loc}
	return c, c.cw.Write(columns)
}

func (c *csvWriter) Row(cells []any) error {
	for i := range c.rec {
		c.rec[i] = text(cells[i], "", c.loc)
	}
	return c.cw.Write(c.rec)
}

func (c *csvWriter) Close() error {
	c.cw.Flush()
	return c.cw.Error()
}

// jsonValue converts a cell for encoding/json.
func jsonValue(v any, loc *time.Location) any {
	switch v := v.(type) {
	case time.Time:
		return v.In(loc).Format(TimeLayout)
	case []string:
		if v == nil {
			return []string{}
		}
		return v
	case fmt.Stringer:
		return v.String()
	}
	return v
}

// jsonWriter writes objects whose keys keep the column order, which a map
// would not. lines selects JSON lines instead of one array.
type jsonWriter struct {
	bw    *bufio.Writer
	cols  []string
	keys  [][]byte
	loc   *time.Location
	lines bool
	n     int
	buf   []byte
	cells jsonCells // for BeginRow
}

// appendJSONCell appends the JSON of the cells that need no escaping, as
// marshal(jsonValue(v, loc)) would write them, without its encoder and
// reflection: null, integers, times, and strings (or lists of them) of
// printable ASCII other than '"' and '\'. ok is false for anything else,
// which marshal writes.
func appendJSONCell(b []byte, v any, loc *time.Location) (_ []byte, ok bool) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendPlainJSON(b, v)
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case time.Time:
		b = append(b, '"')
		b = v.In(loc).AppendFormat(b, TimeLayout)
		return append(b, '"'), true
	case []string:
		b = append(b, '[')
		for i, s := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendPlainJSON(b, s); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case fmt.Stringer:
		return appendPlainJSON(b, v.String())
	}
	return b, false
}

// appendPlainJSON appends s quoted, if JSON needs no escape in it.
func appendPlainJSON(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return b, false
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

func newJSONWriter(w io.Writer, columns []string, loc *time.Location, lines bool) (*jsonWriter, error) {
	j := &jsonWriter{bw: bufio.NewWriter(w), cols: columns, keys: make([][]byte, len(columns)), loc: loc, lines: lines}
	for i, c := range columns {
		k, err := marshal(c)
		if err != nil {
			return nil, err
		}
		j.keys[i] = k
	}
	if !lines {
		j.bw.WriteString("[")
	}
	return j, nil
}

// begin starts a row's object.
func (j *jsonWriter) begin() {
	bw := j.bw
	switch {
	case j.lines:
	case j.n == 0:
		bw.WriteString("\n")
	default:
		bw.WriteString(",\n")
	}
	j.n++
	bw.WriteString("{")
}

// end ends a row's object.
func (j *jsonWriter) end() {
	j.bw.WriteString("}")
	if j.lines {
		j.bw.WriteString("\n")
	}
}

func (j *jsonWriter) Row(cells []any) error {
	bw := j.bw
	j.begin()
	for i := range j.cols {
		if i > 0 {
			bw.WriteString(",")
		}
		bw.Write(j.keys[i])
		bw.WriteString(":")
		if b, ok := appendJSONCell(j.buf[:0], cells[i], j.loc); ok {
			j.buf = b
			bw.Write(b)
			continue
		}
		v, err := marshal(jsonValue(cells[i], j.loc))
		if err != nil {
			return fmt.Errorf("column %s: %w", j.cols[i], err)
		}
		bw.Write(v)
	}
	j.end()
	return nil
}

func (j *jsonWriter) Close() error {
	if !j.lines {
		if j.n > 0 {
			j.bw.WriteString("\n")
		}
		j.bw.WriteString("]\n")
	}
	return j.bw.Flush()
}

// marshal is json.Marshal without HTML escaping: evidence is read by people
// and jq, not embedded in web pages, and "<" should stay "<".
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// IsTerminal tells whether f is a terminal: the table format's default,
// and where long cells are cut.
func IsTerminal(f *os.File) bool { return isTerminal(f.Fd()) }
