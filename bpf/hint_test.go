package bpf

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFentryRefusedHint: the fentry tier's EPERM refusal says what the
// tier needs, not cilium/ebpf's memlock hint (the limit is already gone).
func TestFentryRefusedHint(t *testing.T) {
	// What cilium/ebpf returns for a refused program load.
	loadErr := fmt.Errorf("program dns_sendmsg: load program: %w"+memlockHint, unix.EPERM)
	err := fentryTier.refused(loadErr)
	if err == nil {
		t.Fatal("EPERM not taken as a refusal")
	}
	if strings.Contains(err.Error(), "MEMLOCK") || !strings.Contains(err.Error(), "lockdown") || !strings.Contains(err.Error(), "operation not permitted") {
		t.Errorf("refusal: %v", err)
	}
	if !errors.Is(err, ErrTierUnsupported) || !errors.Is(withoutMemlockHint{loadErr}, unix.EPERM) {
		t.Errorf("errors.Is lost: %v", err)
	}
}
