//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// The recorder's own life goes into the events table, in the hash chain
// with the rest: its start and stop, who signalled it, and any of its BPF
// hooks found detached or replaced (the guard, bpf/guard.go), with the
// re-attachment that ends the blind spell.

// Event kinds (events.kind).
const (
	EventStart      = "start"
	EventStop       = "stop"
	EventSignal     = "signal"
	EventDetached   = "detached"
	EventReplaced   = "replaced"
	EventReattached = "reattached"
	EventWatchError = "watch-error"
)

// DefaultWatchEvery is how often the recorder checks its hooks.
const DefaultWatchEvery = 2 * time.Second

// Signal is another process signalling the recorder, as the kernel saw it
// when the signal was generated (guard.h): the sender is named even when
// it has exited by the time the recorder reads the record.
type Signal struct {
	Sig      int
	Code     int32
	Result   int32
	PID, TID uint32
	UID      uint32
	StartNs  uint64
	BootNs   uint64
	Comm     string
}

var signalSize = int(unsafe.Sizeof(bpf.SignalEvent{}))

func decodeSignal(raw []byte) (*Signal, error) {
	if len(raw) < signalSize {
		return nil, errShort
	}
	e := (*bpf.SignalEvent)(unsafe.Pointer(&raw[0]))
	return &Signal{Sig: int(e.Sig), Code: e.Code, Result: e.Result, PID: e.Pid, TID: e.Tid, UID: e.Uid,
		StartNs: e.StartNs, BootNs: e.BootNs, Comm: cString(e.Comm[:])}, nil
}

// stopSignal: a signal that stops the recorder (cmd/dnsrec stops on
// SIGINT and SIGTERM).
func stopSignal(sig int) bool { return sig == int(unix.SIGINT) || sig == int(unix.SIGTERM) }

// signalName is "SIGTERM" for 15.
func signalName(sig int) string {
	if n := unix.SignalName(unix.Signal(sig)); n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", sig)
}

// sender describes who sent a signal: pid, exe, argv and uid, from the
// process table (the exe the kernel captured at its exec, or /proc).
func (p *pipeline) sender(s *Signal) string {
	info := p.procs.resolve(s.PID, s.StartNs, s.Comm, nil)
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d", s.PID)
	if info != nil && info.exe != nil && *info.exe != "" {
		fmt.Fprintf(&b, " exe %s", *info.exe)
	} else {
		b.WriteString(" exe unknown")
	}
	if info != nil && info.argv != nil {
		fmt.Fprintf(&b, " argv %s", *info.argv)
	}
	fmt.Fprintf(&b, " uid %d comm %q", s.UID, s.Comm)
	if s.TID != s.PID {
		fmt.Fprintf(&b, " tid %d", s.TID)
	}
	if s.Code > 0 {
		b.WriteString(" (sent by the kernel)")
	}
	return b.String()
}

// signal records a signal from another process: as its own event, and,
// for a stopping signal, as the stop's cause.
func (p *pipeline) signal(ctx context.Context, s *Signal) error {
	p.lastBootNs = max(p.lastBootNs, s.BootNs)
	detail := fmt.Sprintf("%s from %s", signalName(s.Sig), p.sender(s))
	if stopSignal(s.Sig) {
		p.stopBy = detail
	}
	p.opts.Logger.Warn("signal from another process", "signal", signalName(s.Sig), "pid", s.PID, "uid", s.UID, "comm", s.Comm)
	return p.event(ctx, p.wall(s.BootNs), EventSignal, detail)
}

// event queues one of the recorder's events for the next batch.
func (p *pipeline) event(ctx context.Context, tsNs int64, kind, detail string) error {
	return p.eventIn(ctx, p.store, tsNs, kind, detail)
}

// eventIn queues an event for st's next batch (a rotated-out file's own
// stop goes into that file).
func (p *pipeline) eventIn(ctx context.Context, st *store.Store, tsNs int64, kind, detail string) error {
	p.evMu.Lock()
	p.events++
	p.lastEvent = kind + ": " + detail
	p.evMu.Unlock()
	return st.InsertEvent(ctx, store.Event{TsNs: tsNs, Kind: kind, Detail: detail})
}

// watch checks the hooks. A hook found detached or replaced is an event
// and an ERROR; it is then re-attached at once (cgroup hooks; the kernel
// lets no one detach the others), and the re-attachment is an event that
// states the blind spell: from the last check that found the hook in
// place to the re-attachment. Recording goes on either way.
func (p *pipeline) watch(ctx context.Context) error {
	now := time.Now()
	lastOK := p.lastWatch
	p.lastWatch = now
	found, err := p.capture.CheckHooks()
	if err != nil && !p.watchErrLogged {
		p.watchErrLogged = true
		p.opts.Logger.Error("cannot check the recorder's BPF hooks; a detached one may go unnoticed", "err", err)
		if err := p.event(ctx, now.UnixNano(), EventWatchError, err.Error()); err != nil {
			return err
		}
	}
	for _, b := range found {
		p.opts.Logger.Error("CAPTURE BLINDED: a recorder BPF program was "+b.Kind+" by someone else; DNS it would have seen is not recorded", "program", b.Program, "link", b.LinkID, "detail", b.Detail, "last_seen_attached", lastOK.UTC().Format(time.RFC3339Nano))
		detail := fmt.Sprintf("%s; noticed at %s, last seen attached at %s", b.Detail, stamp(now), stamp(lastOK))
		if err := p.event(ctx, now.UnixNano(), b.Kind, detail); err != nil {
			return err
		}
		at, rerr := p.capture.Reattach(b)
		if rerr != nil {
			p.opts.Logger.Error("could not re-attach: capture stays blind for this hook until the recorder is restarted", "program", b.Program, "err", rerr)
			if err := p.event(ctx, time.Now().UnixNano(), EventWatchError, fmt.Sprintf("%s not re-attached: %v; blind from %s on", b.Program, rerr, stamp(lastOK))); err != nil {
				return err
			}
			continue
		}
		p.opts.Logger.Error("re-attached the recorder's program; capture was blind in between", "program", b.Program, "link", b.NewLinkID(), "blind_from", lastOK.UTC().Format(time.RFC3339Nano), "blind_until", at.UTC().Format(time.RFC3339Nano))
		if err := p.event(ctx, at.UnixNano(), EventReattached, fmt.Sprintf("%s re-attached as link %d; capture of this hook was blind from between %s and %s until %s",
			b.Program, b.NewLinkID(), stamp(lastOK), stamp(now), stamp(at))); err != nil {
			return err
		}
	}
	return nil
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z") }

// Events is how many of the recorder's events this recording has made
// so far (across the files of a rotated one): start, stop, signals,
// blinding. For a signed checkpoint, the current file's committed count is
// store.Store.Events.
func (p *pipeline) Events() int64 {
	n, _ := p.eventsSoFar()
	return n
}

// eventsSoFar is the count of events and the newest one, for a checkpoint.
func (p *pipeline) eventsSoFar() (int64, string) {
	p.evMu.Lock()
	defer p.evMu.Unlock()
	return p.events, p.lastEvent
}

// startDetail says what started recording: the recorder's own pid and
// exe, the tier, and how many hooks the guard watches.
func (p *pipeline) startDetail() string {
	exe, err := os.Executable()
	if err != nil {
		exe = "unknown"
	}
	d := fmt.Sprintf("recorder pid %d exe %s uid %d; hook %s, %d BPF hooks watched every %s", os.Getpid(), exe, os.Getuid(), p.capture.Tier, p.capture.Hooks(), p.opts.WatchEvery)
	if p.rot != nil && p.rot.part > 1 {
		d += fmt.Sprintf("; part %d, continuing part %d", p.rot.part, p.rot.part-1)
	}
	return d
}

// stopDetail says why the recording stopped: by itself (a bound), on an
// error, or by a signal and from whom.
func (p *pipeline) stopDetail(why string, runErr error) string {
	switch {
	case runErr != nil:
		return fmt.Sprintf("stopped on an error: %v", runErr)
	case why != "":
		return "stopped by itself: " + why
	case p.stopBy != "":
		return "stopped by " + p.stopBy
	}
	return "stopped by its caller (no stopping signal from another process was seen)"
}
