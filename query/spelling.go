package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
)

// Names as they were sent (schema v15). names holds each name once,
// lowercased, and every question matches on it; a message or libc call
// whose name was sent in another case points at its spelling in the
// spellings table. Outputs show the spelling: the case can be data (a
// tunnel's, malware's), and DNS 0x20 randomizes it.

// hasSpellings tells whether the file can hold spellings.
func (f *file) hasSpellings() bool { return f.version >= 15 }

// qnameCol is the question name of msgs m as sent, and the join it needs
// after the one of names n.
func (f *file) qnameCol() (col, join string) {
	if !f.hasSpellings() {
		return "n.name", ""
	}
	return "coalesce(sp.name, n.name)", " LEFT JOIN spellings sp ON sp.id = m.spelling_id"
}

// anySpelling tells whether some name in the file was sent in another
// case than its names row: the common file has none, and its questions
// need not look.
func (f *file) anySpelling(ctx context.Context) (bool, error) {
	if !f.hasSpellings() {
		return false, nil
	}
	var one int
	err := f.db.QueryRowContext(ctx, "SELECT 1 FROM spellings LIMIT 1").Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read spellings: %w", err)
	}
	return true, nil
}

// spellKey is who-resolved's grouping, without the session: a process
// (or, unidentified, a pid and comm) and a lowercased name.
type spellKey struct {
	process sql.NullInt64
	pid     sql.NullInt64
	comm    sql.NullString
	name    string
}

// spellMsgsSQL lists, first seen first, the spellings the client side of
// each process sent or received the matching names (%s) in; spellLibcSQL
// the same for libc calls. It runs only on a file with spellings, and
// reads the matching names' messages (msgs_name, at a clean stop).
const spellMsgsSQL = `
WITH n AS (SELECT id, name FROM names WHERE %s)
SELECT n.name, sp.name, o.process_id, o.pid, o.comm, min(x.ts) AS first
FROM (
	SELECT m.name_id, m.spelling_id, m.s_owner AS owner, m.ts_ns AS ts FROM n JOIN msgs m ON m.name_id = n.id WHERE m.spelling_id IS NOT NULL AND m.obs & 5 = 1
	UNION ALL
	SELECT m.name_id, m.spelling_id, m.r_owner, m.ts_ns + coalesce(m.r_dt_ns, 0) FROM n JOIN msgs m ON m.name_id = n.id WHERE m.spelling_id IS NOT NULL AND m.obs & 10 = 2
) x JOIN n ON n.id = x.name_id JOIN spellings sp ON sp.id = x.spelling_id LEFT JOIN owners o ON o.id = x.owner
GROUP BY n.name, sp.name, o.process_id, o.pid, o.comm
ORDER BY first`

// spellLibcSQL: see spellMsgsSQL.
const spellLibcSQL = `
WITH n AS (SELECT id, name FROM names WHERE %s)
SELECT n.name, sp.name, o.process_id, o.pid, o.comm, min(r.ts_ns) AS first
FROM resolutions r JOIN n ON n.id = r.name_id JOIN spellings sp ON sp.id = r.spelling_id LEFT JOIN owners o ON o.id = r.owner
WHERE r.spelling_id IS NOT NULL AND r.flags & 4 = 0
GROUP BY n.name, sp.name, o.process_id, o.pid, o.comm
ORDER BY first`

// spell shows each who-resolved row's name as its process sent it: the
// first spelling that was not lowercase, and all of them in Spellings when
// there were several. libc: the rows are of libc calls.
func (f *file) spell(ctx context.Context, pat NamePattern, rows []WhoResolvedRow, libc bool) error {
	if len(rows) == 0 {
		return nil
	}
	if ok, err := f.anySpelling(ctx); err != nil || !ok {
		return err // !ok: nothing was sent in another case, the common file
	}
	q := spellMsgsSQL
	if libc {
		q = spellLibcSQL
	}
	w, args := pat.where("")
	rs, err := f.db.QueryContext(ctx, fmt.Sprintf(q, w), args...)
	if err != nil {
		return fmt.Errorf("read spellings: %w", err)
	}
	defer rs.Close()
	spellings := map[spellKey][]string{}
	for rs.Next() {
		var (
			k     spellKey
			sent  string
			first int64
		)
		if err := rs.Scan(&k.name, &sent, &k.process, &k.pid, &k.comm, &first); err != nil {
			return fmt.Errorf("read spellings: %w", err)
		}
		if k.process.Valid {
			k.pid, k.comm = sql.NullInt64{}, sql.NullString{}
		}
		if !slices.Contains(spellings[k], sent) {
			spellings[k] = append(spellings[k], sent)
		}
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("read spellings: %w", err)
	}
	for i := range rows {
		r := &rows[i]
		k := spellKey{process: r.processID, name: r.QName}
		if !k.process.Valid {
			k.pid = sql.NullInt64{Int64: r.PID.V, Valid: r.PID.Valid}
			k.comm = sql.NullString{String: r.Comm, Valid: true}
		}
		sp := spellings[k]
		if len(sp) == 0 {
			continue
		}
		r.QName = sp[0]
		if len(sp) > 1 {
			r.Spellings = sp
		}
	}
	return nil
}
