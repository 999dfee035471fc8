package schema

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"slices"
	"strings"
)

// The hash chain makes an edited, inserted or deleted row detectable. Every
// committed batch appends a chain row: for each table, the id range the
// batch wrote and a SHA-256 over those rows' values; the exit times it set
// (processes.exit_ns is the one column updated after its row is written);
// and, at a clean stop, the stop time. Each chain row's hash covers the
// previous one's, so removing or reordering batches breaks the chain too.
// `dnsrec query verify` recomputes all of it from the file.

// ChainTable is a table the chain covers, with the columns hashed, in order.
type ChainTable struct {
	Name    string
	Columns string
}

// ChainTables are hashed in this order within a batch. The recorder binds
// its INSERTs' values in the same column order, and hashes exactly those.
// They are the current schema's; ChainTablesFor gives an older file's.
var ChainTables = []ChainTable{
	{"sessions", "id, hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns, part, filters, recording_id, sign_key"},
	{"names", "id, name, rev"},
	{"spellings", "id, name"},
	{"flows", "id, proto, a_addr, a_port, b_addr, b_port"},
	{"processes", "id, session_id, boot_id, pid, start_ticks, exec_boot_ns, ppid, parent_id, comm, exe, argv, uid, gid, cgroup_id, source, exe_truncated, argv_truncated, cgroup, container"},
	{"owners", "id, process_id, pid, tid, uid, gid, comm, cgroup_id, netns, mntns, pidns, nspid"},
	{"interfaces", "id, netns, ifindex, name"},
	{"msgs", "id, session_id, ts_ns, flow_id, obs, s_owner, s_socket, r_owner, r_socket, r_dt_ns, dns_id, flags, rcode, name_id, qtype, qclass, ancount, orig_len, raw, parse_error, query_id, latency_ns, s_iface, r_iface, spelling_id"},
	{"rrs", "id, message_id, name_id, type, class, ttl, data"},
	{"loss", "id, session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, filtered, hook_misses, msg_drops, tls_cut, tls_unbound, doh_unparsed"},
	{"resolutions", "id, session_id, ts_ns, dur_ns, owner, func, name_id, rc, flags, spelling_id"},
	{"resolution_addrs", "id, resolution_id, addr"},
	{"doh", "id, message_id, host, path, json"},
	{"enc_conns", "id, session_id, ts_ns, owner, kind, transport, via, r_addr, r_port, l_addr, l_port, sni, resolver"},
	{"anchors", "id, session_id, ts_ns, dest, made, sent, dropped, queued, error"},
	{"events", "id, session_id, ts_ns, kind, detail"},
	{"probes", "id, session_id, ts_ns, kind, path, pid, mntns, dev, inode, go_version, symbols"},
}

// chainAdded is what each schema version from 9 on added to the chain:
// whole tables (columns "") or columns of a table, which a file of an
// earlier version did not hash. ChainTables is the newest set; a file of
// version v hashed ChainTables minus what came after v.
var chainAdded = []struct {
	version        int
	table, columns string
}{
	{10, "loss", "tls_cut, tls_unbound, doh_unparsed"},
	{10, "doh", ""},
	{11, "enc_conns", ""},
	{12, "sessions", "recording_id, sign_key"},
	{12, "anchors", ""},
	{13, "events", ""},
	{14, "probes", ""},
	{15, "spellings", ""},
	{15, "msgs", "spelling_id"},
	{15, "resolutions", "spelling_id"},
}

// chainTablesAt is the tables and columns a version 8 or later file hashed.
func chainTablesAt(version int) []ChainTable {
	var out []ChainTable
	for _, t := range ChainTables {
		cols, keep := strings.Split(t.Columns, ", "), true
		for _, a := range chainAdded {
			if a.version <= version || a.table != t.Name {
				continue
			}
			if a.columns == "" {
				keep = false
				break
			}
			drop := strings.Split(a.columns, ", ")
			cols = slices.DeleteFunc(cols, func(c string) bool { return slices.Contains(drop, c) })
		}
		if keep {
			out = append(out, ChainTable{t.Name, strings.Join(cols, ", ")})
		}
	}
	return out
}

// chainTablesV7 are the tables a version 5 to 7 file hashed: v8 added
// loss.msg_drops.
var chainTablesV7 = func() []ChainTable {
	t := append([]ChainTable(nil), chainTablesAt(8)...)
	for i := range t {
		if t[i].Name == "loss" {
			t[i].Columns = "id, session_id, ts_ns, ringbuf_drops, decode_errors, unattributed, filtered, hook_misses"
		}
	}
	return t
}()

// chainTablesV4 are a version 4 file's: v5 added the libc resolutions.
var chainTablesV4 = chainTablesV7[:len(chainTablesV7)-2]

// chainTablesV3 are the tables and columns a version 3 file hashed (v4
// added columns and the interfaces table).
var chainTablesV3 = []ChainTable{
	{"sessions", "id, hostname, machine_id, boot_id, kernel, version, cmdline, hook, ports, snaplen, started_ns, anchor_wall_ns, anchor_boot_ns"},
	{"names", "id, name, rev"},
	{"flows", "id, proto, a_addr, a_port, b_addr, b_port"},
	{"processes", "id, session_id, boot_id, pid, start_ticks, exec_boot_ns, ppid, parent_id, comm, exe, argv, uid, gid, cgroup_id, source, exe_truncated, argv_truncated"},
	{"owners", "id, process_id, pid, tid, uid, gid, comm, cgroup_id, netns, mntns, pidns, nspid"},
	{"msgs", "id, session_id, ts_ns, flow_id, obs, s_owner, s_socket, r_owner, r_socket, r_dt_ns, dns_id, flags, rcode, name_id, qtype, qclass, ancount, orig_len, raw, parse_error, query_id, latency_ns"},
	{"rrs", "id, message_id, name_id, type, class, ttl, data"},
	{"loss", "id, session_id, ts_ns, ringbuf_drops, decode_errors, unattributed"},
}

// ChainTablesFor gives the tables a file of this schema version hashed,
// in order. The order of the tables a link names is the same in every
// version, so ChainLink.Hash serves them all.
func ChainTablesFor(version int) []ChainTable {
	switch {
	case version < 4:
		return chainTablesV3
	case version < 5:
		return chainTablesV4
	case version < 8:
		return chainTablesV7
	}
	return chainTablesAt(version)
}

// ChainRange is what one batch wrote to one table.
type ChainRange struct {
	First, Last int64  // ids, inclusive
	Digest      string // hex SHA-256 of the rows, see RowHasher
}

// ChainLink is one chain row's content, apart from its own hash.
type ChainLink struct {
	Seq       int64
	TsNs      int64
	Prev      string                // hex; "" for the first link
	Tables    map[string]ChainRange // tables the batch wrote
	Exits     [][2]int64            // process id, exit_ns, in the order set
	StoppedNs *int64                // the session's stop time, in the last link of a clean stop
}

// Hash is the link's hash: SHA-256 over the previous hash, the sequence
// number, every table's range and digest in ChainTables order, the exits and
// the stop time.
func (l *ChainLink) Hash() string {
	h := sha256.New()
	fmt.Fprintf(h, "dnsrec chain v1\n%s\n%d\n%d\n", l.Prev, l.Seq, l.TsNs)
	for _, t := range ChainTables {
		if r, ok := l.Tables[t.Name]; ok {
			fmt.Fprintf(h, "%s %d %d %s\n", t.Name, r.First, r.Last, r.Digest)
		}
	}
	for _, e := range l.Exits {
		fmt.Fprintf(h, "exit %d %d\n", e[0], e[1])
	}
	if l.StoppedNs != nil {
		fmt.Fprintf(h, "stopped %d\n", *l.StoppedNs)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// TablesJSON and ExitsJSON are how a link's parts are stored in the chain
// table.
func (l *ChainLink) TablesJSON() string { return mustJSON(l.Tables) }

// ExitsJSON: see TablesJSON.
func (l *ChainLink) ExitsJSON() string { return mustJSON(l.Exits) }

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings and ints always marshal
	}
	return string(b)
}

// RowHasher hashes rows in a canonical form: each value typed and
// length-prefixed, so that no two different rows share an encoding.
type RowHasher struct {
	h   hash.Hash
	buf []byte
}

// NewRowHasher returns an empty hasher.
func NewRowHasher() *RowHasher { return &RowHasher{h: sha256.New()} }

// Row adds one row's values, as SQLite stores them: int64, float64,
// string, []byte or nil.
func (r *RowHasher) Row(vals []any) error {
	b := r.buf[:0]
	b = binary.BigEndian.AppendUint32(b, uint32(len(vals)))
	for _, v := range vals {
		switch x := v.(type) {
		case nil:
			b = append(b, 'n')
		case int64:
			b = append(b, 'i')
			b = binary.BigEndian.AppendUint64(b, uint64(x))
		case float64:
			b = append(b, 'f')
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(x))
		case string:
			b = append(b, 't')
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		case []byte:
			b = append(b, 'b')
			b = binary.BigEndian.AppendUint32(b, uint32(len(x)))
			b = append(b, x...)
		default:
			return fmt.Errorf("chain: cannot hash a %T", v)
		}
	}
	r.buf = b
	r.h.Write(b)
	return nil
}

// Sum is the hex digest of the rows so far.
func (r *RowHasher) Sum() string { return fmt.Sprintf("%x", r.h.Sum(nil)) }
