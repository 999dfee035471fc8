package querytest

import (
	"database/sql"
	"strings"
	"testing"
)

// Plan is SQLite's plan for q with args on db: the detail of each step of
// EXPLAIN QUERY PLAN, one a line, for tests that a statement uses the
// indexes it was written for.
func Plan(t testing.TB, db *sql.DB, q string, args ...any) string {
	t.Helper()
	rs, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatalf("explain: %v\n%s", err, q)
	}
	defer rs.Close()
	var b strings.Builder
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
