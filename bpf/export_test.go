//go:build linux && (amd64 || arm64)

package bpf

// Targets returns the libc files the probes are attached to.
func (l *Libc) Targets() []LibcTarget {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]LibcTarget, len(l.targets))
	copy(out, l.targets)
	return out
}
