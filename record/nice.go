//go:build linux && (amd64 || arm64)

package record

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerThisThread locks the calling goroutine to its thread and sets that
// thread's niceness (Linux keeps niceness per thread). The returned func
// restores it and unlocks.
func lowerThisThread(n int) (restore func(), err error) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	// getpriority returns 20 - nice for the raw syscall.
	prev, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		runtime.UnlockOSThread()
		return func() {}, fmt.Errorf("read niceness: %w", err)
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, n); err != nil {
		runtime.UnlockOSThread()
		return func() {}, fmt.Errorf("set niceness %d: %w", n, err)
	}
	return func() {
		unix.Setpriority(unix.PRIO_PROCESS, tid, 20-prev)
		runtime.UnlockOSThread()
	}, nil
}
