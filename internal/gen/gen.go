package gen

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/dnsrec/dnsrec/record/store"
)

// Version identifies the traffic Write produces. It changes whenever a
// change to this package changes the files it writes, so that cached
// benchmark files are made again.
const Version = 1

// Defaults of Config.
const (
	DefaultMessages = 10_000_000
	DefaultDuration = 24 * time.Hour
	DefaultSeed     = 1
)

// DefaultStart is when a generated recording starts unless Config.Start
// says otherwise.
var DefaultStart = time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC)

// Config sizes a generated file.
type Config struct {
	// Messages is the number of observations to write, as the recorder's
	// Summary.Messages and `dnsrec query info`'s observations count them: a
	// loopback message seen by its sender and its receiver counts twice. 0 is DefaultMessages.
	Messages int64
	// Seed makes the traffic; the same seed and size give the same rows.
	// 0 is DefaultSeed.
	Seed uint64
	// Start and Duration place the recording in time (zero: DefaultStart,
	// DefaultDuration). The last message lands near Start+Duration.
	Start    time.Time
	Duration time.Duration
	// BatchSize is how many observations each commit holds (0:
	// store.DefaultBatchSize, a busy recorder's batch).
	BatchSize int
	// Progress, if set, is called after each commit with the observations
	// written so far and the total.
	Progress func(done, total int64)
}

func (c Config) withDefaults() Config {
	if c.Messages <= 0 {
		c.Messages = DefaultMessages
	}
	if c.Seed == 0 {
		c.Seed = DefaultSeed
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	if c.Duration <= 0 {
		c.Duration = DefaultDuration
	}
	if c.BatchSize <= 0 {
		c.BatchSize = store.DefaultBatchSize
	}
	return c
}

// Facts is what Write put in the file, counted as it was generated (not
// read back), so that tests and benchmarks can check answers against it.
type Facts struct {
	Path        string
	Seed        uint64
	Host        string
	Start, Stop time.Time // the session's started_ns and stopped_ns

	Messages     int64 // observations: `dnsrec query info`'s observations
	Rows         int64 // msgs rows
	RRs          int64 // rrs rows (answer-section records)
	Names        int64 // names rows
	Processes    int64 // processes rows
	Queries      int64 // msgs rows sent by the client end of their exchange
	Unanswered   int64 // queries no response names (query_id)
	NXDomain     int64 // responses (msgs rows) with rcode NXDOMAIN
	Unattributed int64 // observations without an identified owner (loss.unattributed)

	Summary store.Summary // what the Store reported at the stop: size, SHA-256, chain head

	Incident Incident
	Tunnel   Tunnel
	// BusyName is the most asked-for name: who-resolved's worst exact case.
	BusyName string
	// Probe is an address the busy name resolves to, for resolved-to.
	Probe Probe
}

// Incident is the planted compromise.
type Incident struct {
	Name   string // c2.evil.test, the name curl resolves
	Domain string // evil.test: Name, and the other names of the incident under it
	CNAME  string // what Name is an alias of
	IP     string // the A record at the end of the chain
	// Resolvers is what `dnsrec query who-resolved Domain` must answer:
	// one entry per process and name, in its order (first seen, then
	// name, pid, comm).
	Resolvers []Resolver
}

// Resolver is one row of who-resolved: a process and a name it asked for.
type Resolver struct {
	QName    string
	PID      int64
	Comm     string
	Exe      string
	UID      int64
	Ancestry string // as query.Ancestry.String prints it: "bash(4102) > sshd(4101) > ..."
	First    time.Time
	Last     time.Time
	Queries  int64
	Answers  []string       // distinct answer data (rrs.data), in the order first received
	Status   map[string]int // outcome of the queries: NOERROR, NXDOMAIN, unanswered
}

// Tunnel is the DNS tunnel: TXT queries for high-entropy names, one name
// each, under Domain.
type Tunnel struct {
	Domain  string
	Queries int64 // = distinct names under Domain
	PID     int64
	Comm    string
}

// Probe is an address and its /24 for resolved-to, with the number of
// answer records (rrs rows) that carry them.
type Probe struct {
	IP      string
	IPRRs   int64
	CIDR    string
	CIDRRRs int64
}

// Write creates a new evidence file at path (refusing an existing one) and
// fills it as Config says. The traffic is built in one goroutine and
// written in another. On error or cancellation the partial file is removed.
func Write(ctx context.Context, path string, cfg Config) (_ Facts, err error) {
	cfg = cfg.withDefaults()
	st, err := store.Create(ctx, path, false)
	if err != nil {
		return Facts{}, err
	}
	m := newModel(cfg)
	finished := false
	defer func() {
		if err == nil {
			return
		}
		if !finished {
			// Finish is the Store's only way to close; the file is
			// removed anyway, so what is queued need not be written.
			st.Rollback()
			_, ferr := st.Finish(context.WithoutCancel(ctx), m.anchorWall)
			err = errors.Join(err, ferr)
		}
		for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
			os.Remove(p)
		}
	}()
	if err := st.BeginSession(ctx, m.session()); err != nil {
		return Facts{}, err
	}

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []op, 16)
	genErr := make(chan error, 1)
	go func() {
		defer close(chunks)
		genErr <- m.run(gctx, func(c []op) error {
			select {
			case chunks <- c:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	}()
	w := writer{st: st, cfg: cfg, lastCheckpoint: time.Now()}
	werr := w.consume(ctx, chunks)
	cancel()
	for range chunks { // let the generator see the cancellation and end
	}
	if gerr := <-genErr; werr == nil && gerr != nil {
		werr = gerr
	}
	if werr != nil {
		return Facts{}, werr
	}

	f := m.facts()
	f.Path = path
	sum, err := st.Finish(ctx, f.Stop.UnixNano())
	finished = true
	if err != nil {
		return Facts{}, fmt.Errorf("finish %s: %w", path, err)
	}
	if sum.Messages != f.Messages {
		return Facts{}, fmt.Errorf("finish %s: the file holds %d messages, the generator wrote %d", path, sum.Messages, f.Messages)
	}
	f.Summary = sum
	return f, nil
}

// opKind says what an op asks of the Store.
type opKind uint8

const (
	opProcess opKind = iota // InsertProcess; the model assigned id ahead
	opMessage               // InsertMessage
	opExit                  // SetExit
)

// op is one Store call, in the order the model made it.
type op struct {
	kind  opKind
	id    int64 // opProcess: the id the Store must return; opExit: the process
	proc  *store.ProcRow
	msg   *store.MsgRow
	obs   int   // opMessage: observations in the row
	unatt int   // opMessage: of them, without an owner
	tsNs  int64 // opMessage: the row's time; opExit: the exit time
}

// writer feeds ops to the Store and commits as the pipeline does: every
// BatchSize observations, with a loss row when the counters changed, and a
// WAL checkpoint every 2 seconds.
type writer struct {
	st             *store.Store
	cfg            Config
	pending        int
	done           int64
	unatt, lossed  int64
	lastTs         int64
	lastCheckpoint time.Time
}

func (w *writer) consume(ctx context.Context, chunks <-chan []op) error {
	for c := range chunks {
		if err := ctx.Err(); err != nil {
			return err
		}
		for i := range c {
			if err := w.apply(ctx, &c[i]); err != nil {
				return err
			}
		}
	}
	return w.commit(ctx)
}

func (w *writer) apply(ctx context.Context, o *op) error {
	switch o.kind {
	case opProcess:
		id, err := w.st.InsertProcess(ctx, o.proc)
		if err != nil {
			return err
		}
		if id != o.id {
			return fmt.Errorf("process %d (%s) got id %d, the generator expected %d", o.proc.PID, o.proc.Comm, id, o.id)
		}
	case opExit:
		return w.st.SetExit(ctx, o.id, o.tsNs)
	case opMessage:
		if err := w.st.InsertMessage(ctx, o.msg); err != nil {
			return err
		}
		w.pending += o.obs
		w.unatt += int64(o.unatt)
		w.lastTs = o.tsNs
		if w.pending >= w.cfg.BatchSize {
			return w.commit(ctx)
		}
	}
	return nil
}

func (w *writer) commit(ctx context.Context) error {
	if w.unatt != w.lossed {
		if err := w.st.InsertLoss(ctx, w.lastTs, store.Loss{Unattributed: uint64(w.unatt)}); err != nil {
			return err
		}
		w.lossed = w.unatt
	}
	if err := w.st.Commit(); err != nil {
		return err
	}
	w.done += int64(w.pending)
	w.pending = 0
	if time.Since(w.lastCheckpoint) >= 2*time.Second {
		if err := w.st.Checkpoint(ctx); err != nil {
			return err
		}
		w.lastCheckpoint = time.Now()
	}
	if w.cfg.Progress != nil {
		w.cfg.Progress(w.done, w.cfg.Messages)
	}
	return nil
}
