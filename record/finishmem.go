package record

import "runtime/debug"

// finishMemoryLimit is the Go runtime's soft memory limit while the last
// file is finished. The recording's limit (--memory-limit, 24 MiB by
// default) is sized for bursts of traffic; the finish's summaries hold
// about 10 MiB live at ten million messages, and with the recording's
// limit the collector let their garbage grow to it, the process's peak.
// A rotation's finish runs beside the recording, and keeps its limit.
const finishMemoryLimit = 16 << 20

// lowerMemoryLimit sets the Go runtime's soft memory limit to n unless it
// is lower already, and returns what restores the one before.
func lowerMemoryLimit(n int64) (restore func()) {
	old := debug.SetMemoryLimit(-1) // -1 reads it
	if old <= n {
		return func() {}
	}
	debug.SetMemoryLimit(n)
	return func() { debug.SetMemoryLimit(old) }
}
