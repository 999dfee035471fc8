package bpf

import "strings"

// memlockHint is what cilium/ebpf appends to an EPERM from creating a map
// or loading a program. Loader.Open removes the memlock limit before any
// tier loads, so here the hint is never the reason, and it sends a user
// after the wrong fix; a tier's refusal says instead what the tier needs.
const memlockHint = " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)"

// withoutMemlockHint is err with cilium/ebpf's memlock hint cut out of its
// message; errors.Is and As still see through it.
type withoutMemlockHint struct{ err error }

func (h withoutMemlockHint) Error() string { return strings.ReplaceAll(h.err.Error(), memlockHint, "") }
func (h withoutMemlockHint) Unwrap() error { return h.err }
