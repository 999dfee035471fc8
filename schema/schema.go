package schema

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
)

// ApplicationID is written to PRAGMA application_id of every dnsrec file:
// the ASCII bytes "dnsr".
const ApplicationID = 0x646e7372

//go:embed migrations/*.sql
var migrationFS embed.FS

// StopIndexes are the indexes a recording builds when it stops cleanly.
// While recording, msgs and rrs are append-only: keeping secondary indexes
// on them up to date costs several times the insert itself, while building
// them once at the end costs little. A file whose recorder was killed
// has none of these and answers the same queries by scanning.
//
// msgs_name covers who-resolved's lookups and, with msgs_sowner (a client's
// queries by sender) and msgs_rowner (a client's responses by receiver and
// rcode), every pass `query stats` makes: each is read in index order, with
// no table access and no sort. On a 10-million-message file they cost about
// 170 MB of 1.6 GB, and stats takes seconds instead of a minute.
//
// rrs_addr4 and rrs_addr6 answer resolved-to: addresses only. Before them
// one rrs_data index held every answer's data, a large TXT answer's text a
// third time (after the message's bytes and the answer rows), and files
// recorded then keep it; resolved-to uses either.
//
// res_name, res_addr and res_ts do for the libc resolutions what msgs_name,
// rrs_addr4/6 and msgs_ts do for messages.
const StopIndexes = `
CREATE INDEX IF NOT EXISTS msgs_name ON msgs(name_id, obs, query_id);
CREATE INDEX IF NOT EXISTS rrs_message ON rrs(message_id);
CREATE INDEX IF NOT EXISTS rrs_addr4 ON rrs(data) WHERE type = 1;
CREATE INDEX IF NOT EXISTS rrs_addr6 ON rrs(data) WHERE type = 28;
CREATE INDEX IF NOT EXISTS msgs_query ON msgs(query_id) WHERE query_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS msgs_ts ON msgs(ts_ns);
CREATE INDEX IF NOT EXISTS msgs_sowner ON msgs(s_owner) WHERE obs & 5 = 1;
CREATE INDEX IF NOT EXISTS msgs_rowner ON msgs(r_owner, rcode) WHERE obs & 10 = 2;
CREATE INDEX IF NOT EXISTS res_name ON resolutions(name_id);
CREATE INDEX IF NOT EXISTS res_ts ON resolutions(ts_ns);
CREATE INDEX IF NOT EXISTS res_addrs ON resolution_addrs(resolution_id);
CREATE INDEX IF NOT EXISTS res_addr ON resolution_addrs(addr);
`

// Migration is one embedded schema step.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations returns the embedded migrations in the order they apply.
func Migrations() ([]Migration, error) {
	entries, err := fs.ReadDir(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		num, _, ok := strings.Cut(name, "_")
		if !ok {
			return nil, fmt.Errorf("migration %q: name must be NNNN_description.sql", name)
		}
		v, err := strconv.Atoi(num)
		if err != nil {
			return nil, fmt.Errorf("migration %q: %w", name, err)
		}
		body, err := fs.ReadFile(migrationFS, "migrations/"+name)
		if err != nil {
			return nil, fmt.Errorf("read migration %q: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: name, SQL: string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	for i, m := range ms {
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %q: expected version %d", m.Name, i+1)
		}
	}
	return ms, nil
}

// Version is the schema version this build writes and reads.
func Version() int {
	ms, err := Migrations()
	if err != nil {
		panic(err) // embedded at build time; a bad name is a build defect
	}
	return len(ms)
}

// ErrForeign means the file is an SQLite database that dnsrec did not write.
var ErrForeign = errors.New("not a dnsrec database")

// ErrTooNew means the file was written by a newer dnsrec.
var ErrTooNew = errors.New("database schema is newer than this dnsrec")

// Stamp reads application_id and user_version.
func Stamp(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (appID, version int, err error) {
	if err := q.QueryRowContext(ctx, "PRAGMA application_id").Scan(&appID); err != nil {
		return 0, 0, fmt.Errorf("read application_id: %w", err)
	}
	if err := q.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, 0, fmt.Errorf("read user_version: %w", err)
	}
	return appID, version, nil
}

// Check verifies that db is a dnsrec file this build can read. An empty
// database (no tables, no stamp) is reported as foreign too: readers never
// create schema.
func Check(ctx context.Context, db *sql.DB) error {
	appID, version, err := Stamp(ctx, db)
	if err != nil {
		return err
	}
	if appID != ApplicationID {
		return fmt.Errorf("%w (application_id %#x, want %#x)", ErrForeign, appID, ApplicationID)
	}
	if version > Version() {
		return fmt.Errorf("%w: file has version %d, this build knows up to %d; use a newer dnsrec", ErrTooNew, version, Version())
	}
	if version < 1 {
		return fmt.Errorf("%w: schema version %d", ErrForeign, version)
	}
	return nil
}

// Migrate brings db up to the current version. A brand-new database is
// stamped; a dnsrec database is upgraded; anything else is refused without
// being modified. Each migration runs in its own transaction together with the
// user_version update, so a crash leaves the file at a whole version.
func Migrate(ctx context.Context, db *sql.DB) error {
	appID, version, err := Stamp(ctx, db)
	if err != nil {
		return err
	}
	if appID == 0 && version == 0 {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
			return fmt.Errorf("inspect database: %w", err)
		}
		if n != 0 {
			return fmt.Errorf("%w: it already has %d schema objects", ErrForeign, n)
		}
	} else if appID != ApplicationID {
		return fmt.Errorf("%w (application_id %#x)", ErrForeign, appID)
	}
	ms, err := Migrations()
	if err != nil {
		return err
	}
	if version > len(ms) {
		return fmt.Errorf("%w: file has version %d, this build knows up to %d", ErrTooNew, version, len(ms))
	}
	for _, m := range ms[version:] {
		if err := apply(ctx, db, m); err != nil {
			return err
		}
	}
	return nil
}

func apply(ctx context.Context, db *sql.DB, m Migration) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.Name, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Rollback())
		}
	}()
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return fmt.Errorf("migration %s: %w", m.Name, err)
	}
	// PRAGMAs take no bound parameters; both values are integers we control.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA application_id = %d", ApplicationID)); err != nil {
		return fmt.Errorf("migration %s: stamp application_id: %w", m.Name, err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", m.Version)); err != nil {
		return fmt.Errorf("migration %s: set user_version: %w", m.Name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.Name, err)
	}
	return nil
}

// ReverseName turns a lowercased name without trailing dot into its
// reversed-label form ("www.evil.com" -> "com.evil.www"). Suffix search for
// NAME and its subdomains then becomes an index range scan:
// qname_rev = R OR (qname_rev >= R+"." AND qname_rev < R+"/"), since '/'
// sorts right after '.'. Escaped dots inside a label ("a\.b") stay inside it.
func ReverseName(name string) string {
	labels := splitLabels(name)
	for i, j := 0, len(labels)-1; i < j; i, j = i+1, j-1 {
		labels[i], labels[j] = labels[j], labels[i]
	}
	return strings.Join(labels, ".")
}

func splitLabels(name string) []string {
	var labels []string
	start := 0
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++ // skip the escaped character, and \DDD's first digit; the rest are not dots
		case '.':
			labels = append(labels, name[start:i])
			start = i + 1
		}
	}
	return append(labels, name[start:])
}

// NormalizeName lowercases a presentation-format name and strips one trailing
// dot; the root becomes "".
func NormalizeName(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		return name
	}
	// The dot is escaped ("a\.") only after an odd number of backslashes.
	n := 0
	for i := len(name) - 2; i >= 0 && name[i] == '\\'; i-- {
		n++
	}
	if n%2 == 0 {
		name = name[:len(name)-1]
	}
	return name
}
