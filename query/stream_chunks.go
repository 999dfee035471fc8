package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A stream of one file's messages is read in chunks of its time range by
// several workers at once, each on two connections of its own (the
// messages, and their answers), and handed on in order: the statements'
// stepping, which is most of an export's CPU, runs on every core instead
// of one. Memory holds at most a few chunks' batches.

// tsRange bounds a chunk: lo <= ts_ns < hi, or no upper bound when open.
type tsRange struct {
	lo, hi int64
	open   bool
}

// chunkTarget is how many messages a chunk should hold; the planner sizes
// each chunk's time span from the density of the last one read.
const chunkTarget = 32 << 10

// maxStreamWorkers bounds the workers of one stream.
const maxStreamWorkers = 4

type chunk struct {
	r       tsRange
	batches chan []*Message
	err     error // set before batches is closed
}

// streamWorkers is how many workers read a stream: one per core, up to
// maxStreamWorkers; fewer than two means the single reader.
func streamWorkers() int {
	return min(runtime.GOMAXPROCS(0), maxStreamWorkers)
}

// chunkable tells whether f's stream can be read in chunks: its indexes
// must make each chunk a range (a crashed file has none).
func (f *file) chunkable(ctx context.Context) (bool, error) {
	var n int
	err := f.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('msgs_ts', 'rrs_message')`).Scan(&n)
	return n == 2, err
}

// startChunked starts the planner, the workers and the sequencer that
// feeds s.batches. It fails, leaving nothing running, if the file's time
// range cannot be read.
func (s *msgSource) startChunked(ctx context.Context, workers int) error {
	var lo, hi *int64
	if err := s.f.db.QueryRowContext(ctx, `SELECT min(ts_ns), max(ts_ns) FROM msgs`).Scan(&lo, &hi); err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	s.cancel = cancel
	s.batches = make(chan []*Message, 4)
	if lo == nil { // no messages
		cancel()
		close(s.batches)
		return nil
	}
	start, end := *lo, *hi
	if c := s.opts.After; c != nil && c.TS > start {
		start = c.TS
	}
	order := make(chan *chunk, workers+1)
	work := make(chan *chunk)
	var density atomic.Int64 // messages per second of the last chunk read, +1; 0 before any
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the planner
		defer wg.Done()
		defer close(order)
		defer close(work)
		span := int64(time.Second)
		from := start
		for {
			c := &chunk{r: tsRange{lo: from}, batches: make(chan []*Message, 4)}
			if span > end-from {
				c.r.open = true
			} else {
				c.r.hi = from + span
			}
			select {
			case order <- c:
			case <-rctx.Done():
				return
			}
			select {
			case work <- c:
			case <-rctx.Done():
				c.err = rctx.Err()
				close(c.batches)
				return
			}
			if c.r.open {
				return
			}
			from = c.r.hi
			if d := density.Load(); d > 0 {
				next := int64(float64(chunkTarget) / float64(d) * float64(time.Second))
				span = max(span/4, min(span*4, next), 1)
			} else {
				span *= 4
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.chunkWorker(rctx, work, &density)
		}()
	}
	go func() { // the sequencer
		defer close(s.batches)
		defer wg.Wait()
		defer cancel()
		for c := range order {
			for b := range c.batches {
				select {
				case s.batches <- b:
				case <-rctx.Done():
					return
				}
			}
			if c.err != nil {
				if !errors.Is(c.err, context.Canceled) || ctx.Err() != nil {
					s.err = fmt.Errorf("read messages: %w", c.err)
				}
				return
			}
		}
	}()
	return nil
}

// chunkWorker reads the chunks handed to it on two connections of its own.
func (s *msgSource) chunkWorker(ctx context.Context, work <-chan *chunk, density *atomic.Int64) {
	fail := func(err error) {
		for c := range work {
			c.err = err
			close(c.batches)
		}
	}
	mconn, err := s.f.db.Conn(ctx)
	if err != nil {
		fail(err)
		return
	}
	defer mconn.Close()
	aconn, err := s.f.db.Conn(ctx)
	if err != nil {
		fail(err)
		return
	}
	defer aconn.Close()
	err = mconn.Raw(func(mdc any) error {
		return aconn.Raw(func(adc any) error {
			mq, ok1 := mdc.(driver.QueryerContext)
			aq, ok2 := adc.(driver.QueryerContext)
			if !ok1 || !ok2 {
				return fmt.Errorf("the SQLite driver (%T) cannot run a query", mdc)
			}
			for c := range work {
				n, err := s.readChunk(ctx, mq, aq, c)
				c.err = err
				close(c.batches)
				if err != nil {
					return err
				}
				if secs := float64(c.r.hi-c.r.lo) / float64(time.Second); !c.r.open && secs > 0 {
					density.Store(int64(float64(n)/secs) + 1)
				}
			}
			return nil
		})
	})
	if err != nil {
		fail(err)
	}
}

// readChunk reads one chunk's messages with their answers into its
// batches, and returns how many it read.
func (s *msgSource) readChunk(ctx context.Context, mq, aq driver.QueryerContext, c *chunk) (int, error) {
	o := *s.opts
	o.chunk = &c.r
	q, args := s.f.messagesSQL(s.idx, &o)
	mrows, err := queryRaw(ctx, mq, q, args)
	if err != nil {
		return 0, err
	}
	defer mrows.Close()
	// Started after the messages' statement: its snapshot is the same or
	// later, and holds every answer of the messages read.
	q, args = answersSQL(s.idx, &o)
	arows, err := queryRaw(ctx, aq, q, args)
	if err != nil {
		return 0, err
	}
	defer arows.Close()
	ans := answerCursor{rows: arows, dest: make([]driver.Value, len(arows.Columns()))}
	dest := make([]driver.Value, len(mrows.Columns()))
	batch := make([]*Message, 0, streamBatch)
	send := func() error {
		select {
		case c.batches <- batch:
			batch = make([]*Message, 0, streamBatch)
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n := 0
	for {
		if err := mrows.Next(dest); err == io.EOF {
			break
		} else if err != nil {
			return n, err
		}
		r, err := s.scanPacked(ctx, dest)
		if err != nil {
			return n, err
		}
		m := newMessage()
		if err := s.fill(ctx, m, &r); err != nil {
			return n, err
		}
		if err := ans.attach(m, r.ts); err != nil {
			return n, err
		}
		batch = append(batch, m)
		n++
		if len(batch) == cap(batch) {
			if err := send(); err != nil {
				return n, err
			}
		}
	}
	if len(batch) > 0 {
		return n, send()
	}
	return n, nil
}

func queryRaw(ctx context.Context, qc driver.QueryerContext, q string, args []any) (driver.Rows, error) {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, err
		}
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return qc.QueryContext(ctx, q, nv)
}

// answerCursor walks answersSQL's rows alongside the messages, in the
// same goroutine.
type answerCursor struct {
	rows driver.Rows
	dest []driver.Value
	cur  answerRow
	have bool
	done bool
}

// attach appends to m the answers of the message at (ts, m.ID), skipping
// those of messages before it that the messages' statement did not see.
func (a *answerCursor) attach(m *Message, ts int64) error {
	for {
		if !a.have {
			if a.done {
				return nil
			}
			if err := a.rows.Next(a.dest); err == io.EOF {
				a.done = true
				return nil
			} else if err != nil {
				return fmt.Errorf("read answers: %w", err)
			}
			v := a.dest
			a.cur = answerRow{ts: anyInt(v[0]), msg: anyInt(v[1]),
				rr: RR{Name: anyNullString(v[2]).String, Type: uint16(anyInt(v[3])), TTL: uint32(anyInt(v[3]) >> 16), Data: anyNullString(v[4]).String}}
			clear(v)
			a.have = true
		}
		r := &a.cur
		if r.ts > ts || (r.ts == ts && r.msg > m.ID) {
			return nil
		}
		if r.msg == m.ID {
			if m.Answers == nil {
				m.Answers = make([]RR, 0, 2)
			}
			m.Answers = append(m.Answers, r.rr)
		}
		a.have = false
	}
}
