//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/dnsrec/dnsrec/anchor"
	"github.com/dnsrec/dnsrec/record/store"
)

// checkpointer signs the recording's checkpoints and hands them to the
// anchors (package anchor, docs/anchoring.md). Checkpoints are made from the
// recording loop and, at a rotation, from the goroutine finishing the old
// file: mu keeps them in order and their keys in a chain.
type checkpointer struct {
	mu        sync.Mutex
	keys      *anchor.Keys
	anchors   *anchor.Set
	recording string
	n         int64
	every     time.Duration
	last      time.Time
	events    func() (int64, string)
	log       *slog.Logger
	failed    bool // signing failed once: said so
}

// anchorWait is how long the anchors get at the stop to send what they
// hold.
const anchorWait = 5 * time.Second

func newCheckpointer(opts Options) (*checkpointer, error) {
	c := &checkpointer{recording: anchor.NewRecordingID(), every: opts.CheckpointEvery, events: opts.CheckpointEvents, log: opts.Logger}
	var err error
	if opts.SignKeyFile != "" {
		b, rerr := os.ReadFile(opts.SignKeyFile)
		if rerr != nil {
			return nil, fmt.Errorf("--sign-key: %w", rerr)
		}
		c.keys, err = anchor.FixedKeys(string(b))
		clear(b)
	} else {
		c.keys, err = anchor.NewKeys(c.recording)
	}
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	c.anchors, err = anchor.Open(opts.Anchors, anchor.Options{CAFile: opts.AnchorCA, Hostname: host, Logger: opts.Logger})
	if err != nil {
		c.keys.Close()
		return nil, err
	}
	opts.Logger.Info("signing checkpoints", "recording", c.recording, "first_key", c.keys.First(),
		"every", opts.CheckpointEvery, "anchors", opts.Anchors)
	return c, nil
}

// begin writes a file's session row with the recording id and the key of
// its first checkpoint, and makes that checkpoint.
func (c *checkpointer) begin(ctx context.Context, st *store.Store, sess Session) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	sess.RecordingID, sess.SignKey = c.recording, c.keys.First()
	if err := st.BeginSession(ctx, sess); err != nil {
		return err
	}
	seq, head := st.Head()
	c.makeLocked(sess.Part, seq, head, st.Messages(), anchor.ReasonStart)
	return nil
}

// due tells whether the next periodic checkpoint is due.
func (c *checkpointer) due(now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return now.Sub(c.last) >= c.every
}

// make signs one checkpoint and queues it for every anchor.
func (c *checkpointer) make(part int, seq int64, head string, msgs int64, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.makeLocked(part, seq, head, msgs, reason)
}

func (c *checkpointer) makeLocked(part int, seq int64, head string, msgs int64, reason string) {
	now := time.Now()
	c.last = now
	c.n++
	cp := &anchor.Checkpoint{Recording: c.recording, Part: part, N: c.n, Batch: seq, Head: head, Messages: msgs,
		TimeNs: now.UnixNano(), Interval: c.every, Reason: reason}
	if c.events != nil {
		cp.Events, cp.LastEvent = c.events()
	}
	signed, err := c.keys.Sign(cp)
	if err != nil {
		c.n-- // not made: the next one takes its number
		if !c.failed {
			c.failed = true
			c.log.Error("cannot sign a checkpoint", "err", err)
		}
		return
	}
	c.anchors.Send(cp, anchor.Line(cp, signed))
}

// stats is the anchors' counts as rows for the evidence file.
func (c *checkpointer) stats() []store.AnchorRow {
	var out []store.AnchorRow
	for _, s := range c.anchors.Stats() {
		out = append(out, store.AnchorRow{Dest: s.Dest, Made: s.Made, Sent: s.Sent, Dropped: s.Dropped, Queued: s.Queued, Err: s.Err})
	}
	return out
}

// close gives the anchors anchorWait to send what they hold, logs what
// each got, and erases the keys left.
func (c *checkpointer) close() {
	for _, s := range c.anchors.Close(anchorWait) {
		lvl := slog.LevelInfo
		if s.Dropped > 0 {
			lvl = slog.LevelError
		}
		c.log.Log(context.Background(), lvl, "anchor", "dest", s.Dest, "made", s.Made, "sent", s.Sent, "dropped", s.Dropped, "err", s.Err)
	}
	c.mu.Lock()
	c.keys.Close()
	c.mu.Unlock()
}
