//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

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
