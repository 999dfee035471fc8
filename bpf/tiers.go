//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
)

// ErrTierUnsupported wraps the reason a kernel cannot run a tier.
var ErrTierUnsupported = errors.New("hook tier not supported by this kernel")

// kernelBTF is where the running kernel publishes its BTF.
const kernelBTF = "/sys/kernel/btf/vmlinux"

// ErrNoKernelBTF: the kernel publishes no BTF, and no tier runs without it.
// Every tier's process table hooks sched_process_exec and _exit as BTF
// tracepoints (tp_btf), which the kernel attaches by their id in its own
// BTF, so BTF loaded from a file (btfhub, say) cannot stand in; and the
// programs' field offsets are relocated against it (CO-RE).
var ErrNoKernelBTF = errors.New("this kernel publishes no BTF (" + kernelBTF + " is missing): it was built without CONFIG_DEBUG_INFO_BTF, and dnsrec's hooks need it on every tier. Use a kernel built with it (Debian 11+, Ubuntu 20.10+, RHEL/Alma/Rocky 8.2+, Fedora 31+ and most cloud kernels are)")

// requireKernelBTF fails with ErrNoKernelBTF before any tier is tried.
func requireKernelBTF() error {
	if _, err := os.Stat(kernelBTF); errors.Is(err, os.ErrNotExist) {
		return ErrNoKernelBTF
	}
	return nil
}

// ErrTierPassedOver: auto did not try the tier first on this kernel,
// although it may run here (see autoOrder).
var ErrTierPassedOver = errors.New("hook tier passed over")

// tierDesc is everything in which one hook tier differs from another. open
// walks the same steps for every tier and asks the descriptor at each; a
// new tier is one file with its descriptor, one entry in tierDescs, and its
// name in tier.go.
type tierDesc struct {
	// load reads the tier's object: bpf2go's loader, which embeds the
	// object of the build's architecture.
	load func() (*ebpf.CollectionSpec, error)
	// probe, if set, fails with ErrTierUnsupported where the kernel lacks
	// something the tier needs that loading would not reveal.
	probe func() error
	// plan picks what to attach on this kernel. It may remove programs
	// from spec that this kernel would refuse to load.
	plan func(spec *ebpf.CollectionSpec, cfg Config) ([]attachment, error)
	// refused, if set, says whether a load failure means that the kernel
	// cannot run the tier: an error wrapping ErrTierUnsupported, or nil.
	refused func(err error) error
	// attach attaches the planned programs of the loaded collection.
	attach func(c *Capture, spec *ebpf.CollectionSpec, plan []attachment) error
}

// tierDescs describes every tier in Tiers: fentry.go, kprobe.go, cgroup.go.
var tierDescs = map[Tier]tierDesc{
	TierFentry: fentryTier,
	TierKprobe: kprobeTier,
	TierCgroup: cgroupTier,
}

// attachment is one program to attach to one kernel symbol.
type attachment struct {
	prog   string
	symbol string // kallsyms name, for kprobes
	ret    bool
}

// target is a kernel function the fentry and kprobe tiers hook (tracing.h). Their
// programs are named <prefix>_<fn>: fe_/fx_ for fentry/fexit, kp_/kr_ for
// kprobe/kretprobe.
type target struct {
	fn string
	// alt is a stable function with the same data, hooked instead when fn
	// is missing (inlined) or only exists as a compiler clone whose
	// arguments may have been rewritten (.isra, .constprop).
	alt string
	// ret: the function also has a return program.
	ret bool
}

var tracingTargets = []target{
	{fn: "udp_send_skb", alt: "ip_send_skb"},
	{fn: "udp_v6_send_skb", alt: "ip6_send_skb"},
	{fn: "skb_consume_udp"},
	// The user buffers of UDP calls, for datagrams in page fragments.
	{fn: "udp_sendmsg"},
	{fn: "udpv6_sendmsg"},
	{fn: "udp_recvmsg"},
	{fn: "udpv6_recvmsg"},
	{fn: "tcp_sendmsg"},
	{fn: "tcp_recvmsg", ret: true},
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

// Open loads and attaches the loader's tier. For TierAuto it tries each
// tier in autoOrder with a real load and attach (the only probe that
// answers for lockdown, policy and inlined functions), and returns the
// first that runs, plus why each one before it did not. A forced tier that
// cannot run is an error, with no Skipped.
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

// Skipped says why Loader.Open did not use a better tier.
type Skipped struct {
	Tier Tier
	Err  error
}

// autoOrder is the order auto tries the tiers in on this kernel, and why
// a tier was moved back, by tier. Where the kernel preempts tracing
// programs, fentry goes last: under load it skips hook calls (counted in
// the programs' recursion_misses, see Capture.MissedTotal), and kprobe and
// cgroup do not.
func autoOrder(tiers []Tier) ([]Tier, map[Tier]error) {
	model, source := PreemptModel()
	if !PreemptsTracing(model) || !slices.Contains(tiers, TierFentry) {
		return tiers, nil
	}
	order := make([]Tier, 0, len(tiers))
	for _, t := range tiers {
		if t != TierFentry {
			order = append(order, t)
		}
	}
	order = append(order, TierFentry)
	why := fmt.Errorf("%w: tier %s: this kernel preempts kernel code (preemption model %q, from %s), so a BPF trampoline's program can be preempted, and the kernel skips the same hook on that CPU meanwhile: under load fentry loses messages (counted in loss.hook_misses), kprobe and cgroup do not; --hook fentry forces it", ErrTierPassedOver, TierFentry, model, source)
	return order, map[Tier]error{TierFentry: why}
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
		return nil, fmt.Errorf("load %s tier: %w", tier, withoutMemlockHint{err})
	}
	c = &Capture{Tier: tier, Events: coll.Maps["events"], drops: coll.Maps["ringbuf_drops"], msgDrops: coll.Maps["msg_drops"], coll: coll}
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
	if cfg.GuardPID != 0 {
		if err := spec.Variables["guard_tgid"].Set(cfg.GuardPID); err != nil {
			return fmt.Errorf("set the guarded pid: %w", err)
		}
	}
	dot := [MaxPorts]uint16{DefaultDoTPort}
	if len(cfg.DoTPorts) > 0 {
		dot = [MaxPorts]uint16{}
		copy(dot[:], cfg.DoTPorts)
	}
	if err := spec.Variables["dot_ports"].Set(dot); err != nil {
		return fmt.Errorf("set DoT ports: %w", err)
	}
	doh := [MaxPorts]uint16{DefaultDoHPort}
	if len(cfg.DoHPorts) > 0 {
		doh = [MaxPorts]uint16{}
		copy(doh[:], cfg.DoHPorts)
	}
	if err := spec.Variables["doh_ports"].Set(doh); err != nil {
		return fmt.Errorf("set DoH ports: %w", err)
	}
	spec.Maps["events"].MaxEntries = cfg.RingBytes
	return nil
}

// optionalTracepoints are tp_btf programs that improve attribution where the
// kernel has their tracepoint, keyed by program name.
var optionalTracepoints = map[string]string{
	"dns_sock_recv": "sock_recv_length",
	"guard_signal":  "signal_generate",
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

// dropUprobes removes the libc resolver and TLS programs (libc.go, tls.go)
// where the kernel has no kprobe program type, which uprobes are, so that
// the tier still loads; Libc.Scan then says ErrUprobesUnsupported.
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
		c.addHook(name, c.coll.Programs[name], l, "", 0)
	}
	return nil
}

// attachEach attaches a plan one program at a time with attach, whose
// error is returned as it is: attach says which tier and program failed,
// and wraps ErrTierUnsupported where the kernel cannot do it at all.
func (c *Capture) attachEach(tier Tier, plan []attachment, attach func(*ebpf.Program, attachment) (link.Link, error)) error {
	return c.attachEachIn(tier, plan, "", nil, attach)
}

// attachEachIn is attachEach for hooks on a cgroup: the guard then also
// asks the cgroup whether each program is still attached (guard.go).
func (c *Capture) attachEachIn(tier Tier, plan []attachment, cgroup string, attachType func(attachment) ebpf.AttachType, attach func(*ebpf.Program, attachment) (link.Link, error)) error {
	for _, a := range plan {
		prog := c.coll.Programs[a.prog]
		if prog == nil {
			return fmt.Errorf("hook tier %s: program %s missing from the object", tier, a.prog)
		}
		l, err := attach(prog, a)
		if err != nil {
			return err
		}
		var at ebpf.AttachType
		if attachType != nil {
			at = attachType(a)
		}
		c.addHook(a.prog, prog, l, cgroup, at)
	}
	return nil
}

// attachFailed is the error of an attach that failed for any other reason
// than the kernel lacking the tier.
func attachFailed(tier Tier, a attachment, err error) error {
	return fmt.Errorf("hook tier %s: attach %s: %w", tier, a.prog, err)
}
