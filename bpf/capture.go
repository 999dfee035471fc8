//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Capture is a loaded and attached tier.
type Capture struct {
	// Tier is the tier that is running.
	Tier Tier
	// Events is the ring buffer every record arrives on.
	Events *ebpf.Map

	drops    *ebpf.Map // ringbuf_drops
	msgDrops *ebpf.Map // msg_drops
	coll     *ebpf.Collection
	links    []link.Link
	hooks    []*hook // the links, as the guard watches them (guard.go)
	cleanup  func() error

	// The libc resolver probes (libc.go), attached by their Scan.
	libcOnce sync.Once
	libc     *Libc
	// The DNS-over-TLS probes (tls.go), attached by their Scan.
	tlsOnce sync.Once
	tls     *Libc
	// tls_sys_enter serves the TLS probes and the encrypted-DNS
	// connections (enc.go): attached once, by whichever wants it first.
	sysEnterOnce sync.Once
	sysEnterErr  error

	// The uprobes' removal, once StopHooks started it: done is closed
	// when it ends, with its error in probesErr.
	probesMu  sync.Mutex
	done      chan struct{}
	probesErr error
	reported  bool
}

// Drops returns the ring buffer records of every kind the kernel could not
// write, summed over CPUs.
func (c *Capture) Drops() (uint64, error) {
	return sumPerCPU(c.drops)
}

// MsgDrops returns, of Drops, the DNS message records: the messages lost
// because the ring was full.
func (c *Capture) MsgDrops() (uint64, error) {
	return sumPerCPU(c.msgDrops)
}

// sumPerCPU reads a one-slot per-CPU counter.
func sumPerCPU(m *ebpf.Map) (uint64, error) {
	var perCPU []uint64
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return 0, fmt.Errorf("read drop counters: %w", err)
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n, nil
}

// Detach removes every hook, so no new records arrive; the ring buffer and
// counters stay readable until Close.
func (c *Capture) Detach() error {
	return errors.Join(c.StopHooks(), c.waitProbes())
}

// StopHooks removes the tier's hooks at once and starts removing the
// uprobes (libc resolver calls, TLS libraries) in the background: the
// kernel removes uprobes one at a time, each after an RCU grace period,
// and a few dozen of them took two seconds of every stop, before the
// file could be finished. Until they are gone they may still write
// records, which nobody reads once the ring is flushed. Detach and Close
// wait for the removal.
func (c *Capture) StopHooks() error {
	c.probesMu.Lock()
	if c.done == nil {
		// Through LibcProbes, not c.libc: a Scan may be starting right now.
		libc, tls := c.LibcProbes(), c.TLSProbes()
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.probesErr = errors.Join(libc.detach(), tls.detach())
		}()
		c.done = done
	}
	c.probesMu.Unlock()
	var errs []error
	for i := len(c.links) - 1; i >= 0; i-- {
		if err := c.links[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	c.links = nil
	c.hooks = nil
	return errors.Join(errs...)
}

// waitProbes waits for the uprobes' removal and returns its error the
// first time.
func (c *Capture) waitProbes() error {
	c.probesMu.Lock()
	done := c.done
	c.probesMu.Unlock()
	if done == nil {
		return nil
	}
	<-done
	c.probesMu.Lock()
	defer c.probesMu.Unlock()
	if c.reported {
		return nil
	}
	c.reported = true
	return c.probesErr
}

// Close detaches and releases everything.
func (c *Capture) Close() error {
	errs := []error{c.Detach()}
	if c.coll != nil {
		c.coll.Close()
		c.coll = nil
	}
	if c.cleanup != nil {
		errs = append(errs, c.cleanup())
		c.cleanup = nil
	}
	return errors.Join(errs...)
}

// MissedTotal is how often the kernel skipped one of the capture's
// programs because a BPF program of the same kind was already running on
// that CPU (the programs' recursion_misses, summed). A skipped hook is a
// lost observation the ring buffer never saw, so it belongs with Drops.
//
// fentry/fexit programs are the ones that show it: the trampoline runs
// them with migration, not preemption, disabled, and marks each program
// busy per CPU while it runs; a task that preempts one mid-run on that
// CPU and reaches the same hook is not traced. Kernels that preempt in
// kernel mode (preempt=full, or the lazy model) do that under load.
func (c *Capture) MissedTotal() (uint64, error) {
	var n uint64
	for name, p := range c.coll.Programs {
		st, err := p.Stats()
		if err != nil {
			return n, fmt.Errorf("program %s: %w", name, err)
		}
		n += st.RecursionMisses
	}
	return n, nil
}

// LibcProbes returns the capture's libc resolver probes; nothing is
// attached before its first Scan.
func (c *Capture) LibcProbes() *Libc {
	c.libcOnce.Do(func() {
		c.libc = &Libc{
			c:     c,
			proc:  "/proc",
			kind:  libcKind,
			files: map[fileID]bool{},
			seen:  map[progKey]bool{},
		}
	})
	return c.libc
}
