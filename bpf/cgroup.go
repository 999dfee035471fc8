//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// cgroupTier: cgroup_skb and cgroup sock_addr programs (cgroup.c), attached
// at the root of the cgroup v2 hierarchy.
var cgroupTier = tierDesc{
	load:   loadCgroup,
	plan:   planCgroup,
	attach: attachCgroup,
}

// planCgroup attaches the same programs on every kernel: the owner-tracking
// hooks before the packet hooks, so that the first packets already find
// their sockets' owners.
func planCgroup(*ebpf.CollectionSpec, Config) ([]attachment, error) {
	var plan []attachment
	for _, name := range []string{
		"dns_connect4", "dns_connect6", "dns_sendmsg4", "dns_sendmsg6",
		"dns_recvmsg4", "dns_recvmsg6", "dns_egress", "dns_ingress",
	} {
		plan = append(plan, attachment{prog: name})
	}
	return plan, nil
}

// attachCgroup attaches the plan at the cgroup v2 root, mounting a private
// one if none is (Capture.Close unmounts it).
func attachCgroup(c *Capture, spec *ebpf.CollectionSpec, plan []attachment) error {
	root, cleanup, err := CgroupV2Root()
	if err != nil {
		return err
	}
	c.cleanup = cleanup
	attachType := func(a attachment) ebpf.AttachType { return spec.Programs[a.prog].AttachType }
	return c.attachEachIn(TierCgroup, plan, root, attachType, func(prog *ebpf.Program, a attachment) (link.Link, error) {
		l, err := link.AttachCgroup(link.CgroupOptions{
			Path:    root,
			Attach:  spec.Programs[a.prog].AttachType,
			Program: prog,
		})
		if err != nil {
			return nil, fmt.Errorf("attach %s to cgroup %s: %w", a.prog, root, err)
		}
		return l, nil
	})
}
