package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dnsrec/dnsrec/schema"
	"github.com/dnsrec/dnsrec/schema/summary"
)

// Session is the sessions row of one recording.
type Session struct {
	Hostname, MachineID, BootID, Kernel, Version, Cmdline, Hook string
	Ports                                                       string
	Snaplen                                                     uint32
	StartedNs, AnchorWallNs, AnchorBootNs                       int64
	// Part is a rotated recording's file number (1, 2, ...); 0 when not
	// rotated. Filters is the record-time filters as JSON; "" for none.
	Part    int
	Filters string
	// RecordingID and SignKey: the recording's random id and the verifier
	// key of this file's first signed checkpoint (package anchor); "" when
	// nothing is signed.
	RecordingID, SignKey string
}

// AnchorRow is one anchor's checkpoint counts (anchor.Stats), cumulative.
type AnchorRow struct {
	Dest                        string
	Made, Sent, Dropped, Queued int64
	Err                         string
}

// ProcRow is one process image, written when a message first refers to it.
type ProcRow struct {
	PID        uint32
	StartTicks uint64
	ExecBootNs uint64
	PPID       *uint32
	ParentID   *int64
	Comm       string
	Exe        *string
	Argv       *string // JSON array of strings
	UID, GID   *uint32
	CgroupID   *uint64
	Source     string
	ExitNs     *int64
	// ExeTruncated and ArgvTruncated: the kernel cut the exe path or the
	// arguments it captured at exec (nil when they did not come from exec).
	ExeTruncated, ArgvTruncated *bool
	// Cgroup is the cgroup v2 path, Container the container id parsed
	// from it ("" when unknown, or not in a container).
	Cgroup, Container string
}

// MsgRow is one DNS message as it crossed this host: its bytes once, and the
// local process that sent it and the one that received it, where seen. On
// loopback both sides are local and carry the same bytes.
type MsgRow struct {
	Proto      string // udp or tcp
	Src, Dst   netip.AddrPort
	Send, Recv Side
	DNS        Parsed
	OrigLen    int
	Raw        []byte
	// QRMismatch: the header's QR bit contradicts the sender's role, as
	// the transport shows it (a "response" sent to a server port).
	QRMismatch bool
	// DoH is the URL a DNS-over-HTTPS message was carried in; nil for
	// every other proto.
	DoH *DoHURL
	// ID is the msgs row id, when the writer assigned it (0: the Store
	// assigns the next one). QueryID is the query a response answers
	// (set by AnswerTo or AnswerQuery).
	ID, QueryID int64
	queryTs     int64 // when the query was seen (its client's send if querySend)
	querySend   bool
}

// DoHURL is where a DoH message went: the doh table's row.
type DoHURL struct {
	Host, Path string
	// JSON: the message was synthesised from the JSON API, not read as
	// DNS wire format.
	JSON bool
}

// Side is one observation of a message: by its sender or by its receiver.
type Side struct {
	Seen      bool
	TsNs      int64
	Server    bool // the observing process is the server end of the exchange
	Cookie    uint64
	ProcessID int64     // processes row of the owner; 0 when not identified
	Ident     *Identity // nil when the owner could not be identified
	// Ifindex is the network device the message left or arrived by (0:
	// the hook tier does not know), IfName its name ("" if not found).
	Ifindex uint32
	IfName  string
}

// AnswerTo links m, a response, to q, the query it answers (same transport
// ends, DNS id and question): the row gets q's id as query_id and the
// client's wait as latency_ns. q.ID must be set.
func (m *MsgRow) AnswerTo(q *MsgRow) { m.AnswerQuery(q.ID, q.First(), q.Send.Seen) }

// AnswerQuery links m, a response, to the query row id, first seen at tsNs
// (by its sender if sent).
func (m *MsgRow) AnswerQuery(id, tsNs int64, sent bool) {
	m.QueryID, m.queryTs, m.querySend = id, tsNs, sent
}

// First is the time of the earliest observation: the row's ts_ns.
func (m *MsgRow) First() int64 {
	if m.Send.Seen {
		return m.Send.TsNs
	}
	return m.Recv.TsNs
}

// Ancestor is one step up a process's parent chain, as the kernel saw it.
type Ancestor struct {
	PID     uint32
	StartNs uint64 // CLOCK_BOOTTIME start of the thread group leader
	Comm    string
}

// Identity is the process a message belongs to, read in the kernel in that
// process's own context.
type Identity struct {
	PID, TID, UID, GID uint32
	StartNs            uint64
	Comm               string // thread comm
	CgroupID           uint64
	MntNS, NetNS       uint32
	PidNS, NSPID       uint32
	Ancestors          []Ancestor // direct parent first
}

// DefaultBatchSize is how many messages the recorder commits in one
// transaction by default (record.Options.BatchSize): a batch's fsync and
// chain link are shared by its rows.
const DefaultBatchSize = 4000

// Store is the single writer of an evidence file. Rows are queued in memory
// and written by Commit in one transaction, through the driver's prepared
// statements: database/sql costs an allocation-heavy round trip per row that
// a recorder at line rate cannot afford. All methods must be called from one
// goroutine.
type Store struct {
	path      string
	db        *sql.DB
	conn      *sql.Conn // the one connection, pinned
	sessionID int64
	created   fs.FileInfo // the file Create made
	stmts     map[string]driver.Stmt
	args      []driver.NamedValue
	q         queue
	dict      dicts
	nextMsg   int64
	nextRR    int64
	msgRows   *multiRow
	rrRows    *multiRow
	nextLoss  int64
	// nextAnchor is the next anchors row id.
	nextAnchor int64
	// OnStop, if set, is called by Finish once the stop link is committed,
	// before the indexes are built: with the chain head and the messages
	// stored, for the last signed checkpoint.
	OnStop func(seq int64, head string, msgs int64)
	// nextEvent is the next events row's id; events counts the rows
	// committed (the recorder's own events, see InsertEvent).
	nextEvent, events int64
	// Ids of the next libc resolution and of its next address.
	nextRes, nextResAddr int64
	nextEnc              int64 // id of the next encrypted-DNS connection
	nextDoH              int64
	// doh are the DoH URLs of the messages written in this batch, written
	// after them.
	doh       []dohRow
	nextProbe int64
	bootID    string
	chain     chainState
	log       *slog.Logger // Finish's phases; nil: none
}

// queue is what the next Commit writes, in this order.
// Dictionary rows (names, flows, owners) are not queued: they are written
// when a message that needs them is, inside the same transaction.
type queue struct {
	procs []procRow
	msgs  []*MsgRow
	exits [][2]int64 // process id, exit_ns
	loss  []lossRow
	// anchors' counts
	anchors []anchorRow
	// the recorder's own events
	events []Event
	// libc resolver calls
	resolutions []*ResolutionRow
	encConns    []*EncConnRow
	// files probed
	probes []Probe
}

type procRow struct {
	id int64
	ProcRow
}

func (q *queue) empty() bool {
	return len(q.procs)+len(q.msgs)+len(q.exits)+len(q.loss)+len(q.resolutions)+len(q.anchors)+len(q.events)+len(q.encConns)+len(q.probes) == 0
}

func (q *queue) reset() {
	clear(q.msgs) // drop references to raw bytes
	clear(q.resolutions)
	clear(q.encConns)
	*q = queue{procs: q.procs[:0], msgs: q.msgs[:0], exits: q.exits[:0], loss: q.loss[:0], anchors: q.anchors[:0], resolutions: q.resolutions[:0], events: q.events[:0], encConns: q.encConns[:0], probes: q.probes[:0]}
}

type anchorRow struct {
	tsNs int64
	a    AnchorRow
}

type dohRow struct {
	msgID int64
	url   *DoHURL
}

type lossRow struct {
	tsNs int64
	l    Loss
}

// Summary is what a finished recording reports.
type Summary struct {
	Path     string
	Bytes    int64
	Messages int64 // observations: a message seen by its sender and its receiver counts twice
	// DNSMessages counts messages: one seen at both ends counts once.
	DNSMessages int64
	// Resolutions are the libc resolver calls stored.
	Resolutions int64
	SHA256      string
	// ChainSeq and ChainHead are the last link of the hash chain: what
	// `dnsrec query verify` must find at the end of the file.
	ChainSeq  int64
	ChainHead string
	// WAL is set when a reader kept the file in WAL mode at the stop: the
	// evidence is then Path and WAL together, and both must be copied.
	WAL       string
	WALBytes  int64
	WALSHA256 string
	// Stopped says why a bounded recording stopped by itself (its
	// Duration or MaxSize), or is empty after a stop from outside.
	Stopped string
	// LiveSkipped counts the live view's lines skipped because its output
	// could not keep up (the messages are stored).
	LiveSkipped int64
}

const (
	sqlName    = `INSERT INTO names (id, name, rev) VALUES (?, ?, ?)`
	sqlSpell   = `INSERT INTO spellings (id, name) VALUES (?, ?)`
	sqlFlow    = `INSERT INTO flows (id, proto, a_addr, a_port, b_addr, b_port) VALUES (?, ?, ?, ?, ?, ?)`
	sqlProcess = `INSERT INTO processes (id, session_id, boot_id, pid, start_ticks, exec_boot_ns, ppid, parent_id, comm, exe, argv, uid, gid, cgroup_id, source, exe_truncated, argv_truncated, cgroup, container)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlOwner   = `INSERT INTO owners (id, process_id, pid, tid, uid, gid, comm, cgroup_id, netns, mntns, pidns, nspid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlExit    = `UPDATE processes SET exit_ns = ? WHERE id = ?`
	sqlStop    = `UPDATE sessions SET stopped_ns = ? WHERE id = ?`
	sqlMessage = `INSERT INTO msgs (id, session_id, ts_ns, flow_id, obs, s_owner, s_socket, r_owner, r_socket, r_dt_ns,
dns_id, flags, rcode, name_id, qtype, qclass, ancount, orig_len, raw, parse_error, query_id, latency_ns, s_iface, r_iface, spelling_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlRR      = `INSERT INTO rrs (id, message_id, name_id, type, class, ttl, data) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlLoss    = `INSERT INTO loss (id, session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, filtered, hook_misses, msg_drops, tls_cut, tls_unbound, doh_unparsed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlDoH     = `INSERT INTO doh (id, message_id, host, path, json) VALUES (?, ?, ?, ?, ?)`
	sqlSession = `INSERT INTO sessions (id, hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns, part, filters, recording_id, sign_key)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlAnchor = `INSERT INTO anchors (id, session_id, ts_ns, dest, made, sent, dropped, queued, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlEvent  = `INSERT INTO events (id, session_id, ts_ns, kind, detail) VALUES (?, ?, ?, ?, ?)`
	sqlIface  = `INSERT INTO interfaces (id, netns, ifindex, name) VALUES (?, ?, ?, ?)`
	sqlChain  = `INSERT INTO chain (seq, ts_ns, prev, tables, exits, stopped_ns, hash) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlNameID = `SELECT id FROM names WHERE rev = ?`
)

// Create makes a new evidence file at path. It refuses an existing file or
// symlink (and stale -wal/-shm/-journal files, which SQLite would otherwise
// adopt) unless force is set; with force it removes them, never following a
// symlink. The file is created 0600 with O_EXCL|O_NOFOLLOW, so a link planted
// at the path is not followed.
func Create(ctx context.Context, path string, force bool) (_ *Store, err error) {
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("check output %s: %w", p, err)
		}
		if !force {
			what := "file"
			if fi.Mode()&fs.ModeSymlink != 0 {
				what = "symlink"
			} else if fi.IsDir() {
				what = "directory"
			}
			return nil, fmt.Errorf("refusing to overwrite existing %s %s (use --force to replace it)", what, p)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("output %s is a directory", p)
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("remove %s: %w", p, err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|oNoFollow, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	created, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("stat output: %w", err)
	}

	db, err := sql.Open("sqlite", writerDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer connection, owned by one goroutine
	s := &Store{path: path, db: db, stmts: map[string]driver.Stmt{}, created: created, dict: newDicts(), nextMsg: 1, nextRR: 1, nextLoss: 1, nextAnchor: 1, nextEvent: 1, nextRes: 1, nextResAddr: 1, nextEnc: 1, nextDoH: 1, nextProbe: 1}
	defer func() {
		if err != nil {
			if s.conn != nil {
				s.conn.Close()
			}
			err = errors.Join(err, db.Close())
			// A file this call created but could not make a dnsrec file
			// of (a full disk while the schema was written) would block
			// the next try as "not a dnsrec database": remove it, unless
			// something else has taken its place.
			if s.checkSameFile() == nil {
				for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
					os.Remove(p)
				}
			}
		}
	}()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := s.checkSameFile(); err != nil {
		return nil, err
	}
	if err := schema.Migrate(ctx, db); err != nil {
		return nil, fmt.Errorf("create schema in %s: %w", path, err)
	}
	if s.conn, err = db.Conn(ctx); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = s.conn.Raw(func(dc any) error {
		c, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("sqlite driver connection %T cannot prepare statements", dc)
		}
		s.msgRows, s.rrRows = newMultiRow("msgs", sqlMessage), newMultiRow("rrs", sqlRR)
		for _, q := range []string{sqlSession, sqlStop, sqlName, sqlSpell, sqlFlow, sqlProcess, sqlOwner, sqlIface, sqlExit, sqlMessage, sqlRR, sqlLoss, sqlAnchor, sqlEvent, sqlNameID, sqlChain, sqlResolution, sqlResAddr, sqlEncConn, sqlDoH, sqlProbe,
			s.msgRows.multi, s.rrRows.multi} {
			st, err := c.PrepareContext(ctx, q)
			if err != nil {
				return fmt.Errorf("prepare statement: %w", err)
			}
			s.stmts[q] = st
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Path is the file the Store writes.
func (s *Store) Path() string { return s.path }

// writerDSN builds a URI filename (so that '?' and '#' in a path are data)
// with the pragmas every writer connection needs. synchronous is FULL: with
// WAL and batched commits that is one fsync per batch, and a power loss then
// loses at most the batch being written. The WAL is checkpointed every 4000 pages rather than 1000, a quarter of the syncs. The page cache is 4 MiB: the
// append-only tables need little, and the dictionaries' indexes stay hot.
func writerDSN(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	u := "file:" + strings.ReplaceAll(url.PathEscape(abs), "%2F", "/")
	return u + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_pragma=cache_size(-4096)&_pragma=wal_autocheckpoint(4000)&_txlock=immediate"
}

// checkSameFile makes sure SQLite opened the file Create made, not something
// swapped in at the path in between.
func (s *Store) checkSameFile() error {
	fi, err := os.Lstat(s.path)
	if err != nil {
		return fmt.Errorf("stat output: %w", err)
	}
	if !fi.Mode().IsRegular() || !os.SameFile(fi, s.created) {
		return fmt.Errorf("output %s was replaced while it was being opened", s.path)
	}
	return nil
}

// BeginSession writes the sessions row and commits it at once, so that even
// a recording killed in its first second says what it was.
func (s *Store) BeginSession(ctx context.Context, sess Session) error {
	var machine any
	if sess.MachineID != "" {
		machine = sess.MachineID
	}
	s.sessionID, s.bootID = 1, sess.BootID // a new file: the first and only session
	vals := []any{s.sessionID, sess.Hostname, machine, sess.BootID, sess.Kernel, sess.Version, sess.Cmdline, sess.Hook,
		sess.Ports, int64(sess.Snaplen), sess.StartedNs, sess.AnchorWallNs, sess.AnchorBootNs, nonZero(int64(sess.Part)), optStr(nullString(sess.Filters)),
		optStr(nullString(sess.RecordingID)), optStr(nullString(sess.SignKey))}
	err := s.inTx(func(ctx context.Context) error {
		if err := s.execRow(ctx, "sessions", sqlSession, vals...); err != nil {
			return fmt.Errorf("write session: %w", err)
		}
		return s.commitLink(ctx, sess.StartedNs, nil)
	})
	if err != nil {
		return fmt.Errorf("write session to %s: %w", s.path, explainFull(err))
	}
	// The schema and the session go into the main file at once, so that
	// even a copy of the .db without its -wal is a dnsrec file.
	return s.Checkpoint(ctx)
}

// Checkpoint copies what the WAL holds into the main file, without waiting
// for readers (PASSIVE). The pipeline calls it every 2 seconds, so that a
// killed recording's .db, copied without its -wal, is only that far behind.
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logPages, done int
	if err := s.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &logPages, &done); err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.path, explainFull(err))
	}
	return nil
}

// inTx runs f in one transaction on the driver connection, and commits the
// chain link f wrote only if the transaction commits.
func (s *Store) inTx(f func(ctx context.Context) error) error {
	pending := s.chain
	err := s.conn.Raw(func(dc any) error {
		c, ok := dc.(driver.ExecerContext)
		if !ok {
			return fmt.Errorf("sqlite driver connection %T cannot execute", dc)
		}
		ctx := context.Background() // no cancellation: a batch is written whole or not at all
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE", nil); err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		// A failed batch is abandoned whole. SQLite rolls back by itself
		// after some errors (a full disk among them), and ROLLBACK then
		// only reports that no transaction is left: its error says nothing
		// about the evidence and would bury the one that does.
		if err := f(ctx); err != nil {
			c.ExecContext(ctx, "ROLLBACK", nil)
			return err
		}
		if _, err := c.ExecContext(ctx, "COMMIT", nil); err != nil {
			c.ExecContext(ctx, "ROLLBACK", nil)
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	})
	if err != nil {
		// The link was not committed: the chain stays where it was.
		s.chain.seq, s.chain.head = pending.seq, pending.head
		s.chain.reset()
	}
	return err
}

// commitLink writes the batch's chain link and makes it the head (undone
// by inTx if the transaction then fails).
func (s *Store) commitLink(ctx context.Context, tsNs int64, stoppedNs *int64) error {
	l, err := s.writeLink(ctx, tsNs, stoppedNs)
	if err != nil {
		return err
	}
	s.chain.seq, s.chain.head = l.Seq, l.Hash()
	s.chain.reset()
	return nil
}

// execRow runs a single-row INSERT whose first value is the row's id, and
// adds the row to the batch's chain digest for table.
func (s *Store) execRow(ctx context.Context, table, q string, vals ...any) error {
	if err := s.chain.row(table, vals); err != nil {
		return err
	}
	return s.exec(ctx, q, vals...)
}

// InsertProcess queues a process image and returns its id. The same image
// (pid, start time, exec) twice is one row: the second call returns the
// first id, and fills in the exit time if it now has one.
func (s *Store) InsertProcess(_ context.Context, p *ProcRow) (int64, error) {
	k := procRowKey{p.PID, p.StartTicks, p.ExecBootNs}
	if id, ok := s.dict.procs[k]; ok {
		if p.ExitNs != nil {
			s.q.exits = append(s.q.exits, [2]int64{id, *p.ExitNs})
		}
		return id, nil
	}
	s.dict.lastProc++
	id := s.dict.lastProc
	s.dict.procs[k] = id
	s.q.procs = append(s.q.procs, procRow{id: id, ProcRow: *p})
	return id, nil
}

// SetExit records when a written process exited.
func (s *Store) SetExit(_ context.Context, id, exitNs int64) error {
	s.q.exits = append(s.q.exits, [2]int64{id, exitNs})
	return nil
}

// InsertMessage queues a message. m belongs to the Store from now on.
func (s *Store) InsertMessage(_ context.Context, m *MsgRow) error {
	s.q.msgs = append(s.q.msgs, m)
	return nil
}

// Loss is the cumulative loss of a session.
type Loss struct {
	RingbufDrops, DecodeErrors, Unattributed uint64
	// Filtered counts observations the record-time filters left out: not
	// a loss, but what a filtered recording does not hold.
	Filtered uint64
	// HookMisses counts hook calls the kernel skipped (see
	// bpf.Capture.MissedTotal): observations lost before the ring buffer.
	HookMisses uint64
	// MsgDrops counts, of RingbufDrops, the DNS message records.
	MsgDrops uint64
	// TLSCut counts TLS calls on DoT or DoH connections whose plaintext
	// the kernel copied only in part; TLSUnbound, plaintext dropped because
	// its TLS object was never tied to a socket; DoHUnparsed, HTTP of DoH
	// connections that could not be parsed.
	TLSCut, TLSUnbound, DoHUnparsed uint64
}

// InsertAnchors queues the anchors' counts as of tsNs.
func (s *Store) InsertAnchors(tsNs int64, rows []AnchorRow) {
	for _, a := range rows {
		s.q.anchors = append(s.q.anchors, anchorRow{tsNs, a})
	}
}

// Messages is how many msgs rows are committed.
func (s *Store) Messages() int64 { return s.msgRows.committed - 1 }

// InsertLoss queues the loss counters as of tsNs.
func (s *Store) InsertLoss(_ context.Context, tsNs int64, l Loss) error {
	s.q.loss = append(s.q.loss, lossRow{tsNs, l})
	return nil
}

// Event is one thing that happened to the recorder itself (the events
// table): its start and stop, a program detached, a signal received.
type Event struct {
	TsNs   int64
	Kind   string
	Detail string
}

// InsertEvent queues one of the recorder's events.
func (s *Store) InsertEvent(_ context.Context, e Event) error {
	s.q.events = append(s.q.events, e)
	return nil
}

// Events is how many events this file holds, committed: what a signed
// checkpoint states, so that a deleted event shows.
func (s *Store) Events() int64 { return s.events }

// Commit writes everything queued in one transaction. On error nothing of
// it is in the file, and everything committed before is.
func (s *Store) Commit() error {
	if s.q.empty() {
		return nil
	}
	err := s.inTx(func(ctx context.Context) error {
		if err := s.writeQueue(ctx); err != nil {
			return err
		}
		return s.commitLink(ctx, time.Now().UnixNano(), nil)
	})
	if err != nil {
		s.Rollback()
		return fmt.Errorf("write batch to %s: %w", s.path, explainFull(err))
	}
	s.events += int64(len(s.q.events))
	s.q.reset()
	s.dict.committed()
	s.msgRows.commit()
	s.rrRows.commit()
	return nil
}

// Rollback abandons what is queued (after a write error): dictionary entries
// made for it are forgotten too, since their rows are not in the file.
func (s *Store) Rollback() {
	for _, p := range s.q.procs {
		delete(s.dict.procs, procRowKey{p.PID, p.StartTicks, p.ExecBootNs})
	}
	s.dict.rollback()
	s.q.reset()
	s.doh = s.doh[:0]
	if s.msgRows != nil {
		s.msgRows.rollback()
		s.rrRows.rollback()
	}
}

func (s *Store) writeQueue(ctx context.Context) error {
	q := &s.q
	for i := range q.procs {
		p := &q.procs[i]
		if err := s.execRow(ctx, "processes", sqlProcess, p.id, s.sessionID, s.bootID, int64(p.PID), int64(p.StartTicks), int64(p.ExecBootNs),
			optU32(p.PPID), optI64(p.ParentID), p.Comm, optStr(p.Exe), optStr(p.Argv), optU32(p.UID), optU32(p.GID),
			optU64(p.CgroupID), p.Source, optBool(p.ExeTruncated), optBool(p.ArgvTruncated), optStr(nullString(p.Cgroup)), optStr(nullString(p.Container))); err != nil {
			return fmt.Errorf("write process %d: %w", p.PID, err)
		}
		if p.ExitNs != nil {
			// exit_ns is the one column set after a row is written: the
			// chain keeps it apart, as an exit of this batch.
			if err := s.setExit(ctx, p.id, *p.ExitNs); err != nil {
				return err
			}
		}
	}
	for _, m := range q.msgs {
		if err := s.writeMessage(ctx, m); err != nil {
			return err
		}
	}
	if err := s.msgRows.flush(ctx, s); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	if err := s.rrRows.flush(ctx, s); err != nil {
		return fmt.Errorf("write answer: %w", err)
	}
	for _, d := range s.doh {
		json := int64(0)
		if d.url.JSON {
			json = 1
		}
		if err := s.execRow(ctx, "doh", sqlDoH, s.nextDoH, d.msgID, d.url.Host, d.url.Path, json); err != nil {
			return fmt.Errorf("write DoH URL: %w", err)
		}
		s.nextDoH++
	}
	s.doh = s.doh[:0]
	for _, r := range q.resolutions {
		if err := s.writeResolution(ctx, r); err != nil {
			return err
		}
	}
	for _, r := range q.encConns {
		if err := s.writeEncConn(ctx, r); err != nil {
			return err
		}
	}
	for i := range q.probes {
		if err := s.writeProbe(ctx, &q.probes[i]); err != nil {
			return err
		}
	}
	for _, e := range q.exits {
		if err := s.setExit(ctx, e[0], e[1]); err != nil {
			return err
		}
	}
	for _, l := range q.loss {
		if err := s.execRow(ctx, "loss", sqlLoss, s.nextLoss, s.sessionID, l.tsNs, int64(l.l.RingbufDrops), int64(l.l.DecodeErrors), int64(l.l.Unattributed), int64(l.l.Filtered), int64(l.l.HookMisses), int64(l.l.MsgDrops),
			int64(l.l.TLSCut), int64(l.l.TLSUnbound), int64(l.l.DoHUnparsed)); err != nil {
			return fmt.Errorf("write loss: %w", err)
		}
		s.nextLoss++
	}
	for _, a := range q.anchors {
		if err := s.execRow(ctx, "anchors", sqlAnchor, s.nextAnchor, s.sessionID, a.tsNs, a.a.Dest, a.a.Made, a.a.Sent, a.a.Dropped, a.a.Queued, optStr(nullString(a.a.Err))); err != nil {
			return fmt.Errorf("write anchor counts: %w", err)
		}
		s.nextAnchor++
	}
	for _, e := range q.events {
		if err := s.execRow(ctx, "events", sqlEvent, s.nextEvent, s.sessionID, e.TsNs, e.Kind, e.Detail); err != nil {
			return fmt.Errorf("write event: %w", err)
		}
		s.nextEvent++
	}
	return nil
}

func (s *Store) setExit(ctx context.Context, id, exitNs int64) error {
	if err := s.exec(ctx, sqlExit, exitNs, id); err != nil {
		return fmt.Errorf("write process exit: %w", err)
	}
	s.chain.exits = append(s.chain.exits, [2]int64{id, exitNs})
	return nil
}

// obs bits of msgs (schema/README.md).
const (
	obsSent      = 1
	obsReceived  = 2
	obsSenderSrv = 4
	obsRecvrSrv  = 8
	obsBtoA      = 16
	obsQRSpoof   = 32
)

func (s *Store) writeMessage(ctx context.Context, m *MsgRow) error {
	flow, btoa, err := s.flowID(ctx, m.Proto, m.Src, m.Dst)
	if err != nil {
		return err
	}
	obs := int64(0)
	if btoa {
		obs |= obsBtoA
	}
	if m.QRMismatch {
		obs |= obsQRSpoof
	}
	var sOwner, sCookie, rOwner, rCookie, rDt, sIface, rIface any
	ts := m.First()
	if m.Send.Seen {
		obs |= obsSent
		if m.Send.Server {
			obs |= obsSenderSrv
		}
		if sOwner, err = s.ownerID(ctx, &m.Send); err != nil {
			return err
		}
		sCookie = int64(m.Send.Cookie)
		if sIface, err = s.ifaceID(ctx, &m.Send); err != nil {
			return err
		}
	}
	if m.Recv.Seen {
		obs |= obsReceived
		if m.Recv.Server {
			obs |= obsRecvrSrv
		}
		if rOwner, err = s.ownerID(ctx, &m.Recv); err != nil {
			return err
		}
		rCookie, rDt = int64(m.Recv.Cookie), m.Recv.TsNs-ts
		if rIface, err = s.ifaceID(ctx, &m.Recv); err != nil {
			return err
		}
	}
	d := &m.DNS
	var nameID any
	if d.QName != nil {
		id, err := s.nameID(ctx, *d.QName)
		if err != nil {
			return err
		}
		nameID = id
	}
	spelling, err := s.spellingID(ctx, d.Spelling)
	if err != nil {
		return err
	}
	var origLen, perr any
	if m.OrigLen != len(m.Raw) {
		origLen = int64(m.OrigLen)
	}
	if d.Err != nil {
		perr = d.Err.Error()
	}
	if m.ID == 0 {
		m.ID = s.nextMsg
	}
	id := m.ID
	var queryID, latency any
	if m.QueryID != 0 {
		queryID = m.QueryID
		// The client's wait where both ends of it were seen, else the
		// time between the two messages.
		if m.querySend && m.Recv.Seen && !m.Recv.Server {
			latency = m.Recv.TsNs - m.queryTs
		} else {
			latency = ts - m.queryTs
		}
	}
	raw := m.Raw
	if raw == nil {
		raw = []byte{} // NOT NULL: the kernel could not read the bytes
	}
	if err := s.msgRows.add(ctx, s, id, s.sessionID, ts, flow, obs, sOwner, sCookie, rOwner, rCookie, rDt,
		optU16(d.ID), optU16(d.Flags), optInt(d.Rcode), nameID, optU16(d.QType), optU16(d.QClass), optInt(d.ANCount),
		origLen, raw, perr, queryID, latency, sIface, rIface, spelling); err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	s.nextMsg = id + 1
	if m.DoH != nil {
		s.doh = append(s.doh, dohRow{id, m.DoH})
	}
	for i := range d.Answers {
		a := &d.Answers[i]
		nid, err := s.nameID(ctx, a.Name)
		if err != nil {
			return err
		}
		if err := s.rrRows.add(ctx, s, s.nextRR, id, nid, int64(a.Type), int64(a.Class), int64(a.TTL), a.Data); err != nil {
			return fmt.Errorf("write answer: %w", err)
		}
		s.nextRR++
	}
	return nil
}

// multiRows is how many rows one INSERT statement of msgs or rrs carries:
// per statement, SQLite and the driver have a fixed cost that a row alone
// does not amortize.
const multiRows = 16

// multiRow gathers the rows of one table's INSERT into statements of
// multiRows rows each.
//
// A row whose id is the one SQLite would assign anyway (one past the
// largest in the table) is bound with a NULL id, and SQLite assigns it:
// an explicit INTEGER PRIMARY KEY costs a uniqueness seek from the B-tree's
// root per row, and a NULL one an append at the end. The stored id is the
// same, the chain hashes the id as given, and every statement's
// last_insert_rowid is checked against it. A row after a gap in the ids (the rows of a batch
// that failed) keeps its explicit id.
type multiRow struct {
	table         string // for the chain digest
	single, multi string // one row; multiRows rows
	vals          []driver.NamedValue
	rows          int
	cols          int
	// next is the id SQLite gives a row inserted with a NULL id, in the
	// transaction being written; committed its value at the last commit.
	// last is the id of the last row buffered.
	next, committed, last int64
}

func newMultiRow(table, single string) *multiRow {
	i := strings.LastIndex(single, "VALUES ")
	tuple := strings.TrimSpace(single[i+len("VALUES "):])
	tuples := make([]string, multiRows)
	for j := range tuples {
		tuples[j] = tuple
	}
	return &multiRow{table: table, single: single, multi: single[:i] + "VALUES " + strings.Join(tuples, ", "), cols: strings.Count(tuple, "?"),
		next: 1, committed: 1} // a new file: the table is empty
}

// add buffers one row, and writes the statement when it is full.
func (b *multiRow) add(ctx context.Context, s *Store, vals ...any) error {
	if err := s.chain.row(b.table, vals); err != nil {
		return err
	}
	id, _ := vals[0].(int64)
	if id == b.next {
		vals[0] = nil // SQLite assigns id itself
	}
	b.next, b.last = max(b.next, id+1), id
	for _, v := range vals {
		b.vals = append(b.vals, driver.NamedValue{Ordinal: len(b.vals) + 1, Value: v})
	}
	b.rows++
	if b.rows < multiRows {
		return nil
	}
	res, err := s.stmts[b.multi].(driver.StmtExecContext).ExecContext(ctx, b.vals)
	b.reset()
	return b.check(res, err, b.last)
}

// check makes sure the last row a statement inserted got the id it was
// given.
func (b *multiRow) check(res driver.Result, err error, want int64) error {
	if err != nil {
		return err
	}
	if got, err := res.LastInsertId(); err != nil || got != want {
		return fmt.Errorf("%s row %d was stored as %d (%v)", b.table, want, got, err)
	}
	return nil
}

// flush writes the rows that did not fill a statement, one by one.
func (b *multiRow) flush(ctx context.Context, s *Store) error {
	defer b.reset()
	st := s.stmts[b.single].(driver.StmtExecContext)
	for r := 0; r < b.rows; r++ {
		row := b.vals[r*b.cols : (r+1)*b.cols]
		want := b.last - int64(b.rows-1-r) // the rows' ids are consecutive
		for i := range row {
			row[i].Ordinal = i + 1
		}
		res, err := st.ExecContext(ctx, row)
		if err := b.check(res, err, want); err != nil {
			return err
		}
	}
	return nil
}

func (b *multiRow) reset() {
	clear(b.vals) // drop references to raw bytes
	b.vals, b.rows = b.vals[:0], 0
}

// commit: the transaction's rows are in the file.
func (b *multiRow) commit() { b.committed = b.next }

// rollback: they are not.
func (b *multiRow) rollback() {
	b.reset()
	b.next = b.committed
}

// exec runs a prepared statement with the arguments in order. Only called
// inside Commit's Raw callback.
func (s *Store) exec(ctx context.Context, q string, vals ...any) error {
	args := s.args[:0]
	for i, v := range vals {
		args = append(args, driver.NamedValue{Ordinal: i + 1, Value: v})
	}
	s.args = args
	_, err := s.stmts[q].(driver.StmtExecContext).ExecContext(ctx, args)
	return err
}

func (s *Store) queryID(ctx context.Context, q string, v any) (int64, bool, error) {
	s.args = append(s.args[:0], driver.NamedValue{Ordinal: 1, Value: v})
	rows, err := s.stmts[q].(driver.StmtQueryContext).QueryContext(ctx, s.args)
	if err != nil {
		return 0, false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, 1)
	if err := rows.Next(dest); errors.Is(err, io.EOF) {
		return 0, false, nil
	} else if err != nil {
		return 0, false, err
	}
	id, _ := dest[0].(int64)
	return id, true, nil
}

// Finish commits what is queued, stamps the session's stop time, builds the
// indexes left out while recording, checkpoints the WAL into the main file,
// switches it to rollback-journal mode so it is one self-contained file that
// readers can open without creating -wal/-shm, and closes it.
func (s *Store) Finish(ctx context.Context, stoppedNs int64) (Summary, error) {
	errs := []error{}
	ph := s.phases()
	if err := s.Commit(); err != nil {
		errs = append(errs, err)
	}
	// The stop time goes into the chain's last link, with the update.
	err := s.inTx(func(ctx context.Context) error {
		if err := s.exec(ctx, sqlStop, stoppedNs, s.sessionID); err != nil {
			return err
		}
		return s.commitLink(ctx, stoppedNs, &stoppedNs)
	})
	if err != nil {
		errs = append(errs, fmt.Errorf("write session stop: %w", explainFull(err)))
	} else if s.OnStop != nil {
		seq, head := s.Head()
		s.OnStop(seq, head, s.Messages())
	}
	ph.done("commit")
	// Nothing is written through the dictionaries any more.
	s.dict = dicts{}
	// What the recording left of the Go heap goes back to the system
	// before the finish adds its own: the finish is the recorder's peak.
	debug.FreeOSMemory()
	// A small page cache for the finish: CREATE INDEX's sorter keeps that
	// much in memory before it spills sorted runs to a temporary file, and
	// the builds read the tables once, in order, which a cache does not
	// speed up.
	if _, err := s.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", finishCacheKiB)); err != nil {
		errs = append(errs, fmt.Errorf("set the finish's cache size: %w", err))
	}
	if _, err := s.conn.ExecContext(ctx, schema.StopIndexes); err != nil {
		// The file still answers every query without them, by scanning.
		errs = append(errs, fmt.Errorf("build indexes: %w", explainFull(err)))
	} else {
		ph.done("indexes")
		if err := s.summarize(ctx, ph); err != nil {
			// who-resolved and resolved-to read the messages instead, as
			// for a killed recording.
			errs = append(errs, fmt.Errorf("build the summaries: %w", explainFull(err)))
		}
	}
	var sum Summary
	sum.Path = s.path
	sum.ChainSeq, sum.ChainHead = s.Head()
	if err := s.conn.QueryRowContext(ctx, `SELECT coalesce(sum((obs & 1) + (obs >> 1 & 1)), 0), count(*) FROM msgs WHERE session_id = ?`, s.sessionID).Scan(&sum.Messages, &sum.DNSMessages); err != nil {
		errs = append(errs, fmt.Errorf("count messages: %w", err))
	}
	ph.done("count")
	stayedWAL, err := s.leaveWAL(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	ph.done("checkpoint")
	if err := s.close(); err != nil {
		errs = append(errs, err)
	}
	ph.done("close")
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	h, n, err := fileSHA256(s.path)
	if err != nil {
		return sum, err
	}
	sum.SHA256, sum.Bytes = h, n
	ph.done("sha256")
	if stayedWAL {
		// Closing could not fold the -wal in either (the reader still
		// holds it): it is part of the evidence.
		if _, err := os.Lstat(s.path + "-wal"); err == nil {
			if sum.WALSHA256, sum.WALBytes, err = fileSHA256(s.path + "-wal"); err != nil {
				return sum, err
			}
			sum.WAL = s.path + "-wal"
		}
	}
	return sum, nil
}

// summarize writes the file's summaries (schema v6 and later,
// summary.All: who-resolved's and resolved-to's answers for the
// whole file) in one transaction: those of an earlier clean stop are
// replaced, and nothing is left half written. The builders read the file
// through connections of their own, as `dnsrec query` would, while this
// one writes.
func (s *Store) summarize(ctx context.Context, ph *phaseTimer) (err error) {
	if _, err := s.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			s.conn.ExecContext(ctx, "ROLLBACK")
		}
	}()
	for _, sm := range summary.All {
		if _, err := s.conn.ExecContext(ctx, "DELETE FROM "+sm.Table); err != nil {
			return fmt.Errorf("%s: %w", sm.Table, err)
		}
		if _, err := s.conn.ExecContext(ctx, "DELETE FROM summaries WHERE kind = ?", sm.Kind); err != nil {
			return fmt.Errorf("%s: %w", sm.Table, err)
		}
		ins, err := s.conn.PrepareContext(ctx, sm.InsertSQL())
		if err != nil {
			return fmt.Errorf("%s: %w", sm.Table, err)
		}
		sum, err := sm.Build(ctx, s.path, func(vals []any) error {
			_, err := ins.ExecContext(ctx, vals...)
			return err
		})
		ins.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", sm.Table, err)
		}
		if _, err := s.conn.ExecContext(ctx, "INSERT INTO summaries (kind, msgs_max, rrs_max, built_ns) VALUES (?, ?, ?, ?)",
			sm.Kind, sum.MsgsMax, sum.RRsMax, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("%s: %w", sm.Table, err)
		}
		ph.done("summary " + sm.Kind)
		debug.FreeOSMemory()
	}
	_, err = s.conn.ExecContext(ctx, "COMMIT")
	ph.done("summary commit")
	return err
}

// finishCacheKiB is the page cache (negative: KiB) of the finish's
// connection, and so the memory of its index sorts.
const finishCacheKiB = -1024

// leaveWALTimeout bounds how long a stop waits for readers of the file (a
// `dnsrec query`, an analyst's sqlite3 shell) to let go before it leaves
// the file in WAL mode.
var leaveWALTimeout = 5 * time.Second

// leaveWAL checkpoints the WAL into the main file and switches the file to
// rollback-journal mode, so that the evidence is one file. Another
// connection blocks it (a read transaction blocks the checkpoint, and
// leaving WAL mode needs the file to itself); after leaveWALTimeout the file
// stays in WAL mode (stayed is true): complete and consistent as the .db
// and its -wal together.
func (s *Store) leaveWAL(ctx context.Context) (stayed bool, err error) {
	deadline := time.Now().Add(leaveWALTimeout)
	// Short waits inside each try: the loop is the bound, not busy_timeout.
	if _, err := s.conn.ExecContext(ctx, `PRAGMA busy_timeout = 100`); err != nil {
		return false, fmt.Errorf("set busy timeout: %w", err)
	}
	for {
		var busy, logPages, done int
		err := s.conn.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &done)
		if err == nil && busy == 0 {
			var mode string
			err = s.conn.QueryRowContext(ctx, `PRAGMA journal_mode=DELETE`).Scan(&mode)
			if err == nil && mode == "delete" {
				return false, nil
			}
		}
		if err != nil && !isBusy(err) {
			return false, fmt.Errorf("checkpoint and leave WAL mode: %w", explainFull(err))
		}
		if time.Now().After(deadline) {
			return true, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// isBusy tells whether err is SQLite's "database is locked" (or "table is
// locked"), the answer while another connection holds the file.
func isBusy(err error) bool {
	var coded interface{ Code() int } // *sqlite.Error
	const sqliteBusy, sqliteLocked = 5, 6
	return errors.As(err, &coded) && (coded.Code()&0xff == sqliteBusy || coded.Code()&0xff == sqliteLocked)
}

func (s *Store) close() error {
	var errs []error
	if s.conn != nil {
		s.conn.Raw(func(any) error {
			for _, st := range s.stmts {
				st.Close()
			}
			return nil
		})
		errs = append(errs, s.conn.Close())
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", s.path, err))
	}
	return errors.Join(errs...)
}

func fileSHA256(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// explainFull adds what a full disk means for the evidence.
func explainFull(err error) error {
	var coded interface{ Code() int } // *sqlite.Error
	const sqliteFull = 13             // SQLITE_FULL; extended codes keep it in the low byte
	if err != nil && (errors.Is(err, syscall.ENOSPC) || errors.As(err, &coded) && coded.Code()&0xff == sqliteFull) {
		return fmt.Errorf("%w: the disk is full; everything committed before this batch is intact", err)
	}
	return err
}

func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Optional values as driver values: nil is NULL.
func optU32(v *uint32) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

func optU16(v *uint16) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

func optInt(v *int) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

func optI64(v *int64) any {
	if v == nil {
		return nil
	}
	return *v
}

// optU64 stores a uint64 bit for bit as SQLite's signed integer.
func optU64(v *uint64) any {
	if v == nil {
		return nil
	}
	return int64(*v)
}

func optStr(v *string) any {
	if v == nil {
		return nil
	}
	return *v
}

func optBool(v *bool) any {
	if v == nil {
		return nil
	}
	if *v {
		return int64(1)
	}
	return int64(0)
}

func nonZero(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}
