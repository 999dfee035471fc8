package query

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/publicsuffix"
)

// StatsColumns are the columns of `dnsrec query stats`: one row per
// figure, grouped by section.
//
//	span              first and last message, counts of messages, sessions, processes, names
//	top_names         names most asked for (client queries)
//	top_domains       registered domains (public suffix + 1) most asked for, with distinct names under each
//	top_processes     processes that sent the most queries
//	nxdomain_rate     processes by share of their responses that were NXDOMAIN (at least StatsMinResponses)
//	unanswered        names with the most queries no response was linked to
//	long_names        the longest names asked for
//	high_entropy      names whose labels look random (Shannon entropy of the longest label), the DNS-tunnelling tell
//	tunnel_suspects   domains with the most distinct high-entropy names under them
var StatsColumns = []string{"section", "rank", "item", "count", "value", "detail"}

// StatsTop is how many rows each ranked section shows.
const StatsTop = 20

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

// Stats summarises the files: the span, the top talkers, failure rates and
// the names a tunnel would produce.
func (d *DB) Stats(ctx context.Context, f Filter) (*Table, error) {
	t := &Table{Columns: StatsColumns}
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
	add("span", 0, "messages", agg.messages, nil, nil)
	add("span", 0, "queries", agg.queries, nil, "sent by a client end")
	add("span", 0, "sessions", agg.sessions, nil, nil)
	add("span", 0, "processes", int64(len(agg.procs)), nil, "that sent or received a message")
	add("span", 0, "names", int64(len(agg.names)), nil, "distinct names asked for")

	for i, kv := range topCounts(agg.names, StatsTop) {
		add("top_names", i+1, kv.key, kv.n, nil, nil)
	}
	domains := map[string]int64{}
	distinct := map[string]int64{}
	for name, n := range agg.names {
		dom := registered(name)
		domains[dom] += n
		distinct[dom]++
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
		add("unanswered", i+1, kv.key, kv.n, nil, "queries with no response linked")
	}
	// Names by length, then by entropy.
	names := make([]string, 0, len(agg.names))
	for n := range agg.names {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		if len(names[i]) != len(names[j]) {
			return len(names[i]) > len(names[j])
		}
		return names[i] < names[j]
	})
	for i, n := range names {
		if i == StatsTop {
			break
		}
		add("long_names", i+1, n, agg.names[n], int64(len(n)), "characters")
	}
	type scored struct {
		name  string
		label string
		bits  float64
	}
	var high []scored
	suspects := map[string]int64{}
	for _, n := range names {
		label := longestLabel(n)
		if len(label) < entropyMinLen {
			continue
		}
		if b := Entropy(label); b >= entropyMinBits {
			high = append(high, scored{n, label, b})
			suspects[registered(n)]++
		}
	}
	sort.SliceStable(high, func(i, j int) bool { return high[i].bits > high[j].bits })
	for i, h := range high {
		if i == StatsTop {
			break
		}
		add("high_entropy", i+1, h.name, agg.names[h.name], strconv.FormatFloat(h.bits, 'f', 2, 64),
			fmt.Sprintf("bits per character of %q", h.label))
	}
	for i, kv := range topCounts(suspects, StatsTop) {
		add("tunnel_suspects", i+1, kv.key, kv.n, nil, fmt.Sprintf("distinct high-entropy names of %d", distinct[kv.key]))
	}
	return t, nil
}

type statsAgg struct {
	first, last                 int64
	messages, queries, sessions int64
	names                       map[string]int64 // client queries per name
	procs                       map[procKey]*procStat
	unanswered                  map[string]int64
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

func (fl *file) stats(ctx context.Context, f *Filter, agg *statsAgg) error {
	mw, margs := f.msgsWhere(false)
	var first, last sql.NullInt64
	var msgs, sessions int64
	err := fl.db.QueryRowContext(ctx, `SELECT min(m.ts_ns), max(m.ts_ns), coalesce(sum((m.obs & 1) + (m.obs >> 1 & 1)), 0) FROM msgs m WHERE `+mw, margs...).
		Scan(&first, &last, &msgs)
	if err != nil {
		return fmt.Errorf("span: %w", err)
	}
	if err := fl.db.QueryRowContext(ctx, `SELECT count(*) FROM sessions`).Scan(&sessions); err != nil {
		return fmt.Errorf("sessions: %w", err)
	}
	if first.Valid && (agg.first == 0 || first.Int64 < agg.first) {
		agg.first = first.Int64
	}
	if last.Valid && last.Int64 > agg.last {
		agg.last = last.Int64
	}
	agg.messages += msgs
	agg.sessions += sessions

	// Client queries per name: the msgs_name index alone answers this
	// when there is no filter.
	rs, err := fl.db.QueryContext(ctx, `SELECT coalesce(n.name, ''), c FROM
		(SELECT m.name_id, count(*) AS c FROM msgs m WHERE m.obs & 5 = 1 AND `+mw+` GROUP BY m.name_id) q
		LEFT JOIN names n ON n.id = q.name_id`, margs...)
	if err != nil {
		return fmt.Errorf("names: %w", err)
	}
	for rs.Next() {
		var name string
		var c int64
		if err := rs.Scan(&name, &c); err != nil {
			rs.Close()
			return fmt.Errorf("names: %w", err)
		}
		agg.names[name] += c
		agg.queries += c
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("names: %w", err)
	}

	// Per owner: queries sent, responses received, NXDOMAINs among them.
	rs, err = fl.db.QueryContext(ctx, `
SELECT own, sum(q), sum(r), sum(nx) FROM (
	SELECT m.s_owner AS own, 1 AS q, 0 AS r, 0 AS nx FROM msgs m WHERE m.obs & 5 = 1 AND m.s_owner IS NOT NULL AND `+mw+`
	UNION ALL
	SELECT m.r_owner, 0, 1, m.rcode = 3 FROM msgs m WHERE m.obs & 10 = 2 AND m.r_owner IS NOT NULL AND `+mw+`
) GROUP BY own`, append(margs, margs...)...)
	if err != nil {
		return fmt.Errorf("processes: %w", err)
	}
	type ownStat struct{ own, q, r, nx int64 }
	var owns []ownStat
	for rs.Next() {
		var o ownStat
		if err := rs.Scan(&o.own, &o.q, &o.r, &o.nx); err != nil {
			rs.Close()
			return fmt.Errorf("processes: %w", err)
		}
		owns = append(owns, o)
	}
	rs.Close()
	if err := rs.Err(); err != nil {
		return fmt.Errorf("processes: %w", err)
	}
	dict := fl.dicts()
	for _, o := range owns {
		p, err := dict.owner(ctx, o.own)
		if err != nil {
			return err
		}
		k := procKey{fl.path, -o.own}
		label, detail := "owner "+strconv.FormatInt(o.own, 10), ""
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
		ps.queries += o.q
		ps.responses += o.r
		ps.nx += o.nx
	}

	if fl.version < 3 {
		return nil // no query-response links
	}
	// Queries no response names, per name.
	rs, err = fl.db.QueryContext(ctx, `
SELECT coalesce(n.name, ''), q.c FROM (
	SELECT m.name_id, count(*) AS c FROM msgs m
	WHERE m.obs & 5 = 1 AND `+mw+` AND NOT EXISTS (SELECT 1 FROM msgs r WHERE r.query_id = m.id)
	GROUP BY m.name_id) q LEFT JOIN names n ON n.id = q.name_id`, margs...)
	if err != nil {
		return fmt.Errorf("unanswered: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var name string
		var c int64
		if err := rs.Scan(&name, &c); err != nil {
			return fmt.Errorf("unanswered: %w", err)
		}
		agg.unanswered[name] += c
	}
	return rs.Err()
}

type keyCount struct {
	key string
	n   int64
}

// topCounts returns the n largest counts, ties by key.
func topCounts(m map[string]int64, n int) []keyCount {
	out := make([]keyCount, 0, len(m))
	for k, v := range m {
		out = append(out, keyCount{k, v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].n != out[j].n {
			return out[i].n > out[j].n
		}
		return out[i].key < out[j].key
	})
	if len(out) > n {
		out = out[:n]
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

// longestLabel is the longest label of name below its registered domain.
func longestLabel(name string) string {
	sub := strings.TrimSuffix(strings.TrimSuffix(name, registered(name)), ".")
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
