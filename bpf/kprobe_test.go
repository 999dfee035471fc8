//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// Fixtures in /proc/kallsyms format. Addresses are made up; names follow
// what distribution kernels contain (udp_send_skb.isra.0 among them).
const (
	kallsymsPlain = `ffffffff81a2b3c0 t udp_send_skb
ffffffff81a2b000 T udp_sendmsg
ffffffff8100beef t udp_sendmsg.cold
ffffffff81a2c000 T ip_send_skb
ffffffff81a2d000 T skb_consume_udp
`
	kallsymsClone = `ffffffff81a2b3c0 t udp_send_skb.isra.0
ffffffff81a2c000 T ip_send_skb
ffffffff81a2e000 t udp_v6_send_skb.constprop.0
ffffffff81a2f000 T tcp_recvmsg
ffffffff81b00000 d udp_send_skb_data
`
	kallsymsCloneNoAlt = `ffffffff81a2e000 t udp_v6_send_skb.constprop.0
ffffffff81a2e100 t udp_v6_send_skb.constprop.0.cold
`
)

func TestResolveSymbol(t *testing.T) {
	tests := []struct {
		name     string
		syms     string
		target   target
		fn, sym  string
		wantFail bool
		stable   bool
	}{
		{"stable: alternative even where the function exists", kallsymsPlain, target{fn: "udp_send_skb", alt: "ip_send_skb"}, "ip_send_skb", "ip_send_skb", false, true},
		{"stable without alternative: the function", kallsymsPlain, target{fn: "skb_consume_udp"}, "skb_consume_udp", "skb_consume_udp", false, true},
		{"exact name wins", kallsymsPlain, target{fn: "udp_send_skb", alt: "ip_send_skb"}, "udp_send_skb", "udp_send_skb", false, false},
		{"exported function", kallsymsPlain, target{fn: "skb_consume_udp"}, "skb_consume_udp", "skb_consume_udp", false, false},
		{"isra clone: stable alternative", kallsymsClone, target{fn: "udp_send_skb", alt: "ip_send_skb"}, "ip_send_skb", "ip_send_skb", false, false},
		{"constprop clone, alternative missing: the clone", kallsymsClone, target{fn: "udp_v6_send_skb", alt: "ip6_send_skb"}, "udp_v6_send_skb", "udp_v6_send_skb.constprop.0", false, false},
		{"clone without alternative, .cold ignored", kallsymsCloneNoAlt, target{fn: "udp_v6_send_skb"}, "udp_v6_send_skb", "udp_v6_send_skb.constprop.0", false, false},
		{"inlined away: alternative", kallsymsClone, target{fn: "udp_sendmsg_inlined", alt: "ip_send_skb"}, "ip_send_skb", "ip_send_skb", false, false},
		{"data symbol is not a function", kallsymsClone, target{fn: "udp_send_skb_data"}, "", "", true, false},
		{"missing everywhere", kallsymsPlain, target{fn: "tcp_recvmsg"}, "", "", true, false},
		{"only a .cold part", "ffffffff8100beef t tcp_sendmsg.cold\n", target{fn: "tcp_sendmsg"}, "", "", true, false},
		{"only a .part piece", "ffffffff8100beef t tcp_sendmsg.part.0\n", target{fn: "tcp_sendmsg"}, "", "", true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			syms, err := parseKallsyms(strings.NewReader(tc.syms))
			if err != nil {
				t.Fatal(err)
			}
			fn, sym, err := resolveSymbol(syms, tc.target, tc.stable)
			if tc.wantFail {
				if !errors.Is(err, ErrTierUnsupported) {
					t.Fatalf("resolveSymbol = %q, %q, %v; want ErrTierUnsupported", fn, sym, err)
				}
				return
			}
			if err != nil || fn != tc.fn || sym != tc.sym {
				t.Fatalf("resolveSymbol = %q, %q, %v; want %q, %q", fn, sym, err, tc.fn, tc.sym)
			}
		})
	}
}

// The real kallsyms of this machine must resolve every target, or name the
// reason; it is readable without kprobes.
// TestResolveHostSymbols resolves the kprobe targets in the running
// kernel's symbols. That needs no kprobes (this machine has none), only a
// readable /proc/kallsyms with addresses, which root has.
func TestResolveHostSymbols(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("kallsyms shows addresses to root only: run `sudo go test ./bpf/`")
	}
	plan, err := planFromKallsyms("/proc/kallsyms", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan) != len(tracingTargets)+1 { // tcp_recvmsg has entry and return
		t.Fatalf("plan has %d attachments: %+v", len(plan), plan)
	}
}
