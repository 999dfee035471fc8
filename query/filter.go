package query

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Filter narrows every listing. The zero Filter matches everything. Within
// one field the values are alternatives (--pid 1 --pid 2: either); across
// fields all must hold.
type Filter struct {
	Since, Until time.Time // messages at or after Since, before Until; zero: unbounded
	// Process filters match a message if the process on either side of it
	// (the sender or the receiver, when local) matches.
	PIDs []int64
	// Trees match a process with one of these pids and every descendant
	// of it the recording saw, through processes.parent_id: a script and
	// everything it ran.
	Trees []int64
	Exes  []string // an absolute path matches exe exactly; anything else matches its base name
	Comms []string // the thread comm the message carried, or the process's comm
	UIDs  []int64
	// Containers match a process whose container id starts with one of
	// these (docker's 12-character short ids work), or a systemd-nspawn
	// machine's name (schema v4).
	Containers []string
	// Message filters.
	QTypes []uint16
	Rcodes []int // the response code of responses; for queries, of the response they got
	Names  []NamePattern
	Limit  int // at most this many rows; 0: all
}

// ParseQType accepts a type name (A, aaaa, TXT, TYPE65) or number.
func ParseQType(s string) (uint16, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if t, ok := dns.StringToType[u]; ok {
		return t, nil
	}
	if rest, ok := strings.CutPrefix(u, "TYPE"); ok {
		u = rest
	}
	n, err := strconv.ParseUint(u, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("unknown query type %q (want a name such as A, AAAA, TXT, or a number)", s)
	}
	return uint16(n), nil
}

// ParseRcode accepts a response code name (NOERROR, nxdomain, SERVFAIL) or
// number.
func ParseRcode(s string) (int, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if r, ok := dns.StringToRcode[u]; ok {
		return r, nil
	}
	if rest, ok := strings.CutPrefix(u, "RCODE"); ok {
		u = rest
	}
	n, err := strconv.ParseUint(u, 10, 12)
	if err != nil {
		return 0, fmt.Errorf("unknown response code %q (want a name such as NOERROR, NXDOMAIN, SERVFAIL, or a number)", s)
	}
	return int(n), nil
}

// ParseTime accepts RFC 3339 (with or without fractional seconds), a date
// (2024-05-01, UTC midnight), or a duration before now (2h, 30m, 1h30m,
// 7d).
func ParseTime(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil {
		return t, nil // no zone: UTC, like every time dnsrec prints
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	d, err := parseAgo(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("bad time %q: want RFC 3339 (2024-05-01T10:00:00Z), a date (2024-05-01), or a duration before now (2h, 30m, 7d)", s)
	}
	return now.Add(-d), nil
}

// parseAgo is time.ParseDuration plus a "d" unit of 24 hours.
func parseAgo(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return d, nil
}

// sqlWhere collects conditions and their positional arguments.
type sqlWhere struct {
	conds []string
	args  []any
}

func (w *sqlWhere) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *sqlWhere) String() string {
	if len(w.conds) == 0 {
		return "1"
	}
	return strings.Join(w.conds, " AND ")
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

func anys[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

// empty tells whether f filters nothing (Limit aside).
func (f *Filter) empty() bool {
	return f.Since.IsZero() && f.Until.IsZero() && !f.hasProcess() && len(f.QTypes) == 0 && len(f.Rcodes) == 0 && len(f.Names) == 0
}

// hasProcess tells whether f filters on the process.
func (f *Filter) hasProcess() bool {
	return len(f.PIDs) > 0 || len(f.Trees) > 0 || len(f.Exes) > 0 || len(f.Comms) > 0 || len(f.UIDs) > 0 || len(f.Containers) > 0
}

// ErrNoContainers: a container filter on a file recorded before container
// identity was.
var ErrNoContainers = errors.New("--container needs a recording from dnsrec with schema v4 or later: this file has no container ids")

// CheckFilter refuses filters a file cannot answer.
func (d *DB) CheckFilter(f *Filter) error {
	for _, fl := range d.files {
		if len(f.Containers) > 0 && fl.version < 4 {
			return fmt.Errorf("%s: %w", fl.path, ErrNoContainers)
		}
	}
	return nil
}

// ownerWhere is the condition on owners o LEFT JOIN processes p that the
// process filters ask for.
func (f *Filter) ownerWhere() (string, []any) {
	var w sqlWhere
	if len(f.PIDs) > 0 {
		w.add("o.pid IN ("+placeholders(len(f.PIDs))+")", anys(f.PIDs)...)
	}
	if len(f.Trees) > 0 {
		ph := placeholders(len(f.Trees))
		// The owner's own pid too: a process the recorder saw only as the
		// sender of a message has an owner row and no processes row.
		w.add("(o.pid IN ("+ph+") OR o.process_id IN ("+treeSQL(ph)+"))", append(anys(f.Trees), anys(f.Trees)...)...)
	}
	if len(f.UIDs) > 0 {
		w.add("coalesce(p.uid, o.uid) IN ("+placeholders(len(f.UIDs))+")", anys(f.UIDs)...)
	}
	if len(f.Comms) > 0 {
		ph := placeholders(len(f.Comms))
		w.add("(o.comm IN ("+ph+") OR p.comm IN ("+ph+"))", append(anys(f.Comms), anys(f.Comms)...)...)
	}
	if len(f.Containers) > 0 {
		var ors []string
		for _, c := range f.Containers {
			ors = append(ors, "substr(p.container, 1, ?) = ?")
			w.args = append(w.args, len(c), c)
		}
		w.conds = append(w.conds, "("+strings.Join(ors, " OR ")+")")
	}
	if len(f.Exes) > 0 {
		var ors []string
		for _, e := range f.Exes {
			if strings.HasPrefix(e, "/") {
				ors = append(ors, "p.exe = ?")
				w.args = append(w.args, e)
			} else {
				// The base name: the exe is "/x/y/NAME".
				ors = append(ors, "(p.exe = ? OR substr(p.exe, -?) = ?)")
				w.args = append(w.args, e, len(e)+1, "/"+e)
			}
		}
		w.conds = append(w.conds, "("+strings.Join(ors, " OR ")+")")
	}
	return w.String(), w.args
}

// treeSQL selects the ids of the processes with the pids in ph and of all
// their descendants. UNION, not UNION ALL: a cycle in parent links (pid
// reuse across a long recording) ends instead of looping.
func treeSQL(ph string) string {
	return "WITH RECURSIVE tree(id) AS (SELECT id FROM processes WHERE pid IN (" + ph + ") UNION SELECT c.id FROM processes c JOIN tree ON c.parent_id = tree.id) SELECT id FROM tree"
}

// namesIn is the condition that col, a names.id, is one of the names the
// --name patterns match.
func (f *Filter) namesIn(col string) (string, []any) {
	var ors []string
	var args []any
	for _, p := range f.Names {
		c, a := p.where("")
		ors = append(ors, c)
		args = append(args, a...)
	}
	return col + " IN (SELECT id FROM names WHERE " + strings.Join(ors, " OR ") + ")", args
}

// msgsWhere is the condition on msgs m (schema v2 and later) for the
// message filters and, unless skipTime, the time bounds. Rcodes are tested
// on responses, and on the response linked to a query (schema v3).
func (f *Filter) msgsWhere(skipTime bool) (string, []any) {
	var w sqlWhere
	if !skipTime {
		if !f.Since.IsZero() {
			w.add("m.ts_ns >= ?", f.Since.UnixNano())
		}
		if !f.Until.IsZero() {
			w.add("m.ts_ns < ?", f.Until.UnixNano())
		}
	}
	if len(f.QTypes) > 0 {
		w.add("m.qtype IN ("+placeholders(len(f.QTypes))+")", anys(f.QTypes)...)
	}
	if len(f.Rcodes) > 0 {
		ph := placeholders(len(f.Rcodes))
		w.add("((m.flags >> 15 = 1 AND m.rcode IN ("+ph+")) OR (m.flags >> 15 = 0 AND EXISTS (SELECT 1 FROM msgs r WHERE r.query_id = m.id AND r.rcode IN ("+ph+"))))",
			append(anys(f.Rcodes), anys(f.Rcodes)...)...)
	}
	if len(f.Names) > 0 {
		c, a := f.namesIn("m.name_id")
		w.add(c, a...)
	}
	if f.hasProcess() {
		c, a := f.ownerWhere()
		sub := "(SELECT o.id FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE " + c + ")"
		w.add("(m.s_owner IN "+sub+" OR m.r_owner IN "+sub+")", append(a, a...)...)
	}
	return w.String(), w.args
}
