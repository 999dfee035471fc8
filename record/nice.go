//go:build linux

package record

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// DefaultNice is the default scheduling niceness of the recorder's writer:
// none. A writer at the services' own priority takes CPU from the processes
// it watches when the host is saturated (dnsperf against dnsmasq on 2 cores
// reached about 0.55 of its qps with it), and --nice 10 gives some of that
// back (about 0.6 to 0.7, noisy) by storing less: the ring buffer overflows
// and the loss is counted. But a lowered writer also lost messages at 20k
// qps, which the host could otherwise record in full (2 of 3 runs lost 2.5%
// to 4%), so evidence comes first by default. Only the writer's thread is
// lowered: the ring buffer reader keeps its priority.
const DefaultNice = 0

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
