//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
)

// target is a kernel function the fentry and kprobe tiers hook. Their
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
	{fn: "tcp_sendmsg"},
	{fn: "tcp_recvmsg", ret: true},
}

// attachment is one program to attach to one kernel symbol.
type attachment struct {
	prog   string
	symbol string // kallsyms name, for kprobes
	ret    bool
}

// planFentry picks, from the kernel's BTF, which function each target
// hooks, removes the programs that will not be used (a fentry program whose
// function is missing would fail the whole load), and reads the kernel's
// tcp_recvmsg arity for the fexit program.
func planFentry(spec *ebpf.CollectionSpec) ([]attachment, error) {
	kernel, err := btf.LoadKernelSpec()
	if err != nil {
		return nil, fmt.Errorf("%w: no kernel BTF: %v", ErrTierUnsupported, err)
	}
	has := func(fn string) bool {
		var f *btf.Func
		return kernel.TypeByName(fn, &f) == nil
	}
	var plan []attachment
	for _, t := range tracingTargets {
		fn := t.fn
		if !has(fn) {
			if t.alt == "" || !has(t.alt) {
				return nil, fmt.Errorf("%w: kernel BTF has no function %s", ErrTierUnsupported, t.fn)
			}
			fn = t.alt
		}
		plan = append(plan, attachment{prog: "fe_" + fn})
		if t.ret {
			plan = append(plan, attachment{prog: "fx_" + fn, ret: true})
		}
	}
	keep := map[string]bool{}
	for _, a := range plan {
		keep[a.prog] = true
	}
	for name, p := range spec.Programs {
		if p.Type == ebpf.Tracing && (p.AttachType == ebpf.AttachTraceFEntry || p.AttachType == ebpf.AttachTraceFExit) && !keep[name] {
			delete(spec.Programs, name)
		}
	}
	return plan, setRecvmsgArity(spec, kernel)
}

// setRecvmsgArity tells the programs where tcp_recvmsg's return value is.
func setRecvmsgArity(spec *ebpf.CollectionSpec, kernel *btf.Spec) error {
	var fn *btf.Func
	if err := kernel.TypeByName("tcp_recvmsg", &fn); err != nil {
		return fmt.Errorf("%w: kernel BTF has no tcp_recvmsg: %v", ErrTierUnsupported, err)
	}
	proto, ok := fn.Type.(*btf.FuncProto)
	if !ok {
		return fmt.Errorf("tcp_recvmsg: BTF type %T is not a function prototype", fn.Type)
	}
	if err := spec.Variables["tcp_recvmsg_nargs"].Set(uint32(len(proto.Params))); err != nil {
		return fmt.Errorf("set tcp_recvmsg arity: %w", err)
	}
	return nil
}

// kprobesAvailable checks for a way to create kprobes: the perf kprobe PMU
// (Linux 4.17+) or kprobe_events in a mounted tracefs. Without either, the
// kernel was built without CONFIG_KPROBES, or tracing is locked away.
func kprobesAvailable() error {
	for _, p := range []string{
		"/sys/bus/event_source/devices/kprobe/type",
		"/sys/kernel/tracing/kprobe_events",
		"/sys/kernel/debug/tracing/kprobe_events",
	} {
		if _, err := os.Stat(p); err == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: no kprobe PMU (/sys/bus/event_source/devices/kprobe) and no kprobe_events in tracefs: the kernel has no kprobes (CONFIG_KPROBES off?); try --hook cgroup", ErrTierUnsupported)
}

// planKprobe resolves each target against kallsyms (see resolveSymbol).
func planKprobe(spec *ebpf.CollectionSpec, kallsyms string) ([]attachment, error) {
	if err := kprobesAvailable(); err != nil {
		return nil, err
	}
	f, err := os.Open(kallsyms)
	if err != nil {
		return nil, fmt.Errorf("%w: read kernel symbols: %v", ErrTierUnsupported, err)
	}
	syms, err := parseKallsyms(f)
	f.Close()
	if err != nil {
		return nil, err
	}
	var plan []attachment
	for _, t := range tracingTargets {
		fn, sym, err := resolveSymbol(syms, t)
		if err != nil {
			return nil, err
		}
		plan = append(plan, attachment{prog: "kp_" + fn, symbol: sym})
		if t.ret {
			plan = append(plan, attachment{prog: "kr_" + fn, symbol: sym, ret: true})
		}
	}
	// kprobe(5) programs keep 5 arguments' worth of registers either way;
	// the arity only matters to fexit, but the variable must be valid.
	if kernel, err := btf.LoadKernelSpec(); err == nil {
		if err := setRecvmsgArity(spec, kernel); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// attachPlan attaches a fentry or kprobe plan.
func (c *Capture) attachPlan(tier Tier, plan []attachment) error {
	for _, a := range plan {
		prog := c.coll.Programs[a.prog]
		if prog == nil {
			return fmt.Errorf("hook tier %s: program %s missing from the object", tier, a.prog)
		}
		var l link.Link
		var err error
		switch {
		case tier == TierFentry:
			l, err = link.AttachTracing(link.TracingOptions{Program: prog})
		case a.ret:
			l, err = link.Kretprobe(a.symbol, prog, nil)
		default:
			l, err = link.Kprobe(a.symbol, prog, nil)
		}
		if err != nil {
			if tier == TierKprobe && (errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrNotExist)) {
				return fmt.Errorf("hook tier kprobe: %w: cannot create a kprobe on %s (kernel without CONFIG_KPROBES, or tracefs and the kprobe PMU unavailable): %v", ErrTierUnsupported, a.symbol, err)
			}
			return fmt.Errorf("hook tier %s: attach %s: %w", tier, a.prog, err)
		}
		c.links = append(c.links, l)
	}
	return nil
}
