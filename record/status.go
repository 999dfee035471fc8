//go:build linux && (amd64 || arm64)

package record

import (
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/dnsrec/dnsrec/bpf"
)

// Status is a running recording's state, as the status line shows it.
type Status struct {
	Elapsed     time.Duration
	Stored      int64   // observations committed (a message seen at both ends counts twice)
	Rate        float64 // observations per second since the previous Status
	Loss        Loss
	FileBytes   int64 // the file and its -wal
	Tier        bpf.Tier
	LiveSkipped int64
}

// Line is the status in one line, for a terminal.
func (s Status) Line() string {
	return fmt.Sprintf("%s  %d stored  %.0f/s  loss: %d ring drops, %d hook misses, %d unattributed, %d undecodable  %s  %s",
		s.Elapsed.Truncate(time.Second), s.Stored, s.Rate, s.Loss.RingbufDrops, s.Loss.HookMisses, s.Loss.Unattributed, s.Loss.DecodeErrors,
		humanBytes(s.FileBytes), s.Tier)
}

// attrs is the status as log attributes.
func (s Status) attrs() []any {
	return []any{"elapsed", s.Elapsed.Truncate(time.Second).String(), "stored", s.Stored, "rate", int64(s.Rate),
		"ringbuf_drops", s.Loss.RingbufDrops, "hook_misses", s.Loss.HookMisses, "unattributed", s.Loss.Unattributed, "undecodable", s.Loss.DecodeErrors,
		"file_bytes", s.FileBytes, "hook", s.Tier, "live_skipped", s.LiveSkipped}
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
}

// StatusPrinter shows a recording's status: on a terminal, one line
// redrawn in place (log lines written through Writer clear it first and
// redraw it after); elsewhere, a "status" log line every logEvery. Log
// writes the latest status to the log at once (SIGUSR1).
type StatusPrinter struct {
	mu       sync.Mutex
	w        io.Writer // the terminal, or nil
	log      *slog.Logger
	logEvery time.Duration
	last     Status
	have     bool
	shown    bool // the line is on the terminal
	logged   time.Time
}

// NewStatusPrinter shows the status on term when it is set (a terminal),
// else logs it every logEvery (never when 0). Call SetLogger before use.
func NewStatusPrinter(term io.Writer, logEvery time.Duration) *StatusPrinter {
	return &StatusPrinter{w: term, logEvery: logEvery, logged: time.Now()}
}

// SetLogger is the logger for status lines off a terminal and for Log.
func (p *StatusPrinter) SetLogger(l *slog.Logger) { p.log = l }

// Update takes a new status (Options.Status).
func (p *StatusPrinter) Update(s Status) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last, p.have = s, true
	if p.w != nil {
		fmt.Fprintf(p.w, "\r\033[K%s", s.Line())
		p.shown = true
		return
	}
	if p.logEvery > 0 && time.Since(p.logged) >= p.logEvery && p.log != nil {
		p.logged = time.Now()
		p.log.Info("status", s.attrs()...)
	}
}

// Log writes the latest status to the log now.
func (p *StatusPrinter) Log() {
	p.mu.Lock()
	s, have := p.last, p.have
	p.mu.Unlock()
	if have && p.log != nil {
		p.log.Info("status", s.attrs()...)
	}
}

// Clear removes the line from the terminal (at the stop).
func (p *StatusPrinter) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// Writer wraps the log's destination so that a log line does not land on
// the status line: it clears the line, writes, and redraws it.
func (p *StatusPrinter) Writer(dst io.Writer) io.Writer { return statusWriter{p, dst} }

type statusWriter struct {
	p   *StatusPrinter
	dst io.Writer
}

func (w statusWriter) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.shown {
		return w.dst.Write(b)
	}
	fmt.Fprint(p.w, "\r\033[K")
	n, err := w.dst.Write(b)
	fmt.Fprintf(p.w, "%s", p.last.Line())
	return n, err
}
