package query

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/query/format"
)

// ProcessColumns are the columns of `dnsrec query process`: one row per
// process image that matched.
var ProcessColumns = []string{
	"pid", "comm", "exe", "argv", "uid", "ancestry", "container", "children", "started", "exited", "source",
	"queries", "names", "libc_names", "host",
}

// ProcessRow is one recorded process image with what it resolved.
type ProcessRow struct {
	File    string
	Host    string
	Proc    Process
	Started time.Time // zero when unknown
	Exited  time.Time // zero when not seen exiting
	Source  string    // where exe and argv came from: exec, procfs, inherited, chain
	// Container is the container id its cgroup names (schema v4); ""
	// when none, or unknown.
	Container string
	Children  []Ancestor
	Queries   int64       // queries it sent
	Names     []NameCount // the names it asked for, in first-asked order
	// LibcNames are the names it resolved through libc (schema v5), with
	// how many calls asked for each, in first-asked order.
	LibcNames []NameCount
	// Depth is the process's depth under the tree's root (ProcessTree).
	Depth int
}

// NameCount is a name and how many queries asked for it.
type NameCount struct {
	Name  string
	Count int64
}

func (n NameCount) String() string {
	return n.Name + " (" + strconv.FormatInt(n.Count, 10) + ")"
}

// userHZ is the unit of /proc/PID/stat's start time (field 22), which the
// recorder stores as start_ticks: USER_HZ, 100 on every Linux architecture.
const userHZ = 100

// Processes finds the processes whose pid is arg (a number), or whose exe
// is arg (an absolute path), or whose exe base name or comm is arg, and
// lists each with its parents, children seen and the names it asked for.
// f narrows the names counted (time, name, type).
func (d *DB) Processes(ctx context.Context, arg string, f Filter) ([]ProcessRow, error) {
	if err := d.CheckFilter(&f); err != nil {
		return nil, err
	}
	arg = strings.TrimSpace(arg)
	if arg == "" {
		return nil, fmt.Errorf("empty process: want a PID, an executable path or a name")
	}
	var out []ProcessRow
	for _, fl := range d.files {
		if fl.version < 2 {
			return nil, fmt.Errorf("%s: %w", fl.path, ErrOldSchema)
		}
		rows, err := fl.processes(ctx, arg, &f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fl.path, err)
		}
		out = append(out, rows...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

func (fl *file) processes(ctx context.Context, arg string, f *Filter) ([]ProcessRow, error) {
	var where string
	var args []any
	if pid, err := strconv.ParseInt(arg, 10, 64); err == nil {
		where, args = "p.pid = ?", []any{pid}
	} else if strings.HasPrefix(arg, "/") {
		where, args = "p.exe = ?", []any{arg}
	} else {
		where, args = "(p.comm = ? OR substr(p.exe, -?) = ?)", []any{arg, len(arg) + 1, "/" + arg}
	}
	return fl.processRows(ctx, where, args, f)
}

// processRows lists the processes p that where selects, as Processes does.
func (fl *file) processRows(ctx context.Context, where string, args []any, f *Filter) ([]ProcessRow, error) {
	container := "coalesce(p.container, '')"
	if fl.version < 4 {
		container = "''"
	}
	if len(f.Containers) > 0 {
		c, a := (&Filter{Containers: f.Containers}).ownerWhere()
		where += " AND " + c
		args = append(args, a...)
	}
	rs, err := fl.db.QueryContext(ctx, `
SELECT p.id, p.pid, p.comm, p.exe, p.argv, p.uid, p.gid, p.parent_id, p.start_ticks, p.exec_boot_ns, p.exit_ns, p.source,
       s.hostname, s.anchor_wall_ns, s.anchor_boot_ns, `+container+`
FROM processes p JOIN sessions s ON s.id = p.session_id
WHERE `+where+` ORDER BY p.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("read processes: %w", err)
	}
	var out []ProcessRow
	var parents []int64
	for rs.Next() {
		var (
			r                          ProcessRow
			comm, exe, argv            sql.NullString
			parent, exit               sql.NullInt64
			ticks, execBoot, aw, aBoot int64
		)
		if err := rs.Scan(&r.Proc.ID, &r.Proc.PID, &comm, &exe, &argv, &r.Proc.UID, &r.Proc.GID, &parent, &ticks, &execBoot, &exit, &r.Source,
			&r.Host, &aw, &aBoot, &r.Container); err != nil {
			rs.Close()
			return nil, fmt.Errorf("read processes: %w", err)
		}
		r.File = fl.path
		r.Proc.Comm, r.Proc.Exe, r.Proc.Argv = comm.String, exe.String, parseArgv(argv)
		r.Proc.ParentID = parent.Int64
		// Boot-time clocks to wall time with the session's anchor.
		switch {
		case execBoot != 0:
			r.Started = time.Unix(0, execBoot-aBoot+aw).UTC()
		case ticks != 0:
			r.Started = time.Unix(0, ticks*(int64(time.Second)/userHZ)-aBoot+aw).UTC()
		}
		if exit.Valid {
			r.Exited = time.Unix(0, exit.Int64).UTC()
		}
		out = append(out, r)
		parents = append(parents, parent.Int64)
	}
	if err := rs.Err(); err != nil {
		rs.Close()
		return nil, fmt.Errorf("read processes: %w", err)
	}
	rs.Close()
	if len(out) == 0 {
		return nil, nil
	}
	dict := fl.dicts()
	byID := map[int64]*ProcessRow{}
	ids := make([]any, len(out))
	for i := range out {
		if out[i].Proc.Ancestry, err = dict.ancestry(ctx, parents[i]); err != nil {
			return nil, err
		}
		byID[out[i].Proc.ID] = &out[i]
		ids[i] = out[i].Proc.ID
	}
	// Children, through processes_parent.
	crs, err := fl.db.QueryContext(ctx, `SELECT parent_id, pid, coalesce(comm, '') FROM processes WHERE parent_id IN (`+placeholders(len(ids))+`) ORDER BY id`, ids...)
	if err != nil {
		return nil, fmt.Errorf("read children: %w", err)
	}
	for crs.Next() {
		var parent int64
		var a Ancestor
		if err := crs.Scan(&parent, &a.PID, &a.Comm); err != nil {
			crs.Close()
			return nil, fmt.Errorf("read children: %w", err)
		}
		byID[parent].Children = append(byID[parent].Children, a)
	}
	crs.Close()
	// The names each asked for, as a client: one pass over msgs for all
	// the matching processes.
	msgF := *f
	msgF.PIDs, msgF.Exes, msgF.Comms, msgF.UIDs = nil, nil, nil, nil
	msgF.Trees = nil
	mw, margs := msgF.msgsWhere(false)
	// One row per name and spelling (schema v15): spelledNames adds the
	// spellings of a name up.
	spelling, spJoin, spGroup := "NULL", "", ""
	if fl.hasSpellings() {
		spelling, spJoin, spGroup = "sp.name", " LEFT JOIN spellings sp ON sp.id = m.spelling_id", ", m.spelling_id"
	}
	nrs, err := fl.db.QueryContext(ctx, `
SELECT o.process_id, m.name_id, coalesce(n.name, ''), `+spelling+`, count(*), min(m.ts_ns) AS first
FROM msgs m JOIN owners o ON o.id = m.s_owner LEFT JOIN names n ON n.id = m.name_id`+spJoin+`
WHERE m.obs & 5 = 1 AND m.s_owner IN (SELECT id FROM owners WHERE process_id IN (`+placeholders(len(ids))+`)) AND `+mw+`
GROUP BY o.process_id, m.name_id`+spGroup+` ORDER BY first`, append(ids, margs...)...)
	if err != nil {
		return nil, fmt.Errorf("read names: %w", err)
	}
	err = spelledNames(nrs, func(proc int64) *[]NameCount { return &byID[proc].Names })
	if err != nil {
		return nil, fmt.Errorf("read names: %w", err)
	}
	for i := range out {
		for _, nc := range out[i].Names {
			out[i].Queries += nc.Count
		}
	}
	if fl.version < 5 {
		return out, nil
	}
	rw, rargs := msgF.resWhere()
	spJoin = strings.ReplaceAll(spJoin, "m.", "r.")
	spGroup = strings.ReplaceAll(spGroup, "m.", "r.")
	lrs, err := fl.db.QueryContext(ctx, `
SELECT o.process_id, r.name_id, coalesce(n.name, ''), `+spelling+`, count(*), min(r.ts_ns) AS first
FROM resolutions r JOIN owners o ON o.id = r.owner LEFT JOIN names n ON n.id = r.name_id`+spJoin+`
WHERE r.owner IN (SELECT id FROM owners WHERE process_id IN (`+placeholders(len(ids))+`)) AND `+rw+`
GROUP BY o.process_id, r.name_id`+spGroup+` ORDER BY first`, append(ids, rargs...)...)
	if err != nil {
		return nil, fmt.Errorf("read libc resolutions: %w", err)
	}
	err = spelledNames(lrs, func(proc int64) *[]NameCount { return &byID[proc].LibcNames })
	if err != nil {
		return nil, fmt.Errorf("read libc resolutions: %w", err)
	}
	return out, nil
}

// spelledNames reads rows of (process, name id, name, spelling, count,
// first) in first-seen order into the lists of names at list(process):
// one entry per name, whatever its case, counting all its spellings and
// showing the first that was not lowercase, as who-resolved does.
func spelledNames(rs *sql.Rows, list func(proc int64) *[]NameCount) error {
	defer rs.Close()
	type key struct{ proc, name int64 }
	at := map[key]int{}
	spelled := map[key]bool{}
	for rs.Next() {
		var (
			proc, first int64
			name        sql.NullInt64
			sent        sql.NullString
			nc          NameCount
		)
		if err := rs.Scan(&proc, &name, &nc.Name, &sent, &nc.Count, &first); err != nil {
			return err
		}
		names := list(proc)
		k := key{proc, name.Int64}
		i, ok := at[k]
		if !ok {
			i = len(*names)
			at[k] = i
			*names = append(*names, NameCount{Name: nc.Name})
		}
		e := &(*names)[i]
		e.Count += nc.Count
		if sent.Valid && !spelled[k] {
			e.Name = sent.String
			spelled[k] = true
		}
	}
	return rs.Err()
}

// ProcessTree lists the processes with pid and all their descendants the
// recording saw (through processes.parent_id), each with its command line
// and the names it asked for, in tree order: each process, then its
// children by start time. f narrows the names counted.
func (d *DB) ProcessTree(ctx context.Context, pid int64, f Filter) ([]ProcessRow, error) {
	if err := d.CheckFilter(&f); err != nil {
		return nil, err
	}
	var out []ProcessRow
	for _, fl := range d.files {
		if fl.version < 2 {
			return nil, fmt.Errorf("%s: %w", fl.path, ErrOldSchema)
		}
		rows, err := fl.processRows(ctx, "p.id IN ("+treeSQL("?")+")", []any{pid}, &f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fl.path, err)
		}
		out = append(out, treeOrder(rows, pid)...)
	}
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// treeOrder puts rows depth-first, siblings by start time, and sets their
// depth. Roots are the rows of pid (every image it ran), and rows whose
// parent is not among them; a parent link back to a root (a corrupt chain,
// or pid reuse) does not hide the root.
func treeOrder(rows []ProcessRow, pid int64) []ProcessRow {
	in := map[int64]bool{}
	for _, r := range rows {
		in[r.Proc.ID] = true
	}
	kids := map[int64][]int{}
	var roots []int
	for i, r := range rows {
		if r.Proc.PID != pid && r.Proc.ParentID != 0 && in[r.Proc.ParentID] && r.Proc.ParentID != r.Proc.ID {
			kids[r.Proc.ParentID] = append(kids[r.Proc.ParentID], i)
		} else {
			roots = append(roots, i)
		}
	}
	byStart := func(is []int) {
		sort.SliceStable(is, func(a, b int) bool {
			ra, rb := rows[is[a]], rows[is[b]]
			if !ra.Started.Equal(rb.Started) {
				return ra.Started.Before(rb.Started)
			}
			return ra.Proc.ID < rb.Proc.ID
		})
	}
	out := make([]ProcessRow, 0, len(rows))
	seen := map[int64]bool{}
	var walk func(i, depth int)
	walk = func(i, depth int) {
		if seen[rows[i].Proc.ID] {
			return
		}
		seen[rows[i].Proc.ID] = true
		r := rows[i]
		r.Depth = depth
		out = append(out, r)
		k := kids[r.Proc.ID]
		byStart(k)
		for _, c := range k {
			walk(c, depth+1)
		}
	}
	byStart(roots)
	for _, i := range roots {
		walk(i, 0)
	}
	return out
}

// ProcessTreeTable converts ProcessTree's rows for Write: ProcessTable's
// columns after a "tree" column that indents each process under its parent.
func ProcessTreeTable(rows []ProcessRow, withFile bool) *format.Table {
	t := ProcessTable(rows, withFile)
	t.Columns = append([]string{"tree"}, t.Columns...)
	for i, r := range rows {
		t.Rows[i] = append([]any{strings.Repeat("  ", r.Depth) + Ancestry{{PID: r.Proc.PID, Comm: r.Proc.Comm}}.String()}, t.Rows[i]...)
	}
	return t
}

// ProcessTable converts rows for Write.
func ProcessTable(rows []ProcessRow, withFile bool) *format.Table {
	cols := ProcessColumns
	if withFile {
		cols = append([]string{"file"}, cols...)
	}
	t := &format.Table{Columns: cols, Rows: make([][]any, len(rows))}
	for i, r := range rows {
		children := make([]string, len(r.Children))
		for j, c := range r.Children {
			children[j] = Ancestry{c}.String()
		}
		names := make([]string, len(r.Names))
		for j, n := range r.Names {
			names[j] = n.String()
		}
		libcNames := make([]string, len(r.LibcNames))
		for j, n := range r.LibcNames {
			libcNames[j] = n.String()
		}
		var started, exited any
		if !r.Started.IsZero() {
			started = r.Started
		}
		if !r.Exited.IsZero() {
			exited = r.Exited
		}
		row := []any{r.Proc.PID, nullString(r.Proc.Comm), nullString(r.Proc.Exe), nullString(ShellQuote(r.Proc.Argv)), nullInt(r.Proc.UID),
			nullString(r.Proc.Ancestry.String()), nullString(r.Container), children, started, exited, r.Source, r.Queries, names, libcNames, r.Host}
		if withFile {
			row = append([]any{r.File}, row...)
		}
		t.Rows[i] = row
	}
	return t
}
