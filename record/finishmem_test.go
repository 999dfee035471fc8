package record

import (
	"runtime/debug"
	"testing"
)

// TestLowerMemoryLimit: the finish's limit applies only when it is lower
// than the recording's (--memory-limit 8MiB stays 8MiB), and the
// recording's comes back after.
func TestLowerMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, before := range []int64{24 << 20, 1 << 62, 8 << 20} {
		debug.SetMemoryLimit(before)
		restore := lowerMemoryLimit(16 << 20)
		if got, want := debug.SetMemoryLimit(-1), min(before, 16<<20); got != want {
			t.Errorf("limit %d: during the finish %d, want %d", before, got, want)
		}
		restore()
		if got := debug.SetMemoryLimit(-1); got != before {
			t.Errorf("limit %d: after the finish %d, want it back", before, got)
		}
	}
}
