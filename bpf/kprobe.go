//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

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

// kallsyms maps a function's base name to the text symbols that carry it:
// "udp_send_skb" -> ["udp_send_skb"] or ["udp_send_skb.isra.0"].
type kallsyms map[string][]string

// parseKallsyms reads /proc/kallsyms ("ffffffff81a2b3c0 t udp_send_skb").
// Only text symbols count, and ".cold" and ".part" pieces are left out:
// they are outlined halves of a split function, not its entry point.
func parseKallsyms(r io.Reader) (kallsyms, error) {
	syms := kallsyms{}
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 4096), 1<<20)
	for s.Scan() {
		f := strings.Fields(s.Text())
		if len(f) < 3 || (f[1] != "t" && f[1] != "T") {
			continue
		}
		name := f[2]
		if strings.Contains(name, ".cold") || strings.Contains(name, ".part.") {
			continue
		}
		base, _, _ := strings.Cut(name, ".")
		syms[base] = append(syms[base], name)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read kernel symbols: %w", err)
	}
	return syms, nil
}

// exact reports whether fn exists under its own name.
func (k kallsyms) exact(fn string) bool {
	for _, n := range k[fn] {
		if n == fn {
			return true
		}
	}
	return false
}

// resolveSymbol picks what to attach for t: fn itself; else, if fn only
// exists as a compiler clone (fn.isra.0, fn.constprop.0, fn.part.0), the
// stable alternative, because a clone's arguments may have been rewritten;
// else the clone, when there is no alternative. It returns the function
// whose program to use (fn or t.alt) and the symbol to attach to. With
// stable set, the alternative is preferred whenever it exists.
func resolveSymbol(syms kallsyms, t target, stable bool) (fn, symbol string, err error) {
	if stable && t.alt != "" && syms.exact(t.alt) {
		return t.alt, t.alt, nil
	}
	if syms.exact(t.fn) {
		return t.fn, t.fn, nil
	}
	if t.alt != "" && syms.exact(t.alt) {
		return t.alt, t.alt, nil
	}
	if clones := syms[t.fn]; len(clones) > 0 {
		return t.fn, clones[0], nil
	}
	return "", "", fmt.Errorf("%w: kernel has no symbol %s", ErrTierUnsupported, t.fn)
}
