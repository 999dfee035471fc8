package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/internal/rawsqlite"
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

	Proto    string // udp, tcp, dot or doh (DNS over TLS or HTTPS, read in clear)
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
	// URLHost and URLPath are the URL a doh message was carried in (schema
	// v10): the host as the client named it, the path with its query.
	// FromJSON: the message was synthesised from the JSON API.
	URLHost, URLPath string
	FromJSON         bool

	alloc *msgAlloc // where the parties are kept, see newMessage
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
	// Res: ID is a libc resolution's (schema v5), printed "r" and the id.
	Res bool
	// Ev: ID is a recorder event's (schema v13), printed "e" and the id.
	Ev bool
	// Enc: ID is an encrypted-DNS connection's (schema v11), printed "c"
	// and the id. At one time in one file they come after the messages
	// and the resolutions.
	Enc bool
}

// String renders the cursor as the --after flag takes it.
func (c Cursor) String() string {
	if c.Res {
		return fmt.Sprintf("%d.%d.r%d", c.TS, c.File, c.ID)
	}
	if c.Ev {
		return fmt.Sprintf("%d.%d.e%d", c.TS, c.File, c.ID)
	}
	if c.Enc {
		return fmt.Sprintf("%d.%d.c%d", c.TS, c.File, c.ID)
	}
	return fmt.Sprintf("%d.%d.%d", c.TS, c.File, c.ID)
}

// messagesAfter is where the messages resume after c: after a libc
// resolution, after every message of its time in its file (they come
// first).
func (c *Cursor) messagesAfter() *Cursor {
	if c == nil || !c.Res && !c.Ev && !c.Enc {
		return c
	}
	return &Cursor{TS: c.TS, File: c.File, ID: math.MaxInt64}
}

// where is the condition, to append to a WHERE, on the ts_ns and id of
// alias that resumes the rows of file number idx after c, in timeline
// order (time, file, id). tied: the rows of c's own file and time are
// ordered against c by id (rows of c's kind); else they all come after it.
func (c *Cursor) where(idx int, alias string, tied bool) (string, []any) {
	switch {
	case idx < c.File:
		return " AND " + alias + ".ts_ns > ?", []any{c.TS}
	case idx == c.File && tied:
		// The range on ts_ns alone lets the time index seek; the OR only
		// settles ties.
		return " AND " + alias + ".ts_ns >= ? AND (" + alias + ".ts_ns > ? OR " + alias + ".id > ?)", []any{c.TS, c.TS, c.ID}
	default:
		return " AND " + alias + ".ts_ns >= ?", []any{c.TS}
	}
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
			id, res := strings.CutPrefix(parts[2], "r")
			id, ev := strings.CutPrefix(id, "e")
			id, enc := strings.CutPrefix(id, "c")
			c.ID, err = strconv.ParseInt(id, 10, 64)
			c.Res, c.Ev, c.Enc = res, ev && !res, enc && !res && !ev
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
	if err := d.CheckFilter(&opts.Filter); err != nil {
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
	vals []any // the current row's columns
	dest []any // pointers to vals, for Scan

	// A stream (see stream) is read by produce, which hands batches of
	// rows to next, which makes them messages and joins them with their
	// answers, read by answers: the statements' goroutines only step and
	// copy out the columns, the slowest work, while the caller's does
	// the rest.
	answers *answerStream
	batches chan []msgRow
	free    chan []msgRow // batches next is done with, for produce to reuse
	cur     []msgRow      // the batch next takes rows from, at pos
	pos     int
	err     error // set by produce before it closes batches
	cancel  context.CancelFunc
	ready   chan struct{} // closed once the answers' statement started, or failed to
	in      interner      // the texts produce reads (its goroutine's alone)
}

// msgRow is one row of the message query: a message, joined with one of
// its answer records (or none).
type msgRow struct {
	id, session, ts, obs                        int64
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
	sIface, rIface                              int64 // interfaces.id, 0 when none
}

// msgCols is the number of columns messagesSQL selects.
const msgCols = 31

// pageMessages is the largest Limit read as a page: up to it, the
// messages are chosen first and their answers joined after, so that
// SQLite stops (or, without msgs_ts, keeps a top-N sort) at the limit.
// A longer stream is one flat join walked in msgs_ts and rrs_message
// order: no sort at all, where the page's form sorts each message's
// answers again, a third of the cost of a row. The merge in Messages
// stops it at the limit.
const pageMessages = 10_000

// messagesWhere is the condition on msgs m that selects file number idx's
// messages for opts, and its arguments.
func messagesWhere(idx int, opts *MessageOptions) (string, []any) {
	where, args := opts.Filter.msgsWhere(false)
	if c := opts.After; c != nil {
		w, a := c.where(idx, "m", true)
		where, args = where+w, append(args, a...)
	}
	return where, args
}

// versionCols are the message columns that depend on the file's schema
// version: the query link and latency (v3) and the two interfaces (v4),
// NULL in a file from before them.
func (f *file) versionCols() (queryID, latency, sIface, rIface string) {
	queryID, latency, sIface, rIface = "m.query_id", "m.latency_ns", "NULL", "NULL"
	if f.version < 3 {
		queryID, latency = "NULL", "NULL"
	}
	if f.version >= 4 {
		sIface, rIface = "m.s_iface", "m.r_iface"
	}
	return queryID, latency, sIface, rIface
}

// messagesSQL is the statement that streams file number idx's messages
// for opts, and its arguments.
func (f *file) messagesSQL(idx int, opts *MessageOptions) (string, []any) {
	where, args := messagesWhere(idx, opts)
	qid, lat, sif, rif := f.versionCols()
	qname, spJoin := f.qnameCol()
	raw := "NULL"
	if opts.Raw {
		raw = "m.raw"
	}
	from := "msgs m"
	if opts.Limit > 0 && opts.Limit <= pageMessages {
		// The page of messages first, then their answers: LIMIT counts
		// messages, not message-answer pairs.
		from = `(SELECT * FROM msgs m WHERE ` + where + ` ORDER BY m.ts_ns, m.id LIMIT ` + strconv.Itoa(opts.Limit) + `) m`
		where = "1"
	}
	if stream(opts) {
		// The answers come from answersSQL, on a connection of their own.
		// Read through rawsqlite, a column costs a few nanoseconds, and
		// plain columns are cheaper than expressions packing several
		// fields into one (which paid for themselves through the
		// database/sql driver, at several times that per column).
		if opts.Raw {
			raw = ", m.raw"
		} else {
			raw = ""
		}
		return `
SELECT m.id, m.session_id, m.ts_ns, m.obs, m.s_owner, m.s_socket, m.r_owner, m.r_socket, m.r_dt_ns,
       m.dns_id, m.flags, m.qtype, m.qclass, m.rcode, m.orig_len, length(m.raw), ` + qname + `, m.parse_error,
       ` + qid + `, ` + lat + `, f.proto, f.a_addr, f.a_port, f.b_addr, f.b_port, ` + sif + `, ` + rif + raw + `
FROM msgs m
LEFT JOIN flows f ON f.id = m.flow_id
LEFT JOIN names n ON n.id = m.name_id` + spJoin + `
WHERE ` + where + `
ORDER BY m.ts_ns, m.id`, args
	}
	// A page goes through database/sql, where each column costs more: the
	// two interfaces come packed into one, as ids (see dicts.iface).
	q := `
SELECT m.id, m.session_id, m.ts_ns, m.obs, m.s_owner, m.s_socket, m.r_owner, m.r_socket, m.r_dt_ns,
       m.dns_id, m.flags, m.rcode, m.qtype, m.qclass, m.orig_len, length(m.raw), ` + qname + `, m.parse_error,
       ` + qid + `, ` + lat + `, ` + raw + `, rn.name, r.type, r.ttl, r.data,
       coalesce(f.proto, ''), coalesce(f.a_addr, ''), coalesce(f.a_port, 0), coalesce(f.b_addr, ''), coalesce(f.b_port, 0),
       (coalesce(` + sif + `, 0) & 4294967295) | ((coalesce(` + rif + `, 0) & 4294967295) << 32)
FROM ` + from + `
LEFT JOIN flows f ON f.id = m.flow_id
LEFT JOIN names n ON n.id = m.name_id` + spJoin + `
LEFT JOIN rrs r ON r.message_id = m.id
LEFT JOIN names rn ON rn.id = r.name_id
WHERE ` + where + `
ORDER BY m.ts_ns, m.id, r.id`
	return q, args
}

// stream tells whether opts ask for a stream rather than a page: see
// pageMessages.
func stream(opts *MessageOptions) bool {
	return opts.Limit == 0 || opts.Limit > pageMessages
}

// answersSQL is the statement that streams the answers of the messages
// messagesSQL streams, in the same order, for a stream (see stream).
// Joined into the messages' statement, every answer would read its
// message's thirty columns again; apart, on a second connection, they are
// read once and on the other core.
func answersSQL(idx int, opts *MessageOptions) (string, []any) {
	where, args := messagesWhere(idx, opts)
	return `
SELECT m.ts_ns, m.id, rn.name, r.type, r.ttl, r.data
FROM msgs m
JOIN rrs r ON r.message_id = m.id
LEFT JOIN names rn ON rn.id = r.name_id
WHERE ` + where + `
ORDER BY m.ts_ns, m.id, r.id`, args
}

func (f *file) openMessages(ctx context.Context, idx int, opts MessageOptions) (*msgSource, error) {
	o := opts
	s := &msgSource{f: f, idx: idx, opts: &o, dict: f.dicts(), vals: make([]any, msgCols), dest: make([]any, msgCols)}
	for i := range s.dest {
		s.dest[i] = &s.vals[i]
	}
	if !stream(&o) {
		q, args := f.messagesSQL(idx, &o)
		rows, err := f.db.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		s.rows = rows
		return s, nil
	}
	// A stream: the messages and their answers are read by two
	// goroutines, each on its own connection, while the caller writes
	// what they read. The messages' statement starts first: a statement's
	// snapshot of the file is taken when it starts, so the answers' is
	// the same or later and holds every answer of every message read
	// (on a file still being recorded), and the merge skips the others.
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.answers = &answerStream{batches: make(chan []answerRow, 4)}
	s.batches = make(chan []msgRow, 4)
	s.free = make(chan []msgRow, 4)
	started := make(chan error, 1)
	s.ready = make(chan struct{})
	go s.produce(rctx, started)
	if err := <-started; err != nil {
		close(s.answers.batches) // never started
		close(s.ready)
		s.close()
		return nil, fmt.Errorf("read messages: %w", err)
	}
	q, args := answersSQL(idx, &o)
	go s.answers.read(rctx, f, q, args, started)
	err := <-started
	close(s.ready)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("read answers: %w", err)
	}
	return s, nil
}

func (s *msgSource) close() {
	if s.batches != nil {
		s.cancel()
		for range s.batches { // produce ends, and with it the statements
		}
		<-s.ready
		s.answers.stop()
		s.batches = nil
		return
	}
	if s.rows != nil {
		s.rows.Close()
	}
}

// streamBatch is how many messages a stream's reader hands over at once.
const streamBatch = 256

// errEnough ends a statement's rows early.
var errEnough = errors.New("enough rows")

// rawRows runs q on a connection of its own, opened read-only through
// the C API (rawsqlite), and calls each with every row, reporting on
// started whether the statement started. A stream's rows read this way
// skip the database/sql driver's serialized-mode locks, taken for every
// column of every row, and its boxing of every value: a large part of
// a stream's reading. With mapped, the file is read through a
// memory map (see rawsqlite.Each): a stream's messages' statement is, so
// that SQLite's page cache and its process-wide lock are its answers'
// alone; so is info's pass over every message.
func (f *file) rawRows(ctx context.Context, q string, args []any, mapped bool, started chan<- error, each func(*rawsqlite.Stmt) error) error {
	name, err := rawsqlite.URI(f.path, f.immutable)
	if err != nil {
		started <- err
		return err
	}
	return rawsqlite.Each(ctx, name, q, args, mapped, started, each)
}

// interner keeps one copy of the texts a stream reads again and again (a
// query's name is its response's; a flow is both's; answers repeat), so a
// repeated text costs a map lookup and no allocation. It is bounded: past
// internMax texts it starts over.
type interner map[string]string

const internMax = 1 << 14

func (in *interner) text(b []byte) string {
	if v, ok := (*in)[string(b)]; ok {
		return v
	}
	if *in == nil || len(*in) >= internMax {
		*in = make(interner, 1024)
	}
	v := string(b)
	(*in)[v] = v
	return v
}

// nullText is column i as text, through in, Valid false for NULL.
func (in *interner) nullText(r *rawsqlite.Stmt, i int) sql.NullString {
	b := r.View(i)
	if b == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: in.text(b), Valid: true}
}

// produce reads a stream's messages in batches of rows until the end, an
// error (kept in s.err) or the limit.
func (s *msgSource) produce(ctx context.Context, started chan<- error) {
	defer close(s.batches)
	n := 0
	newBatch := func() []msgRow {
		select {
		case b := <-s.free:
			return b
		default:
			return make([]msgRow, 0, streamBatch)
		}
	}
	batch := newBatch()
	send := func() bool {
		select {
		case s.batches <- batch:
			batch = newBatch()
			return true
		case <-ctx.Done():
			return false
		}
	}
	q, args := s.f.messagesSQL(s.idx, s.opts)
	err := s.f.rawRows(ctx, q, args, true, started, func(row *rawsqlite.Stmt) error {
		batch = append(batch, s.scanStream(row))
		n++
		if len(batch) == cap(batch) && !send() {
			return ctx.Err()
		}
		if s.opts.Limit > 0 && n >= s.opts.Limit {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		s.err = fmt.Errorf("read messages: %w", err)
		return
	}
	if len(batch) > 0 {
		send()
	}
}

// answerRow is one answer of answersSQL, with its message's position.
type answerRow struct {
	ts, msg int64
	rr      RR
}

// answerStream reads answersSQL ahead of the messages that need it.
type answerStream struct {
	batches chan []answerRow
	cur     []answerRow
	err     error // set before batches is closed
}

func (a *answerStream) read(ctx context.Context, f *file, q string, args []any, started chan<- error) {
	defer close(a.batches)
	batch := make([]answerRow, 0, 4*streamBatch)
	var in interner
	err := f.rawRows(ctx, q, args, false, started, func(r *rawsqlite.Stmt) error {
		batch = append(batch, answerRow{ts: r.Int64(0), msg: r.Int64(1),
			rr: RR{Name: in.nullText(r, 2).String, Type: uint16(r.Int64(3)), TTL: uint32(r.Int64(4)), Data: in.nullText(r, 5).String}})
		if len(batch) == cap(batch) {
			select {
			case a.batches <- batch:
			case <-ctx.Done():
				return ctx.Err()
			}
			batch = make([]answerRow, 0, 4*streamBatch)
		}
		return nil
	})
	if err != nil {
		a.err = fmt.Errorf("read answers: %w", err)
		return
	}
	if len(batch) > 0 {
		select {
		case a.batches <- batch:
		case <-ctx.Done():
		}
	}
}

// attach appends to m the answers of the message at (ts, m.ID), skipping
// those of messages before it that the messages' statement did not see.
func (a *answerStream) attach(m *Message, ts int64) error {
	for {
		if len(a.cur) == 0 {
			b, ok := <-a.batches
			if !ok {
				return a.err
			}
			a.cur = b
		}
		r := &a.cur[0]
		if r.ts > ts || (r.ts == ts && r.msg > m.ID) {
			return nil
		}
		if r.msg == m.ID {
			if m.Answers == nil {
				n := 1 // the answers of one message are adjacent: one allocation
				for n < len(a.cur) && a.cur[n].msg == m.ID && a.cur[n].ts == ts {
					n++
				}
				m.Answers = make([]RR, 0, n)
			}
			m.Answers = append(m.Answers, r.rr)
		}
		a.cur = a.cur[1:]
	}
}

// stop waits for read to end, once its context is cancelled.
func (a *answerStream) stop() {
	for range a.batches {
	}
}

// scan reads the next row. The columns are scanned into interface values
// and converted here: database/sql's conversions to typed destinations
// go through reflection, a tenth of the cost of a row.
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
	if err := s.rows.Scan(s.dest...); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	v := s.vals
	r := &msgRow{
		id: anyInt(v[0]), session: anyInt(v[1]), ts: anyInt(v[2]), obs: anyInt(v[3]),
		sOwner: anyNullInt(v[4]), sSocket: anyNullInt(v[5]), rOwner: anyNullInt(v[6]), rSocket: anyNullInt(v[7]), rDT: anyNullInt(v[8]),
		dnsID: anyNullInt(v[9]), flags: anyNullInt(v[10]), rcode: anyNullInt(v[11]), qtype: anyNullInt(v[12]), qclass: anyNullInt(v[13]),
		origLen: anyNullInt(v[14]), rawLen: anyInt(v[15]), qname: anyNullString(v[16]), parseErr: anyNullString(v[17]),
		queryID: anyNullInt(v[18]), latency: anyNullInt(v[19]),
		rrName: anyNullString(v[21]), rrType: anyNullInt(v[22]), rrTTL: anyNullInt(v[23]), rrData: anyNullString(v[24]),
		proto: anyNullString(v[25]).String, aAddr: anyNullString(v[26]).String, aPort: anyInt(v[27]),
		bAddr: anyNullString(v[28]).String, bPort: anyInt(v[29]),
		sIface: anyInt(v[30]) & 0xffffffff, rIface: int64(uint64(anyInt(v[30])) >> 32),
	}
	if b, ok := v[20].([]byte); ok {
		r.raw = b // a copy: database/sql's or the driver's
	}
	clear(v)
	return r, nil
}

// scanStream converts the columns of a stream's messages' statement
// (messagesSQL).
func (s *msgSource) scanStream(v *rawsqlite.Stmt) msgRow {
	null := func(i int) sql.NullInt64 {
		if v.Null(i) {
			return sql.NullInt64{}
		}
		return sql.NullInt64{Int64: v.Int64(i), Valid: true}
	}
	valid := func(i int) sql.NullInt64 { return sql.NullInt64{Int64: v.Int64(i), Valid: true} }
	r := msgRow{
		id: v.Int64(0), session: v.Int64(1), ts: v.Int64(2), obs: v.Int64(3),
		sOwner: null(4), sSocket: null(5), rOwner: null(6), rSocket: null(7), rDT: null(8),
		dnsID: valid(9), flags: valid(10), qtype: valid(11), qclass: valid(12), rcode: null(13), origLen: null(14),
		rawLen: v.Int64(15), qname: s.in.nullText(v, 16), parseErr: s.in.nullText(v, 17),
		queryID: null(18), latency: null(19),
		proto: s.in.nullText(v, 20).String, aAddr: s.in.nullText(v, 21).String, aPort: v.Int64(22),
		bAddr: s.in.nullText(v, 23).String, bPort: v.Int64(24), sIface: v.Int64(25), rIface: v.Int64(26),
	}
	if v.Columns() > 27 {
		r.raw = v.Blob(27)
	}
	return r
}

// anyInt, anyNullInt and anyNullString convert what SQLite returned for an
// integer or text column (int64, string or []byte, or nil for NULL).
func anyInt(v any) int64 {
	return anyNullInt(v).Int64
}

func anyNullInt(v any) sql.NullInt64 {
	switch x := v.(type) {
	case int64:
		return sql.NullInt64{Int64: x, Valid: true}
	case float64:
		return sql.NullInt64{Int64: int64(x), Valid: true}
	case nil:
		return sql.NullInt64{}
	}
	var n sql.NullInt64
	n.Scan(v) // text holding a number: as database/sql would convert it
	return n
}

func anyNullString(v any) sql.NullString {
	switch x := v.(type) {
	case string:
		return sql.NullString{String: x, Valid: true}
	case []byte:
		return sql.NullString{String: string(x), Valid: true}
	case nil:
		return sql.NullString{}
	}
	var n sql.NullString
	n.Scan(v)
	return n
}

// next returns the next message, or nil at the end.
func (s *msgSource) next(ctx context.Context) (*Message, error) {
	if s.batches == nil {
		return s.read(ctx)
	}
	if s.pos == len(s.cur) {
		if s.cur != nil {
			clear(s.cur)
			select {
			case s.free <- s.cur[:0]:
			default:
			}
			s.cur = nil
		}
		b, ok := <-s.batches
		if !ok {
			if s.err != nil {
				return nil, s.err
			}
			return nil, ctx.Err()
		}
		s.cur, s.pos = b, 0
	}
	r := &s.cur[s.pos]
	s.pos++
	m := newMessage()
	if err := s.fill(ctx, m, r); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	if err := s.answers.attach(m, r.ts); err != nil {
		return nil, err
	}
	return m, nil
}

// read reads the next message of a page from its statement.
func (s *msgSource) read(ctx context.Context) (*Message, error) {
	r := s.peek
	s.peek = nil
	if r == nil {
		var err error
		if r, err = s.scan(); err != nil || r == nil {
			return nil, err
		}
	}
	m := newMessage()
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

// msgAlloc is a message read from a file with room for its two parties:
// one allocation instead of three for each message of a stream.
type msgAlloc struct {
	m       Message
	parties [2]Party
}

// newMessage returns a message whose party(i) needs no allocation.
func newMessage() *Message {
	a := &msgAlloc{}
	a.m.alloc = a
	return &a.m
}

// party returns room for the sender (0) or the receiver (1) of a message
// from newMessage, a new Party for another.
func (m *Message) party(i int) *Party {
	if m.alloc != nil {
		return &m.alloc.parties[i]
	}
	return &Party{}
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
	if m.Proto == "doh" {
		u, err := d.doh(ctx, r.id)
		if err != nil {
			return err
		}
		m.URLHost, m.URLPath, m.FromJSON = u.host, u.path, u.json
	}
	m.Src, m.Dst = fl.a, fl.b
	if r.obs&16 != 0 {
		m.Src, m.Dst = fl.b, fl.a
	}
	if r.obs&1 != 0 {
		p := m.party(0)
		*p = Party{Time: m.Time, Server: r.obs&4 != 0, Socket: r.sSocket.Int64}
		if p.Iface, err = d.iface(ctx, r.sIface); err != nil {
			return err
		}
		if p.Proc, err = s.proc(ctx, r.sOwner); err != nil {
			return err
		}
		m.Sender = p
	}
	if r.obs&2 != 0 {
		p := m.party(1)
		*p = Party{Time: m.Time.Add(time.Duration(r.rDT.Int64)), Server: r.obs&8 != 0, Socket: r.rSocket.Int64}
		if p.Iface, err = d.iface(ctx, r.rIface); err != nil {
			return err
		}
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
	ifaces  map[int64]string // interfaces.id to name, read whole once
	dohURLs map[int64]dohURL // msgs.id to its DoH URL, read whole once
	owners  map[int64]*Process
	walker  *ancestryWalker
	chains  map[int64]Ancestry
	ownStmt *sql.Stmt
	// allOwners: owners holds every owner of the file (loadOwners), and
	// one missing does not exist.
	allOwners bool
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

// iface names interface id, "" for 0 or an id the file lacks.
func (d *dicts) iface(ctx context.Context, id int64) (string, error) {
	if id == 0 {
		return "", nil
	}
	if d.ifaces == nil {
		d.ifaces = map[int64]string{}
		rs, err := d.f.db.QueryContext(ctx, `SELECT id, name FROM interfaces`)
		if err != nil {
			return "", fmt.Errorf("interfaces: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			var i int64
			var n string
			if err := rs.Scan(&i, &n); err != nil {
				return "", fmt.Errorf("interfaces: %w", err)
			}
			d.ifaces[i] = n
		}
		if err := rs.Err(); err != nil {
			return "", fmt.Errorf("interfaces: %w", err)
		}
	}
	return d.ifaces[id], nil
}

type dohURL struct {
	host, path string
	json       bool
}

// doh is the URL of DoH message id: the doh table is small (DoH messages
// only) and read whole at the first.
func (d *dicts) doh(ctx context.Context, id int64) (dohURL, error) {
	if d.f.version < 10 {
		return dohURL{}, nil
	}
	if d.dohURLs == nil {
		d.dohURLs = map[int64]dohURL{}
		rs, err := d.f.db.QueryContext(ctx, `SELECT message_id, host, path, json FROM doh`)
		if err != nil {
			return dohURL{}, fmt.Errorf("doh: %w", err)
		}
		defer rs.Close()
		for rs.Next() {
			var i int64
			var u dohURL
			if err := rs.Scan(&i, &u.host, &u.path, &u.json); err != nil {
				return dohURL{}, fmt.Errorf("doh: %w", err)
			}
			d.dohURLs[i] = u
		}
		if err := rs.Err(); err != nil {
			return dohURL{}, fmt.Errorf("doh: %w", err)
		}
	}
	return d.dohURLs[id], nil
}

func addrPort(addr string, port int64) netip.AddrPort {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a, uint16(port))
}

// ownersSQL reads owners with their processes; ownerRow scans its rows.
func (d *dicts) ownersSQL() string {
	nspid, container := "o.nspid", "p.container"
	if d.f.version < 3 {
		nspid = "NULL"
	}
	if d.f.version < 4 {
		container = "NULL"
	}
	return `
SELECT o.process_id, o.pid, o.tid, ` + nspid + `, coalesce(p.comm, o.comm), p.exe, p.argv, coalesce(p.uid, o.uid), coalesce(p.gid, o.gid),
       o.cgroup_id, o.pidns, p.parent_id, ` + container + `, o.id
FROM owners o LEFT JOIN processes p ON p.id = o.process_id`
}

func ownerRow(scan func(...any) error) (*Process, int64, error) {
	var (
		p                             Process
		procID, tid, nspid, cg, pidns sql.NullInt64
		parent                        sql.NullInt64
		comm, exe, argvJSON, ctr      sql.NullString
		id                            int64
	)
	if err := scan(&procID, &p.PID, &tid, &nspid, &comm, &exe, &argvJSON, &p.UID, &p.GID, &cg, &pidns, &parent, &ctr, &id); err != nil {
		return nil, 0, err
	}
	p.ID, p.TID, p.NSPID, p.CgroupID, p.PidNS, p.ParentID = procID.Int64, tid.Int64, nspid.Int64, cg.Int64, pidns.Int64, parent.Int64
	p.Comm, p.Exe, p.Container = comm.String, exe.String, ctr.String
	p.Argv = parseArgv(argvJSON)
	return &p, id, nil
}

func (d *dicts) owner(ctx context.Context, id int64) (*Process, error) {
	if p, ok := d.owners[id]; ok {
		return p, nil
	}
	if d.allOwners {
		return nil, nil
	}
	if d.ownStmt == nil {
		st, err := d.f.db.PrepareContext(ctx, d.ownersSQL()+` WHERE o.id = ?`)
		if err != nil {
			return nil, fmt.Errorf("owners: %w", err)
		}
		d.ownStmt = st
	}
	p, _, err := ownerRow(d.ownStmt.QueryRowContext(ctx, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		d.owners[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("owner %d: %w", id, err)
	}
	if len(d.owners) >= maxDictCache {
		clear(d.owners)
	}
	d.owners[id] = p
	return p, nil
}

// loadOwners reads every owner at once, for a question that meets most of
// them (stats): one statement instead of one per owner, when they are not
// too many to keep.
func (d *dicts) loadOwners(ctx context.Context) error {
	if d.allOwners {
		return nil
	}
	var n int64
	if err := d.f.db.QueryRowContext(ctx, `SELECT count(*) FROM owners`).Scan(&n); err != nil {
		return fmt.Errorf("owners: %w", err)
	}
	if n > maxDictCache {
		return nil
	}
	rs, err := d.f.db.QueryContext(ctx, d.ownersSQL())
	if err != nil {
		return fmt.Errorf("owners: %w", err)
	}
	defer rs.Close()
	all := make(map[int64]*Process, n)
	for rs.Next() {
		p, id, err := ownerRow(rs.Scan)
		if err != nil {
			return fmt.Errorf("owners: %w", err)
		}
		if old, ok := d.owners[id]; ok && old != nil {
			p = old // already handed out: keep one value per owner
		}
		all[id] = p
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("owners: %w", err)
	}
	d.owners, d.allOwners = all, true
	return nil
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
