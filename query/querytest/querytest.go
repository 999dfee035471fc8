package querytest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/schema"
	_ "modernc.org/sqlite" // the "sqlite" driver
)

// Builder writes one evidence file.
type Builder struct {
	tb   testing.TB
	DB   *sql.DB // the single writer connection, for statements the helpers lack
	Path string  // the file as given to New

	version   int
	lastQuery map[string]int64 // a client's last query, by process and name: what its response answers

	// RealRaw makes Message store, for a message without Raw, a real DNS
	// message packed from its fields (see Pack) instead of a one-byte
	// placeholder: for tests of what reads the bytes (pcapng exports).
	RealRaw bool

	// Spellings makes Message and Resolution keep a name given in another
	// case than its lowercase names row as the recorder does (schema v15):
	// a spellings row the message or call points at. Off, the name is
	// stored lowercased only.
	Spellings bool
	spellings map[string]int64
}

// NewAtVersion creates an evidence file of an older schema version, for
// tests that old files are still read.
func NewAtVersion(tb testing.TB, path string, version int) *Builder {
	tb.Helper()
	b := open(tb, path)
	ms, err := schema.Migrations()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range ms[:version] {
		b.Exec(m.SQL)
	}
	b.Exec(fmt.Sprintf("PRAGMA application_id = %d", schema.ApplicationID))
	b.Exec(fmt.Sprintf("PRAGMA user_version = %d", version))
	b.version = version
	return b
}

// New creates a migrated evidence file at path, in WAL mode like a recording.
// The file is closed at the end of the test if the test has not closed it.
func New(tb testing.TB, path string) *Builder {
	tb.Helper()
	b := open(tb, path)
	if err := schema.Migrate(context.Background(), b.DB); err != nil {
		tb.Fatalf("migrate %s: %v", path, err)
	}
	b.version = schema.Version()
	return b
}

func open(tb testing.TB, path string) *Builder {
	tb.Helper()
	abs, err := filepath.Abs(path)
	if err != nil {
		tb.Fatal(err)
	}
	// A file: URI, so that test paths with '?' or '#' are taken literally.
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: abs}).String())
	if err != nil {
		tb.Fatal(err)
	}
	db.SetMaxOpenConns(1) // one writer, as in the recorder
	b := &Builder{tb: tb, DB: db, Path: path}
	tb.Cleanup(func() { db.Close() })
	b.Exec("PRAGMA journal_mode = WAL")
	return b
}

// Close builds the indexes a clean stop builds and closes the file. With a
// single connection, SQLite checkpoints and removes the -wal, leaving one
// self-contained file as `dnsrec record` does.
func (b *Builder) Close() {
	b.tb.Helper()
	if b.version >= 2 {
		// An older file lacks the later tables: their indexes are left out.
		for _, stmt := range strings.Split(schema.StopIndexes, ";") {
			if strings.TrimSpace(stmt) == "" {
				continue
			}
			if _, err := b.DB.Exec(stmt); err != nil && !(b.version < schema.Version() && strings.Contains(err.Error(), "no such table")) {
				b.tb.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	b.CloseAsCrashed()
}

// CloseAsCrashed closes the file without the indexes a clean stop builds, as
// a recorder that was killed leaves it.
func (b *Builder) CloseAsCrashed() {
	b.tb.Helper()
	if err := b.DB.Close(); err != nil {
		b.tb.Fatalf("close %s: %v", b.Path, err)
	}
}

// Exec runs one statement and returns the last insert id.
func (b *Builder) Exec(query string, args ...any) int64 {
	b.tb.Helper()
	res, err := b.DB.Exec(query, args...)
	if err != nil {
		b.tb.Fatalf("%s: %v", query, err)
	}
	id, _ := res.LastInsertId()
	return id
}

// Session adds a recording session on host, started at start and stopped
// cleanly an hour later.
func (b *Builder) Session(host string, start time.Time) int64 {
	b.tb.Helper()
	return b.Exec(`INSERT INTO sessions (hostname, machine_id, boot_id, kernel, version, cmdline,
		hook, ports, snaplen, started_ns, stopped_ns, anchor_wall_ns, anchor_boot_ns)
		VALUES (?, 'machine-'||?, 'boot-'||?, '6.1.0', 'test', 'dnsrec record -o case.db',
		'cgroup', '53', 1500, ?, ?, ?, 0)`,
		host, host, host, start.UnixNano(), start.Add(time.Hour).UnixNano(), start.UnixNano())
}

// Process is a row of the processes table. Zero Parent, Exe, Comm and UID
// are stored as NULL.
type Process struct {
	Session int64
	PID     int64
	Parent  int64 // processes.id of the parent
	Comm    string
	Exe     string
	UID     *int64
}

// UID returns a pointer for Process.UID and Message.UID.
func UID(u int64) *int64 { return &u }

// Process adds a process and returns its id.
func (b *Builder) Process(p Process) int64 {
	b.tb.Helper()
	return b.Exec(`INSERT INTO processes (session_id, boot_id, pid, start_ticks, parent_id, comm, exe, uid, source)
		VALUES (?, 'boot', ?, (SELECT count(*) FROM processes), ?, ?, ?, ?, 'exec')`,
		p.Session, p.PID, null(p.Parent), null(p.Comm), null(p.Exe), p.UID)
}

// SetParent changes a process's parent, for chains that a single pass of
// Process cannot build (cycles).
func (b *Builder) SetParent(id, parent int64) {
	b.tb.Helper()
	b.Exec(`UPDATE processes SET parent_id = ? WHERE id = ?`, parent, id)
}

// Answer is a resource record of a response.
type Answer struct {
	Section string // "" is "answer"
	Name    string
	Type    int
	Data    string
}

// Message is a row of the messages table with the columns queries read.
type Message struct {
	Session   int64
	Process   int64 // processes.id; 0 stores NULL (owner not identified)
	PID       int64
	Comm      string
	UID       *int64
	TS        time.Time
	Direction string // send or recv
	Role      string // client or server; "" is client
	Response  bool   // qr=1
	QName     string // presentation form; normalized and reversed here
	QType     int    // 0 is A
	Rcode     int    // of a response: 0 NOERROR, 3 NXDOMAIN
	Answers   []Answer
	// Raw is the message's bytes. Nil stores a one-byte placeholder, or
	// Pack's bytes when the Builder's RealRaw is set.
	Raw []byte
}

// Pack returns m as real DNS bytes, as Message stores them with RealRaw:
// id 4242, the QR bit and rcode of m (no other flag), its question, and its
// answers in their sections with TTL 300.
func Pack(tb testing.TB, m Message) []byte {
	tb.Helper()
	if m.QType == 0 {
		m.QType = 1
	}
	msg := dns.Msg{MsgHdr: dns.MsgHdr{Id: 4242, Response: m.Response, Rcode: m.Rcode}}
	if m.QName != "" {
		msg.Question = []dns.Question{{Name: dns.Fqdn(m.QName), Qtype: uint16(m.QType), Qclass: dns.ClassINET}}
	}
	for _, a := range m.Answers {
		if a.Name == "" {
			a.Name = m.QName
		}
		if a.Type == 0 {
			a.Type = 1
		}
		rr, err := dns.NewRR(fmt.Sprintf("%s 300 IN %s %s", dns.Fqdn(a.Name), dns.TypeToString[uint16(a.Type)], a.Data))
		if err != nil {
			tb.Fatalf("pack %+v: %v", a, err)
		}
		switch a.Section {
		case "", "answer":
			msg.Answer = append(msg.Answer, rr)
		case "authority":
			msg.Ns = append(msg.Ns, rr)
		default:
			msg.Extra = append(msg.Extra, rr)
		}
	}
	b, err := msg.Pack()
	if err != nil {
		tb.Fatalf("pack %s: %v", m.QName, err)
	}
	return b
}

// Message adds a message and its answers and returns its id.
func (b *Builder) Message(m Message) int64 {
	b.tb.Helper()
	if m.Role == "" {
		m.Role = "client"
	}
	if m.QType == 0 {
		m.QType = 1
	}
	qr := 0
	if m.Response {
		qr = 1
	}
	saddr, sport, daddr, dport := "10.0.0.5", 40000, "10.0.0.1", 53
	if m.Direction == "recv" {
		saddr, sport, daddr, dport = daddr, dport, saddr, sport
	}
	qname := schema.NormalizeName(m.QName)
	flow := b.Exec(`INSERT INTO flows (proto, a_addr, a_port, b_addr, b_port) VALUES ('udp', ?, ?, ?, ?)`, saddr, sport, daddr, dport)
	var owner any
	if m.Process != 0 || m.PID != 0 || m.Comm != "" {
		owner = b.Exec(`INSERT INTO owners (process_id, pid, tid, uid, comm) VALUES (?, ?, ?, ?, ?)`,
			null(m.Process), m.PID, m.PID, m.UID, null(m.Comm))
	}
	// One observation: the send side or the receive side of a msgs row.
	obs, server := 1, 4
	if m.Direction == "recv" {
		obs, server = 2, 8
	}
	if m.Role == "server" {
		obs |= server
	}
	raw := m.Raw
	if raw == nil {
		raw = []byte{0}
		if b.RealRaw {
			raw = Pack(b.tb, m)
		}
	}
	var sOwner, rOwner any = owner, nil
	if m.Direction == "recv" {
		sOwner, rOwner = nil, owner
	}
	id := b.Exec(`INSERT INTO msgs (session_id, ts_ns, flow_id, obs, s_owner, r_owner, r_dt_ns, dns_id, flags, rcode,
		name_id, qtype, qclass, ancount, raw)
		VALUES (?, ?, ?, ?, ?, ?, 0, 4242, ?, ?, ?, ?, 1, ?, ?)`,
		m.Session, m.TS.UnixNano(), flow, obs, sOwner, rOwner, qr<<15|m.Rcode, m.Rcode, b.name(qname), m.QType, len(m.Answers), raw)
	if sp := b.spelling(m.QName, qname); sp != nil {
		b.Exec(`UPDATE msgs SET spelling_id = ? WHERE id = ?`, sp, id)
	}
	// A client's response answers its last query for the name.
	if b.version >= 3 && m.Role == "client" {
		k := fmt.Sprint(m.Session, m.Process, m.PID, qname)
		if b.lastQuery == nil {
			b.lastQuery = map[string]int64{}
		}
		if m.Direction == "send" && !m.Response {
			b.lastQuery[k] = id
		} else if q, ok := b.lastQuery[k]; ok && m.Direction == "recv" && m.Response {
			b.Exec(`UPDATE msgs SET query_id = ?, latency_ns = ? - (SELECT ts_ns FROM msgs WHERE id = ?) WHERE id = ?`, q, m.TS.UnixNano(), q, id)
			delete(b.lastQuery, k)
		}
	}
	for _, a := range m.Answers {
		if a.Section != "" && a.Section != "answer" {
			continue // the store keeps only the answer section apart from raw
		}
		if a.Name == "" {
			a.Name = qname
		}
		if a.Type == 0 {
			a.Type = 1
		}
		b.Exec(`INSERT INTO rrs (message_id, name_id, type, class, ttl, data) VALUES (?, ?, ?, 1, 300, ?)`,
			id, b.name(a.Name), a.Type, a.Data)
	}
	return id
}

// name returns the names row of a normalized name, adding it if new.
func (b *Builder) name(n string) int64 {
	b.tb.Helper()
	var id int64
	if err := b.DB.QueryRow(`SELECT id FROM names WHERE rev = ?`, schema.ReverseName(n)).Scan(&id); err == nil {
		return id
	}
	return b.Exec(`INSERT INTO names (name, rev) VALUES (?, ?)`, n, schema.ReverseName(n))
}

// spelling returns the spellings row of name as given (presentation form)
// when Spellings is set and its case differs from norm, its normalized
// form; else nil. As the recorder, it keeps the name without its trailing
// dot: lowercasing keeps the length.
func (b *Builder) spelling(name, norm string) any {
	b.tb.Helper()
	if !b.Spellings || len(name) < len(norm) || name[:len(norm)] == norm {
		return nil
	}
	sent := name[:len(norm)]
	if id, ok := b.spellings[sent]; ok {
		return id
	}
	if b.spellings == nil {
		b.spellings = map[string]int64{}
	}
	id := b.Exec(`INSERT INTO spellings (name) VALUES (?)`, sent)
	b.spellings[sent] = id
	return id
}

// null turns zero values into SQL NULL.
func null[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// Resolution is a row of the resolutions table (schema v5): a libc
// resolver call.
type Resolution struct {
	Session int64
	Process int64 // processes.id; 0 stores NULL
	PID     int64
	Comm    string
	TS      time.Time
	Func    string // "" is getaddrinfo
	Name    string // presentation form
	RC      int
	Addrs   []string
}

// Resolution adds a libc resolution and returns its id.
func (b *Builder) Resolution(r Resolution) int64 {
	b.tb.Helper()
	if r.Func == "" {
		r.Func = "getaddrinfo"
	}
	owner := b.Exec(`INSERT INTO owners (process_id, pid, tid, comm) VALUES (?, ?, ?, ?)`, null(r.Process), r.PID, r.PID, null(r.Comm))
	norm := schema.NormalizeName(r.Name)
	id := b.Exec(`INSERT INTO resolutions (session_id, ts_ns, dur_ns, owner, func, name_id, rc, flags) VALUES (?, ?, 1000, ?, ?, ?, ?, 0)`,
		r.Session, r.TS.UnixNano(), owner, r.Func, b.name(norm), r.RC)
	if sp := b.spelling(r.Name, norm); sp != nil {
		b.Exec(`UPDATE resolutions SET spelling_id = ? WHERE id = ?`, sp, id)
	}
	for _, a := range r.Addrs {
		b.Exec(`INSERT INTO resolution_addrs (resolution_id, addr) VALUES (?, ?)`, id, a)
	}
	return id
}

// Sum is the SHA-256 of the file at path: a test that reads evidence
// compares it before and after, to show the file was left as it was.
func Sum(tb testing.TB, path string) [32]byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return sha256.Sum256(b)
}

// EncConn is a row of the enc_conns table (schema v11): a connection to an
// encrypted-DNS server.
type EncConn struct {
	Session   int64
	Process   int64 // processes.id; 0 stores NULL
	PID       int64
	Comm      string
	TS        time.Time
	Kind      string // dot, doq, doh-known
	Transport string // "" is tcp
	RAddr     string
	RPort     int
	LAddr     string // "" stores NULL, with the port
	LPort     int
	SNI       string // "" stores NULL
	Resolver  string // "" stores NULL
}

// EncConn adds an encrypted-DNS connection and returns its id.
func (b *Builder) EncConn(e EncConn) int64 {
	b.tb.Helper()
	if e.Transport == "" {
		e.Transport = "tcp"
	}
	var lport any
	if e.LAddr != "" {
		lport = e.LPort
	}
	owner := b.Exec(`INSERT INTO owners (process_id, pid, tid, comm) VALUES (?, ?, ?, ?)`, null(e.Process), e.PID, e.PID, null(e.Comm))
	return b.Exec(`INSERT INTO enc_conns (session_id, ts_ns, owner, kind, transport, via, r_addr, r_port, l_addr, l_port, sni, resolver)
		VALUES (?, ?, ?, ?, ?, 'connect', ?, ?, ?, ?, ?, ?)`,
		e.Session, e.TS.UnixNano(), owner, e.Kind, e.Transport, e.RAddr, e.RPort, null(e.LAddr), lport, null(e.SNI), null(e.Resolver))
}
