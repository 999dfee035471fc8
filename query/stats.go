package query

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/publicsuffix"

	"github.com/dnsrec/dnsrec/query/format"
)

// StatsColumns are the columns of `dnsrec query stats`: one row per
// figure, grouped by section.
//
//	span              first and last message, counts of messages, observations, libc calls, sessions, processes, names
//	top_names         names most asked for (client queries)
//	top_domains       registered domains (public suffix + 1) most asked for, with distinct names under each
//	top_processes     processes that sent the most queries
//	nxdomain_rate     processes by share of their responses that were NXDOMAIN (at least StatsMinResponses)
//	unanswered        names with the most queries no response was linked to
//	long_names        the longest names asked for
//	high_entropy      names whose labels look random (Shannon entropy of the longest label), the DNS-tunnelling tell
//	tunnel_suspects   domains with the most distinct high-entropy names under them
//	encrypted_dns     encrypted-DNS servers (kind, address, server name) by connections, with the processes (schema v11)
var StatsColumns = []string{"section", "rank", "item", "count", "value", "detail"}

// StatsTop is how many rows each ranked section shows.
const StatsTop = 20

// statsNameRanges is how many ranges of name ids the per-name pass of
// stats is cut into, each read at once with the others.
const statsNameRanges = 4

// StatsMinResponses is how many responses a process needs before its
// NXDOMAIN rate is ranked: one failed lookup is not a pattern.
const StatsMinResponses = 10

// High-entropy labels: at least this long, and at least this many bits
// per character. A random base32 label of 20+ characters scores above 4;
// dictionary words and CDN host names stay below 3.5.
const (
	entropyMinLen  = 12
	entropyMinBits = 3.5
)

type encServer struct {
	key   string
	conns int64
	procs map[string]bool
}

// encryptedStats counts the connections and ranks the servers.
func encryptedStats(rows []EncryptedRow) (int64, []*encServer) {
	var total int64
	by := map[string]*encServer{}
	var out []*encServer
	for _, r := range rows {
		total += r.Count
		k := r.Kind + " " + r.Remote
		if r.SNI != "" {
			k += " " + r.SNI
		}
		s := by[k]
		if s == nil {
			s = &encServer{key: k, procs: map[string]bool{}}
			by[k] = s
			out = append(out, s)
		}
		s.conns += r.Count
		s.procs[fmt.Sprintf("%s %d %s", r.Host, r.PID.V, r.Exe)] = true
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].conns != out[j].conns {
			return out[i].conns > out[j].conns
		}
		return out[i].key < out[j].key
	})
	return total, out
}

// Stats summarises the files: the span, the top talkers, failure rates and
// the names a tunnel would produce.
func (d *DB) Stats(ctx context.Context, f Filter) (*format.Table, error) {
	if err := d.CheckFilter(&f); err != nil {
		return nil, err
	}
	t := &format.Table{Columns: StatsColumns}
	add := func(section string, rank int, item string, count any, value any, detail any) {
		var r any
		if rank > 0 {
			r = rank
		}
		if d, ok := detail.(string); ok {
			detail = nullString(d)
		}
		t.Rows = append(t.Rows, []any{section, r, item, count, value, detail})
	}
	var agg statsAgg
	agg.names = map[string]int64{}
	agg.procs = map[procKey]*procStat{}
	agg.unanswered = map[string]int64{}
	agg.spellings = map[string][]string{}
	for _, fl := range d.files {
		if fl.version < 2 {
			return nil, fmt.Errorf("%s: %w", fl.path, ErrOldSchema)
		}
		if err := fl.stats(ctx, &f, &agg); err != nil {
			return nil, fmt.Errorf("%s: %w", fl.path, err)
		}
	}
	// span
	if agg.first != 0 {
		add("span", 0, "first", nil, time.Unix(0, agg.first).UTC(), nil)
		add("span", 0, "last", nil, time.Unix(0, agg.last).UTC(), nil)
		add("span", 0, "duration", nil, time.Duration(agg.last-agg.first).Round(time.Millisecond).String(), nil)
	}
	add("span", 0, "messages", agg.messages, nil, "DNS messages; one seen at both ends on this host (loopback) counts once")
	add("span", 0, "observations", agg.observations, nil, "a message seen at one end: a loopback message is seen at both")
	if agg.libcKnown {
		add("span", 0, "libc_calls", agg.libcCalls, nil, "getaddrinfo/gethostbyname* calls recorded")
	}
	add("span", 0, "queries", agg.queries, nil, "sent by a client end")
	add("span", 0, "sessions", agg.sessions, nil, nil)
	add("span", 0, "processes", int64(len(agg.procs)), nil, "that sent or received a message")
	add("span", 0, "names", int64(len(agg.names)), nil, "distinct names asked for")
	enc, err := d.Encrypted(ctx, f)
	if err != nil {
		return nil, err
	}
	encTotal, encServers := encryptedStats(enc)
	add("span", 0, "encrypted_connections", encTotal, nil, "to encrypted-DNS servers: see query encrypted")

	// Names are counted whatever their case and shown as sent: the first
	// spelling that was not lowercase, as who-resolved shows them.
	shown := func(name string) string {
		if sp := agg.spellings[name]; len(sp) > 0 {
			return sp[0]
		}
		return name
	}
	for i, kv := range topCounts(agg.names, StatsTop) {
		add("top_names", i+1, shown(kv.key), kv.n, nil, nil)
	}
	// One pass over the names: their domains, and the labels that look
	// random. A label is scored as it was sent: case can carry the data
	// (base64), and lowercasing it lowers its entropy. A name sent in
	// several spellings scores as its highest.
	type scored struct {
		name  string // lowercase: the key
		sent  string // the spelling scored
		label string
		bits  float64
	}
	var high []scored
	suspects := map[string]int64{}
	domains := map[string]int64{}
	distinct := map[string]int64{}
	for name, n := range agg.names {
		dom := registered(name)
		domains[dom] += n
		distinct[dom]++
		label := longestLabelIn(name, dom)
		if len(label) < entropyMinLen {
			continue
		}
		best := scored{name, name, label, Entropy(label)}
		for _, sent := range agg.spellings[name] {
			l := longestLabelIn(sent, dom)
			if b := Entropy(l); b > best.bits {
				best = scored{name, sent, l, b}
			}
		}
		if best.bits >= entropyMinBits {
			high = append(high, best)
			suspects[dom]++
		}
	}
	for i, kv := range topCounts(domains, StatsTop) {
		add("top_domains", i+1, kv.key, kv.n, nil, fmt.Sprintf("%d distinct names", distinct[kv.key]))
	}
	procs := make([]*procStat, 0, len(agg.procs))
	for _, p := range agg.procs {
		procs = append(procs, p)
	}
	sort.Slice(procs, func(i, j int) bool {
		if procs[i].queries != procs[j].queries {
			return procs[i].queries > procs[j].queries
		}
		return procs[i].label < procs[j].label
	})
	for i, p := range procs {
		if i == StatsTop || p.queries == 0 {
			break
		}
		add("top_processes", i+1, p.label, p.queries, nil, p.detail)
	}
	var rated []*procStat
	for _, p := range procs {
		if p.responses >= StatsMinResponses && p.nx > 0 {
			rated = append(rated, p)
		}
	}
	sort.SliceStable(rated, func(i, j int) bool {
		ri, rj := float64(rated[i].nx)/float64(rated[i].responses), float64(rated[j].nx)/float64(rated[j].responses)
		if ri != rj {
			return ri > rj
		}
		return rated[i].nx > rated[j].nx
	})
	for i, p := range rated {
		if i == StatsTop {
			break
		}
		add("nxdomain_rate", i+1, p.label, p.nx, strconv.FormatFloat(float64(p.nx)/float64(p.responses), 'f', 3, 64),
			fmt.Sprintf("NXDOMAIN of %d responses", p.responses))
	}
	for i, kv := range topCounts(agg.unanswered, StatsTop) {
		add("unanswered", i+1, shown(kv.key), kv.n, nil, "queries with no response linked")
	}
	// Names by length, then by entropy (ties: the longer name, then in
	// order).
	for i, n := range top(keys(agg.names), StatsTop, func(a, b string) bool {
		if len(a) != len(b) {
			return len(a) > len(b)
		}
		return a < b
	}) {
		add("long_names", i+1, shown(n), agg.names[n], int64(len(n)), "characters")
	}
	high = top(high, StatsTop, func(a, b scored) bool {
		if a.bits != b.bits {
			return a.bits > b.bits
		}
		if len(a.name) != len(b.name) {
			return len(a.name) > len(b.name)
		}
		return a.name < b.name
	})
	for i, h := range high {
		detail := fmt.Sprintf("bits per character of %q", h.label)
		if n := len(agg.spellings[h.name]); n > 1 {
			detail += fmt.Sprintf(", the highest of %d spellings", n)
		}
		add("high_entropy", i+1, h.sent, agg.names[h.name], strconv.FormatFloat(h.bits, 'f', 2, 64), detail)
	}
	for i, kv := range topCounts(suspects, StatsTop) {
		add("tunnel_suspects", i+1, kv.key, kv.n, nil, fmt.Sprintf("distinct high-entropy names of %d", distinct[kv.key]))
	}
	for i, s := range encServers[:min(len(encServers), StatsTop)] {
		add("encrypted_dns", i+1, s.key, s.conns, int64(len(s.procs)), "connections; value: processes")
	}
	return t, nil
}

type statsAgg struct {
	first, last                 int64
	messages, queries, sessions int64
	observations                int64
	libcCalls                   int64
	libcKnown                   bool             // a file recorded libc calls (schema v5)
	names                       map[string]int64 // client queries per name
	procs                       map[procKey]*procStat
	unanswered                  map[string]int64
	// spellings are, per lowercase name, the spellings its client queries
	// were sent in when not lowercase (schema v15), first seen first.
	spellings map[string][]string
}

// procKey identifies a process across files.
type procKey struct {
	file string
	id   int64 // processes.id, or minus owners.id without one
}

type procStat struct {
	label, detail          string
	queries, responses, nx int64
}

// stats adds one file's figures to agg. Its passes over msgs run at once,
// each on its own connection, and each is an index-only scan in index
// order on a cleanly stopped file (msgs_name, msgs_sowner, msgs_rowner,
// msgs_ts; see schema.StopIndexes). Filters other than the name make them
// read the table instead: slower, the same answer.
func (fl *file) stats(ctx context.Context, f *Filter, agg *statsAgg) error {
	mw, margs := f.msgsWhere(false)
	// The recorder links a response to a query at most once (the query
	// leaves the wait when answered: record/pipeline.go, transaction), so
	// counting linked responses counts answered queries, without the
	// DISTINCT that would cost a sort.
	answered := "sum(m.query_id IS NOT NULL)"
	if fl.version < 3 {
		answered = "0" // no query-response links
	}
	type nameRow struct {
		name              string
		queries, answered int64
	}
	type ownRow = struct{ own, n, nx int64 }
	var (
		first, last    sql.NullInt64
		sessions, msgs int64
		obsTotal       int64
		libc           sql.NullInt64
		names          []nameRow
		sent, received []ownRow
	)
	// The per-name pass reads every message: it is cut into ranges of
	// name ids, each a range of msgs_name on a connection of its own, so
	// that every core takes a share. Each name id is in one range, and
	// the figures are added up by name below.
	var maxName sql.NullInt64
	if err := fl.db.QueryRowContext(ctx, `SELECT max(id) FROM names`).Scan(&maxName); err != nil {
		return fmt.Errorf("names: %w", err)
	}
	nameRanges := []string{"m.name_id IS NULL"}
	var rangeArgs [][]any
	rangeArgs = append(rangeArgs, nil)
	step := maxName.Int64/statsNameRanges + 1
	for lo := int64(0); lo <= maxName.Int64; lo += step {
		nameRanges = append(nameRanges, "m.name_id >= ? AND m.name_id < ?")
		rangeArgs = append(rangeArgs, []any{lo, lo + step})
	}
	var mu sync.Mutex // names and msgs, from every range
	namePass := func(cond string, cargs []any) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			// Per name: client queries, the queries a response was linked
			// to, and observations.
			rs, err := fl.db.QueryContext(ctx, `SELECT coalesce(n.name, ''), q.queries, q.answered, q.obs, q.n FROM
				(SELECT m.name_id, sum(m.obs & 5 = 1) AS queries, `+answered+` AS answered,
				        sum((m.obs & 1) + (m.obs >> 1 & 1)) AS obs, count(*) AS n
				 FROM msgs m WHERE `+cond+` AND `+mw+` GROUP BY m.name_id) q
				LEFT JOIN names n ON n.id = q.name_id`, append(append([]any{}, cargs...), margs...)...)
			if err != nil {
				return fmt.Errorf("names: %w", err)
			}
			defer rs.Close()
			var mine []nameRow
			var obsSum, msgSum int64
			for rs.Next() {
				var r nameRow
				var obs, n int64
				if err := rs.Scan(&r.name, &r.queries, &r.answered, &obs, &n); err != nil {
					return fmt.Errorf("names: %w", err)
				}
				obsSum += obs
				msgSum += n
				if r.queries > 0 {
					mine = append(mine, r)
				}
			}
			if err := rs.Err(); err != nil {
				return fmt.Errorf("names: %w", err)
			}
			mu.Lock()
			defer mu.Unlock()
			names = append(names, mine...)
			msgs += msgSum
			obsTotal += obsSum
			return nil
		}
	}
	passes := []func(ctx context.Context) error{
		func(ctx context.Context) error {
			// Two statements: SQLite answers a lone min() or max() from
			// msgs_ts's ends, not both at once.
			if err := fl.db.QueryRowContext(ctx, `SELECT min(m.ts_ns) FROM msgs m WHERE `+mw, margs...).Scan(&first); err != nil {
				return fmt.Errorf("span: %w", err)
			}
			if err := fl.db.QueryRowContext(ctx, `SELECT max(m.ts_ns) FROM msgs m WHERE `+mw, margs...).Scan(&last); err != nil {
				return fmt.Errorf("span: %w", err)
			}
			if err := fl.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions); err != nil {
				return fmt.Errorf("sessions: %w", err)
			}
			if fl.version >= 5 {
				rw, rargs := f.resWhere()
				if err := fl.db.QueryRowContext(ctx, `SELECT count(*) FROM resolutions r WHERE `+rw, rargs...).Scan(&libc); err != nil {
					return fmt.Errorf("libc calls: %w", err)
				}
			}
			return nil
		},
		func(ctx context.Context) error {
			rs, err := fl.db.QueryContext(ctx, `SELECT m.s_owner, count(*), 0 FROM msgs m
				WHERE m.obs & 5 = 1 AND `+mw+` AND m.s_owner IS NOT NULL GROUP BY m.s_owner`, margs...)
			if err != nil {
				return fmt.Errorf("senders: %w", err)
			}
			sent, err = scanOwnRows(rs)
			return err
		},
		func(ctx context.Context) error {
			rs, err := fl.db.QueryContext(ctx, `SELECT m.r_owner, count(*), coalesce(sum(m.rcode = 3), 0) FROM msgs m
				WHERE m.obs & 10 = 2 AND `+mw+` AND m.r_owner IS NOT NULL GROUP BY m.r_owner`, margs...)
			if err != nil {
				return fmt.Errorf("receivers: %w", err)
			}
			received, err = scanOwnRows(rs)
			return err
		},
	}
	for i, c := range nameRanges {
		passes = append(passes, namePass(c, rangeArgs[i]))
	}
	var spelled [][2]string // lowercase name, as sent
	if ok, err := fl.anySpelling(ctx); err != nil {
		return err
	} else if ok {
		passes = append(passes, func(ctx context.Context) error {
			var err error
			spelled, err = fl.statsSpellings(ctx, mw, margs)
			return err
		})
	}
	// The senders and receivers are most of the owners.
	dict := fl.dicts()
	passes = append(passes, dict.loadOwners)
	if err := runAll(ctx, passes); err != nil {
		return err
	}

	if first.Valid && (agg.first == 0 || first.Int64 < agg.first) {
		agg.first = first.Int64
	}
	if last.Valid && last.Int64 > agg.last {
		agg.last = last.Int64
	}
	agg.messages += msgs
	agg.observations += obsTotal
	if libc.Valid {
		agg.libcKnown = true
		agg.libcCalls += libc.Int64
	}
	agg.sessions += sessions
	for _, r := range names {
		agg.names[r.name] += r.queries
		agg.queries += r.queries
		// A name's responses carry its queries' ids.
		if u := r.queries - r.answered; u > 0 && fl.version >= 3 {
			agg.unanswered[r.name] += u
		}
	}
	for _, sp := range spelled {
		if !slices.Contains(agg.spellings[sp[0]], sp[1]) {
			agg.spellings[sp[0]] = append(agg.spellings[sp[0]], sp[1])
		}
	}
	for i, rows := range [][]ownRow{sent, received} {
		for _, o := range rows {
			ps, err := agg.proc(ctx, fl, dict, o.own)
			if err != nil {
				return err
			}
			if i == 0 {
				ps.queries += o.n
			} else {
				ps.responses += o.n
				ps.nx += o.nx
			}
		}
	}
	return nil
}

// statsSpellingsSQL lists the spellings of the client queries matching
// %s, first seen first. Only the names some spelling lowercases to are
// read (through msgs_name): the spellings are few, the messages many. The
// names are presentation forms, ASCII, which lower() lowercases as the
// recorder does.
const statsSpellingsSQL = `
WITH s AS (SELECT id, name FROM names WHERE name IN (SELECT lower(name) FROM spellings))
SELECT s.name, sp.name, min(m.ts_ns) AS first
FROM s JOIN msgs m ON m.name_id = s.id JOIN spellings sp ON sp.id = m.spelling_id
WHERE m.obs & 5 = 1 AND %s
GROUP BY m.name_id, m.spelling_id ORDER BY first`

// statsSpellings reads the spellings of the client queries matching mw.
func (fl *file) statsSpellings(ctx context.Context, mw string, margs []any) ([][2]string, error) {
	rs, err := fl.db.QueryContext(ctx, fmt.Sprintf(statsSpellingsSQL, mw), margs...)
	if err != nil {
		return nil, fmt.Errorf("spellings: %w", err)
	}
	defer rs.Close()
	var out [][2]string
	for rs.Next() {
		var sp [2]string
		var first int64
		if err := rs.Scan(&sp[0], &sp[1], &first); err != nil {
			return nil, fmt.Errorf("spellings: %w", err)
		}
		out = append(out, sp)
	}
	return out, rs.Err()
}

// proc returns the figures of the process behind owner (one entry per
// process, whatever the thread or uid its messages carried).
func (agg *statsAgg) proc(ctx context.Context, fl *file, dict *dicts, owner int64) (*procStat, error) {
	p, err := dict.owner(ctx, owner)
	if err != nil {
		return nil, err
	}
	k := procKey{fl.path, -owner}
	label, detail := "owner "+strconv.FormatInt(owner, 10), ""
	if p != nil {
		if p.ID != 0 {
			k.id = p.ID
		}
		label, detail = p.String(), p.Exe
	}
	ps := agg.procs[k]
	if ps == nil {
		ps = &procStat{label: label, detail: detail}
		agg.procs[k] = ps
	}
	return ps, nil
}

func scanOwnRows(rs *sql.Rows) ([]struct{ own, n, nx int64 }, error) {
	defer rs.Close()
	var out []struct{ own, n, nx int64 }
	for rs.Next() {
		var o struct{ own, n, nx int64 }
		if err := rs.Scan(&o.own, &o.n, &o.nx); err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, rs.Err()
}

// runAll runs fns at once and returns the first error; the others are
// cancelled.
func runAll(ctx context.Context, fns []func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errs <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

type keyCount struct {
	key string
	n   int64
}

// topCounts returns the n largest counts, ties by key.
func topCounts(m map[string]int64, n int) []keyCount {
	out := make([]keyCount, 0, min(n, len(m)))
	for k, v := range m {
		out = topAdd(out, keyCount{k, v}, n, func(a, b keyCount) bool {
			if a.n != b.n {
				return a.n > b.n
			}
			return a.key < b.key
		})
	}
	return out
}

// top returns the first n of vs in the order before defines (a total
// order), without sorting all of them.
func top[T any](vs []T, n int, before func(a, b T) bool) []T {
	out := make([]T, 0, min(n, len(vs)))
	for _, v := range vs {
		out = topAdd(out, v, n, before)
	}
	return out
}

// topAdd adds v to out, the first (at most) n values in before's order.
func topAdd[T any](out []T, v T, n int, before func(a, b T) bool) []T {
	if n <= 0 || (len(out) == n && !before(v, out[n-1])) {
		return out
	}
	i := sort.Search(len(out), func(i int) bool { return before(v, out[i]) })
	if len(out) < n {
		out = append(out, v)
	}
	copy(out[i+1:], out[i:len(out)-1])
	out[i] = v
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// registered is the name's registered domain (public suffix plus one
// label: evil.test, example.co.uk), or the name itself when it has none.
func registered(name string) string {
	if d, err := publicsuffix.EffectiveTLDPlusOne(name); err == nil {
		return d
	}
	return name
}

// longestLabelIn is the longest label of name below dom, its registered
// domain (lowercase; name may be a spelling of another case).
func longestLabelIn(name, dom string) string {
	sub := name
	if n := len(name) - len(dom); n >= 0 && strings.EqualFold(name[n:], dom) {
		sub = name[:n]
	}
	sub = strings.TrimSuffix(sub, ".")
	best := ""
	for _, l := range strings.Split(sub, ".") {
		if len(l) > len(best) {
			best = l
		}
	}
	return best
}

// Entropy is the Shannon entropy of s in bits per byte.
func Entropy(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
