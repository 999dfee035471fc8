//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// fentryTier: BPF trampolines (fentry.c), planned from the kernel's BTF.
var fentryTier = tierDesc{
	load: loadFentry,
	plan: func(spec *ebpf.CollectionSpec, cfg Config) ([]attachment, error) {
		return planFentry(spec, cfg.StableHooks)
	},
	refused: func(err error) error {
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("hook tier fentry: %w: the kernel refuses BPF trampolines (fentry/fexit) with EPERM: the tier needs a kernel with trampoline support that is not in lockdown (integrity or confidentiality), and root or CAP_BPF+CAP_PERFMON; try --hook kprobe or cgroup: %v", ErrTierUnsupported, withoutMemlockHint{err})
		}
		return nil
	},
	attach: func(c *Capture, _ *ebpf.CollectionSpec, plan []attachment) error {
		return c.attachEach(TierFentry, plan, attachFentry)
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

// attachFentry attaches one fentry or fexit program of a plan.
func attachFentry(prog *ebpf.Program, a attachment) (link.Link, error) {
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if errors.Is(err, ebpf.ErrNotSupported) {
		// ENOTSUPP from the trampoline: arm64 kernels before 6.4 load
		// fentry programs but cannot attach them (they lack the ftrace
		// direct calls trampolines need).
		return nil, fmt.Errorf("hook tier fentry: %w: the kernel loads fentry programs but cannot attach BPF trampolines (arm64 before Linux 6.4?); try --hook kprobe or cgroup: attach %s: %v", ErrTierUnsupported, a.prog, err)
	}
	if err != nil {
		return nil, attachFailed(TierFentry, a, err)
	}
	return l, nil
}
