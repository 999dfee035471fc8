package query

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/internal/dnstext"
)

// Libc resolutions (schema v5): calls to getaddrinfo and gethostbyname*
// that uprobes on the C library saw return, with the caller, the name and
// the addresses, whatever answered them (DNS, /etc/hosts, nscd,
// nss-resolve). The query commands show them beside the DNS messages,
// marked "libc" and the function.

// libcSource is how a resolution's origin is shown: "libc getaddrinfo".
func libcSource(funcs string) string {
	return "libc " + strings.ReplaceAll(funcs, ",", ", ")
}

// resWhere is the condition on resolutions r for the filter. A resolution
// has no query type and no response code: a filter on either leaves all of
// them out.
//
// A call made inside another probed call of the same thread (flags bit 4:
// glibc's getaddrinfo calls gethostbyname2_r for AF_INET) is left out: the
// outer call is the program's question, and counts are of those.
func (f *Filter) resWhere() (string, []any) {
	var w sqlWhere
	w.add("r.flags & 4 = 0")
	if len(f.QTypes) > 0 || len(f.Rcodes) > 0 {
		w.add("0")
	}
	if !f.Since.IsZero() {
		w.add("r.ts_ns >= ?", f.Since.UnixNano())
	}
	if !f.Until.IsZero() {
		w.add("r.ts_ns < ?", f.Until.UnixNano())
	}
	if len(f.Names) > 0 {
		c, a := f.namesIn("r.name_id")
		w.add(c, a...)
	}
	if f.hasProcess() {
		c, a := f.ownerWhere()
		w.add("r.owner IN (SELECT o.id FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE "+c+")", a...)
	}
	return w.String(), w.args
}

// whoLibcSQL is who-resolved's rows for libc resolutions: per process and
// name, like whoResolvedSQL's for messages, with the functions called in
// place of the query types.
const whoLibcSQL = `
WITH n AS (SELECT id, name FROM names WHERE %[1]s),
r AS (
	SELECT r.id, r.session_id, n.name, r.ts_ns, r.func, r.rc, w.process_id, w.pid, w.comm, w.uid
	FROM n JOIN resolutions r ON r.name_id = n.id LEFT JOIN owners w ON w.id = r.owner
	WHERE %[2]s
)
SELECT g.session_id, g.process_id, g.gpid, g.gcomm, g.name, g.first_ns, g.last_ns, g.calls,
       coalesce(p.pid, g.mpid), coalesce(p.comm, g.mcomm), coalesce(p.exe, ''), coalesce(p.uid, g.muid), p.parent_id,
       coalesce(s.hostname, ''), g.funcs, g.outcomes, p.argv, coalesce(p.container, ''), g.addrs
FROM (
	SELECT r.session_id, r.process_id,
	       CASE WHEN r.process_id IS NULL THEN r.pid END AS gpid,
	       CASE WHEN r.process_id IS NULL THEN r.comm END AS gcomm,
	       r.name, min(r.ts_ns) AS first_ns, max(r.ts_ns) AS last_ns, count(*) AS calls,
	       min(r.pid) AS mpid, min(r.comm) AS mcomm, min(r.uid) AS muid,
	       group_concat(DISTINCT r.func) AS funcs,
	       group_concat(r.func || ' ' || r.rc, ';') AS outcomes,
	       (SELECT group_concat(addr, ';') FROM (SELECT a.addr, min(a.id) AS first FROM resolution_addrs a
	          WHERE a.resolution_id IN (SELECT x.id FROM r x WHERE x.session_id = r.session_id AND x.name = r.name
	                AND x.process_id IS r.process_id AND (r.process_id IS NOT NULL OR (x.pid IS r.pid AND x.comm IS r.comm)))
	          GROUP BY a.addr ORDER BY first)) AS addrs
	FROM r
	GROUP BY r.session_id, r.process_id, gpid, gcomm, r.name
) g
LEFT JOIN processes p ON p.id = g.process_id
LEFT JOIN sessions s ON s.id = g.session_id`

// whoResolvedLibc is who-resolved's rows from libc resolutions (schema v5).
func (f *file) whoResolvedLibc(ctx context.Context, pat NamePattern, filter *Filter) ([]WhoResolvedRow, error) {
	if f.version < 5 {
		return nil, nil
	}
	nw, nargs := pat.where("")
	rw, rargs := filter.resWhere()
	rs, err := f.db.QueryContext(ctx, fmt.Sprintf(whoLibcSQL, nw, rw), concat(nargs, rargs)...)
	if err != nil {
		return nil, fmt.Errorf("query libc resolutions: %w", err)
	}
	defer rs.Close()
	var (
		rows    []WhoResolvedRow
		parents []sql.NullInt64
	)
	for rs.Next() {
		var (
			k                       whoKey
			r                       WhoResolvedRow
			firstNS, lastNS         int64
			pid, uid, parent        sql.NullInt64
			comm, funcs, outs, argv sql.NullString
			addrs                   sql.NullString
		)
		if err := rs.Scan(&k.session, &k.process, &k.pid, &k.comm, &r.QName, &firstNS, &lastNS, &r.Count,
			&pid, &comm, &r.Exe, &uid, &parent, &r.Host, &funcs, &outs, &argv, &r.Container, &addrs); err != nil {
			return nil, fmt.Errorf("query libc resolutions: %w", err)
		}
		r.PID = sql.Null[int64]{V: pid.Int64, Valid: pid.Valid}
		r.UID = sql.Null[int64]{V: uid.Int64, Valid: uid.Valid}
		r.Comm = comm.String
		r.FirstSeen = time.Unix(0, firstNS).UTC()
		r.LastSeen = time.Unix(0, lastNS).UTC()
		r.Argv = parseArgv(argv)
		r.File = f.path
		r.processID = k.process
		r.Via = libcSource(funcs.String)
		r.Status = libcStatus(outs.String)
		if addrs.Valid && addrs.String != "" {
			for _, a := range strings.Split(addrs.String, ";") {
				r.Answers = append(r.Answers, dnstext.AddrAnswer(a))
			}
		}
		rows = append(rows, r)
		parents = append(parents, parent)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("query libc resolutions: %w", err)
	}
	rs.Close()
	return rows, f.walkAncestries(ctx, rows, parents)
}

// libcStatus turns "getaddrinfo 0;getaddrinfo -2" into "answered;EAI_NONAME",
// each outcome once in order of first appearance, with a count when more
// than one, as statusOf does for messages.
func libcStatus(outs string) string {
	var names []string
	for _, o := range strings.Split(outs, ";") {
		fn, rcs, ok := strings.Cut(o, " ")
		if rc, err := strconv.ParseInt(rcs, 10, 64); ok && err == nil {
			names = append(names, dnstext.ResolutionStatus(fn, rc))
		}
	}
	return countedNames(names)
}
