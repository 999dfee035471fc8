package store

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// SetLogger has Finish log each of its phases at debug level (name,
// seconds, resident set after it and the process's peak so far), so that
// a slow or large stop can be told apart phase by phase.
func (s *Store) SetLogger(l *slog.Logger) { s.log = l }

// phaseTimer logs the phases of a finish.
type phaseTimer struct {
	log   *slog.Logger
	start time.Time
	cpu   float64
}

func (s *Store) phases() *phaseTimer {
	return &phaseTimer{log: s.log, start: time.Now(), cpu: cpuSeconds()}
}

// done logs the phase that ends now and starts the next.
func (p *phaseTimer) done(name string) {
	if p.log == nil || !p.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	now := time.Now()
	rss, hwm := memStatus()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	cpu := cpuSeconds()
	p.log.Debug("finish phase", "phase", name, "seconds", now.Sub(p.start).Seconds(), "cpu_seconds", cpu-p.cpu, "rss_kib", rss, "hwm_kib", hwm,
		"go_heap_kib", ms.HeapInuse>>10, "go_idle_kib", (ms.HeapIdle-ms.HeapReleased)>>10, "go_sys_kib", ms.Sys>>10)
	p.start, p.cpu = now, cpu
}

// cpuSeconds is the process's CPU time, user and system, from
// /proc/self/stat (in clock ticks, 100 a second on Linux); 0 where there
// is none.
func cpuSeconds() float64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(utime+stime) / 100
}

// memStatus reads the resident set and its peak (KiB) from
// /proc/self/status; 0 where there is none.
func memStatus() (rss, hwm int64) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}
