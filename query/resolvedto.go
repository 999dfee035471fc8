package query

import (
	"context"
	"database/sql"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// ResolvedToColumns are the columns of `dnsrec query resolved-to`: one row
// per address, name asked and asking process (or remote client).
var ResolvedToColumns = []string{
	"address", "qname", "chain", "pid", "comm", "exe", "uid", "ancestry", "client",
	"first_seen", "last_seen", "count", "host",
}

// ResolvedToRow is one client that got an address in answer to one name.
type ResolvedToRow struct {
	File    string
	Host    string
	Address string // as stored: the A or AAAA data
	QName   string // the question the response answered
	// Chain is how QName led to Address in the first such response:
	// "www.evil.test > CNAME cdn.evil.test > A 203.0.113.7".
	Chain     string
	Proc      *Process       // the local process that received the answer; nil for a remote client
	Client    netip.AddrPort // the client's address (and the port of its first query)
	FirstSeen time.Time
	LastSeen  time.Time
	Count     int64 // responses
}

// ParsePrefix accepts an address (203.0.113.7, 2001:db8::7) or a CIDR
// prefix (203.0.113.0/24, 2001:db8::/32).
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix (want 203.0.113.7, 203.0.113.0/24, 2001:db8::/32)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// addrRanges turns a prefix into conditions on rrs.data (text), which the
// rrs_data index answers: IPv4 prefixes become one text range per whole
// octet ("203.0.113." .. "203.0.113/"), at most 128 of them; IPv6 text is
// compressed, so an IPv6 prefix narrows by its first group and Go checks
// each candidate. exact tells whether the ranges alone decide.
func addrRanges(p netip.Prefix) (conds []string, args []any, exact bool) {
	a := p.Addr()
	if a.Is4() {
		b := a.As4()
		bits := p.Bits()
		if bits == 32 {
			return []string{"r.data = ?"}, []any{a.String()}, true
		}
		octets := (bits + 7) / 8 // octets the range fixes, rounding the prefix up
		if octets == 0 {
			return []string{"1"}, nil, true // 0.0.0.0/0: every A record
		}
		n := 1 << (octets*8 - bits) // prefixes of that many octets inside p
		for i := 0; i < n; i++ {
			v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			v += uint32(i) << (32 - octets*8)
			parts := []string{strconv.Itoa(int(v >> 24)), strconv.Itoa(int(v >> 16 & 255)), strconv.Itoa(int(v >> 8 & 255)), strconv.Itoa(int(v & 255))}
			pre := strings.Join(parts[:octets], ".")
			if octets == 4 {
				conds = append(conds, "r.data = ?")
				args = append(args, pre)
				continue
			}
			conds = append(conds, "(r.data >= ? AND r.data < ?)")
			args = append(args, pre+".", pre+"/")
		}
		return conds, args, true
	}
	if p.Bits() == 128 {
		return []string{"r.data = ?"}, []any{a.String()}, true
	}
	b := a.As16()
	first := uint16(b[0])<<8 | uint16(b[1])
	if p.Bits() >= 16 && first != 0 {
		g := strconv.FormatUint(uint64(first), 16)
		// ';' follows ':' in ASCII.
		return []string{"(r.data >= ? AND r.data < ?)"}, []any{g + ":", g + ";"}, false
	}
	return []string{"1"}, nil, false
}

// ResolvedTo lists who got an address inside prefix in an answer (A or
// AAAA), the name they asked and how that name led to the address. Rows are
// in first-seen order.
func (d *DB) ResolvedTo(ctx context.Context, prefix netip.Prefix, f Filter) ([]ResolvedToRow, error) {
	if err := d.CheckFilter(&f); err != nil {
		return nil, err
	}
	var out []ResolvedToRow
	for _, fl := range d.files {
		if fl.version < 2 {
			return nil, fmt.Errorf("%s: %w", fl.path, ErrOldSchema)
		}
		rows, err := fl.resolvedTo(ctx, prefix, &f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fl.path, err)
		}
		out = append(out, rows...)
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := &out[i], &out[j]
		if !a.FirstSeen.Equal(b.FirstSeen) {
			return a.FirstSeen.Before(b.FirstSeen)
		}
		return a.Host < b.Host
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

type resolvedKey struct {
	session     int64
	addr, qname string
	owner       int64
	client      netip.AddrPort
	libc        string // the libc function, for a libc resolution's address
}

// typedAddrRanges is addrRanges on alias.data (alias an rrs or
// addr_summary row) as one condition, with the type of the prefix's
// addresses in every alternative: each is then a range on an index of its
// own (rrs_addr4 or rrs_addr6, partial, which SQLite can only use where
// the alternative itself says type = 1 or 28; addr_summary's key).
func typedAddrRanges(prefix netip.Prefix, alias string) (where string, args []any, exact bool, typ uint16) {
	conds, args, exact := addrRanges(prefix)
	typ = dns.TypeA
	if prefix.Addr().Is6() {
		typ = dns.TypeAAAA
	}
	for i, c := range conds {
		conds[i] = "(" + alias + ".type = " + strconv.Itoa(int(typ)) + " AND " + strings.ReplaceAll(c, "r.data", alias+".data") + ")"
	}
	return "(" + strings.Join(conds, " OR ") + ")", args, exact, typ
}

// resolvedToSQL is the statement that finds the answers inside prefix,
// its arguments, and whether the SQL alone decides (else each address is
// checked against prefix).
func resolvedToSQL(version int, prefix netip.Prefix, f *Filter) (string, []any, bool) {
	typed, args, exact, _ := typedAddrRanges(prefix, "r")
	msgF := *f
	msgF.PIDs, msgF.Exes, msgF.Comms, msgF.UIDs, msgF.Limit = nil, nil, nil, nil, 0
	msgF.Trees = nil
	mw, margs := msgF.msgsWhere(false)
	ownerW, ownerArgs := "1", []any(nil)
	if f.hasProcess() {
		c, a := f.ownerWhere()
		ownerW, ownerArgs = "m.r_owner IN (SELECT o.id FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE "+c+")", a
	}
	// Responses received by a client, or sent by a local server to a
	// remote one: the answers someone asked for. The question as sent
	// (schema v15) follows the client end's columns.
	sent, spJoin := "NULL", ""
	if version >= 15 {
		sent, spJoin = "sp.name", " LEFT JOIN spellings sp ON sp.id = m.spelling_id"
	}
	q := `
SELECT r.data, m.id, m.session_id, m.ts_ns + coalesce(m.r_dt_ns, 0), m.obs, m.r_owner, coalesce(n.name, ''),
       ` + summary.ClientEnd("m") + `, ` + sent + `
FROM rrs r JOIN msgs m ON m.id = r.message_id LEFT JOIN names n ON n.id = m.name_id LEFT JOIN flows f ON f.id = m.flow_id` + spJoin + `
WHERE ` + typed + ` AND ` + mw + ` AND ` + ownerW + `
ORDER BY m.ts_ns, m.id, r.id`
	return q, concat(args, margs, ownerArgs), exact
}

func (fl *file) resolvedTo(ctx context.Context, prefix netip.Prefix, f *Filter) ([]ResolvedToRow, error) {
	libc, err := fl.resolvedToLibc(ctx, prefix, f)
	if err != nil {
		return nil, err
	}
	// Without filters, and without libc resolutions to merge in, a file
	// that stopped cleanly answers from its summary (summary_addr.go). The
	// summary keeps the lowercase names only: a file where some name was
	// sent in another case answers from the messages, to show it as sent.
	spelled, err := fl.anySpelling(ctx)
	if err != nil {
		return nil, err
	}
	if f.empty() && len(libc) == 0 && !spelled {
		ok, err := fl.summarized(ctx, summary.Addr)
		if err != nil {
			return nil, err
		}
		if ok {
			return fl.resolvedToSummary(ctx, prefix)
		}
	}
	q, all, exact := resolvedToSQL(fl.version, prefix, f)
	rs, err := fl.db.QueryContext(ctx, q, all...)
	if err != nil {
		return nil, fmt.Errorf("read answers: %w", err)
	}
	var hits []resolvedHit
	for rs.Next() {
		var h resolvedHit
		var data, qname, caddr string
		var cport int64
		if err := rs.Scan(&data, &h.msg, &h.key.session, &h.ts, &h.obs, &h.owner, &qname, &caddr, &cport, &h.sent); err != nil {
			rs.Close()
			return nil, fmt.Errorf("read answers: %w", err)
		}
		if !exact {
			a, err := netip.ParseAddr(data)
			if err != nil || !prefix.Contains(a) {
				continue
			}
		}
		h.key.addr, h.key.qname = data, qname
		h.client = addrPort(caddr, cport)
		hits = append(hits, h)
	}
	if err := rs.Err(); err != nil {
		rs.Close()
		return nil, fmt.Errorf("read answers: %w", err)
	}
	rs.Close()
	if len(libc) > 0 {
		hits = append(hits, libc...)
		sort.SliceStable(hits, func(i, j int) bool { return hits[i].ts < hits[j].ts })
	}

	dict := fl.dicts()
	groups := map[resolvedKey]*ResolvedToRow{}
	var order []resolvedKey
	for _, h := range hits {
		client := h.client
		local := (h.obs&2 != 0 && h.obs&8 == 0 || h.key.libc != "") && h.owner.Valid
		k := h.key
		var proc *Process
		if local {
			// One row per process, not per identity record: a process's
			// threads and uid changes have owners of their own.
			if proc, err = dict.owner(ctx, h.owner.Int64); err != nil {
				return nil, err
			}
			k.owner = -h.owner.Int64
			if proc != nil && proc.ID != 0 {
				k.owner = proc.ID
			}
		} else {
			k.client = netip.AddrPortFrom(client.Addr(), 0) // a client's ports change with every query
		}
		ts := time.Unix(0, h.ts).UTC()
		if g, ok := groups[k]; ok {
			g.Count++
			g.LastSeen = ts
			if h.sent.Valid && g.QName == k.qname {
				g.QName, g.Chain = spelledChain(g.Chain, k.qname, h.sent.String)
			}
			continue
		}
		row := &ResolvedToRow{File: fl.path, Address: k.addr, QName: k.qname, Client: client, FirstSeen: ts, LastSeen: ts, Count: 1}
		if row.Host, err = dict.host(ctx, k.session); err != nil {
			return nil, err
		}
		if local {
			row.Proc = proc
			if row.Proc != nil && row.Proc.Ancestry == nil && row.Proc.ID != 0 {
				if row.Proc.Ancestry, err = dict.ancestry(ctx, row.Proc.ParentID); err != nil {
					return nil, err
				}
			}
		}
		if k.libc != "" {
			row.Chain = k.qname + " > " + libcSource(k.libc) + " > " + dnstext.AddrAnswer(k.addr)
		} else if row.Chain, err = fl.chainOf(ctx, h.msg, k.qname, k.addr); err != nil {
			return nil, err
		}
		if h.sent.Valid {
			row.QName, row.Chain = spelledChain(row.Chain, k.qname, h.sent.String)
		}
		groups[k] = row
		order = append(order, k)
	}
	out := make([]ResolvedToRow, len(order))
	for i, k := range order {
		out[i] = *groups[k]
	}
	return out, nil
}

// resolvedHit is one answer inside the prefix: of a response (msg), or
// of a libc resolution (key.libc set).
type resolvedHit struct {
	key    resolvedKey
	msg    int64
	ts     int64
	owner  sql.NullInt64
	obs    int64
	client netip.AddrPort
	sent   sql.NullString // the question as sent, when its case differs from key.qname
}

// spelledChain shows a resolved-to row's name as sent: the rows of a name
// are one whatever its case, and show the first spelling that was not
// lowercase, as who-resolved does. The chain starts from the name.
func spelledChain(chain, qname, sent string) (string, string) {
	return sent, sent + strings.TrimPrefix(chain, qname)
}

// resolvedToLibc is the addresses inside prefix that libc resolutions
// returned (schema v5), in time order.
func (fl *file) resolvedToLibc(ctx context.Context, prefix netip.Prefix, f *Filter) ([]resolvedHit, error) {
	if fl.version < 5 {
		return nil, nil
	}
	conds, args, exact := addrRanges(prefix)
	for i := range conds {
		conds[i] = strings.ReplaceAll(conds[i], "r.data", "a.addr")
	}
	rw, rargs := f.resWhere()
	sent, spJoin := "NULL", ""
	if fl.hasSpellings() {
		sent, spJoin = "sp.name", " LEFT JOIN spellings sp ON sp.id = r.spelling_id"
	}
	rs, err := fl.db.QueryContext(ctx, `
SELECT a.addr, r.session_id, r.ts_ns, r.owner, coalesce(n.name, ''), r.func, `+sent+`
FROM resolution_addrs a JOIN resolutions r ON r.id = a.resolution_id LEFT JOIN names n ON n.id = r.name_id`+spJoin+`
WHERE (`+strings.Join(conds, " OR ")+`) AND `+rw+`
ORDER BY r.ts_ns, r.id`, concat(args, rargs)...)
	if err != nil {
		return nil, fmt.Errorf("read libc resolutions: %w", err)
	}
	defer rs.Close()
	var hits []resolvedHit
	for rs.Next() {
		var h resolvedHit
		if err := rs.Scan(&h.key.addr, &h.key.session, &h.ts, &h.owner, &h.key.qname, &h.key.libc, &h.sent); err != nil {
			return nil, fmt.Errorf("read libc resolutions: %w", err)
		}
		if a, err := netip.ParseAddr(h.key.addr); err != nil || (!exact && !prefix.Contains(a)) || a.Is4() != prefix.Addr().Is4() {
			continue
		}
		hits = append(hits, h)
	}
	return hits, rs.Err()
}

// chainOf follows the answer records of message id from qname to addr:
// "www.evil.test > CNAME cdn.evil.test > A 203.0.113.7".
func (fl *file) chainOf(ctx context.Context, id int64, qname, addr string) (string, error) {
	rs, err := fl.db.QueryContext(ctx, `SELECT coalesce(n.name, ''), r.type, r.data FROM rrs r LEFT JOIN names n ON n.id = r.name_id WHERE r.message_id = ? ORDER BY r.id`, id)
	if err != nil {
		return "", fmt.Errorf("answers of message %d: %w", id, err)
	}
	defer rs.Close()
	var rrs []RR
	for rs.Next() {
		var r RR
		if err := rs.Scan(&r.Name, &r.Type, &r.Data); err != nil {
			return "", fmt.Errorf("answers of message %d: %w", id, err)
		}
		rrs = append(rrs, r)
	}
	if err := rs.Err(); err != nil {
		return "", err
	}
	return Chain(qname, addr, rrs), nil
}

// Chain renders how qname leads to target through rrs: each CNAME (or
// DNAME) hop from the current name, then the record holding target. A hop
// that is missing or loops ends the walk, and the target is shown after
// "...".
func Chain(qname, target string, rrs []RR) string {
	parts := []string{qname}
	cur := qname
	seen := map[string]bool{}
	for hops := 0; hops < 16; hops++ {
		for _, r := range rrs {
			if r.Name == cur && (r.Type == dns.TypeA || r.Type == dns.TypeAAAA) && r.Data == target {
				return strings.Join(append(parts, dnstext.TypeName(r.Type)+" "+r.Data), " > ")
			}
		}
		next := ""
		for _, r := range rrs {
			if r.Name == cur && r.Type == dns.TypeCNAME && !seen[r.Data] {
				next = r.Data
				break
			}
		}
		if next == "" {
			break
		}
		seen[next] = true
		parts = append(parts, "CNAME "+next)
		cur = next
	}
	return strings.Join(append(parts, "... "+target), " > ")
}

// ResolvedToTable converts rows for Write.
func ResolvedToTable(rows []ResolvedToRow, withFile bool) *format.Table {
	cols := ResolvedToColumns
	if withFile {
		cols = append([]string{"file"}, cols...)
	}
	t := &format.Table{Columns: cols, Rows: make([][]any, len(rows))}
	for i, r := range rows {
		var pid, comm, exe, uid, anc any
		if p := r.Proc; p != nil {
			pid, comm, exe, uid, anc = p.PID, nullString(p.Comm), nullString(p.Exe), nullInt(p.UID), nullString(p.Ancestry.String())
		}
		var client any
		if r.Client.IsValid() {
			client = r.Client.Addr().String()
		}
		row := []any{r.Address, r.QName, r.Chain, pid, comm, exe, uid, anc, client,
			r.FirstSeen, r.LastSeen, r.Count, r.Host}
		if withFile {
			row = append([]any{r.File}, row...)
		}
		t.Rows[i] = row
	}
	return t
}
