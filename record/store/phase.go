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
}

func (s *Store) phases() *phaseTimer {
	return &phaseTimer{log: s.log, start: time.Now()}
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
	p.log.Debug("finish phase", "phase", name, "seconds", now.Sub(p.start).Seconds(), "rss_kib", rss, "hwm_kib", hwm,
		"go_heap_kib", ms.HeapInuse>>10, "go_idle_kib", (ms.HeapIdle-ms.HeapReleased)>>10, "go_sys_kib", ms.Sys>>10)
	p.start = now
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
