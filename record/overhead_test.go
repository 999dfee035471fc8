//go:build linux && (amd64 || arm64)

package record_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

// offNsPerOp is the baseline of BenchmarkTierOverhead, measured in the same
// run: ratios against it are meaningful even under emulation, where
// absolute times are not.
var offNsPerOp float64

// BenchmarkTierOverhead times DNS exchanges over loopback UDP with the
// recorder off, then with each hook tier recording, and reports each tier's
// time per exchange as a ratio to the baseline ("x-baseline"). Run it with a
// fixed count (-test.benchtime=1000x, as `make vmbench` does) so every tier
// times the same number of queries. Tiers the kernel lacks are skipped.
func BenchmarkTierOverhead(b *testing.B) {
	if !isRoot() {
		b.Skip("loading BPF programs needs root")
	}
	startServer(b, "bench.dnsrec.test")
	c := &dns.Client{Net: "udp", Timeout: 5 * time.Second}
	q := new(dns.Msg)
	q.SetQuestion("bench.dnsrec.test.", dns.TypeA)
	exchange := func(b *testing.B) {
		for range b.N {
			if _, _, err := c.Exchange(q, "127.0.0.1:53"); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("off", func(b *testing.B) {
		exchange(b)
		offNsPerOp = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	for _, tier := range bpf.Tiers {
		b.Run(string(tier), func(b *testing.B) {
			b.StopTimer()
			path := filepath.Join(b.TempDir(), "bench.db")
			stop, err := tryStartRecorder(b, path, record.Options{Hook: tier})
			if errors.Is(err, bpf.ErrTierUnsupported) {
				fmt.Printf("\nVMTEST-OVERHEAD tier=%s result=unsupported\n", tier)
				b.Skipf("tier %s unsupported: %v", tier, err)
			}
			if err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			exchange(b)
			b.StopTimer()
			sum := stop()
			if offNsPerOp > 0 {
				ratio := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / offNsPerOp
				b.ReportMetric(ratio, "x-baseline")
				// Each exchange is seen four times: query and response,
				// on the client's and on the server's side.
				b.ReportMetric(float64(sum.Messages)/float64(b.N), "msgs/exchange")
				fmt.Printf("\nVMTEST-OVERHEAD tier=%s n=%d ratio=%.3f msgs=%d\n", tier, b.N, ratio, sum.Messages)
			}
		})
	}
}
