//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// tierDesc is everything in which one hook tier differs from another. Open
// walks the same steps for every tier (load.go, open) and asks the
// descriptor at each; a new tier is one entry in tierDescs (and its name
// in tier.go).
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

// tierDescs describes every tier in Tiers.
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

// attachEach attaches a plan one program at a time with attach, whose
// error is returned as it is: attach says which tier and program failed,
// and wraps ErrTierUnsupported where the kernel cannot do it at all.
func (c *Capture) attachEach(tier Tier, plan []attachment, attach func(*ebpf.Program, attachment) (link.Link, error)) error {
	for _, a := range plan {
		prog := c.coll.Programs[a.prog]
		if prog == nil {
			return fmt.Errorf("hook tier %s: program %s missing from the object", tier, a.prog)
		}
		l, err := attach(prog, a)
		if err != nil {
			return err
		}
		c.links = append(c.links, l)
	}
	return nil
}

// attachFailed is the error of an attach that failed for any other reason
// than the kernel lacking the tier.
func attachFailed(tier Tier, a attachment, err error) error {
	return fmt.Errorf("hook tier %s: attach %s: %w", tier, a.prog, err)
}
