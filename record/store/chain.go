package store

import (
	"context"
	"fmt"

	"github.com/dnsrec/dnsrec/schema"
)

// chainState is the writer's side of the hash chain (schema/chain.go): the
// link being built for the batch in progress, and the head of the chain
// committed so far.
type chainState struct {
	seq  int64  // of the last committed link
	head string // its hash
	// The batch in progress.
	tables map[string]*tableRun
	exits  [][2]int64
}

type tableRun struct {
	first, last int64
	h           *schema.RowHasher
}

// row adds a row written in this batch to its table's digest.
func (c *chainState) row(table string, vals []any) error {
	if c.tables == nil {
		c.tables = map[string]*tableRun{}
	}
	id, _ := vals[0].(int64)
	t := c.tables[table]
	if t == nil {
		t = &tableRun{first: id, h: schema.NewRowHasher()}
		c.tables[table] = t
	}
	if id != t.last+1 && t.last != 0 {
		return fmt.Errorf("chain: %s id %d after %d: ids in a batch must be consecutive", table, id, t.last)
	}
	t.last = id
	return t.h.Row(vals)
}

func (c *chainState) empty() bool { return len(c.tables) == 0 && len(c.exits) == 0 }

// link builds the batch's chain link, without committing to it.
func (c *chainState) link(tsNs int64, stoppedNs *int64) *schema.ChainLink {
	l := &schema.ChainLink{Seq: c.seq + 1, TsNs: tsNs, Prev: c.head, Tables: map[string]schema.ChainRange{},
		Exits: c.exits, StoppedNs: stoppedNs}
	if l.Exits == nil {
		l.Exits = [][2]int64{}
	}
	for name, t := range c.tables {
		l.Tables[name] = schema.ChainRange{First: t.first, Last: t.last, Digest: t.h.Sum()}
	}
	return l
}

// reset drops the batch in progress (after a commit or a rollback).
func (c *chainState) reset() {
	c.tables = nil
	c.exits = nil
}

// writeLink appends the batch's link inside the batch's transaction.
func (s *Store) writeLink(ctx context.Context, tsNs int64, stoppedNs *int64) (*schema.ChainLink, error) {
	l := s.chain.link(tsNs, stoppedNs)
	h := l.Hash()
	var stopped any
	if stoppedNs != nil {
		stopped = *stoppedNs
	}
	if err := s.exec(ctx, sqlChain, l.Seq, l.TsNs, l.Prev, l.TablesJSON(), l.ExitsJSON(), stopped, h); err != nil {
		return nil, fmt.Errorf("write chain link: %w", err)
	}
	return l, nil
}

// Head is the hash of the last committed chain link and its number: the
// value to note down (or have the log keep) to anchor the evidence.
func (s *Store) Head() (seq int64, hash string) { return s.chain.seq, s.chain.head }
