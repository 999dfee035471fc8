//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/bpf"
)

// TestRunRefusesBadConfig: options the kernel programs cannot take are
// refused, with bpf's messages, before the output file is created, so an
// existing file survives even with Force. It loads nothing and needs no
// root.
func TestRunRefusesBadConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "case.db")
	if err := os.WriteFile(out, []byte("evidence"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"snaplen", Options{Snaplen: bpf.MaxSnaplen + 1}, "snaplen must be 1..65536, got 65537"},
		{"ring size", Options{RingBytes: 3 << 20}, "ring buffer size must be a power of two"},
		{"port 0", Options{Ports: []uint16{53, 0}}, "port 0 cannot be captured"},
		{"too many ports", Options{Ports: make([]uint16, bpf.MaxPorts+1)}, "between 1 and 8 ports can be captured, got 9"},
		{"unknown tier", Options{Hook: "ebpf"}, `unknown hook tier "ebpf"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Output, tc.opts.Force = out, true
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want %q", err, tc.want)
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != "evidence" {
				t.Errorf("the existing output file: %q, %v; want it untouched", b, err)
			}
		})
	}
}
