//go:build !linux && !darwin && !freebsd && !netbsd && !openbsd && !dragonfly

package format

// isTerminal is false where we have no cheap, dependency-free check: the
// default format is then CSV, which is always safe to pipe or redirect.
func isTerminal(uintptr) bool { return false }
