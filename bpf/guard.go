//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// A root user can blind a running recorder without stopping it: `bpftool
// link detach` takes a cgroup program off its cgroup while the recorder
// still holds the link, and BPF_LINK_UPDATE swaps the program a link
// runs. Neither closes anything the recorder has open, so nothing fails
// in it. The guard asks the kernel instead: each link's program, and, for
// the cgroup hooks, the cgroup's own list of attached programs.

// hook is one attachment the capture made, with what it should look like.
type hook struct {
	name   string // program name in the object
	prog   *ebpf.Program
	progID ebpf.ProgramID
	l      link.Link
	linkID link.ID // 0 where the kernel has no link ids (no BPF links)
	// cgroup hooks only: where and how it was attached.
	cgroup string
	attach ebpf.AttachType
	blind  bool // reported gone, not (yet) re-attached
}

// Blinding is a hook found detached or running another program.
type Blinding struct {
	Kind    string // "detached" or "replaced"
	Program string // the recorder's program, as named in the object
	ProgID  ebpf.ProgramID
	LinkID  link.ID
	Detail  string // what the kernel says now, for a person
	hook    *hook
}

// addHook records a link just made, to be watched.
func (c *Capture) addHook(name string, prog *ebpf.Program, l link.Link, cgroup string, attach ebpf.AttachType) {
	c.links = append(c.links, l)
	h := &hook{name: name, prog: prog, l: l, cgroup: cgroup, attach: attach}
	if info, err := prog.Info(); err == nil {
		h.progID, _ = info.ID()
	}
	if info, err := l.Info(); err == nil {
		h.linkID = info.ID
	}
	c.hooks = append(c.hooks, h)
}

// Hooks is how many of the capture's attachments the guard watches.
func (c *Capture) Hooks() int { return len(c.hooks) }

// LinkIDs returns the kernel's ids of the capture's links by program name
// (for tests, and for a person comparing with `bpftool link show`).
func (c *Capture) LinkIDs() map[string]link.ID {
	m := map[string]link.ID{}
	for _, h := range c.hooks {
		if h.linkID != 0 {
			m[h.name] = h.linkID
		}
	}
	return m
}

// CheckHooks asks the kernel whether every hook is still attached with
// its own program. A hook already reported is not reported again until it
// has been re-attached. err collects hooks that could not be checked.
func (c *Capture) CheckHooks() ([]Blinding, error) {
	var found []Blinding
	var errs []error
	for _, h := range c.hooks {
		if h.blind {
			continue
		}
		b, err := h.check()
		if err != nil {
			errs = append(errs, fmt.Errorf("check %s: %w", h.name, err))
			continue
		}
		if b != nil {
			h.blind = true
			b.hook = h
			found = append(found, *b)
		}
	}
	return found, errors.Join(errs...)
}

func (h *hook) check() (*Blinding, error) {
	b := &Blinding{Program: h.name, ProgID: h.progID, LinkID: h.linkID}
	info, err := h.l.Info()
	switch {
	case err == nil:
		if h.progID != 0 && info.Program != h.progID {
			b.Kind = "replaced"
			b.Detail = fmt.Sprintf("link %d runs program id %d (%s), not the recorder's %s (id %d)", h.linkID, info.Program, progName(info.Program), h.name, h.progID)
			return b, nil
		}
		if cg := info.Cgroup(); cg != nil && cg.CgroupId == 0 {
			b.Kind = "detached"
			b.Detail = fmt.Sprintf("link %d of program %s (id %d) is attached to no cgroup (bpftool link detach)", h.linkID, h.name, h.progID)
			return b, nil
		}
	case errors.Is(err, link.ErrNotSupported):
		// No link info on this kernel (an attachment without a BPF
		// link): the cgroup query below still tells.
	default:
		return nil, err
	}
	if h.cgroup == "" {
		return nil, nil
	}
	f, err := os.Open(h.cgroup)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	q, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: h.attach})
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(q.Programs, func(p link.AttachedProgram) bool { return p.ID == h.progID }) {
		return nil, nil
	}
	b.Kind = "detached"
	b.Detail = fmt.Sprintf("program %s (id %d) is no longer among the %s programs of cgroup %s", h.name, h.progID, attachName(h.attach), h.cgroup)
	return b, nil
}

// attachName names an attach type: the kernel's first, cgroup ingress, is
// 0, which the library calls None.
func attachName(t ebpf.AttachType) string {
	if t == ebpf.AttachCGroupInetIngress {
		return "CGroupInetIngress"
	}
	return t.String()
}

// progName is a program's kernel name, for the detail of a replacement.
func progName(id ebpf.ProgramID) string {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return "unknown"
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		return "unknown"
	}
	return info.Name
}

// Reattach attaches a detached or replaced cgroup hook again with the
// recorder's own program, and returns when. Other hooks (tp_btf, whose
// links the kernel does not let anyone detach) are not re-attached.
func (c *Capture) Reattach(b Blinding) (time.Time, error) {
	h := b.hook
	if h == nil || h.cgroup == "" {
		return time.Time{}, fmt.Errorf("%s: only cgroup hooks are re-attached", b.Program)
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: h.cgroup, Attach: h.attach, Program: h.prog})
	if err != nil {
		return time.Time{}, fmt.Errorf("re-attach %s to cgroup %s: %w", h.name, h.cgroup, err)
	}
	at := time.Now()
	old := h.l
	for i := range c.links {
		if c.links[i] == old {
			c.links[i] = l
		}
	}
	old.Close() // defunct or running another program: nothing of the recorder's
	h.l, h.blind = l, false
	h.linkID = 0
	if info, err := l.Info(); err == nil {
		h.linkID = info.ID
	}
	return at, nil
}

// NewLinkID is the id of the link a Reattach made for b's hook.
func (b Blinding) NewLinkID() link.ID {
	if b.hook == nil {
		return 0
	}
	return b.hook.linkID
}
