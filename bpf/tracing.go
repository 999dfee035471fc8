//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
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
	// The user buffers of UDP calls, for datagrams in page fragments.
	{fn: "udp_sendmsg"},
	{fn: "udpv6_sendmsg"},
	{fn: "udp_recvmsg"},
	{fn: "udpv6_recvmsg"},
	{fn: "tcp_sendmsg"},
	{fn: "tcp_recvmsg", ret: true},
}

// fentryTier: BPF trampolines (fentry.c), planned from the kernel's BTF.
var fentryTier = tierDesc{
	load: loadFentry,
	plan: func(spec *ebpf.CollectionSpec, cfg Config) ([]attachment, error) {
		return planFentry(spec, cfg.StableHooks)
	},
	refused: func(err error) error {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("hook tier fentry: %w: the kernel refuses BPF trampolines (fentry/fexit) with EPERM (lockdown, or no trampoline support); try --hook kprobe or cgroup: %v", ErrTierUnsupported, err)
		}
		return nil
	},
	attach: func(c *Capture, _ *ebpf.CollectionSpec, plan []attachment) error {
		return c.attachEach(TierFentry, plan, attachFentry)
	},
}

// kprobeTier: kprobes and kretprobes (kprobe.c), planned from kallsyms.
var kprobeTier = tierDesc{
	load:  loadKprobe,
	probe: kprobesAvailable,
	plan: func(_ *ebpf.CollectionSpec, cfg Config) ([]attachment, error) {
		return planFromKallsyms("/proc/kallsyms", cfg.StableHooks)
	},
	attach: func(c *Capture, _ *ebpf.CollectionSpec, plan []attachment) error {
		return c.attachEach(TierKprobe, plan, attachKprobe)
	},
}

// planFentry picks, from the kernel's BTF, which function each target
// hooks, removes the programs that will not be used (a fentry program whose
// function is missing would fail the whole load), and reads the kernel's
// tcp_recvmsg arity for the fexit program.
func planFentry(spec *ebpf.CollectionSpec, stable bool) ([]attachment, error) {
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
		if stable && t.alt != "" && has(t.alt) {
			fn = t.alt
		}
		if !has(fn) {
			if t.alt == "" || !has(t.alt) {
				return nil, fmt.Errorf("%w: kernel BTF has no function %s", ErrTierUnsupported, t.fn)
			}
			fn = t.alt
		}
		plan = append(plan, attachment{prog: "fe_" + fn})
		if t.ret {
			ret, err := fexitProgram(kernel, fn)
			if err != nil {
				return nil, err
			}
			plan = append(plan, attachment{prog: ret, ret: true})
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
	return plan, nil
}

// fexitProgram names the fexit program for fn on this kernel: where a
// function's arity changed between versions, there is one program per
// signature, suffixed with its argument count (fx_tcp_recvmsg4/5/6).
func fexitProgram(kernel *btf.Spec, fn string) (string, error) {
	if fn != "tcp_recvmsg" {
		return "fx_" + fn, nil
	}
	var f *btf.Func
	if err := kernel.TypeByName(fn, &f); err != nil {
		return "", fmt.Errorf("%w: kernel BTF has no %s: %v", ErrTierUnsupported, fn, err)
	}
	proto, ok := f.Type.(*btf.FuncProto)
	if !ok {
		return "", fmt.Errorf("%s: BTF type %T is not a function prototype", fn, f.Type)
	}
	switch n := len(proto.Params); n {
	case 4, 5, 6:
		return fmt.Sprintf("fx_%s%d", fn, n), nil
	default:
		return "", fmt.Errorf("%w: %s has %d parameters, this build knows 6 (before 5.19), 5 and 4 (6.18+)", ErrTierUnsupported, fn, n)
	}
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

// planFromKallsyms resolves the kprobe tier's targets in a kallsyms file
// (see resolveSymbol): it needs no kprobe support, only the symbols.
func planFromKallsyms(kallsyms string, stable bool) ([]attachment, error) {
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
		fn, sym, err := resolveSymbol(syms, t, stable)
		if err != nil {
			return nil, err
		}
		plan = append(plan, attachment{prog: "kp_" + fn, symbol: sym})
		if t.ret {
			plan = append(plan, attachment{prog: "kr_" + fn, symbol: sym, ret: true})
		}
	}
	return plan, nil
}

// attachFentry attaches one fentry or fexit program of a plan.
func attachFentry(prog *ebpf.Program, a attachment) (link.Link, error) {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if errors.Is(err, ebpf.ErrNotSupported) {
		// ENOTSUPP from the trampoline: seen on Debian's arm64 6.1,
		// which loads fentry programs but cannot attach them (arm64
		// gained ftrace direct calls, which trampolines need, in 6.4).
		return nil, fmt.Errorf("hook tier fentry: %w: the kernel loads fentry programs but cannot attach BPF trampolines (arm64 before Linux 6.4?); try --hook kprobe or cgroup: attach %s: %v", ErrTierUnsupported, a.prog, err)
	}
	if err != nil {
		return nil, attachFailed(TierFentry, a, err)
	}
	return l, nil
}

// attachKprobe attaches one kprobe or kretprobe of a plan.
func attachKprobe(prog *ebpf.Program, a attachment) (link.Link, error) {
	attach := link.Kprobe
	if a.ret {
		attach = link.Kretprobe
	}
	l, err := attach(a.symbol, prog, nil)
	if errors.Is(err, ebpf.ErrNotSupported) || errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("hook tier kprobe: %w: cannot create a kprobe on %s (kernel without CONFIG_KPROBES, or tracefs and the kprobe PMU unavailable): %v", ErrTierUnsupported, a.symbol, err)
	}
	if err != nil {
		return nil, attachFailed(TierKprobe, a, err)
	}
	return l, nil
}
