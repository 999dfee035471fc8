package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/schema"
)

var testSession = Session{
	Hostname: "host1", MachineID: "0123456789abcdef0123456789abcdef", BootID: "boot-1", Kernel: "6.1.0-test",
	Version: "test", Cmdline: "dnsrec record -o x.db", Hook: "cgroup", Ports: "53", Snaplen: 4096,
	StartedNs: 1_700_000_000_000_000_000, AnchorWallNs: 1_700_000_000_000_000_000, AnchorBootNs: 5_000_000_000,
}

func createStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Create(context.Background(), path, false)
	if err != nil {
		t.Fatalf("Create(%q): %v", path, err)
	}
	if err := s.BeginSession(context.Background(), testSession); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// foreignDB makes an SQLite file that dnsrec did not write.
func foreignDB(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me')`); err != nil {
		t.Fatal(err)
	}
}

func TestCreateRefuses(t *testing.T) {
	const secret = "the target's own content\n"
	tests := []struct {
		name   string
		setup  func(t *testing.T, dir, path string)
		force  bool
		errHas string // "" means Create must succeed
		check  func(t *testing.T, dir, path string)
	}{
		{
			name:   "existing file",
			setup:  func(t *testing.T, dir, path string) { writeFile(t, path, secret) },
			errHas: "refusing to overwrite existing file",
			check: func(t *testing.T, dir, path string) {
				if got := readFile(t, path); got != secret {
					t.Errorf("existing file changed to %q", got)
				}
			},
		},
		{
			name: "symlink to a file",
			setup: func(t *testing.T, dir, path string) {
				writeFile(t, filepath.Join(dir, "target"), secret)
				must(t, os.Symlink("target", path))
			},
			errHas: "refusing to overwrite existing symlink",
			check: func(t *testing.T, dir, path string) {
				if got := readFile(t, filepath.Join(dir, "target")); got != secret {
					t.Errorf("symlink target changed to %q", got)
				}
				if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
					t.Errorf("the symlink itself was touched: %v %v", fi, err)
				}
			},
		},
		{
			// A link to where the attacker wants a file created.
			name:   "dangling symlink",
			setup:  func(t *testing.T, dir, path string) { must(t, os.Symlink(filepath.Join(dir, "planted"), path)) },
			errHas: "refusing to overwrite existing symlink",
			check: func(t *testing.T, dir, path string) {
				if _, err := os.Lstat(filepath.Join(dir, "planted")); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("created the symlink's target: %v", err)
				}
			},
		},
		{
			name:   "stale -wal",
			setup:  func(t *testing.T, dir, path string) { writeFile(t, path+"-wal", "old wal") },
			errHas: "-wal",
			check: func(t *testing.T, dir, path string) {
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("created %s anyway: %v", path, err)
				}
				if got := readFile(t, path+"-wal"); got != "old wal" {
					t.Errorf("-wal changed to %q", got)
				}
			},
		},
		{name: "stale -shm", setup: func(t *testing.T, dir, path string) { writeFile(t, path+"-shm", "x") }, errHas: "-shm"},
		{name: "stale -journal", setup: func(t *testing.T, dir, path string) { writeFile(t, path+"-journal", "x") }, errHas: "-journal"},
		{
			name:   "directory",
			setup:  func(t *testing.T, dir, path string) { must(t, os.Mkdir(path, 0o755)) },
			errHas: "directory",
		},
		{
			name:   "directory, even with force",
			setup:  func(t *testing.T, dir, path string) { must(t, os.Mkdir(path, 0o755)) },
			force:  true,
			errHas: "is a directory",
		},
		{
			name:   "foreign SQLite file",
			setup:  func(t *testing.T, dir, path string) { foreignDB(t, path) },
			errHas: "refusing to overwrite existing file",
			check: func(t *testing.T, dir, path string) {
				var body string
				if err := openRO(t, path).QueryRow(`SELECT body FROM notes`).Scan(&body); err != nil || body != "keep me" {
					t.Errorf("foreign file damaged: %q %v", body, err)
				}
			},
		},
		{
			name: "force replaces a symlink without writing through it",
			setup: func(t *testing.T, dir, path string) {
				writeFile(t, filepath.Join(dir, "target"), secret)
				must(t, os.Symlink("target", path))
			},
			force: true,
			check: func(t *testing.T, dir, path string) {
				if got := readFile(t, filepath.Join(dir, "target")); got != secret {
					t.Errorf("symlink target changed to %q", got)
				}
				fi, err := os.Lstat(path)
				if err != nil || !fi.Mode().IsRegular() {
					t.Errorf("%s is not a regular file now: %v %v", path, fi, err)
				}
			},
		},
		{
			name: "force replaces a foreign file and stale companions",
			setup: func(t *testing.T, dir, path string) {
				foreignDB(t, path)
				writeFile(t, path+"-wal", "garbage that must not be replayed")
				writeFile(t, path+"-journal", "garbage")
			},
			force: true,
			check: func(t *testing.T, dir, path string) {
				db := openRO(t, path)
				if err := schema.Check(context.Background(), db); err != nil {
					t.Errorf("replaced file is not a dnsrec file: %v", err)
				}
				var n int
				if err := db.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'notes'`).Scan(&n); err != nil || n != 0 {
					t.Errorf("foreign table survived: %d %v", n, err)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "out.db")
			tc.setup(t, dir, path)
			s, err := Create(context.Background(), path, tc.force)
			switch {
			case tc.errHas == "" && err != nil:
				t.Fatalf("Create: %v", err)
			case tc.errHas != "" && err == nil:
				s.Finish(context.Background(), 1)
				t.Fatalf("Create succeeded, want an error mentioning %q", tc.errHas)
			case tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas):
				t.Errorf("Create: %v, want an error mentioning %q", err, tc.errHas)
			}
			if s != nil {
				if err := s.BeginSession(context.Background(), testSession); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Finish(context.Background(), 2); err != nil {
					t.Fatal(err)
				}
			}
			if tc.check != nil {
				tc.check(t, dir, path)
			}
		})
	}
}

// TestCreateOddPath: '?', '#', '%' and spaces are part of the file name, not
// URI syntax, and nothing is created beside the file.
func TestCreateOddPath(t *testing.T) {
	for _, name := range []string{"with space.db", "q?mode=memory.db", "hash#frag.db", "pct%20x.db", "all ?#% .db"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			s := createStore(t, path)
			insertSample(t, s)
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			sum, err := s.Finish(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Path != path || sum.Messages != 3 {
				t.Errorf("summary %+v, want path %q and 3 messages", sum, path)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if !reflect.DeepEqual(names, []string{name}) {
				t.Errorf("directory holds %q, want only %q", names, name)
			}
			var n int
			if err := openRO(t, path).QueryRow(`SELECT count(*) FROM messages`).Scan(&n); err != nil || n != 3 {
				t.Errorf("messages in %q: %d %v", name, n, err)
			}
		})
	}
}

// sample rows: a dig process under a shell, its query and the response, and
// a truncated message from an unknown owner.
var (
	sampleQuery = func() []byte {
		m := new(dns.Msg)
		m.SetQuestion("WWW.Evil.Example.", dns.TypeA)
		m.Id = 0x4242
		b, _ := m.Pack()
		return b
	}()
	sampleResponse = func() []byte {
		q := new(dns.Msg)
		q.SetQuestion("WWW.Evil.Example.", dns.TypeA)
		q.Id = 0x4242
		m := new(dns.Msg)
		m.SetReply(q)
		for _, s := range []string{"www.evil.example. 60 IN CNAME cdn.evil.example.", "cdn.evil.example. 60 IN A 203.0.113.9"} {
			rr, err := dns.NewRR(s)
			if err != nil {
				panic(err)
			}
			m.Answer = append(m.Answer, rr)
		}
		b, _ := m.Pack()
		return b
	}()
	sampleIdent = &Identity{PID: 4321, TID: 4322, UID: 1000, GID: 1001, StartNs: 9_000_000_000, Comm: "dig",
		CgroupID: 1 << 63, MntNS: 11, NetNS: 12, PidNS: 13}
)

// oneSide is a message seen on one side only, by a client.
func oneSide(send bool, ts int64, proto, src, dst string, cookie uint64, proc int64, id *Identity, raw []byte, origLen int) *MsgRow {
	m := &MsgRow{Proto: proto, Src: netip.MustParseAddrPort(src), Dst: netip.MustParseAddrPort(dst),
		DNS: ParseDNS(raw), OrigLen: origLen, Raw: raw}
	side := Side{Seen: true, TsNs: ts, Cookie: cookie, ProcessID: proc, Ident: id}
	if send {
		m.Send = side
	} else {
		m.Recv = side
	}
	return m
}

// insertSample writes two processes and three messages; it returns the
// process ids.
func insertSample(t *testing.T, s *Store) (shell, dig int64) {
	t.Helper()
	ctx := context.Background()
	var err error
	shell, err = s.InsertProcess(ctx, &ProcRow{PID: 900, StartTicks: 400, Comm: "bash", Exe: ptr("/usr/bin/bash"),
		Argv: ptr(`["bash"]`), UID: ptr[uint32](1000), GID: ptr[uint32](1000), Source: "procfs"})
	if err != nil {
		t.Fatal(err)
	}
	cg := uint64(1 << 63) // beyond int64: stored as its two's complement
	dig, err = s.InsertProcess(ctx, &ProcRow{PID: 4321, StartTicks: 900, ExecBootNs: 9_000_000_500, PPID: ptr[uint32](900),
		ParentID: &shell, Comm: "dig", Exe: ptr("/usr/bin/dig"), Argv: ptr(`["dig","www.evil.example"]`),
		UID: ptr[uint32](1000), GID: ptr[uint32](1001), CgroupID: &cg, Source: "exec"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := []*MsgRow{
		oneSide(true, 1_700_000_001_000_000_000, "udp", "10.0.0.2:40000", "192.0.2.53:53", 1<<63, dig, sampleIdent, sampleQuery, len(sampleQuery)),
		oneSide(false, 1_700_000_001_000_500_000, "udp", "192.0.2.53:53", "10.0.0.2:40000", 1<<63, dig, sampleIdent, sampleResponse, len(sampleResponse)),
		oneSide(false, 1_700_000_002_000_000_000, "tcp", "[2001:db8::53]:53", "[2001:db8::2]:50000", 0, 0, nil, sampleResponse[:20], len(sampleResponse)),
	}
	for _, m := range msgs {
		if err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	return shell, dig
}

func TestStoreRoundTrip(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "evidence.db")
	s := createStore(t, path)
	shell, dig := insertSample(t, s)
	// The same image again is the same row, and an exit fills in exit_ns.
	again, err := s.InsertProcess(ctx, &ProcRow{PID: 4321, StartTicks: 900, ExecBootNs: 9_000_000_500, Comm: "dig",
		Source: "exec", ExitNs: ptr[int64](1_700_000_003_000_000_000)})
	if err != nil || again != dig {
		t.Errorf("second InsertProcess = %d, %v, want the existing id %d", again, err, dig)
	}
	if err := s.SetExit(ctx, shell, 1_700_000_004_000_000_000); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertLoss(ctx, 1_700_000_005_000_000_000, Loss{RingbufDrops: 3, DecodeErrors: 1, Unattributed: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil { // nothing pending
		t.Fatal(err)
	}
	sum, err := s.Finish(ctx, 1_700_000_009_000_000_000)
	if err != nil {
		t.Fatal(err)
	}

	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s%s after Finish: %v", filepath.Base(path), suffix, err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(b)
	if want := hex.EncodeToString(h[:]); sum.SHA256 != want || sum.Bytes != int64(len(b)) || sum.Messages != 3 || sum.Path != path {
		t.Errorf("summary %+v, want sha256 %s, %d bytes, 3 messages", sum, want, len(b))
	}

	db := openRO(t, path)
	if err := schema.Check(ctx, db); err != nil {
		t.Errorf("schema.Check: %v", err)
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "delete" {
		t.Errorf("journal_mode = %q, %v, want delete", mode, err)
	}

	rows := func(q string) [][]any {
		t.Helper()
		r, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer r.Close()
		cols, _ := r.Columns()
		var out [][]any
		for r.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := r.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			out = append(out, vals)
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	check := func(name, q string, want [][]any) {
		t.Helper()
		if got := rows(q); !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %v\nwant %v", name, got, want)
		}
	}

	check("sessions", `SELECT hostname, machine_id, boot_id, hook, ports, snaplen, started_ns, stopped_ns FROM sessions`,
		[][]any{{"host1", "0123456789abcdef0123456789abcdef", "boot-1", "cgroup", "53", int64(4096),
			int64(1_700_000_000_000_000_000), int64(1_700_000_009_000_000_000)}})
	check("processes", `SELECT id, boot_id, pid, start_ticks, exec_boot_ns, ppid, parent_id, comm, exe, argv, uid, gid, cgroup_id, source, exit_ns FROM processes ORDER BY id`,
		[][]any{
			{shell, "boot-1", int64(900), int64(400), int64(0), nil, nil, "bash", "/usr/bin/bash", `["bash"]`, int64(1000), int64(1000), nil, "procfs", int64(1_700_000_004_000_000_000)},
			{dig, "boot-1", int64(4321), int64(900), int64(9_000_000_500), int64(900), shell, "dig", "/usr/bin/dig", `["dig","www.evil.example"]`,
				int64(1000), int64(1001), int64(-1 << 63), "exec", int64(1_700_000_003_000_000_000)},
		})
	check("messages", `SELECT direction, role, proto, saddr, sport, daddr, dport, socket_cookie, process_id, pid, tid, uid, gid, comm, cgroup_id, netns, mntns, pidns,
dns_id, qr, opcode, rcode, flags, qname, qname_rev, qtype, qclass, ancount, orig_len, truncated, parse_error IS NOT NULL FROM messages ORDER BY ts_ns`,
		[][]any{
			{"send", "client", "udp", "10.0.0.2", int64(40000), "192.0.2.53", int64(53), int64(-1 << 63), dig, int64(4321), int64(4322), int64(1000), int64(1001), "dig",
				int64(-1 << 63), int64(12), int64(11), int64(13), int64(0x4242), int64(0), int64(0), int64(0), int64(0x0100),
				"www.evil.example", "example.evil.www", int64(1), int64(1), int64(0), int64(len(sampleQuery)), int64(0), int64(0)},
			{"recv", "client", "udp", "192.0.2.53", int64(53), "10.0.0.2", int64(40000), int64(-1 << 63), dig, int64(4321), int64(4322), int64(1000), int64(1001), "dig",
				int64(-1 << 63), int64(12), int64(11), int64(13), int64(0x4242), int64(1), int64(0), int64(0), int64(0x8100),
				"www.evil.example", "example.evil.www", int64(1), int64(1), int64(2), int64(len(sampleResponse)), int64(0), int64(0)},
			{"recv", "client", "tcp", "2001:db8::53", int64(53), "2001:db8::2", int64(50000), int64(0), nil, nil, nil, nil, nil, nil,
				nil, nil, nil, nil, int64(0x4242), int64(1), int64(0), int64(0), int64(0x8100),
				nil, nil, nil, nil, int64(2), int64(len(sampleResponse)), int64(1), int64(1)},
		})
	check("raw", `SELECT raw FROM messages ORDER BY ts_ns`,
		[][]any{{sampleQuery}, {sampleResponse}, {sampleResponse[:20]}})
	check("answers", `SELECT m.ts_ns, a.section, a.name, a.type, a.class, a.ttl, a.data FROM answers a JOIN messages m ON m.id = a.message_id ORDER BY a.id`,
		[][]any{
			{int64(1_700_000_001_000_500_000), "answer", "www.evil.example", int64(5), int64(1), int64(60), "cdn.evil.example"},
			{int64(1_700_000_001_000_500_000), "answer", "cdn.evil.example", int64(1), int64(1), int64(60), "203.0.113.9"},
		})
	check("loss", `SELECT ts_ns, ringbuf_drops, decode_errors, unattributed FROM loss`,
		[][]any{{int64(1_700_000_005_000_000_000), int64(3), int64(1), int64(1)}})
	// The clean stop's summaries (query.Summaries): dig's lookup (its
	// response is not linked to it here: "-1", unanswered), and who
	// got 203.0.113.9, each covering every message and answer.
	check("summaries", `SELECT kind, msgs_max, rrs_max FROM summaries ORDER BY kind`,
		[][]any{{"addr", int64(3), int64(2)}, {"who", int64(3), int64(2)}})
	check("who_summary", `SELECT n.name, w.process_id, w.queries, w.statuses, w.qtypes, w.answers, w.via, w.relay_only FROM who_summary w JOIN names n ON n.id = w.name_id`,
		[][]any{{"www.evil.example", dig, int64(1), "-1", "1", `["CNAME cdn.evil.example","A 203.0.113.9"]`, "", int64(0)}})
	check("addr_summary", `SELECT type, data, first_msg, hits FROM addr_summary`,
		[][]any{{int64(1), "203.0.113.9", int64(2), int64(1)}})
	// The suffix search the schema is built for.
	check("suffix search", `SELECT count(*) FROM messages WHERE qname_rev = 'example.evil' OR (qname_rev >= 'example.evil.' AND qname_rev < 'example.evil/')`,
		[][]any{{int64(2)}})

	// Reading left no companion files behind either.
	db.Close()
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s%s after reading: %v", filepath.Base(path), suffix, err)
		}
	}
	if b2, err := os.ReadFile(path); err != nil || !slices.Equal(b, b2) {
		t.Errorf("reading changed the file (%v)", err)
	}
}

// TestStoreRollback: a batch that is rolled back leaves nothing, the next one
// is written.
func TestStoreRollback(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.db")
	s := createStore(t, path)
	insertSample(t, s)
	s.Rollback()
	s.Rollback() // twice is harmless
	if _, err := s.InsertProcess(ctx, &ProcRow{PID: 1, Comm: "init", Source: "procfs"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Finish(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Messages != 0 {
		t.Errorf("%d messages after rollback", sum.Messages)
	}
	var procs int
	if err := openRO(t, path).QueryRow(`SELECT count(*) FROM processes`).Scan(&procs); err != nil || procs != 1 {
		t.Errorf("processes: %d %v, want 1", procs, err)
	}
}

// TestFinishWithReader: a reader holding a read transaction at the stop
// (an analyst's sqlite3 shell, a dnsrec query) must not make the stop fail.
// If it lets go within the bound, the file still ends as one; if not, the
// file stays in WAL mode and the summary names and hashes the -wal too.
func TestFinishWithReader(t *testing.T) {
	defer func(d time.Duration) { leaveWALTimeout = d }(leaveWALTimeout)
	for _, tc := range []struct {
		name     string
		hold     time.Duration // how long the reader holds on after Finish starts
		timeout  time.Duration
		staysWAL bool
	}{
		{name: "reader lets go", hold: 300 * time.Millisecond, timeout: 10 * time.Second},
		{name: "reader holds on", hold: time.Hour, timeout: 300 * time.Millisecond, staysWAL: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leaveWALTimeout = tc.timeout
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "case.db")
			s := createStore(t, path)
			insertSample(t, s)
			if err := s.Commit(); err != nil {
				t.Fatal(err)
			}
			reader := openRO(t, path)
			tx, err := reader.Begin()
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRow(`SELECT count(*) FROM msgs`).Scan(&n); err != nil || n != 3 {
				t.Fatalf("reader sees %d messages, %v", n, err)
			}
			released := time.AfterFunc(tc.hold, func() { tx.Rollback(); reader.Close() })
			defer released.Stop()
			sum, err := s.Finish(ctx, 1)
			if err != nil {
				t.Fatalf("Finish with a reader: %v", err)
			}
			tx.Rollback()
			reader.Close()
			if sum.SHA256 == "" || sum.Messages != 3 {
				t.Errorf("summary %+v: want a hash and 3 messages", sum)
			}
			_, walErr := os.Lstat(path + "-wal")
			if !tc.staysWAL {
				if sum.WAL != "" || !errors.Is(walErr, fs.ErrNotExist) {
					t.Errorf("the reader let go, yet the file stayed in WAL mode: %+v, -wal: %v", sum, walErr)
				}
				return
			}
			if sum.WAL != path+"-wal" || walErr != nil {
				t.Fatalf("summary %+v, -wal %v: want the -wal named", sum, walErr)
			}
			if h, _, err := fileSHA256(sum.WAL); err != nil || h != sum.WALSHA256 {
				t.Errorf("-wal hash %s, summary says %s (%v)", h, sum.WALSHA256, err)
			}
			// The .db with its -wal holds everything, stop time included.
			var stopped sql.NullInt64
			db := openRO(t, path)
			if err := db.QueryRow(`SELECT count(*), (SELECT stopped_ns FROM sessions) FROM messages`).Scan(&n, &stopped); err != nil || n != 3 || !stopped.Valid {
				t.Errorf("after the stop: %d messages, stopped %v, %v", n, stopped, err)
			}
		})
	}
}

// TestStoreKernelFlags: what the kernel said about its own capture is kept:
// an exe path or argv it cut, and the pid inside the process's namespace.
func TestStoreKernelFlags(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "flags.db")
	s := createStore(t, path)
	cut, whole := true, false
	id, err := s.InsertProcess(ctx, &ProcRow{PID: 77, StartTicks: 1, Comm: "longargs", Exe: ptr("/x"), Argv: ptr(`["a"]`),
		Source: "exec", ExeTruncated: &whole, ArgvTruncated: &cut})
	if err != nil {
		t.Fatal(err)
	}
	ident := *sampleIdent
	ident.PID, ident.NSPID = 77, 1 // pid 1 of its container
	m := oneSide(true, 1, "udp", "10.0.0.2:4000", "192.0.2.53:53", 0, id, &ident, sampleQuery, len(sampleQuery))
	if err := s.InsertMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, 2); err != nil {
		t.Fatal(err)
	}
	var exeCut, argvCut, nspid int64
	if err := openRO(t, path).QueryRow(`SELECT p.exe_truncated, p.argv_truncated, o.nspid FROM processes p JOIN owners o ON o.process_id = p.id`).Scan(&exeCut, &argvCut, &nspid); err != nil {
		t.Fatal(err)
	}
	if exeCut != 0 || argvCut != 1 || nspid != 1 {
		t.Errorf("exe_truncated %d argv_truncated %d nspid %d, want 0 1 1", exeCut, argvCut, nspid)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
