package query

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/dnsrec/dnsrec/internal/dnstext"
)

// Transaction is one DNS exchange as the exports write it: a query and the
// response that answers it. Either may be nil (a query that got no
// response, a response whose query is not in the export), never both.
type Transaction struct {
	Query, Response *Message
}

// First is the message the exchange began with.
func (t *Transaction) First() *Message {
	if t.Query != nil {
		return t.Query
	}
	return t.Response
}

// Time is when the exchange began: the query's first observation, else the
// response's.
func (t *Transaction) Time() time.Time { return t.First().Time }

// File is the evidence file the exchange was read from.
func (t *Transaction) File() string { return t.First().File }

// Host is the recording host.
func (t *Transaction) Host() string { return t.First().Host }

// Proto is udp, tcp or dot.
func (t *Transaction) Proto() string { return t.First().Proto }

// ClientAddr and ServerAddr are the two ends: the query's source and
// destination, or the response's destination and source.
func (t *Transaction) ClientAddr() netip.AddrPort {
	if t.Query != nil {
		return t.Query.Src
	}
	return t.Response.Dst
}

// ServerAddr is the server end; see ClientAddr.
func (t *Transaction) ServerAddr() netip.AddrPort {
	if t.Query != nil {
		return t.Query.Dst
	}
	return t.Response.Src
}

// Client is the local process at the client end: the query's sender, or
// the response's receiver. Nil when that end is not on this host or its
// messages carried no identity.
func (t *Transaction) Client() *Process {
	if p := t.ClientParty(); p != nil {
		return p.Proc
	}
	return nil
}

// ClientParty is the observed client end: the query's sender (when it has
// a process), else the response's receiver.
func (t *Transaction) ClientParty() *Party {
	if t.Query != nil && t.Query.Sender != nil && t.Query.Sender.Proc != nil {
		return t.Query.Sender
	}
	if t.Response != nil && t.Response.Receiver != nil {
		return t.Response.Receiver
	}
	return nil
}

// ServerParty is the observed server end, as Server chooses it.
func (t *Transaction) ServerParty() *Party {
	if t.Query != nil && t.Query.Receiver != nil && t.Query.Receiver.Proc != nil {
		return t.Query.Receiver
	}
	if t.Response != nil && t.Response.Sender != nil {
		return t.Response.Sender
	}
	return nil
}

// IfaceName is the party's network device, "" when unknown or for no party.
func (p *Party) IfaceName() string {
	if p == nil {
		return ""
	}
	return p.Iface
}

// Server is the local process at the server end (a local resolver): the
// query's receiver, or the response's sender.
func (t *Transaction) Server() *Process {
	if p := t.ServerParty(); p != nil {
		return p.Proc
	}
	return nil
}

// Question is the message whose question section describes the exchange:
// the query's, else the response's.
func (t *Transaction) Question() *Message {
	if t.Query != nil && (t.Query.QName != "" || t.Query.QType != 0) {
		return t.Query
	}
	if t.Response != nil && (t.Response.QName != "" || t.Response.QType != 0) {
		return t.Response
	}
	return nil
}

// Latency is the client's wait for the response: as the recorder measured
// it, else the time between the two messages; 0 when unknown.
func (t *Transaction) Latency() time.Duration {
	if t.Response == nil {
		return 0
	}
	if t.Response.Latency > 0 {
		return t.Response.Latency
	}
	if t.Query != nil {
		if d := t.Response.Time.Sub(t.Query.Time); d > 0 {
			return d
		}
	}
	return 0
}

// Status says what became of the exchange, in who-resolved's words: the
// response code (NOERROR, NXDOMAIN, ...), "unanswered", "cut at snaplen"
// (the response's bytes were cut, so its answers may be incomplete) or
// "undecodable" (no response code could be read).
func (t *Transaction) Status() string {
	r := t.Response
	switch {
	case r == nil:
		return "unanswered"
	case r.Cut:
		return "cut at snaplen"
	case r.Rcode < 0:
		return "undecodable"
	}
	return dnstext.RcodeName(r.Rcode)
}

// Note joins what a reader must know about either message's bytes.
func (t *Transaction) Note() string {
	var q, r string
	if t.Query != nil {
		q = t.Query.Note()
	}
	if t.Response != nil {
		r = t.Response.Note()
	}
	switch {
	case q != "" && r != "":
		return "query: " + q + "; response: " + r
	case q != "":
		return "query: " + q
	case r != "":
		return "response: " + r
	}
	return ""
}

// UID is the exchange's Zeek-style connection id, the same in every export
// format and in the packet comments of pcapng: "C" and 17 base-62 digits of
// a hash of the host, the evidence file's base name and the msgs.id of the
// query (for a lone response, of the query it answers if the recorder linked
// one, else its own). The same evidence always gives the same uids.
func (t *Transaction) UID() string {
	if t.Query != nil {
		return ExchangeUID(t.Query, t.Query.ID)
	}
	id := t.Response.ID
	if t.Response.QueryID != 0 {
		id = t.Response.QueryID
	}
	return ExchangeUID(t.Response, id)
}

// ExchangeUID is UID for the exchange whose query has msgs.id id in m's
// file: pcapng's comments name each message's exchange by it.
func ExchangeUID(m *Message, id int64) string {
	var buf [128]byte
	k := append(buf[:0], m.Host...)
	k = append(k, 0)
	k = append(k, filepath.Base(m.File)...)
	k = append(k, 0)
	k = strconv.AppendInt(k, id, 10)
	sum := sha256.Sum256(k)
	// 96 bits, as Zeek's uids have, in base 62: 17 digits always suffice.
	v := [3]uint32{binary.BigEndian.Uint32(sum[0:]), binary.BigEndian.Uint32(sum[4:]), binary.BigEndian.Uint32(sum[8:])}
	var out [18]byte
	out[0] = 'C'
	for i := 17; i > 0; i-- {
		var rem uint64
		for j := range v {
			cur := rem<<32 | uint64(v[j])
			v[j] = uint32(cur / 62)
			rem = cur % 62
		}
		out[i] = base62[rem]
	}
	return string(out[:])
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// pairWindow is how long, in stream time, a query waits for its response
// before it is written as unanswered. The recorder links a response to a
// query only within 10 s (record's queryTimeout); the margin covers the
// difference between the two clocks.
const pairWindow = 30 * time.Second

// errStop ends a stream early without an error.
var errStop = errors.New("stop")

// pairer turns the time-ordered stream of messages into transactions. A
// query waits in pending until the response the recorder linked to it
// (Response with QueryID = its id, in the same file) arrives, or until the
// stream has moved pairWindow past it; responses with no waiting query
// are emitted alone. Memory holds only the queries of the last pairWindow
// that are still waiting. Transactions are emitted when complete, so their
// order is that of their completion, as Zeek writes its dns.log.
type pairer struct {
	emit    func(*Transaction) error
	pending map[msgKey]*Message
	fifo    []*Message // pending queries in time order; answered ones are skipped
	head    int

	Unanswered, Alone int64
}

type msgKey struct {
	file string
	id   int64
}

func newPairer(emit func(*Transaction) error) *pairer {
	return &pairer{emit: emit, pending: map[msgKey]*Message{}}
}

func (p *pairer) add(m *Message) error {
	if err := p.expire(m.Time.Add(-pairWindow)); err != nil {
		return err
	}
	if !m.Response {
		p.pending[msgKey{m.File, m.ID}] = m
		p.fifo = append(p.fifo, m)
		return nil
	}
	if m.QueryID != 0 {
		k := msgKey{m.File, m.QueryID}
		if q, ok := p.pending[k]; ok {
			delete(p.pending, k)
			return p.emit(&Transaction{Query: q, Response: m})
		}
	}
	p.Alone++
	return p.emit(&Transaction{Response: m})
}

// expire emits, unanswered, the waiting queries older than cutoff.
func (p *pairer) expire(cutoff time.Time) error {
	for p.head < len(p.fifo) {
		q := p.fifo[p.head]
		if !q.Time.Before(cutoff) {
			break
		}
		p.fifo[p.head] = nil
		p.head++
		if err := p.emitUnanswered(q); err != nil {
			return err
		}
	}
	// Reclaim the consumed front once it is most of the slice.
	if p.head > 1024 && p.head*2 > len(p.fifo) {
		n := copy(p.fifo, p.fifo[p.head:])
		clear(p.fifo[n:])
		p.fifo = p.fifo[:n]
		p.head = 0
	}
	return nil
}

func (p *pairer) emitUnanswered(q *Message) error {
	k := msgKey{q.File, q.ID}
	if p.pending[k] != q {
		return nil // answered meanwhile
	}
	delete(p.pending, k)
	p.Unanswered++
	return p.emit(&Transaction{Query: q})
}

// flush emits every query still waiting, at the end of the stream.
func (p *pairer) flush() error {
	for ; p.head < len(p.fifo); p.head++ {
		if err := p.emitUnanswered(p.fifo[p.head]); err != nil {
			return err
		}
	}
	p.fifo, p.head = nil, 0
	return nil
}

// TransactionStats counts what Transactions read and gave.
type TransactionStats struct {
	Messages     int64 // DNS messages read from the evidence
	Transactions int64 // transactions given to fn
	Unanswered   int64 // queries without a response
	Alone        int64 // responses without their query
}

// Transactions calls fn for every DNS exchange among the messages that pass
// opts.Filter: each query with the response linked to it, queries that got
// none, and responses whose query is not among the messages. They come in
// the order they complete (see pairer); memory stays bounded on files of any
// size. opts.Limit counts transactions.
//
// The counts say what it read and paired.
func (d *DB) Transactions(ctx context.Context, opts MessageOptions, fn func(*Transaction) error) (TransactionStats, error) {
	var st TransactionStats
	limit := opts.Limit
	opts.Limit = 0
	p := newPairer(func(t *Transaction) error {
		if err := fn(t); err != nil {
			return err
		}
		st.Transactions++
		if limit > 0 && st.Transactions >= int64(limit) {
			return errStop
		}
		return nil
	})
	err := d.Messages(ctx, opts, func(m *Message) error {
		st.Messages++
		return p.add(m)
	})
	if err == nil {
		err = p.flush()
	}
	if errors.Is(err, errStop) {
		err = nil
	}
	st.Unanswered, st.Alone = p.Unanswered, p.Alone
	return st, err
}
