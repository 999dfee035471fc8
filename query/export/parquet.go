package export

import (
	"errors"
	"io"
	"sync/atomic"
	"time"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query"
)

// ParquetRow is one row of the parquet export: one DNS transaction (a query
// and its response), flat, for DuckDB, Trino, Athena or Spark. It is the
// schema: its parquet tags name the columns, their types and encodings, in
// order. query/EXPORTS.md says what each column means, and TestParquetDoc
// fails when its table and this type differ.
//
// Optional columns are null when unknown; lists are empty when there is
// nothing. An optional column is a plain field wherever its zero value
// cannot be a value of the column: parquet-go writes the zero value as
// null. A pointer field costs the library several times as much to shred
// as a plain one, and the export an allocation. The pointers left are the
// columns where 0 or "" is a value: the root's name, type, class and rcode
// 0, pid and uid 0.
type ParquetRow struct {
	TS              time.Time `parquet:"ts,timestamp(nanosecond),delta"`
	TSNs            int64     `parquet:"ts_ns,delta"`
	ResponseTS      time.Time `parquet:"response_ts,optional,timestamp(nanosecond)"`
	Host            string    `parquet:"host,dict"`
	File            string    `parquet:"file,dict"`
	UID             string    `parquet:"uid"`
	QueryID         int64     `parquet:"query_id,optional"`    // msgs.id: from 1
	ResponseID      int64     `parquet:"response_id,optional"` // msgs.id: from 1
	Proto           string    `parquet:"proto,dict"`
	ClientAddr      string    `parquet:"client_addr,optional,dict"`
	ClientPort      int32     `parquet:"client_port"`
	ServerAddr      string    `parquet:"server_addr,optional,dict"`
	ServerPort      int32     `parquet:"server_port"`
	DNSID           int32     `parquet:"dns_id"`
	QName           *string   `parquet:"qname,optional"`
	QType           *int32    `parquet:"qtype,optional"`
	QTypeName       string    `parquet:"qtype_name,optional,dict"`
	QClass          *int32    `parquet:"qclass,optional"`
	Rcode           *int32    `parquet:"rcode,optional"`
	RcodeName       string    `parquet:"rcode_name,optional,dict"`
	Answers         []string  `parquet:"answers,list"`
	TTLs            []int64   `parquet:"ttls,list"`
	LatencyNs       int64     `parquet:"latency_ns,optional"` // set only when positive
	ClientPID       *int64    `parquet:"client_pid,optional"`
	ClientTID       int64     `parquet:"client_tid,optional"` // set only when known (not 0)
	ClientComm      string    `parquet:"client_comm,optional,dict"`
	ClientExe       string    `parquet:"client_exe,optional,dict"`
	ClientArgv      []string  `parquet:"client_argv,list"`
	ClientUID       *int64    `parquet:"client_uid,optional"`
	ClientAncestry  string    `parquet:"client_ancestry,optional,dict"`
	ServerPID       *int64    `parquet:"server_pid,optional"`
	ServerTID       int64     `parquet:"server_tid,optional"`
	ServerComm      string    `parquet:"server_comm,optional,dict"`
	ServerExe       string    `parquet:"server_exe,optional,dict"`
	ServerArgv      []string  `parquet:"server_argv,list"`
	ServerUID       *int64    `parquet:"server_uid,optional"`
	ServerAncestry  string    `parquet:"server_ancestry,optional,dict"`
	ClientContainer string    `parquet:"client_container,optional,dict"`
	ServerContainer string    `parquet:"server_container,optional,dict"`
	ClientIface     string    `parquet:"client_iface,optional,dict"`
	ServerIface     string    `parquet:"server_iface,optional,dict"`
	Status          string    `parquet:"status,dict"`
	Note            string    `parquet:"note,optional"`
}

// parquetSchema is ParquetRow's schema, under its name: the root's name in
// the file.
var parquetSchema = parquet.NewSchema("ParquetRow", parquet.SchemaOf(ParquetRow{}))

// parquetRowGroup is the rows of one row group: what the writer holds in
// memory at most.
const parquetRowGroup = 64 << 10

// parquetBatch is how many rows are handed to the library at once.
const parquetBatch = 1024

type parquetWriter struct {
	w     *parquet.GenericWriter[ParquetRow]
	cur   *parquetBuf                         // the batch being built; nil between batches
	procs map[*query.Process]*parquetProcCols // messages share their query.Process

	// The library encodes and compresses in a goroutine of its own, one
	// batch while the next is built: free holds the batches to build,
	// full those to write; done reports the goroutine's end.
	free, full chan *parquetBuf
	done       chan error
	failed     atomic.Bool
}

// parquetBuf is a batch of rows. Their optional columns point into its
// slabs, reused once the batch is written: not an allocation for each.
type parquetBuf struct {
	rows []ParquetRow
	i32s slab[int32]
	strs slab[string]
}

func (b *parquetBuf) reset() {
	clear(b.rows)
	b.rows = b.rows[:0]
	b.i32s.reset()
	b.strs.reset()
}

// slab hands out pointers to values kept in chunks, reused after reset.
type slab[T any] struct {
	chunks [][]T
	cur    int // chunk being filled
}

const slabChunk = 1024

func (s *slab[T]) ptr(v T) *T {
	if len(s.chunks) == 0 {
		s.chunks = append(s.chunks, make([]T, 0, slabChunk))
	}
	c := s.chunks[s.cur]
	if len(c) == cap(c) {
		s.cur++
		if s.cur == len(s.chunks) {
			s.chunks = append(s.chunks, make([]T, 0, slabChunk))
		}
		c = s.chunks[s.cur]
	}
	c = append(c, v)
	s.chunks[s.cur] = c
	return &c[len(c)-1]
}

func (s *slab[T]) reset() {
	for i := range s.chunks {
		clear(s.chunks[i])
		s.chunks[i] = s.chunks[i][:0]
	}
	s.cur = 0
}

// parquetProcCols are one process's columns, shared by its rows.
type parquetProcCols struct {
	pid, uid                       *int64
	tid                            int64
	comm, exe, ancestry, container string
	argv                           []string
}

func newParquetWriter(w io.Writer) (*parquetWriter, error) {
	pw := parquet.NewGenericWriter[ParquetRow](w,
		parquetSchema,
		parquet.Compression(&zstd.Codec{Level: zstd.SpeedFastest}),
		parquet.MaxRowsPerRowGroup(parquetRowGroup),
		parquet.CreatedBy("dnsrec", "", ""),
		parquet.KeyValueMetadata("dnsrec.table", "dns transactions: one row per query and its response; columns documented in query/EXPORTS.md"),
	)
	p := &parquetWriter{w: pw, procs: map[*query.Process]*parquetProcCols{},
		free: make(chan *parquetBuf, parquetBufs), full: make(chan *parquetBuf, parquetBufs), done: make(chan error, 1)}
	for range parquetBufs {
		p.free <- &parquetBuf{rows: make([]ParquetRow, 0, parquetBatch)}
	}
	go p.writeBatches(p.full)
	return p, nil
}

// parquetBufs is how many batches are in flight.
const parquetBufs = 3

// writeBatches hands the full batches to the library until full is closed.
func (p *parquetWriter) writeBatches(full <-chan *parquetBuf) {
	var err error
	for b := range full {
		if err == nil {
			if _, err = p.w.Write(b.rows); err != nil {
				p.failed.Store(true)
			}
		}
		b.reset()
		p.free <- b
	}
	p.done <- err
}

func (p *parquetWriter) write(t *query.Transaction) error {
	if p.cur == nil {
		if p.full == nil {
			return errors.New("parquet: write after the writer ended")
		}
		if p.failed.Load() {
			return p.abort()
		}
		p.cur = <-p.free
	}
	p.cur.rows = append(p.cur.rows, p.row(t))
	if len(p.cur.rows) == cap(p.cur.rows) {
		p.full <- p.cur
		p.cur = nil
	}
	return nil
}

// abort ends the writing goroutine and returns its error, without
// finishing the file.
func (p *parquetWriter) abort() error {
	if p.full == nil {
		return nil
	}
	close(p.full)
	p.full = nil
	return <-p.done
}

func (p *parquetWriter) close() error {
	if p.cur != nil && len(p.cur.rows) > 0 {
		p.full <- p.cur
		p.cur = nil
	}
	if err := p.abort(); err != nil {
		return err
	}
	return p.w.Close()
}

func (p *parquetWriter) row(t *query.Transaction) ParquetRow {
	q, r := t.Query, t.Response
	first := t.First()
	row := ParquetRow{
		TS:     first.Time,
		TSNs:   first.Time.UnixNano(),
		Host:   first.Host,
		File:   first.File,
		UID:    t.UID(),
		Proto:  first.Proto,
		DNSID:  int32(first.DNSID),
		Status: t.Status(),
	}
	if (q != nil && (q.Cut || q.ParseErr != "" || q.QRMismatch)) || (r != nil && (r.Cut || r.ParseErr != "" || r.QRMismatch)) {
		row.Note = t.Note()
	}
	if q != nil {
		row.QueryID = q.ID
	}
	if r != nil {
		row.ResponseID = r.ID
		row.ResponseTS = r.Time
		if r.Rcode >= 0 {
			row.Rcode = p.cur.i32s.ptr(int32(r.Rcode))
			row.RcodeName = dnstext.RcodeName(r.Rcode)
		}
		row.Answers = query.TypedAnswers(r.Answers)
		if len(r.Answers) > 0 {
			row.TTLs = make([]int64, len(r.Answers))
			for i, a := range r.Answers {
				row.TTLs[i] = int64(a.TTL)
			}
		}
	}
	if c := t.ClientAddr(); c.IsValid() {
		row.ClientAddr = c.Addr().Unmap().String()
		row.ClientPort = int32(c.Port())
	}
	if s := t.ServerAddr(); s.IsValid() {
		row.ServerAddr = s.Addr().Unmap().String()
		row.ServerPort = int32(s.Port())
	}
	if qm := t.Question(); qm != nil {
		row.QName = p.cur.strs.ptr(qm.QName)
		row.QType = p.cur.i32s.ptr(int32(qm.QType))
		row.QTypeName = dnstext.TypeName(qm.QType)
		row.QClass = p.cur.i32s.ptr(int32(qm.QClass))
	}
	if d := t.Latency(); d > 0 {
		row.LatencyNs = int64(d)
	}
	if c := p.proc(t.Client()); c != nil {
		row.ClientPID, row.ClientTID, row.ClientComm, row.ClientExe, row.ClientArgv, row.ClientUID, row.ClientAncestry = c.pid, c.tid, c.comm, c.exe, c.argv, c.uid, c.ancestry
		row.ClientContainer = c.container
	}
	if c := p.proc(t.Server()); c != nil {
		row.ServerPID, row.ServerTID, row.ServerComm, row.ServerExe, row.ServerArgv, row.ServerUID, row.ServerAncestry = c.pid, c.tid, c.comm, c.exe, c.argv, c.uid, c.ancestry
		row.ServerContainer = c.container
	}
	row.ClientIface = t.ClientParty().IfaceName()
	row.ServerIface = t.ServerParty().IfaceName()
	return row
}

// proc returns pr's columns, built once per process.
func (p *parquetWriter) proc(pr *query.Process) *parquetProcCols {
	if pr == nil {
		return nil
	}
	if c, ok := p.procs[pr]; ok {
		return c
	}
	if len(p.procs) >= maxProcCache {
		clear(p.procs)
	}
	c := &parquetProcCols{pid: ptr(pr.PID), tid: pr.TID, comm: pr.Comm, exe: pr.Exe, argv: pr.Argv,
		ancestry: pr.Ancestry.String(), container: pr.Container}
	if pr.UID.Valid {
		c.uid = ptr(pr.UID.V)
	}
	p.procs[pr] = c
	return c
}

func ptr[T any](v T) *T { return &v }
