//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/rlimit"
)

var reProcessed = regexp.MustCompile(`processed (\d+) insns .*`)

// TestVerifierStats is a tool, not a check: with DNSREC_VERIFIER_STATS=1 it
// loads every program of every object on its own and prints how many
// instructions the verifier processed for it (of its 1M budget). Large
// size classes and unrolled loops multiply that; watch it when changing
// the C.
//
//	sudo DNSREC_VERIFIER_STATS=1 go test -run VerifierStats -v ./bpf
func TestVerifierStats(t *testing.T) {
	if os.Getenv("DNSREC_VERIFIER_STATS") == "" {
		t.Skip("a tool: set DNSREC_VERIFIER_STATS=1 to print the verifier's work per program")
	}
	rlimit.RemoveMemlock()
	for _, obj := range objects {
		spec, err := obj.load()
		if err != nil {
			t.Fatal(err)
		}
		configure(spec, Config{Ports: []uint16{53}, Snaplen: MaxSnaplen, RingBytes: 4 << 20})
		dropMissingTracepoints(spec)
		names := []string{}
		for n := range spec.Programs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ps := spec.Programs[n]
			one := spec.Copy()
			for k := range one.Programs {
				if k != n {
					delete(one.Programs, k)
				}
			}
			coll, err := ebpf.NewCollectionWithOptions(one, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
			if err != nil {
				fmt.Printf("%s %-24s %6d insns: load error: %.200v\n", obj.name, n, len(ps.Instructions), err)
				continue
			}
			p := coll.Programs[n]
			fmt.Printf("%s %-24s %6d insns: %s\n", obj.name, n, len(ps.Instructions), reProcessed.FindString(p.VerifierLog))
			coll.Close()
		}
	}
}
