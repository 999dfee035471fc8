package query

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/schema"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// VerifyColumns are the columns of `dnsrec query verify`.
var VerifyColumns = []string{"file", "result", "sha256", "links", "rows", "head", "problem"}

// VerifyReport is the verdict on one file.
type VerifyReport struct {
	Path    string
	Links   int64  // chain links checked
	Rows    int64  // rows covered by them
	Head    string // hash of the last link
	Stopped bool   // the chain ends with a clean stop
	// SHA256 is the file's hash as it is on disk (its -wal, if any, apart),
	// for a chain-of-custody form: what was verified.
	SHA256 string
	// Problems are what does not match, first altered or missing batch
	// first. Empty means the file is as the recorder committed it.
	Problems []VerifyProblem
	// Anchored is the check against the anchors; nil when none was asked.
	Anchored *Anchored
}

// VerifyProblem is one thing verify found wrong: its kind, table and batch
// for a program, its text for people.
type VerifyProblem struct {
	Kind  ProblemKind `json:"kind"`
	Table string      `json:"table,omitempty"` // "" when no table is concerned
	Batch int64       `json:"batch,omitempty"` // chain link seq; 0 when not one batch's
	Time  string      `json:"time,omitempty"`  // of the checkpoint concerned (RFC 3339), for the checks against anchors
	Text  string      `json:"text"`
}

func (p VerifyProblem) String() string { return p.Text }

// ProblemKind names a kind of VerifyProblem.
type ProblemKind string

const (
	ProblemNoChain        ProblemKind = "no-chain"               // written before the hash chain existed
	ProblemLinkMissing    ProblemKind = "link-missing"           // a chain link was deleted (Batch: the missing seq)
	ProblemLinkOrder      ProblemKind = "link-order"             // a link does not name its predecessor's hash
	ProblemLinkAltered    ProblemKind = "link-altered"           // a link's content does not hash to its hash
	ProblemRowsMissing    ProblemKind = "rows-missing"           // rows of a batch were deleted
	ProblemRowsAltered    ProblemKind = "rows-altered"           // rows of a batch were edited
	ProblemRowsAdded      ProblemKind = "rows-added"             // rows no batch wrote
	ProblemExitAltered    ProblemKind = "exit-altered"           // processes.exit_ns differs from the chain's
	ProblemExitAdded      ProblemKind = "exit-added"             // processes.exit_ns set with no exit in the chain
	ProblemStopAltered    ProblemKind = "stop-altered"           // sessions.stopped_ns differs from the stopping link's
	ProblemStopAdded      ProblemKind = "stop-added"             // sessions.stopped_ns set with no clean stop in the chain
	ProblemSummaryExtent  ProblemKind = "summary-extent-missing" // summary rows with no summaries row
	ProblemSummaryDiffers ProblemKind = "summary-differs"        // a summary is not what the messages give
)

// OK tells whether nothing was found wrong.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify recomputes every file's hash chain (schema/chain.go) from its rows:
// each link's hash and its predecessor, each batch's rows per table (a row
// edited, deleted or added inside a batch's range changes its digest),
// rows outside every batch's range (added afterwards), the exit times and
// the stop time.
func (d *DB) Verify(ctx context.Context) ([]VerifyReport, error) {
	return d.VerifyWith(ctx, VerifyOptions{})
}

// VerifyTable converts reports for Write. withProblems adds a column,
// "problems", with every problem's kind, table and batch: for the JSON
// formats, where a cell may hold a list of objects.
func VerifyTable(rs []VerifyReport, withProblems bool) *format.Table {
	t := &format.Table{Columns: VerifyColumns}
	if withProblems {
		t.Columns = append(slices.Clip(t.Columns), "problems")
	}
	for _, r := range rs {
		result, problem := "ok", ""
		if !r.OK() {
			result, problem = "FAILED", r.Problems[0].Text
			if n := len(r.Problems); n > 1 {
				problem += fmt.Sprintf(" (and %d more)", n-1)
			}
		} else if !r.Stopped {
			result = "ok, not stopped cleanly"
		}
		row := []any{r.Path, result, nullString(r.SHA256), r.Links, r.Rows, nullString(r.Head), nullString(problem)}
		if withProblems {
			row = append(row, slices.Concat([]VerifyProblem{}, r.Problems))
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// fileSHA256 is the hex SHA-256 of the file at path, as sha256sum prints it.
func fileSHA256(path string) (string, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	h := sha256.New()
	if _, err := io.Copy(h, fh); err != nil {
		return "", fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// problemFunc records a problem of verify: its kind, table, batch and text.
type problemFunc func(kind ProblemKind, table string, batch int64, format string, args ...any)

type chainRow struct {
	link schema.ChainLink
	hash string
}

func (f *file) verify(ctx context.Context) (rep VerifyReport, err error) {
	rep.Path = f.path
	if rep.SHA256, err = fileSHA256(f.path); err != nil {
		return rep, err
	}
	if f.version < 3 {
		rep.Problems = append(rep.Problems, VerifyProblem{Kind: ProblemNoChain,
			Text: fmt.Sprintf("schema v%d: written before dnsrec kept a hash chain; nothing to verify against", f.version)})
		return rep, nil
	}
	links, err := f.chainLinks(ctx)
	if err != nil {
		return rep, err
	}
	problem := func(kind ProblemKind, table string, batch int64, format string, args ...any) {
		rep.Problems = append(rep.Problems, VerifyProblem{Kind: kind, Table: table, Batch: batch, Text: fmt.Sprintf(format, args...)})
	}

	// The links themselves: numbered from 1 without gaps, each naming its
	// predecessor, each hashing to what it says.
	prev := ""
	for i, c := range links {
		l := &c.link
		if want := int64(i + 1); l.Seq != want {
			problem(ProblemLinkMissing, "chain", want, "chain link %d is missing (the next one is %d)", want, l.Seq)
			break
		}
		if l.Prev != prev {
			problem(ProblemLinkOrder, "chain", l.Seq, "chain link %d does not follow link %d (previous hash changed)", l.Seq, l.Seq-1)
		}
		if h := l.Hash(); h != c.hash {
			problem(ProblemLinkAltered, "chain", l.Seq, "chain link %d was altered: its content hashes to %s, it says %s", l.Seq, short(h), short(c.hash))
		}
		prev = c.hash
	}
	rep.Links = int64(len(links))
	if len(links) > 0 {
		rep.Head = links[len(links)-1].hash
		rep.Stopped = links[len(links)-1].link.StoppedNs != nil
	}

	// Each batch's rows, table by table.
	covered := map[string]int64{}
	for _, c := range links {
		for _, t := range schema.ChainTablesFor(f.version) {
			rg, ok := c.link.Tables[t.Name]
			if !ok {
				continue
			}
			n, digest, err := f.digest(ctx, t, rg.First, rg.Last)
			if err != nil {
				return rep, err
			}
			covered[t.Name] += rg.Last - rg.First + 1
			rep.Rows += n
			switch want := rg.Last - rg.First + 1; {
			case n != want:
				problem(ProblemRowsMissing, t.Name, c.link.Seq, "batch %d: %s rows %d-%d: %d of %d are missing", c.link.Seq, t.Name, rg.First, rg.Last, want-n, want)
			case digest != rg.Digest:
				problem(ProblemRowsAltered, t.Name, c.link.Seq, "batch %d: %s rows %d-%d were altered after they were committed", c.link.Seq, t.Name, rg.First, rg.Last)
			}
		}
	}
	// Rows no batch wrote.
	for _, t := range schema.ChainTablesFor(f.version) {
		var total int64
		if err := f.db.QueryRowContext(ctx, "SELECT count(*) FROM "+t.Name).Scan(&total); err != nil {
			return rep, fmt.Errorf("count %s: %w", t.Name, err)
		}
		if extra := total - covered[t.Name]; extra > 0 {
			problem(ProblemRowsAdded, t.Name, 0, "%s: %d rows that no committed batch wrote (added to the file afterwards)", t.Name, extra)
		}
	}
	if err := f.verifyExits(ctx, links, problem); err != nil {
		return rep, err
	}
	if err := f.verifySummaries(ctx, problem); err != nil {
		return rep, err
	}
	return rep, nil
}

// verifySummaries recomputes each summary (who_summary, addr_summary) from
// the messages and compares it row by row with the file's. A summary is
// derived data, not in the chain, and who-resolved and resolved-to answer
// from it: an edited summary would change the answers without touching a
// chained row. A summary that no longer covers the whole file (a later
// recording was killed) is not used, and not compared.
func (f *file) verifySummaries(ctx context.Context, problem problemFunc) error {
	for _, s := range summary.All {
		if f.version < s.Version {
			continue
		}
		if err := f.verifySummary(ctx, s, problem); err != nil {
			return fmt.Errorf("%s: %w", s.Table, err)
		}
	}
	return nil
}

func (f *file) verifySummary(ctx context.Context, s summary.Summary, problem problemFunc) error {
	var stored int64
	if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM `+s.Table).Scan(&stored); err != nil {
		return err
	}
	var extent int
	if err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM summaries WHERE kind = ?`, s.Kind).Scan(&extent); err != nil {
		return err
	}
	if extent == 0 {
		if stored > 0 {
			problem(ProblemSummaryExtent, s.Table, 0, "%s: %d rows, and no summaries row saying what they cover (a clean stop writes both at once)", s.Table, stored)
		}
		return nil
	}
	if ok, err := f.summarized(ctx, s); err != nil || !ok {
		return err
	}
	rows, err := f.db.QueryContext(ctx, `SELECT `+s.Columns+` FROM `+s.Table+` ORDER BY `+s.Order)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols := strings.Split(s.Columns, ", ")
	n := 0
	errDiffers := errors.New("differs")
	got := make([]any, len(cols))
	ptrs := make([]any, len(got))
	for i := range got {
		ptrs[i] = &got[i]
	}
	sum, err := s.BuildFrom(ctx, f.summarySource(), func(want []any) error {
		n++
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			problem(ProblemSummaryDiffers, s.Table, 0, "%s: %d rows, the messages give more", s.Table, n-1)
			return errDiffers
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for i := range want {
			if b, ok := got[i].([]byte); ok {
				got[i] = string(b)
			}
			if got[i] != want[i] {
				problem(ProblemSummaryDiffers, s.Table, 0, "%s: row %d differs from what the messages give (%s: %v, not %v)", s.Table, n, cols[i], got[i], want[i])
				return errDiffers
			}
		}
		return nil
	})
	if errors.Is(err, errDiffers) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("recompute: %w", err)
	}
	if stored != sum.Rows {
		problem(ProblemSummaryDiffers, s.Table, 0, "%s: %d rows, the messages give %d", s.Table, stored, sum.Rows)
	}
	return rows.Err()
}

func (f *file) chainLinks(ctx context.Context) ([]chainRow, error) {
	rows, err := f.db.QueryContext(ctx, `SELECT seq, ts_ns, prev, tables, exits, stopped_ns, hash FROM chain ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("read chain: %w", err)
	}
	defer rows.Close()
	var out []chainRow
	for rows.Next() {
		var c chainRow
		var tables, exits string
		var stopped sql.NullInt64
		if err := rows.Scan(&c.link.Seq, &c.link.TsNs, &c.link.Prev, &tables, &exits, &stopped, &c.hash); err != nil {
			return nil, fmt.Errorf("read chain: %w", err)
		}
		// A link whose JSON no longer parses was altered; it is kept with
		// what could be read, so that its hash check reports it.
		if json.Unmarshal([]byte(tables), &c.link.Tables) != nil {
			c.link.Tables = map[string]schema.ChainRange{}
		}
		if json.Unmarshal([]byte(exits), &c.link.Exits) != nil || c.link.Exits == nil {
			c.link.Exits = [][2]int64{}
		}
		if stopped.Valid {
			c.link.StoppedNs = &stopped.Int64
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// digest recomputes a batch's digest of one table from the file.
func (f *file) digest(ctx context.Context, t schema.ChainTable, first, last int64) (int64, string, error) {
	rows, err := f.db.QueryContext(ctx, "SELECT "+t.Columns+" FROM "+t.Name+" WHERE id BETWEEN ? AND ? ORDER BY id", first, last)
	if err != nil {
		return 0, "", fmt.Errorf("read %s: %w", t.Name, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, "", err
	}
	h := schema.NewRowHasher()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return 0, "", fmt.Errorf("read %s: %w", t.Name, err)
		}
		if err := h.Row(vals); err != nil {
			return 0, "", fmt.Errorf("%s: %w", t.Name, err)
		}
		n++
	}
	return n, h.Sum(), rows.Err()
}

// verifyExits checks the two columns set after their rows were written:
// processes.exit_ns against the exits the links recorded, and
// sessions.stopped_ns against the stopping link.
func (f *file) verifyExits(ctx context.Context, links []chainRow, problem problemFunc) error {
	want := map[int64]int64{}
	var stopped *int64
	for _, c := range links {
		for _, e := range c.link.Exits {
			want[e[0]] = e[1]
		}
		if c.link.StoppedNs != nil {
			stopped = c.link.StoppedNs
		}
	}
	rows, err := f.db.QueryContext(ctx, `SELECT id, exit_ns FROM processes ORDER BY id`)
	if err != nil {
		return fmt.Errorf("read processes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var exit sql.NullInt64
		if err := rows.Scan(&id, &exit); err != nil {
			return fmt.Errorf("read processes: %w", err)
		}
		w, ok := want[id]
		switch {
		case ok && (!exit.Valid || exit.Int64 != w):
			problem(ProblemExitAltered, "processes", 0, "processes: exit_ns of process row %d was altered", id)
		case !ok && exit.Valid:
			problem(ProblemExitAdded, "processes", 0, "processes: exit_ns of process row %d was set outside the recorder", id)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	var got sql.NullInt64
	err = f.db.QueryRowContext(ctx, `SELECT stopped_ns FROM sessions ORDER BY id LIMIT 1`).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read sessions: %w", err)
	}
	switch {
	case stopped == nil && got.Valid:
		problem(ProblemStopAdded, "sessions", 0, "sessions: stopped_ns was set outside the recorder (the chain has no clean stop)")
	case stopped != nil && (!got.Valid || got.Int64 != *stopped):
		problem(ProblemStopAltered, "sessions", 0, "sessions: stopped_ns was altered")
	}
	return nil
}

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}
