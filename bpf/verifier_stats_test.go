//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"os"
	"regexp"
	"sort"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

var reProcessed = regexp.MustCompile(`processed (\d+) insns .*`)

// TestVerifierStats loads every tier's programs as the recorder would, with
// the largest snaplen, and fails if the verifier rejects one. It logs how
// many instructions the verifier processed for each (of its 1M budget):
// large size classes and unrolled loops multiply that; watch it with -v
// when changing the C. A tier this kernel cannot run (no trampolines, no
// kernel function to hook) is skipped with the kernel's reason.
//
//	sudo go test -run VerifierStats -v ./bpf
func TestVerifierStats(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	if err := requireKernelBTF(); err != nil {
		t.Skip(err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Ports: []uint16{53}, Snaplen: MaxSnaplen, RingBytes: 4 << 20}
	for _, tier := range Tiers {
		t.Run(string(tier), func(t *testing.T) {
			d := tierDescs[tier]
			spec, err := d.load()
			if err != nil {
				t.Fatal(err)
			}
			if err := configure(spec, cfg); err != nil {
				t.Fatal(err)
			}
			if err := dropMissingTracepoints(spec); err != nil {
				t.Fatal(err)
			}
			dropUprobes(spec)
			// The plan leaves out the programs this kernel cannot load
			// (a missing function, another arity of tcp_recvmsg).
			if _, err := d.plan(spec, cfg); errors.Is(err, ErrTierUnsupported) {
				t.Skipf("tier %s cannot run on this kernel: %v", tier, err)
			} else if err != nil {
				t.Fatal(err)
			}
			coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
			if err != nil {
				if d.refused != nil {
					if uerr := d.refused(err); uerr != nil {
						t.Skipf("tier %s cannot load on this kernel: %v", tier, uerr)
					}
				}
				var ve *ebpf.VerifierError
				if errors.As(err, &ve) {
					t.Fatalf("tier %s: the verifier rejected a program: %+v", tier, ve)
				}
				t.Fatalf("tier %s: load: %v", tier, err)
			}
			defer coll.Close()
			names := make([]string, 0, len(coll.Programs))
			for n := range coll.Programs {
				names = append(names, n)
			}
			sort.Strings(names)
			for _, n := range names {
				t.Logf("%s %-24s %6d insns: %s", tier, n, len(spec.Programs[n].Instructions), reProcessed.FindString(coll.Programs[n].VerifierLog))
			}
		})
	}
}
