//go:build linux && (amd64 || arm64)

package bpf

import (
	"testing"

	"github.com/cilium/ebpf"
)

// TestTierTable: every tier the command line offers has a descriptor, and
// every descriptor is offered.
func TestTierTable(t *testing.T) {
	for _, tier := range Tiers {
		d, ok := tierDescs[tier]
		if !ok {
			t.Errorf("tier %s has no descriptor in tierDescs", tier)
			continue
		}
		if d.load == nil || d.plan == nil || d.attach == nil {
			t.Errorf("tier %s: descriptor lacks load, plan or attach", tier)
		}
	}
	if len(tierDescs) != len(Tiers) {
		t.Errorf("tierDescs has %d tiers, Tiers %d", len(tierDescs), len(Tiers))
	}
}

// TestTierPlanPrograms: every program a plan can name is in the tier's
// object, whichever function the kernel has; it reads the embedded objects
// only and needs no root.
func TestTierPlanPrograms(t *testing.T) {
	want := map[Tier][]string{}
	for _, tg := range tracingTargets {
		for _, fn := range []string{tg.fn, tg.alt} {
			if fn == "" {
				continue
			}
			want[TierFentry] = append(want[TierFentry], "fe_"+fn)
			want[TierKprobe] = append(want[TierKprobe], "kp_"+fn)
			if tg.ret {
				for _, n := range []string{"4", "5", "6"} {
					want[TierFentry] = append(want[TierFentry], "fx_"+fn+n)
				}
				want[TierKprobe] = append(want[TierKprobe], "kr_"+fn)
			}
		}
	}
	plan, err := planCgroup(nil, Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range plan {
		want[TierCgroup] = append(want[TierCgroup], a.prog)
	}
	for _, tier := range Tiers {
		spec, err := tierDescs[tier].load()
		if err != nil {
			t.Fatalf("%s: %v", tier, err)
		}
		for _, name := range append(append(want[tier], "on_exec", "on_exit"), uprobePrograms()...) {
			if spec.Programs[name] == nil {
				t.Errorf("%s: no program %s in the object", tier, name)
			}
		}
		if tier != TierCgroup {
			continue
		}
		for _, name := range want[tier] {
			if p := spec.Programs[name]; p != nil && p.Type != ebpf.CGroupSKB && p.Type != ebpf.CGroupSockAddr {
				t.Errorf("cgroup: %s is a %v program", name, p.Type)
			}
		}
	}
}

// TestNewLoader: the configuration and the tier are checked once, before
// anything touches the kernel.
func TestNewLoader(t *testing.T) {
	good := Config{Ports: []uint16{53}, Snaplen: 512, RingBytes: 1 << 20}
	for _, tier := range append([]Tier{TierAuto, ""}, Tiers...) {
		if _, err := NewLoader(tier, good); err != nil {
			t.Errorf("NewLoader(%q): %v", tier, err)
		}
	}
	if _, err := NewLoader("ebpf", good); err == nil || err.Error() != `unknown hook tier "ebpf"` {
		t.Errorf("unknown tier: %v", err)
	}
	bad := good
	bad.Snaplen = MaxSnaplen + 1
	if _, err := NewLoader(TierAuto, bad); err == nil || err.Error() != "snaplen must be 1..65536, got 65537" {
		t.Errorf("bad snaplen: %v", err)
	}
}
