package query

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/dnsrec/dnsrec/query/format"
)

// ErrWriteRefused means a statement given to SQL tried to change the
// evidence.
var ErrWriteRefused = errors.New("refused: the evidence is opened read-only and this statement writes; dnsrec never changes an evidence file (copy it first if you must)")

// SQL runs one read-only statement against every file and streams its rows
// to the writer start returns, which gets the column names (with "file"
// first when several files are open). The files are opened read-only, so
// SQLite itself refuses any write; that refusal is reported as
// ErrWriteRefused.
func (d *DB) SQL(ctx context.Context, stmt string, start func(cols []string) (format.RowWriter, error)) (format.RowWriter, error) {
	if err := checkStatement(stmt); err != nil {
		return nil, err
	}
	multi := len(d.files) > 1
	var w format.RowWriter
	for _, f := range d.files {
		rs, err := f.db.QueryContext(ctx, stmt)
		if err != nil {
			return w, fmt.Errorf("%s: %w", f.path, sqlError(err))
		}
		cols, err := rs.Columns()
		if err != nil {
			rs.Close()
			return w, fmt.Errorf("%s: %w", f.path, err)
		}
		if multi {
			cols = append([]string{"file"}, cols...)
		}
		if w == nil {
			if w, err = start(cols); err != nil {
				rs.Close()
				return nil, err
			}
		}
		n := len(cols)
		vals := make([]any, n)
		ptrs := make([]any, n)
		for {
			if !rs.Next() {
				break
			}
			off := 0
			if multi {
				vals[0] = f.path
				off = 1
			}
			for i := off; i < n; i++ {
				ptrs[i] = &vals[i]
			}
			if err := rs.Scan(ptrs[off:]...); err != nil {
				rs.Close()
				return w, fmt.Errorf("%s: %w", f.path, err)
			}
			for i := off; i < n; i++ {
				vals[i] = sqlCell(vals[i])
			}
			if err := w.Row(vals); err != nil {
				rs.Close()
				return w, err
			}
		}
		err = rs.Err()
		rs.Close()
		if err != nil {
			return w, fmt.Errorf("%s: %w", f.path, sqlError(err))
		}
	}
	return w, nil
}

// sqlCell renders a value of any SQLite type as a cell: blobs as hex.
func sqlCell(v any) any {
	switch v := v.(type) {
	case []byte:
		return fmt.Sprintf("x'%x'", v)
	case float64:
		return fmt.Sprint(v)
	case time.Time:
		return v
	}
	return v
}

func sqlError(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_READONLY {
		return fmt.Errorf("%w (%v)", ErrWriteRefused, err)
	}
	return err
}

// checkStatement lets through one statement that starts as a query can:
// SELECT, WITH, VALUES, EXPLAIN, or a PRAGMA that reads (no "="). The
// files are read-only anyway; this also keeps ATTACH, VACUUM INTO and
// their like from writing other files, and a second statement from
// hiding behind a first.
func checkStatement(stmt string) error {
	body, rest := splitStatement(stmt)
	if strings.TrimSpace(rest) != "" {
		return fmt.Errorf("%w: one statement only, and %q follows the first", ErrWriteRefused, strings.TrimSpace(rest))
	}
	words := strings.Fields(stripComments(body))
	if len(words) == 0 {
		return errors.New("empty statement")
	}
	first := strings.ToUpper(words[0])
	switch first {
	case "SELECT", "WITH", "VALUES", "EXPLAIN":
		return nil
	case "PRAGMA":
		if !strings.Contains(body, "=") {
			return nil
		}
	}
	return fmt.Errorf("%w: only SELECT, WITH, VALUES, EXPLAIN and reading PRAGMAs run here, not %s", ErrWriteRefused, first)
}

// splitStatement returns the text up to the first ';' outside quotes and
// comments, and what follows it (comments and spaces only, for one
// statement).
func splitStatement(s string) (body, rest string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '"', '`':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return s, ""
			}
			i += j + 1
		case '[':
			j := strings.IndexByte(s[i+1:], ']')
			if j < 0 {
				return s, ""
			}
			i += j + 1
		case '-':
			if strings.HasPrefix(s[i:], "--") {
				j := strings.IndexByte(s[i:], '\n')
				if j < 0 {
					return s, ""
				}
				i += j
			}
		case '/':
			if strings.HasPrefix(s[i:], "/*") {
				j := strings.Index(s[i+2:], "*/")
				if j < 0 {
					return s, ""
				}
				i += j + 3
			}
		case ';':
			return s[:i], stripComments(s[i+1:])
		}
	}
	return s, ""
}

// stripComments removes SQL comments outside quotes, well enough to find
// the first keyword and to tell that nothing follows a statement.
func stripComments(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				return b.String()
			}
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			if j < 0 {
				return b.String()
			}
			i += j + 3
		case s[i] == '\'' || s[i] == '"':
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			b.WriteString(s[i : i+j+2])
			i += j + 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
