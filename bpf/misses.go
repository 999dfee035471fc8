//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"
	"sort"
)

// Misses is, per program, how often the kernel skipped it because a BPF
// program of the same kind was already running on that CPU (the
// program's recursion_misses, Linux 5.12+). A skipped hook is a lost
// observation the ring buffer never saw, so it belongs with Drops.
//
// fentry/fexit programs are the ones that show it: the trampoline runs
// them with migration, not preemption, disabled, and marks each program
// busy per CPU while it runs; a task that preempts one mid-run on that
// CPU and reaches the same hook is not traced. Kernels that preempt in
// kernel mode (preempt=full, or the lazy model) do that under load.
func (c *Capture) Misses() (map[string]uint64, error) {
	out := map[string]uint64{}
	names := make([]string, 0, len(c.coll.Programs))
	for name := range c.coll.Programs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		st, err := c.coll.Programs[name].Stats()
		if err != nil {
			return nil, fmt.Errorf("program %s: %w", name, err)
		}
		if st.RecursionMisses > 0 {
			out[name] = st.RecursionMisses
		}
	}
	return out, nil
}

// MissedTotal sums Misses.
func (c *Capture) MissedTotal() (uint64, error) {
	m, err := c.Misses()
	var n uint64
	for _, v := range m {
		n += v
	}
	return n, err
}
