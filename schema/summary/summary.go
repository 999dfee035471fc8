package summary

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dnsrec/dnsrec/internal/rawsqlite"
	"github.com/dnsrec/dnsrec/schema"
)

// Extent is what a summary's builder computed: the largest msgs and rrs
// ids it covers, and the rows it gave.
type Extent struct {
	MsgsMax, RRsMax int64
	Rows            int64
}

// A Summary is one table a clean stop fills (schema v6 and later): its
// kind in the summaries table, its table and columns, and its builder.
type Summary struct {
	Kind, Table, Columns string
	Order                string // the table's order, which is Build's
	Version              int    // the schema version that has the table
	build                func(f Source, ctx context.Context, in *input, emit func(vals []any) error) error
}

// input is what every builder starts from: the extent the summary will
// cover (its Rows counted by the builder), the owners, and a statement
// that reads a name.
type input struct {
	sum    Extent
	owners map[int64]owner
	names  *sql.Stmt // SELECT name FROM names WHERE id = ?
}

var (
	// Who is who-resolved's summary: its rows come in name order, and for
	// a name in the order its processes first asked.
	Who = Summary{Kind: "who", Table: "who_summary", Columns: WhoColumns, Order: "rowid", Version: 6, build: Source.who}
	// Addr is resolved-to's summary: its rows come in the table's order.
	Addr = Summary{Kind: "addr", Table: "addr_summary", Columns: AddrColumns, Order: "type, data, first_msg, first_rr", Version: 7, build: Source.addrs}
)

// All are the summaries a clean stop writes, in order.
var All = []Summary{Who, Addr}

// InsertSQL is the statement that writes one row, its values in Columns'
// order.
func (s Summary) InsertSQL() string {
	marks := strings.TrimSuffix(strings.Repeat("?, ", strings.Count(s.Columns, ",")+1), ", ")
	return "INSERT INTO " + s.Table + " (" + s.Columns + ") VALUES (" + marks + ")"
}

// Source is an evidence file opened read-only, as the builders read it:
// its database/sql handle, its path and whether it was opened immutable
// (the long scans open connections of their own, through rawsqlite), and
// its schema version.
type Source struct {
	DB        *sql.DB
	Path      string
	Immutable bool
	Version   int
}

// Build computes the summary's rows for the dnsrec file at path (with the
// stop indexes) and gives each to emit, as the values of Columns in order,
// in Order. It opens the file read-only, so a recorder can summarize its
// own file, on connections of their own, before it closes it.
func (s Summary) Build(ctx context.Context, path string, emit func(vals []any) error) (_ Extent, err error) {
	uri, err := rawsqlite.URI(path, false)
	if err != nil {
		return Extent{}, err
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return Extent{}, err
	}
	defer func() {
		err = errors.Join(err, db.Close())
	}()
	if err := schema.Check(ctx, db); err != nil {
		return Extent{}, fmt.Errorf("open %s: %w", path, err)
	}
	_, version, err := schema.Stamp(ctx, db)
	if err != nil {
		return Extent{}, fmt.Errorf("open %s: %w", path, err)
	}
	return s.BuildFrom(ctx, Source{DB: db, Path: path, Version: version}, emit)
}

// BuildFrom is Build on a file already open.
func (s Summary) BuildFrom(ctx context.Context, f Source, emit func(vals []any) error) (Extent, error) {
	if f.Version < s.Version {
		return Extent{}, fmt.Errorf("schema v%d: %s needs v%d", f.Version, s.Table, s.Version)
	}
	var in input
	var err error
	if in.sum, err = f.extent(ctx); err != nil {
		return in.sum, err
	}
	if in.owners, err = f.owners(ctx); err != nil {
		return in.sum, err
	}
	if in.names, err = f.DB.PrepareContext(ctx, `SELECT name FROM names WHERE id = ?`); err != nil {
		return in.sum, err
	}
	defer in.names.Close()
	err = s.build(f, ctx, &in, emit)
	return in.sum, err
}

// Current tells whether f holds summary s covering all of its messages and
// answers: built at the last clean stop, with nothing recorded after it.
// Only then may a question answer from it.
func (s Summary) Current(ctx context.Context, f Source) (bool, error) {
	if f.Version < s.Version {
		return false, nil
	}
	var built Extent
	err := f.DB.QueryRowContext(ctx, `SELECT msgs_max, rrs_max FROM summaries WHERE kind = ?`, s.Kind).Scan(&built.MsgsMax, &built.RRsMax)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the summary's extent: %w", err)
	}
	now, err := f.extent(ctx)
	if err != nil {
		return false, fmt.Errorf("read the summary's extent: %w", err)
	}
	return built.MsgsMax == now.MsgsMax && built.RRsMax == now.RRsMax, nil
}

// extent reads the largest msgs and rrs ids: what a summary built now
// covers.
func (f Source) extent(ctx context.Context) (Extent, error) {
	var sum Extent
	err := f.DB.QueryRowContext(ctx, `SELECT (SELECT coalesce(max(id), 0) FROM msgs), (SELECT coalesce(max(id), 0) FROM rrs)`).Scan(&sum.MsgsMax, &sum.RRsMax)
	return sum, err
}

// rawRows runs q on a connection of its own, through rawsqlite: the scans
// read every message, and the driver's locks and boxing would be most of
// their cost.
func (f Source) rawRows(ctx context.Context, q string, each func(*rawsqlite.Stmt) error) error {
	uri, err := rawsqlite.URI(f.Path, f.Immutable)
	if err != nil {
		return err
	}
	return rawsqlite.Each(ctx, uri, q, nil, false, make(chan error, 1), each)
}

// owners reads every owners row.
func (f Source) owners(ctx context.Context) (map[int64]owner, error) {
	owners := map[int64]owner{}
	rs, err := f.DB.QueryContext(ctx, `SELECT id, process_id, pid, comm, uid FROM owners`)
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	for rs.Next() {
		var id int64
		var o owner
		if err := rs.Scan(&id, &o.process, &o.pid, &o.comm, &o.uid); err != nil {
			return nil, err
		}
		owners[id] = o
	}
	return owners, rs.Err()
}

// owner is an owners row, as the who-resolved queries join it.
type owner struct {
	process, pid, uid sql.NullInt64
	comm              sql.NullString
}

// ClientEnd is the client end of a response, the two columns address and
// port (” and 0 when the flow is unknown), for a message of alias (its
// obs) joined to its flow as f: the response's receiver, the flow's b
// side, or its a side when the message travels b->a. Resolved-to and its
// summary both read it so.
func ClientEnd(alias string) string {
	return `coalesce(CASE WHEN ` + alias + `.obs & 16 THEN f.a_addr ELSE f.b_addr END, ''),
       coalesce(CASE WHEN ` + alias + `.obs & 16 THEN f.a_port ELSE f.b_port END, 0)`
}

func sqlValue(n sql.NullInt64) any {
	if !n.Valid {
		return nil
	}
	return n.Int64
}

func sqlText(s sql.NullString) any {
	if !s.Valid {
		return nil
	}
	return s.String
}

func joinOrNil(list []string) any {
	if len(list) == 0 {
		return nil
	}
	return strings.Join(list, ",")
}
