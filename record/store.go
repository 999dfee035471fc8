//go:build linux

package record

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/dnsrec/dnsrec/schema"
)

// Session is the sessions row of one recording.
type Session struct {
	Hostname, MachineID, BootID, Kernel, Version, Cmdline, Hook string
	Ports                                                       string
	Snaplen                                                     uint32
	StartedNs, AnchorWallNs, AnchorBootNs                       int64
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
}

// MsgRow is one DNS message.
type MsgRow struct {
	TsNs, BootNs    int64
	Direction, Role string
	Proto           string
	Src, Dst        string
	Sport, Dport    uint16
	Cookie          uint64
	ProcessID       *int64
	Ident           *Identity
	DNS             Parsed
	OrigLen         int
	Raw             []byte
}

// Store is the single writer of an evidence file. All methods must be called
// from one goroutine.
type Store struct {
	path      string
	db        *sql.DB
	tx        *sql.Tx
	sessionID int64
	stmts     map[string]*sql.Stmt
	inode     uint64
}

// Summary is what a finished recording reports.
type Summary struct {
	Path     string
	Bytes    int64
	Messages int64
	SHA256   string
}

const (
	sqlProcess = `INSERT INTO processes (session_id, boot_id, pid, start_ticks, exec_boot_ns, ppid, parent_id, comm, exe, argv, uid, gid, cgroup_id, source, exit_ns)
VALUES (?, (SELECT boot_id FROM sessions WHERE id = ?), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (boot_id, pid, start_ticks, exec_boot_ns) DO UPDATE SET exit_ns = coalesce(excluded.exit_ns, exit_ns)
RETURNING id`
	sqlExit    = `UPDATE processes SET exit_ns = ? WHERE id = ?`
	sqlMessage = `INSERT INTO messages (session_id, ts_ns, boot_ns, direction, role, proto, saddr, sport, daddr, dport, socket_cookie,
process_id, pid, tid, uid, gid, comm, cgroup_id, netns, mntns, pidns,
dns_id, qr, opcode, rcode, flags, qname, qname_rev, qtype, qclass, ancount, orig_len, truncated, raw, parse_error)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlAnswer = `INSERT INTO answers (message_id, section, name, type, class, ttl, data) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlLoss   = `INSERT INTO loss (session_id, ts_ns, ringbuf_drops, decode_errors, unattributed) VALUES (?, ?, ?, ?, ?)`
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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	var st syscall.Stat_t
	err = syscall.Fstat(int(f.Fd()), &st)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("stat output: %w", err)
	}

	db, err := sql.Open("sqlite", writerDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1) // one writer connection, owned by one goroutine
	s := &Store{path: path, db: db, stmts: map[string]*sql.Stmt{}, inode: st.Ino}
	defer func() {
		if err != nil {
			err = errors.Join(err, db.Close())
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
	for _, q := range []string{sqlProcess, sqlExit, sqlMessage, sqlAnswer, sqlLoss} {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("prepare statement: %w", err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// writerDSN builds a URI filename (so that '?' and '#' in a path are data)
// with the pragmas every writer connection needs. synchronous is FULL: with
// WAL and batched commits that is one fsync per batch, and a power loss then
// loses at most the batch being written.
func writerDSN(path string) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	u := "file:" + strings.ReplaceAll(url.PathEscape(abs), "%2F", "/")
	return u + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)&_txlock=immediate"
}

// checkSameFile makes sure SQLite opened the file Create made, not something
// swapped in at the path in between.
func (s *Store) checkSameFile() error {
	var st syscall.Stat_t
	if err := syscall.Lstat(s.path, &st); err != nil {
		return fmt.Errorf("stat output: %w", err)
	}
	if st.Ino != s.inode || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return fmt.Errorf("output %s was replaced while it was being opened", s.path)
	}
	return nil
}

// BeginSession writes the sessions row and commits it at once, so that even
// a recording killed in its first second says what it was.
func (s *Store) BeginSession(ctx context.Context, sess Session) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO sessions (hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, sess.Hostname, nullString(sess.MachineID), sess.BootID, sess.Kernel, sess.Version, sess.Cmdline, sess.Hook,
		sess.Ports, sess.Snaplen, sess.StartedNs, sess.AnchorWallNs, sess.AnchorBootNs)
	if err != nil {
		return fmt.Errorf("write session: %w", err)
	}
	s.sessionID, err = res.LastInsertId()
	return err
}

func (s *Store) stmt(ctx context.Context, q string) (*sql.Stmt, error) {
	if s.tx == nil {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("begin batch: %w", explainFull(err))
		}
		s.tx = tx
	}
	return s.tx.StmtContext(ctx, s.stmts[q]), nil
}

// InsertProcess writes a process image and returns its id. Writing the same
// image twice returns the existing row.
func (s *Store) InsertProcess(ctx context.Context, p *ProcRow) (int64, error) {
	st, err := s.stmt(ctx, sqlProcess)
	if err != nil {
		return 0, err
	}
	var id int64
	err = st.QueryRowContext(ctx, s.sessionID, s.sessionID, p.PID, int64(p.StartTicks), int64(p.ExecBootNs), p.PPID, p.ParentID,
		p.Comm, p.Exe, p.Argv, p.UID, p.GID, u64ptr(p.CgroupID), p.Source, p.ExitNs).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("write process %d: %w", p.PID, explainFull(err))
	}
	return id, nil
}

// SetExit records when a written process exited.
func (s *Store) SetExit(ctx context.Context, id, exitNs int64) error {
	st, err := s.stmt(ctx, sqlExit)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, exitNs, id); err != nil {
		return fmt.Errorf("write process exit: %w", explainFull(err))
	}
	return nil
}

// InsertMessage writes a message and its resource records.
func (s *Store) InsertMessage(ctx context.Context, m *MsgRow) error {
	st, err := s.stmt(ctx, sqlMessage)
	if err != nil {
		return err
	}
	var pid, tid, uid, gid, netns, mntns, pidns *uint32
	var comm *string
	var cgroup *int64
	if id := m.Ident; id != nil {
		pid, tid, uid, gid = &id.PID, &id.TID, &id.UID, &id.GID
		netns, mntns, pidns = &id.NetNS, &id.MntNS, &id.PidNS
		comm = &id.Comm
		cgroup = ptr(int64(id.CgroupID))
	}
	d := &m.DNS
	var qname, qrev *string
	if d.QName != nil {
		qname, qrev = d.QName, ptr(schema.ReverseName(*d.QName))
	}
	var perr *string
	if d.Err != nil {
		perr = ptr(d.Err.Error())
	}
	res, err := st.ExecContext(ctx, s.sessionID, m.TsNs, m.BootNs, m.Direction, m.Role, m.Proto, m.Src, m.Sport, m.Dst, m.Dport, int64(m.Cookie),
		m.ProcessID, pid, tid, uid, gid, comm, cgroup, netns, mntns, pidns,
		d.ID, d.QR, d.Opcode, d.Rcode, d.Flags, qname, qrev, d.QType, d.QClass, d.ANCount,
		m.OrigLen, m.OrigLen > len(m.Raw), m.Raw, perr)
	if err != nil {
		return fmt.Errorf("write message: %w", explainFull(err))
	}
	if len(d.Answers) == 0 {
		return nil
	}
	msgID, err := res.LastInsertId()
	if err != nil {
		return fmt.Errorf("write message: %w", err)
	}
	ast, err := s.stmt(ctx, sqlAnswer)
	if err != nil {
		return err
	}
	for _, a := range d.Answers {
		if _, err := ast.ExecContext(ctx, msgID, a.Section, a.Name, a.Type, a.Class, a.TTL, a.Data); err != nil {
			return fmt.Errorf("write answer: %w", explainFull(err))
		}
	}
	return nil
}

// Loss is the cumulative loss of a session.
type Loss struct {
	RingbufDrops, DecodeErrors, Unattributed uint64
}

// InsertLoss writes the loss counters as of tsNs.
func (s *Store) InsertLoss(ctx context.Context, tsNs int64, l Loss) error {
	st, err := s.stmt(ctx, sqlLoss)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, s.sessionID, tsNs, int64(l.RingbufDrops), int64(l.DecodeErrors), int64(l.Unattributed)); err != nil {
		return fmt.Errorf("write loss: %w", explainFull(err))
	}
	return nil
}

// Commit ends the current batch, if any.
func (s *Store) Commit() error {
	if s.tx == nil {
		return nil
	}
	tx := s.tx
	s.tx = nil
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit batch to %s: %w", s.path, explainFull(err))
	}
	return nil
}

// Rollback abandons the current batch (after a write error).
func (s *Store) Rollback() {
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
}

// Finish stamps the session's stop time, checkpoints the WAL into the main
// file, switches it to rollback-journal mode so it is one self-contained
// file that readers can open without creating -wal/-shm, and closes it.
func (s *Store) Finish(ctx context.Context, stoppedNs int64) (Summary, error) {
	errs := []error{}
	if _, err := s.db.ExecContext(ctx, `UPDATE sessions SET stopped_ns = ? WHERE id = ?`, stoppedNs, s.sessionID); err != nil {
		errs = append(errs, fmt.Errorf("write session stop: %w", explainFull(err)))
	}
	var sum Summary
	sum.Path = s.path
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE session_id = ?`, s.sessionID).Scan(&sum.Messages); err != nil {
		errs = append(errs, fmt.Errorf("count messages: %w", err))
	}
	if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		errs = append(errs, fmt.Errorf("checkpoint: %w", explainFull(err)))
	} else if _, err := s.db.ExecContext(ctx, `PRAGMA journal_mode=DELETE`); err != nil {
		errs = append(errs, fmt.Errorf("leave WAL mode: %w", explainFull(err)))
	}
	for _, st := range s.stmts {
		st.Close()
	}
	if err := s.db.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close %s: %w", s.path, err))
	}
	if err := errors.Join(errs...); err != nil {
		return sum, err
	}
	h, n, err := fileSHA256(s.path)
	if err != nil {
		return sum, err
	}
	sum.SHA256, sum.Bytes = h, n
	return sum, nil
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

func u64ptr(v *uint64) *int64 {
	if v == nil {
		return nil
	}
	return ptr(int64(*v))
}
