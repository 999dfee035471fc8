//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// ErrTierUnsupported wraps the reason a kernel cannot run a tier.
var ErrTierUnsupported = errors.New("hook tier not supported by this kernel")

// KernelBTF is where the running kernel publishes its BTF.
const KernelBTF = "/sys/kernel/btf/vmlinux"

// ErrNoKernelBTF: the kernel publishes no BTF, and no tier runs without it.
// Every tier's process table hooks sched_process_exec and _exit as BTF
// tracepoints (tp_btf), which the kernel attaches by their id in its own
// BTF, so BTF loaded from a file (btfhub, say) cannot stand in; and the
// programs' field offsets are relocated against it (CO-RE).
var ErrNoKernelBTF = errors.New("this kernel publishes no BTF (" + KernelBTF + " is missing): it was built without CONFIG_DEBUG_INFO_BTF, and dnsrec's hooks need it on every tier. Use a kernel built with it (Debian 11+, Ubuntu 20.10+, RHEL/Alma/Rocky 8.2+, Fedora 31+ and most cloud kernels are)")

// requireKernelBTF fails with ErrNoKernelBTF before any tier is tried.
func requireKernelBTF() error {
	if _, err := os.Stat(KernelBTF); errors.Is(err, os.ErrNotExist) {
		return ErrNoKernelBTF
	}
	return nil
}

// Config is what the kernel programs are told before they are loaded.
type Config struct {
	// Ports are the DNS ports to capture; at most MaxPorts.
	Ports []uint16
	// Snaplen is the most payload bytes kept per message, 1..MaxSnaplen.
	Snaplen uint32
	// RingBytes is the ring buffer size: a power of two, at least a page.
	RingBytes uint32
	// StableHooks makes the fentry and kprobe tiers hook only stable,
	// non-static functions (ip_send_skb and ip6_send_skb rather than
	// udp_send_skb and udp_v6_send_skb), as they do anyway where the
	// latter were inlined or cloned.
	StableHooks bool
}

// MaxRingBytes is the largest ring buffer Config takes: 1 GiB.
const MaxRingBytes = 1 << 30

// Validate reports a configuration the programs cannot take.
func (c Config) Validate() error {
	if len(c.Ports) == 0 || len(c.Ports) > MaxPorts {
		return fmt.Errorf("between 1 and %d ports can be captured, got %d", MaxPorts, len(c.Ports))
	}
	for _, p := range c.Ports {
		if p == 0 {
			return errors.New("port 0 cannot be captured")
		}
	}
	if c.Snaplen == 0 || c.Snaplen > MaxSnaplen {
		return fmt.Errorf("snaplen must be 1..%d, got %d", MaxSnaplen, c.Snaplen)
	}
	page := uint32(os.Getpagesize())
	if c.RingBytes < page || c.RingBytes > MaxRingBytes || c.RingBytes&(c.RingBytes-1) != 0 {
		got := fmt.Sprintf("%d bytes", c.RingBytes)
		if c.RingBytes >= 1<<20 && c.RingBytes%(1<<20) == 0 {
			got = fmt.Sprintf("%d MiB", c.RingBytes>>20)
		}
		return fmt.Errorf("ring buffer size must be a power of two between %d bytes and %d MiB, got %s", page, MaxRingBytes>>20, got)
	}
	return nil
}

// Capture is a loaded and attached tier.
type Capture struct {
	// Tier is the tier that is running.
	Tier Tier
	// Events is the ring buffer every record arrives on.
	Events *ebpf.Map

	drops   *ebpf.Map
	coll    *ebpf.Collection
	links   []link.Link
	cleanup func() error

	// The libc resolver probes (libc.go), attached by their Scan.
	libcOnce sync.Once
	libc     *Libc
}

// Loader is a checked request for a capture: a configuration validated once,
// and the tiers to try. NewLoader touches no kernel state, so that a caller
// can refuse a bad configuration before preparing anything else; Open then
// loads and attaches.
type Loader struct {
	cfg   Config
	tiers []Tier // best first
	auto  bool   // try each of tiers; else the one, or its error
}

// NewLoader checks cfg, and tier: one of Tiers, or TierAuto (or "") for the
// best tier that runs on this kernel.
func NewLoader(tier Tier, cfg Config) (*Loader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if tier == TierAuto || tier == "" {
		return &Loader{cfg: cfg, tiers: Tiers, auto: true}, nil
	}
	if _, ok := tierDescs[tier]; !ok {
		return nil, fmt.Errorf("unknown hook tier %q", tier)
	}
	return &Loader{cfg: cfg, tiers: []Tier{tier}}, nil
}

// Open loads and attaches the loader's tier; for TierAuto, as OpenAuto
// does, the best one that runs, plus why each better one did not. A forced
// tier that cannot run is an error, with no Skipped.
func (l *Loader) Open() (*Capture, []Skipped, error) {
	if err := requireKernelBTF(); err != nil {
		return nil, nil, err
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, nil, fmt.Errorf("remove memlock limit: %w", err)
	}
	if !l.auto {
		c, err := open(l.tiers[0], l.cfg)
		return c, nil, err
	}
	var skipped []Skipped
	order, passedOver := autoOrder(l.tiers)
	for _, t := range order {
		c, err := open(t, l.cfg)
		if err == nil {
			for p, why := range passedOver {
				if p != t {
					skipped = append(skipped, Skipped{p, why})
				}
			}
			return c, skipped, nil
		}
		if !errors.Is(err, ErrTierUnsupported) {
			// A verifier rejection or an attach failure on a kernel that
			// has the feature is a defect to report, not a reason to
			// record quietly with a lesser tier.
			return nil, skipped, fmt.Errorf("hook tier %s failed on a kernel that supports it (use --hook to force another tier): %w", t, err)
		}
		skipped = append(skipped, Skipped{t, err})
	}
	errs := make([]error, len(skipped))
	for i, s := range skipped {
		errs[i] = s.Err
	}
	return nil, skipped, fmt.Errorf("no hook tier runs on this kernel: %w", errors.Join(errs...))
}

// Open loads tier with cfg and attaches all of its programs. On any failure
// it releases what it had already set up.
func Open(tier Tier, cfg Config) (*Capture, error) {
	l, err := NewLoader(tier, cfg)
	if err != nil {
		return nil, err
	}
	if l.auto {
		return nil, fmt.Errorf("unknown hook tier %q", tier)
	}
	c, _, err := l.Open()
	return c, err
}

// Skipped says why OpenAuto did not use a better tier.
type Skipped struct {
	Tier Tier
	Err  error
}

// OpenAuto tries each tier, best first, with a real load and attach (the
// only probe that answers for lockdown, policy and inlined functions), and
// returns the first that runs, plus why each better one did not.
func OpenAuto(cfg Config) (*Capture, []Skipped, error) {
	l, err := NewLoader(TierAuto, cfg)
	if err != nil {
		return nil, nil, err
	}
	return l.Open()
}

// open loads one tier, described by tierDescs, with a validated cfg, and
// attaches all of its programs. On any failure it releases what it had
// already set up.
func open(tier Tier, cfg Config) (c *Capture, err error) {
	d := tierDescs[tier]
	spec, err := d.load()
	if err != nil {
		return nil, fmt.Errorf("read %s tier objects: %w", tier, err)
	}
	if err := configure(spec, cfg); err != nil {
		return nil, fmt.Errorf("configure %s tier: %w", tier, err)
	}
	if err := dropMissingTracepoints(spec); err != nil {
		return nil, fmt.Errorf("configure %s tier: %w", tier, err)
	}
	dropUprobes(spec)
	if d.probe != nil {
		if err := d.probe(); err != nil {
			return nil, fmt.Errorf("hook tier %s: %w", tier, err)
		}
	}
	plan, err := d.plan(spec, cfg)
	if err != nil {
		return nil, fmt.Errorf("hook tier %s: %w", tier, err)
	}

	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		if d.refused != nil {
			if uerr := d.refused(err); uerr != nil {
				return nil, uerr
			}
		}
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			// The full log is what a user will send us.
			return nil, fmt.Errorf("load %s tier: verifier rejected a program: %+v", tier, ve)
		}
		return nil, fmt.Errorf("load %s tier: %w", tier, err)
	}
	c = &Capture{Tier: tier, Events: coll.Maps["events"], drops: coll.Maps["ringbuf_drops"], coll: coll}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Close())
			c = nil
		}
	}()

	if err := c.attachTracing(); err != nil {
		return c, err
	}
	return c, d.attach(c, spec, plan)
}

func configure(spec *ebpf.CollectionSpec, cfg Config) error {
	var ports [MaxPorts]uint16
	copy(ports[:], cfg.Ports)
	if err := spec.Variables["dns_ports"].Set(ports); err != nil {
		return fmt.Errorf("set ports: %w", err)
	}
	if err := spec.Variables["snaplen"].Set(cfg.Snaplen); err != nil {
		return fmt.Errorf("set snaplen: %w", err)
	}
	spec.Maps["events"].MaxEntries = cfg.RingBytes
	return nil
}

// optionalTracepoints are tp_btf programs that improve attribution where the
// kernel has their tracepoint, keyed by program name.
var optionalTracepoints = map[string]string{
	"dns_sock_recv": "sock_recv_length", // Linux 6.3+
}

// dropMissingTracepoints removes optional tp_btf programs whose tracepoint
// this kernel lacks, so that the rest of the tier still loads.
func dropMissingTracepoints(spec *ebpf.CollectionSpec) error {
	var kernel *btf.Spec
	for prog, tp := range optionalTracepoints {
		if _, ok := spec.Programs[prog]; !ok {
			continue
		}
		if kernel == nil {
			var err error
			if kernel, err = btf.LoadKernelSpec(); err != nil {
				return fmt.Errorf("read kernel BTF: %w", err)
			}
		}
		var fn *btf.Typedef
		if err := kernel.TypeByName("btf_trace_"+tp, &fn); errors.Is(err, btf.ErrNotFound) {
			delete(spec.Programs, prog)
		} else if err != nil {
			return fmt.Errorf("look up tracepoint %s: %w", tp, err)
		}
	}
	return nil
}

// dropUprobes removes the libc resolver programs (libc.go) where the
// kernel has no kprobe program type, which uprobes are, so that the tier
// still loads; Libc.Scan then says ErrUprobesUnsupported.
func dropUprobes(spec *ebpf.CollectionSpec) {
	if features.HaveProgramType(ebpf.Kprobe) == nil {
		return
	}
	for _, name := range uprobePrograms() {
		delete(spec.Programs, name)
	}
}

// attachTracing attaches the tp_btf programs present in the collection: the
// process table every tier shares, and the optional ones.
func (c *Capture) attachTracing() error {
	names := []string{"on_exec", "on_exit"}
	for prog := range optionalTracepoints {
		if c.coll.Programs[prog] != nil {
			names = append(names, prog)
		}
	}
	for _, name := range names {
		l, err := link.AttachTracing(link.TracingOptions{Program: c.coll.Programs[name]})
		if err != nil {
			return fmt.Errorf("attach %s (tp_btf): %w", name, err)
		}
		c.links = append(c.links, l)
	}
	return nil
}

// Drops returns the ring buffer records the kernel could not write, summed
// over CPUs.
func (c *Capture) Drops() (uint64, error) {
	var perCPU []uint64
	if err := c.drops.Lookup(uint32(0), &perCPU); err != nil {
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
	var errs []error
	// Through LibcProbes, not c.libc: a Scan may be starting right now.
	errs = append(errs, c.LibcProbes().detach())
	for i := len(c.links) - 1; i >= 0; i-- {
		if err := c.links[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach: %w", err))
		}
	}
	c.links = nil
	return errors.Join(errs...)
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
