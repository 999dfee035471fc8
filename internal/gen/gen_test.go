package gen_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/gen"
	"github.com/dnsrec/dnsrec/query"
)

const testMessages = 20_000

// TestWrite generates a small file and checks it against its Facts, with
// the same tools an analyst would use: info, verify, who-resolved, and
// plain SQL.
func TestWrite(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "gen.db")
	f, err := gen.Write(ctx, p, gen.Config{Messages: testMessages, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	if f.Messages != testMessages || f.Summary.Messages != testMessages {
		t.Fatalf("Facts.Messages %d, Summary.Messages %d, want %d", f.Messages, f.Summary.Messages, testMessages)
	}
	if _, err := os.Stat(p + "-wal"); err == nil {
		t.Errorf("a -wal is left beside the file: a clean stop leaves one file")
	}

	db, err := query.Open(ctx, []string{p})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if w, err := db.Warnings(ctx); err != nil || len(w) != 0 {
		t.Errorf("warnings on a cleanly stopped file: %q (%v)", w, err)
	}

	info, err := db.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(info.Rows) != 1 {
		t.Fatalf("info: %d sessions, want 1", len(info.Rows))
	}
	col := func(name string) any { return info.Rows[0][slices.Index(query.InfoColumns, name)] }
	for name, want := range map[string]any{"observations": f.Messages, "processes": f.Processes, "host": f.Host, "unattributed": f.Unattributed} {
		if got := col(name); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("info %s = %v, Facts say %v", name, got, want)
		}
	}
	if col("stopped") == nil {
		t.Errorf("info: the session has no stop time")
	}

	reps, err := db.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := reps[0]; !r.OK() || !r.Stopped || r.Head != f.Summary.ChainHead || r.Links != f.Summary.ChainSeq {
		t.Errorf("verify: ok %v stopped %v head %s links %d problems %q; Finish said head %s links %d",
			r.OK(), r.Stopped, r.Head, r.Links, r.Problems, f.Summary.ChainHead, f.Summary.ChainSeq)
	}

	sdb := openSQL(t, p)
	count := func(q string, args ...any) int64 {
		t.Helper()
		var n int64
		if err := sdb.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	// A query is a row whose sender is the client end: seen sent by a
	// non-server, or only seen received by the server.
	const isQuery = `((obs & 1 AND obs & 4 = 0) OR (obs & 1 = 0 AND obs & 8))`
	for _, c := range []struct {
		what string
		got  int64
		want int64
	}{
		{"msgs rows", count(`SELECT count(*) FROM msgs`), f.Rows},
		{"rrs rows", count(`SELECT count(*) FROM rrs`), f.RRs},
		{"names rows", count(`SELECT count(*) FROM names`), f.Names},
		{"processes rows", count(`SELECT count(*) FROM processes`), f.Processes},
		{"queries", count(`SELECT count(*) FROM msgs WHERE ` + isQuery), f.Queries},
		{"unanswered queries", count(`SELECT count(*) FROM msgs q WHERE ` + isQuery + ` AND NOT EXISTS (SELECT 1 FROM msgs r WHERE r.query_id = q.id)`), f.Unanswered},
		{"NXDOMAIN responses", count(`SELECT count(*) FROM msgs WHERE rcode = 3 AND NOT ` + isQuery), f.NXDomain},
		{"tunnel names", count(`SELECT count(*) FROM names WHERE rev >= ? AND rev < ?`, "test.exfil.", "test.exfil/"), f.Tunnel.Queries},
		{"rrs with the probe address", count(`SELECT count(*) FROM rrs WHERE data = ?`, f.Probe.IP), f.Probe.IPRRs},
		{"sessions", count(`SELECT count(*) FROM sessions WHERE stopped_ns = ?`, f.Stop.UnixNano()), 1},
		{"stop indexes", count(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('msgs_name', 'rrs_message', 'rrs_addr4', 'rrs_addr6', 'msgs_query')`), 5},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d in the file, Facts say %d", c.what, c.got, c.want)
		}
	}
	// Realism the benchmarks rely on.
	nx, queries := f.NXDomain, f.Queries
	if r := float64(nx) / float64(queries); r < 0.01 || r > 0.1 {
		t.Errorf("NXDOMAIN for %.1f%% of queries, want a few percent", 100*r)
	}
	if f.Unanswered == 0 || f.Unattributed == 0 {
		t.Errorf("unanswered %d, unattributed %d: want some of each", f.Unanswered, f.Unattributed)
	}
	if n := count(`SELECT count(*) FROM rrs WHERE type = 5`); n == 0 {
		t.Errorf("no CNAME answers")
	}
	if n := count(`SELECT count(DISTINCT data) FROM rrs WHERE type = 1`); n < 100 {
		t.Errorf("A answers carry %d distinct addresses, want many", n)
	}
	if n := count(`SELECT count(*) FROM msgs WHERE latency_ns IS NOT NULL AND (latency_ns <= 0 OR latency_ns > 10e9)`); n != 0 {
		t.Errorf("%d responses with a latency that is not a wait", n)
	}
	if n := count(`SELECT count(*) FROM msgs WHERE obs = 11`); n == 0 { // sent and received on loopback, by a client to a server
		t.Errorf("no loopback queries to the local resolver")
	}
	if n := count(`SELECT count(*) FROM msgs m JOIN msgs p ON p.id = m.id - 1 WHERE m.ts_ns < p.ts_ns`); n != 0 {
		t.Errorf("%d rows earlier than the row before them: ids must follow time, as the pipeline assigns them", n)
	}

	// Every message's bytes are a DNS message that parses whole.
	rows, err := sdb.Query(`SELECT id, raw FROM msgs`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			t.Fatal(err)
		}
		if err := new(dns.Msg).Unpack(raw); err != nil {
			t.Fatalf("msgs row %d: raw does not parse: %v", id, err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	// who-resolved finds the incident exactly as planted.
	// Facts list the local resolver too: who-resolved shows it with
	// --resolvers (Resolvers), and by default only in its clients' via.
	who, err := db.WhoResolved(ctx, f.Incident.Domain, query.WhoResolvedOptions{Resolvers: true})
	if err != nil {
		t.Fatal(err)
	}
	checkResolvers(t, who, f.Incident.Resolvers)
	clients, err := db.WhoResolved(ctx, f.Incident.Domain, query.WhoResolvedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range clients {
		if r.Comm == "dnsmasq" {
			t.Errorf("who-resolved without --resolvers lists the forwarding resolver: %+v", r)
		}
		if r.Comm == "curl" && !strings.HasPrefix(r.Via, "dnsmasq(") {
			t.Errorf("curl's row does not name dnsmasq in via: %q", r.Via)
		}
	}
	var curl *gen.Resolver
	for i, r := range f.Incident.Resolvers {
		if r.QName == f.Incident.Name && r.Comm == "curl" {
			curl = &f.Incident.Resolvers[i]
		}
	}
	if curl == nil || curl.Queries != 6 || !slices.Equal(curl.Answers, []string{f.Incident.CNAME, f.Incident.IP}) ||
		!strings.HasPrefix(curl.Ancestry, "bash(") || !strings.HasSuffix(curl.Ancestry, " > sshd(840) > systemd(1)") {
		t.Errorf("curl's lookups of %s: %+v", f.Incident.Name, curl)
	}
	exact, err := db.WhoResolved(ctx, f.Incident.Name, query.WhoResolvedOptions{Exact: true, Resolvers: true})
	if err != nil {
		t.Fatal(err)
	}
	var want []gen.Resolver
	for _, r := range f.Incident.Resolvers {
		if r.QName == f.Incident.Name {
			want = append(want, r)
		}
	}
	checkResolvers(t, exact, want)
}

func checkResolvers(t *testing.T, got []query.WhoResolvedRow, want []gen.Resolver) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("who-resolved: %d rows, Facts say %d", len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		g, w := got[i], want[i]
		// who-resolved prints answers typed ("A 203.0.113.7"); Facts
		// have the data as stored.
		var answers []string
		for _, a := range g.Answers {
			_, data, _ := strings.Cut(a, " ")
			answers = append(answers, data)
		}
		gs := fmt.Sprintf("%s pid=%d comm=%s exe=%s uid=%d ancestry=%q first=%v last=%v count=%d answers=%q status=%v",
			g.QName, g.PID.V, g.Comm, g.Exe, g.UID.V, g.Ancestry.String(), g.FirstSeen, g.LastSeen, g.Count, answers, parseStatus(g.Status))
		ws := fmt.Sprintf("%s pid=%d comm=%s exe=%s uid=%d ancestry=%q first=%v last=%v count=%d answers=%q status=%v",
			w.QName, w.PID, w.Comm, w.Exe, w.UID, w.Ancestry, w.First, w.Last, w.Queries, w.Answers, w.Status)
		if gs != ws {
			t.Errorf("who-resolved row %d:\n got %s\nwant %s", i, gs, ws)
		}
	}
}

// parseStatus reads who-resolved's "NOERROR (2);unanswered" back into
// counts (its order is SQLite's).
func parseStatus(s string) map[string]int {
	out := map[string]int{}
	for part := range strings.SplitSeq(s, ";") {
		name, n, ok := strings.Cut(part, " (")
		c := 1
		if ok {
			c, _ = strconv.Atoi(strings.TrimSuffix(n, ")"))
		}
		if name != "" {
			out[name] += c
		}
	}
	return out
}

// TestDeterministic: the same seed writes the same rows (the chain's
// commit times differ, so the files' hashes do).
func TestDeterministic(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var digests []string
	for i, seed := range []uint64{3, 3, 4} {
		p := filepath.Join(dir, fmt.Sprintf("%d.db", i))
		if _, err := gen.Write(ctx, p, gen.Config{Messages: 5000, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, tablesDigest(t, p))
	}
	if digests[0] != digests[1] {
		t.Errorf("seed 3 twice: different rows")
	}
	if digests[0] == digests[2] {
		t.Errorf("seeds 3 and 4: the same rows")
	}
}

func tablesDigest(t *testing.T, p string) string {
	t.Helper()
	db := openSQL(t, p)
	h := sha256.New()
	for _, q := range []string{
		`SELECT id, ts_ns, flow_id, obs, s_owner, s_socket, r_owner, r_socket, r_dt_ns, name_id, rcode, raw, query_id, latency_ns FROM msgs ORDER BY id`,
		`SELECT id, message_id, name_id, type, ttl, data FROM rrs ORDER BY id`,
		`SELECT id, name FROM names ORDER BY id`,
		`SELECT id, pid, start_ticks, parent_id, comm, exe, argv, uid, exit_ns FROM processes ORDER BY id`,
		`SELECT id, process_id, pid, tid, comm, netns, nspid FROM owners ORDER BY id`,
		`SELECT id, a_addr, a_port, b_addr, b_port FROM flows ORDER BY id`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(h, "%v\n", vals)
		}
		rows.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestRefusesExisting: the generator never overwrites a file.
func TestRefusesExisting(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	if err := os.WriteFile(p, []byte("evidence"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := gen.Write(context.Background(), p, gen.Config{Messages: 100}); err == nil {
		t.Fatal("Write over an existing file succeeded")
	}
	if b, _ := os.ReadFile(p); string(b) != "evidence" {
		t.Fatalf("the existing file was changed: %q", b)
	}
}

// TestCancel: a cancelled Write leaves no file behind.
func TestCancel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.db")
	ctx, cancel := context.WithCancel(context.Background())
	_, err := gen.Write(ctx, p, gen.Config{Messages: 1_000_000, Progress: func(done, _ int64) {
		if done > 20_000 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("a cancelled Write succeeded")
	}
	left, _ := filepath.Glob(p + "*")
	if len(left) != 0 {
		t.Fatalf("files left after a cancelled Write: %v", left)
	}
}

func openSQL(t *testing.T, p string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: p, RawQuery: "mode=ro"}).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
