package query

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"
)

// Table is a query result in a shape that every output format can render:
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

// Write renders t to w in format f.
func Write(w io.Writer, f Format, t *Table) error {
	switch f {
	case FormatTable:
		return writeTable(w, t)
	case FormatCSV:
		return writeCSV(w, t)
	case FormatJSON:
		return writeJSON(w, t, false)
	case FormatJSONL:
		return writeJSON(w, t, true)
	}
	return fmt.Errorf("unknown format %q", f)
}

// text renders a cell for the text formats; null is what nil becomes.
func text(v any, null string) string {
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
		return v.UTC().Format(TimeLayout)
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

func writeTable(w io.Writer, t *Table) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := make([]string, len(t.Columns))
	line := func() error {
		_, err := io.WriteString(tw, strings.Join(row, "\t")+"\n")
		return err
	}
	for i, c := range t.Columns {
		row[i] = strings.ToUpper(c)
	}
	if err := line(); err != nil {
		return err
	}
	for _, r := range t.Rows {
		for i := range row {
			row[i] = sanitize(text(r[i], "-"))
		}
		if err := line(); err != nil {
			return err
		}
	}
	return tw.Flush()
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

func writeCSV(w io.Writer, t *Table) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(t.Columns); err != nil {
		return err
	}
	rec := make([]string, len(t.Columns))
	for _, r := range t.Rows {
		for i := range rec {
			rec[i] = text(r[i], "")
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// jsonValue converts a cell for encoding/json.
func jsonValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		return v.UTC().Format(TimeLayout)
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

// writeJSON writes objects whose keys keep the column order, which a map
// would not. lines selects JSON lines instead of one array.
func writeJSON(w io.Writer, t *Table, lines bool) error {
	bw := bufio.NewWriter(w)
	keys := make([][]byte, len(t.Columns))
	for i, c := range t.Columns {
		k, err := marshal(c)
		if err != nil {
			return err
		}
		keys[i] = k
	}
	if !lines {
		bw.WriteString("[")
	}
	for n, r := range t.Rows {
		switch {
		case lines:
		case n == 0:
			bw.WriteString("\n")
		default:
			bw.WriteString(",\n")
		}
		bw.WriteString("{")
		for i := range t.Columns {
			if i > 0 {
				bw.WriteString(",")
			}
			v, err := marshal(jsonValue(r[i]))
			if err != nil {
				return fmt.Errorf("column %s: %w", t.Columns[i], err)
			}
			bw.Write(keys[i])
			bw.WriteString(":")
			bw.Write(v)
		}
		bw.WriteString("}")
		if lines {
			bw.WriteString("\n")
		}
	}
	if !lines {
		if len(t.Rows) > 0 {
			bw.WriteString("\n")
		}
		bw.WriteString("]\n")
	}
	return bw.Flush()
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
