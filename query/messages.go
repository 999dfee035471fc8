package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Message is one DNS message as the evidence holds it: its bytes' meaning,
// its transport, and the one or two local processes that sent or received
// it. It is what the timeline lists and what every export writes.
type Message struct {
	File    string // the evidence file, as given to Open
	Host    string // sessions.hostname
	Session int64
	ID      int64     // msgs.id, unique within File
	Time    time.Time // the first observation: the send, or the receive if only that was seen

	Proto    string // udp or tcp
	Src, Dst netip.AddrPort
	// Sender and Receiver are the local processes at each end, nil when
	// that end was not observed on this host (a remote server, a remote
	// client).
	Sender, Receiver *Party
	Response         bool // by the transport roles: the sender is the server end
	QRMismatch       bool // the header's QR bit says otherwise

	DNSID    uint16
	Flags    uint16        // the header's second 16-bit word
	Rcode    int           // with EDNS's extended bits; -1 when unknown (cut before the header)
	QName    string        // first question, as stored; "" when none
	QType    uint16        // 0 when no question
	QClass   uint16        // 0 when no question
	Answers  []RR          // the answer section, in order
	Raw      []byte        // the message bytes, when MessageOptions.Raw
	Size     int           // bytes on the wire
	Cut      bool          // Raw holds fewer bytes than Size (snaplen)
	ParseErr string        // why the message could not be fully decoded
	QueryID  int64         // for a response: the msgs.id of the query it answers, 0 if none
	Latency  time.Duration // for a response: the client's wait, 0 if unknown
}

// Party is one local observation of a message.
type Party struct {
	Time   time.Time
	Server bool // the server end of the exchange (its port is the DNS port)
	Socket int64
	Proc   *Process // nil when the message carried no identity
	// Iface is the network device this end sent or received it by
	// (schema v4, cgroup tier), "" when unknown.
	Iface string
}

// Process is the identity of a process as recorded.
type Process struct {
	ID       int64 // processes.id; 0 when no process row could be made
	PID      int64
	TID      int64
	NSPID    int64 // the pid inside its own pid namespace, 0 if unknown
	Comm     string
	Exe      string
	Argv     []string
	UID      sql.Null[int64]
	GID      sql.Null[int64]
	CgroupID int64
	PidNS    int64
	ParentID int64
	// Container is the container id its cgroup names (schema v4), ""
	// when none or unknown.
	Container string
	Ancestry  Ancestry // filled only when MessageOptions.Ancestry
}

// String renders a process as "comm(pid)".
func (p *Process) String() string {
	if p == nil {
		return ""
	}
	c := p.Comm
	if c == "" {
		c = "?"
	}
	return c + "(" + strconv.FormatInt(p.PID, 10) + ")"
}

// RR is one answer record.
type RR struct {
	Name string
	Type uint16
	TTL  uint32
	Data string
}

// Opcode returns the header's opcode.
func (m *Message) Opcode() int { return int(m.Flags>>11) & 15 }

// HeaderFlag reports one of the header's one-bit flags: AA, TC, RD, RA.
func (m *Message) HeaderFlag(name string) bool {
	switch name {
	case "AA":
		return m.Flags&(1<<10) != 0
	case "TC":
		return m.Flags&(1<<9) != 0
	case "RD":
		return m.Flags&(1<<8) != 0
	case "RA":
		return m.Flags&(1<<7) != 0
	}
	return false
}

// Cursor is a position in the time order of a set of files: a message's
// time, the index of its file among those opened, and its id. Listings
// resume after it.
type Cursor struct {
	TS   int64
	File int
	ID   int64
}

// String renders the cursor as the --after flag takes it.
func (c Cursor) String() string {
	return fmt.Sprintf("%d.%d.%d", c.TS, c.File, c.ID)
}

// ParseCursor parses what Cursor.String printed.
func ParseCursor(s string) (Cursor, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return Cursor{}, fmt.Errorf("bad cursor %q: want the value a previous page printed, like 1716000000000000000.0.42", s)
	}
	var c Cursor
	var err error
	if c.TS, err = strconv.ParseInt(parts[0], 10, 64); err == nil {
		if c.File, err = strconv.Atoi(parts[1]); err == nil {
			c.ID, err = strconv.ParseInt(parts[2], 10, 64)
		}
	}
	if err != nil || c.File < 0 {
		return Cursor{}, fmt.Errorf("bad cursor %q: want the value a previous page printed, like 1716000000000000000.0.42", s)
	}
	return c, nil
}

// MessageOptions selects what Messages reads.
type MessageOptions struct {
	Filter
	After    *Cursor // resume after this message
	Raw      bool    // read the message bytes
	Ancestry bool    // walk each process's parent chain
}

// ErrOldSchema means a file predates the layout a command needs.
var ErrOldSchema = errors.New("recorded by an older dnsrec (schema v1): this command needs schema v2 or later; who-resolved, info and sql read it")

// Messages calls fn for every message that passes opts.Filter, across all
// files, in time order (ties: file order, then id), at most opts.Limit.
// Rows are streamed: memory does not grow with the result. The Process
// values are shared between messages and must not be changed.
func (d *DB) Messages(ctx context.Context, opts MessageOptions, fn func(*Message) error) error {
	if err := d.checkFilter(&opts.Filter); err != nil {
		return err
	}
	srcs := make([]*msgSource, 0, len(d.files))
	defer func() {
		for _, s := range srcs {
			s.close()
		}
	}()
	for i, f := range d.files {
		if f.version < 2 {
			return fmt.Errorf("%s: %w", f.path, ErrOldSchema)
		}
		s, err := f.openMessages(ctx, i, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", f.path, err)
		}
		srcs = append(srcs, s)
	}
	// A k-way merge on (time, file, id); k is the number of files, small.
	heads := make([]*Message, len(srcs))
	for i, s := range srcs {
		m, err := s.next(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", s.f.path, err)
		}
		heads[i] = m
	}
	n := 0
	for opts.Limit == 0 || n < opts.Limit {
		best := -1
		for i, m := range heads {
			if m == nil {
				continue
			}
			if best < 0 || m.Time.Before(heads[best].Time) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		if err := fn(heads[best]); err != nil {
			return err
		}
		n++
		m, err := srcs[best].next(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", srcs[best].f.path, err)
		}
		heads[best] = m
	}
	return nil
}

// CursorOf returns the cursor that resumes after m.
func (d *DB) CursorOf(m *Message) Cursor {
	for i, f := range d.files {
		if f.path == m.File {
			return Cursor{TS: m.Time.UnixNano(), File: i, ID: m.ID}
		}
	}
	return Cursor{TS: m.Time.UnixNano(), ID: m.ID}
}

// msgSource streams one file's messages in (ts_ns, id) order.
type msgSource struct {
	f    *file
	idx  int
	opts *MessageOptions
	rows *sql.Rows
	dict *dicts
	peek *msgRow // a row read ahead: the first of the next message
	done bool
}

// msgRow is one row of the message query: a message, joined with one of
// its answer records (or none).
type msgRow struct {
	id, session, ts, obs, flow                  int64
	sOwner, sSocket, rOwner, rSocket, rDT       sql.NullInt64
	dnsID, flags, rcode, qtype, qclass, origLen sql.NullInt64
	rawLen                                      int64
	qname, parseErr                             sql.NullString
	queryID, latency                            sql.NullInt64
	raw                                         []byte
	rrName                                      sql.NullString
	rrType, rrTTL                               sql.NullInt64
	rrData                                      sql.NullString
	proto, aAddr, bAddr                         string
	aPort, bPort                                int64
	sIface, rIface                              sql.NullString
}

// messagesSQL is the statement that streams file number idx's messages
// for opts, and its arguments.
func (f *file) messagesSQL(idx int, opts *MessageOptions) (string, []any) {
	where, args := opts.Filter.msgsWhere(false)
	if c := opts.After; c != nil {
		switch {
		case idx < c.File:
			where += " AND m.ts_ns > ?"
			args = append(args, c.TS)
		case idx == c.File:
			// The range on ts_ns alone lets msgs_ts seek; the OR only
			// settles ties.
			where += " AND m.ts_ns >= ? AND (m.ts_ns > ? OR m.id > ?)"
			args = append(args, c.TS, c.TS, c.ID)
		default:
			where += " AND m.ts_ns >= ?"
			args = append(args, c.TS)
		}
	}
	linkCols := "m.query_id, m.latency_ns"
	if f.version < 3 {
		linkCols = "NULL, NULL"
	}
	ifaceCols, ifaceJoins := "NULL, NULL", ""
	if f.version >= 4 {
		ifaceCols = "si.name, ri.name"
		ifaceJoins = `
LEFT JOIN interfaces si ON si.id = m.s_iface
LEFT JOIN interfaces ri ON ri.id = m.r_iface`
	}
	raw := "NULL"
	if opts.Raw {
		raw = "m.raw"
	}
	limit := ""
	if opts.Limit > 0 {
		limit = " LIMIT " + strconv.Itoa(opts.Limit)
	}
	// The page of messages first, then their answers: LIMIT counts
	// messages, not message-answer pairs.
	q := `
SELECT m.id, m.session_id, m.ts_ns, m.obs, m.flow_id, m.s_owner, m.s_socket, m.r_owner, m.r_socket, m.r_dt_ns,
       m.dns_id, m.flags, m.rcode, m.qtype, m.qclass, m.orig_len, length(m.raw), n.name, m.parse_error,
       ` + linkCols + `, ` + raw + `, rn.name, r.type, r.ttl, r.data,
       coalesce(f.proto, ''), coalesce(f.a_addr, ''), coalesce(f.a_port, 0), coalesce(f.b_addr, ''), coalesce(f.b_port, 0), ` + ifaceCols + `
FROM (SELECT * FROM msgs m WHERE ` + where + ` ORDER BY m.ts_ns, m.id` + limit + `) m
LEFT JOIN flows f ON f.id = m.flow_id` + ifaceJoins + `
LEFT JOIN names n ON n.id = m.name_id
LEFT JOIN rrs r ON r.message_id = m.id
LEFT JOIN names rn ON rn.id = r.name_id
ORDER BY m.ts_ns, m.id, r.id`
	return q, args
}

func (f *file) openMessages(ctx context.Context, idx int, opts MessageOptions) (*msgSource, error) {
	q, args := f.messagesSQL(idx, &opts)
	rows, err := f.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	o := opts
	return &msgSource{f: f, idx: idx, opts: &o, rows: rows, dict: f.dicts()}, nil
}

func (s *msgSource) close() {
	if s.rows != nil {
		s.rows.Close()
	}
}

func (s *msgSource) scan() (*msgRow, error) {
	if s.done {
		return nil, nil
	}
	if !s.rows.Next() {
		s.done = true
		if err := s.rows.Err(); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		return nil, nil
	}
	r := &msgRow{}
	if err := s.rows.Scan(&r.id, &r.session, &r.ts, &r.obs, &r.flow, &r.sOwner, &r.sSocket, &r.rOwner, &r.rSocket, &r.rDT,
		&r.dnsID, &r.flags, &r.rcode, &r.qtype, &r.qclass, &r.origLen, &r.rawLen, &r.qname, &r.parseErr,
		&r.queryID, &r.latency, &r.raw, &r.rrName, &r.rrType, &r.rrTTL, &r.rrData,
		&r.proto, &r.aAddr, &r.aPort, &r.bAddr, &r.bPort, &r.sIface, &r.rIface); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return r, nil
}

// next returns the next message, or nil at the end.
func (s *msgSource) next(ctx context.Context) (*Message, error) {
	r := s.peek
	s.peek = nil
	if r == nil {
		var err error
		if r, err = s.scan(); err != nil || r == nil {
			return nil, err
		}
	}
	m := &Message{}
	if err := s.fill(ctx, m, r); err != nil {
		return nil, err
	}
	for {
		if r.rrType.Valid {
			m.Answers = append(m.Answers, RR{Name: r.rrName.String, Type: uint16(r.rrType.Int64), TTL: uint32(r.rrTTL.Int64), Data: r.rrData.String})
		}
		nr, err := s.scan()
		if err != nil {
			return nil, err
		}
		if nr == nil || nr.id != m.ID {
			s.peek = nr
			return m, nil
		}
		r = nr
	}
}

func (s *msgSource) fill(ctx context.Context, m *Message, r *msgRow) error {
	d := s.dict
	m.File = s.f.path
	m.ID, m.Session = r.id, r.session
	m.Time = time.Unix(0, r.ts).UTC()
	host, err := d.host(ctx, r.session)
	if err != nil {
		return err
	}
	m.Host = host
	// The flow comes with the row: there is one per query (ephemeral
	// ports), so a lookup per message would cost a statement each.
	fl := flowRow{proto: r.proto, a: addrPort(r.aAddr, r.aPort), b: addrPort(r.bAddr, r.bPort)}
	m.Proto = fl.proto
	m.Src, m.Dst = fl.a, fl.b
	if r.obs&16 != 0 {
		m.Src, m.Dst = fl.b, fl.a
	}
	if r.obs&1 != 0 {
		p := &Party{Time: m.Time, Server: r.obs&4 != 0, Socket: r.sSocket.Int64, Iface: r.sIface.String}
		if p.Proc, err = s.proc(ctx, r.sOwner); err != nil {
			return err
		}
		m.Sender = p
	}
	if r.obs&2 != 0 {
		p := &Party{Time: m.Time.Add(time.Duration(r.rDT.Int64)), Server: r.obs&8 != 0, Socket: r.rSocket.Int64, Iface: r.rIface.String}
		if p.Proc, err = s.proc(ctx, r.rOwner); err != nil {
			return err
		}
		m.Receiver = p
	}
	m.Response = r.obs&4 != 0 || r.obs&9 == 0
	m.QRMismatch = r.obs&32 != 0
	m.DNSID = uint16(r.dnsID.Int64)
	m.Flags = uint16(r.flags.Int64)
	m.Rcode = -1
	if r.rcode.Valid {
		m.Rcode = int(r.rcode.Int64)
	}
	m.QName = r.qname.String
	m.QType, m.QClass = uint16(r.qtype.Int64), uint16(r.qclass.Int64)
	m.Raw = r.raw
	m.Size = int(r.rawLen)
	if r.origLen.Valid {
		m.Size, m.Cut = int(r.origLen.Int64), true
	}
	m.ParseErr = r.parseErr.String
	m.QueryID = r.queryID.Int64
	m.Latency = time.Duration(r.latency.Int64)
	return nil
}

func (s *msgSource) proc(ctx context.Context, owner sql.NullInt64) (*Process, error) {
	if !owner.Valid {
		return nil, nil
	}
	p, err := s.dict.owner(ctx, owner.Int64)
	if err != nil || p == nil {
		return p, err
	}
	if s.opts.Ancestry && p.ID != 0 && p.Ancestry == nil {
		a, err := s.dict.ancestry(ctx, p.ParentID)
		if err != nil {
			return nil, err
		}
		p.Ancestry = a
	}
	return p, nil
}

// dicts caches a file's small tables: sessions, owners with their
// processes, and parent chains. The caches are bounded: a file of millions
// of messages can hold many owners.
type dicts struct {
	f       *file
	hosts   map[int64]string
	owners  map[int64]*Process
	walker  *ancestryWalker
	chains  map[int64]Ancestry
	ownStmt *sql.Stmt
}

const maxDictCache = 200_000

type flowRow struct {
	proto string
	a, b  netip.AddrPort
}

func (f *file) dicts() *dicts {
	if f.dict == nil {
		f.dict = &dicts{f: f, hosts: map[int64]string{}, owners: map[int64]*Process{}, chains: map[int64]Ancestry{}}
	}
	return f.dict
}

func (d *dicts) close() {
	for _, s := range []*sql.Stmt{d.ownStmt} {
		if s != nil {
			s.Close()
		}
	}
	if d.walker != nil {
		d.walker.close()
	}
}

func (d *dicts) host(ctx context.Context, session int64) (string, error) {
	if h, ok := d.hosts[session]; ok {
		return h, nil
	}
	var h string
	err := d.f.db.QueryRowContext(ctx, `SELECT hostname FROM sessions WHERE id = ?`, session).Scan(&h)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("session %d: %w", session, err)
	}
	d.hosts[session] = h
	return h, nil
}

func addrPort(addr string, port int64) netip.AddrPort {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

func (d *dicts) owner(ctx context.Context, id int64) (*Process, error) {
	if p, ok := d.owners[id]; ok {
		return p, nil
	}
	if d.ownStmt == nil {
		nspid, container := "o.nspid", "p.container"
		if d.f.version < 3 {
			nspid = "NULL"
		}
		if d.f.version < 4 {
			container = "NULL"
		}
		st, err := d.f.db.PrepareContext(ctx, `
SELECT o.process_id, o.pid, o.tid, `+nspid+`, coalesce(p.comm, o.comm), p.exe, p.argv, coalesce(p.uid, o.uid), coalesce(p.gid, o.gid),
       o.cgroup_id, o.pidns, p.parent_id, `+container+`
FROM owners o LEFT JOIN processes p ON p.id = o.process_id WHERE o.id = ?`)
		if err != nil {
			return nil, fmt.Errorf("owners: %w", err)
		}
		d.ownStmt = st
	}
	var (
		p                             Process
		procID, tid, nspid, cg, pidns sql.NullInt64
		parent                        sql.NullInt64
		comm, exe, argvJSON, ctr      sql.NullString
	)
	err := d.ownStmt.QueryRowContext(ctx, id).Scan(&procID, &p.PID, &tid, &nspid, &comm, &exe, &argvJSON, &p.UID, &p.GID, &cg, &pidns, &parent, &ctr)
	if errors.Is(err, sql.ErrNoRows) {
		d.owners[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("owner %d: %w", id, err)
	}
	p.ID, p.TID, p.NSPID, p.CgroupID, p.PidNS, p.ParentID = procID.Int64, tid.Int64, nspid.Int64, cg.Int64, pidns.Int64, parent.Int64
	p.Comm, p.Exe, p.Container = comm.String, exe.String, ctr.String
	p.Argv = parseArgv(argvJSON)
	if len(d.owners) >= maxDictCache {
		clear(d.owners)
	}
	d.owners[id] = &p
	return &p, nil
}

func (d *dicts) ancestry(ctx context.Context, parent int64) (Ancestry, error) {
	if a, ok := d.chains[parent]; ok {
		return a, nil
	}
	if d.walker == nil {
		w, err := d.f.newAncestryWalker(ctx)
		if err != nil {
			return nil, err
		}
		d.walker = w
	}
	a, err := d.walker.walk(ctx, sql.NullInt64{Int64: parent, Valid: parent != 0})
	if err != nil {
		return nil, err
	}
	if a == nil {
		a = Ancestry{}
	}
	if len(d.chains) >= maxDictCache {
		clear(d.chains)
	}
	d.chains[parent] = a
	return a, nil
}
