//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/dnsrec/dnsrec/anchor"
	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// Run records until ctx is cancelled, then detaches, drains the ring buffer,
// commits and closes the file. Everything committed before an error stays in
// the file.
func Run(ctx context.Context, opts Options) (sum Summary, err error) {
	opts.setDefaults()
	// The options are checked here, once, before any file is created (or,
	// with Force, replaced); the tier is loaded below.
	if err := opts.Validate(); err != nil {
		return sum, err
	}
	loader, err := bpf.NewLoader(opts.Hook, opts.bpfConfig())
	if err != nil {
		return sum, err
	}
	// Before the rotation: its finisher makes the last checkpoints of the
	// files it finishes, and must be done before the anchors close.
	var cp *checkpointer
	if len(opts.Anchors) > 0 {
		if cp, err = newCheckpointer(opts); err != nil {
			return sum, err
		}
		defer cp.close()
	}
	var rot *rotation
	if opts.rotating() {
		if opts.MaxSize > 0 && (opts.RotateSize == 0 || opts.MaxSize < opts.RotateSize) {
			opts.RotateSize = opts.MaxSize
		}
		opts.MaxSize = 0 // rotates; never stops
		if err := checkRotationOutput(opts.Output, opts.Force); err != nil {
			return sum, err
		}
		rot = newRotation(opts)
		opts.Output = RotatedPath(opts.Output, 1)
		defer func() { err = errors.Join(err, rot.wait()) }()
	}
	st, err := store.Create(ctx, opts.Output, opts.Force)
	if err != nil {
		return sum, err
	}
	st.SetLogger(opts.Logger)
	p := newPipeline(opts, st)
	p.cp = cp
	if cp != nil && cp.events == nil {
		cp.events = p.eventsSoFar // the guard's events go into every checkpoint
	}
	p.rot = rot
	p.anchorWall, p.anchorBoot = clockAnchor()

	capture, err := openCapture(opts, loader)
	if err != nil {
		_, ferr := st.Finish(context.WithoutCancel(ctx), time.Now().UnixNano())
		os.Remove(opts.Output) // nothing was recorded: leave no empty evidence behind
		return sum, errors.Join(err, ferr)
	}
	p.capture = capture
	defer func() { err = errors.Join(err, capture.Close()) }()

	sess := p.session()
	if rot != nil {
		sess.Part = 1
	}
	if err := p.beginSession(ctx, st, sess); err != nil {
		_, ferr := st.Finish(context.WithoutCancel(ctx), time.Now().UnixNano())
		os.Remove(opts.Output) // no session row: nothing says what the file would have been
		return sum, errors.Join(err, ferr)
	}
	rd, err := ringbuf.NewReader(capture.Events)
	if err != nil {
		sum, ferr := st.Finish(context.WithoutCancel(ctx), time.Now().UnixNano())
		return sum, errors.Join(fmt.Errorf("open ring buffer: %w", err), ferr)
	}
	defer rd.Close()

	if err := p.procs.scan(); err != nil {
		opts.Logger.Warn("process scan failed; processes started before recording lack exe and argv", "err", err)
	}
	if !opts.NoTLS {
		p.dot = newDotState(opts.dotPorts())
		p.dot.dohPorts = opts.dohPorts()
		p.dot.skip = capture.SkipTLS
		p.tlsProbes = capture.TLSProbes()
		p.startEnc(capture)
	}
	if !opts.NoLibc {
		p.libc = capture.LibcProbes()
	}
	p.scanLibc(ctx)

	events := make(chan []any, 4) // bounded: a stalled writer backs up into the ring, where loss is counted
	quit := make(chan struct{})   // the loop has ended: the reader must not wait to hand over more
	defer close(quit)
	go p.read(rd, events, quit)
	if opts.Started != nil {
		opts.Started(Started{Output: opts.Output, Hook: capture.Tier, Ports: opts.Ports})
	}
	if opts.Nice != 0 {
		restore, err := lowerThisThread(opts.Nice)
		if err != nil {
			opts.Logger.Warn("could not lower the writer's priority", "err", err)
		}
		defer restore()
	}
	if opts.Live != nil {
		p.live = newLiveView(opts.Live, opts.LiveJSON)
	}
	p.started = time.Now()
	p.lastStatus = p.started
	p.lastWatch = p.started
	if err := p.event(ctx, p.started.UnixNano(), EventStart, p.startDetail()); err != nil {
		return sum, err
	}
	stop, cancel := bound(ctx, opts)
	defer cancel()
	runErr := p.loop(stop, rd, events)
	var liveSkipped int64
	if p.live != nil {
		if liveSkipped = p.live.close(); liveSkipped > 0 {
			opts.Logger.Warn("the live view could not keep up: lines skipped (every message is stored)", "skipped", liveSkipped)
		}
	}
	p.logTLSLoss()
	if p.ownersFromProc > 0 {
		opts.Logger.Info("messages attributed through sock_diag and /proc (no hook saw their socket's reader)", "messages", p.ownersFromProc)
	}
	why := stopReason(stop, opts)
	if why != "" {
		opts.Logger.Info("stopping by itself", "reason", why)
	}
	stopDetail := p.stopDetail(why, runErr)
	opts.Logger.Info("stop", "cause", stopDetail)
	runErr = errors.Join(runErr, p.event(context.WithoutCancel(ctx), time.Now().UnixNano(), EventStop, stopDetail))
	// A day of a busy server takes a minute or more: say why the stop is
	// not instant.
	if runErr == nil {
		p.release()
	}
	opts.Logger.Info("finishing the file: indexes and query summaries (about 4 s of CPU per million messages recorded)")
	p.checkpointAtStop(p.store, anchor.ReasonStop)
	restore := lowerMemoryLimit(finishMemoryLimit)
	sum, finErr := p.store.Finish(context.WithoutCancel(ctx), time.Now().UnixNano())
	restore()
	// The uprobes were being removed while the file was finished.
	if err := capture.Detach(); err != nil {
		opts.Logger.Warn("detach", "err", err)
	}
	sum.Resolutions = p.resolutions
	sum.Stopped = why
	sum.LiveSkipped = liveSkipped
	return sum, errors.Join(runErr, finErr)
}

// release drops what the recording kept in memory to attribute and pair
// messages, once everything is stored: the finish comes next, and it is
// the recorder's peak.
func (p *pipeline) release() {
	p.procs, p.streams, p.held, p.heldBy, p.rows, p.pairs = nil, nil, nil, nil, nil, nil
	p.firstSpeaker, p.outstanding, p.procOwners, p.early = nil, nil, nil, nil
	p.ifNames, p.cgroups, p.sockOwners = nil, nil, nil
}

func newPipeline(opts Options, st *store.Store) *pipeline {
	return &pipeline{opts: opts, store: st, procs: newProcTable("/proc"), streams: map[streamKey]*tcpStream{}, heldBy: map[uint64]int{},
		pairs: map[pairKey]*msgRow{}, seed: maphash.MakeSeed(), firstSpeaker: map[speakerKey]struct{}{},
		outstanding: map[txKey]outstandingQuery{}, ifNames: newIfNames("/proc"), cgroups: newCgroupNames("/proc"), sockOwners: newSockOwners("/proc", opts.Ports), procOwners: map[uint64]*Identity{}}
}

// openCapture loads the requested tier, or the best one for "auto". A
// forced tier that cannot run is an error, never a silent fallback.
func openCapture(opts Options, loader *bpf.Loader) (*bpf.Capture, error) {
	if model, source := bpf.PreemptModel(); opts.Hook == bpf.TierFentry && bpf.PreemptsTracing(model) {
		opts.Logger.Warn("this kernel preempts kernel code, and so fentry programs: under load the kernel skips hook calls, and those messages are lost (counted in loss.hook_misses); --hook kprobe or cgroup does not lose them", "preempt", model, "from", source)
	}
	c, skipped, err := loader.Open()
	for _, s := range skipped {
		if errors.Is(s.Err, bpf.ErrTierPassedOver) {
			opts.Logger.Info("hook tier passed over", "tier", s.Tier, "reason", s.Err)
			continue
		}
		opts.Logger.Info("hook tier unavailable, trying the next", "tier", s.Tier, "reason", s.Err)
	}
	return c, err
}

// streamKey is one direction of a TCP connection. The ends are part of it:
// bytes that arrive with a SYN (fast open) or before accept are counted to
// the listening socket, so one cookie can carry several connections.
type streamKey struct {
	cookie   uint64
	dir      uint8
	src, dst netip.AddrPort
}

type pending struct {
	pkt      *Packet
	deadline time.Time
}

type pipeline struct {
	opts       Options
	store      *store.Store
	capture    *bpf.Capture
	procs      *procTable
	streams    map[streamKey]*tcpStream
	held       []pending      // received packets waiting for their socket's owner
	heldBy     map[uint64]int // cookie -> how many of held are its
	anchorWall int64
	anchorBoot int64

	decodeErrors atomic.Uint64
	unattributed uint64
	filtered     uint64 // observations (and libc resolutions) the Filter left out
	resolutions  int64  // libc resolutions stored
	missesLogged bool   // the first hook miss was logged
	lastLoss     Loss
	batched      int
	// dropsErrLogged, msgDropsErrLogged: reading the kernel's drop
	// counter, or its message drop counter, failed, and the log has said so.
	dropsErrLogged, msgDropsErrLogged bool
	loggedSeq                         int64     // chain link last written to the log
	lastCheckpoint                    time.Time // of the WAL into the main file
	lastBootNs                        uint64

	rows  []*msgRow // built since the last commit
	pairs map[pairKey]*msgRow
	live  *liveView // nil unless Options.Live

	// For Options.Status: observations committed, and inserted since.
	storedObs, flushedObs int64
	started, lastStatus   time.Time
	lastStatusObs         int64
	// firstSpeaker holds the flows between two DNS ports by the end that
	// sent first (see senderIsServer).
	firstSpeaker map[speakerKey]struct{}
	outstanding  map[txKey]outstandingQuery // queries waiting for a response
	// early are responses that came before their query: over TLS the
	// client's write is seen when the library returns, and a local server
	// may have answered by then.
	early     map[txKey]*msgRow
	lastMsgID int64
	seed      maphash.Seed

	ifNames    *ifNames
	cgroups    *cgroupNames
	sockOwners *sockOwners
	// ownersFromProc counts packets attributed through sock_diag;
	// procOwners remembers the sockets so named (a cookie is never
	// reused), so that their later packets are not held again.
	ownersFromProc int64
	procOwners     map[uint64]*Identity
	rot            *rotation     // nil unless rotating
	cp             *checkpointer // nil without Options.Anchors
	libc           *bpf.Libc     // nil with Options.NoLibc
	lastLibcScan   time.Time
	libcDue        bool // a process exec'd since the last scan
	libcErrLogged  bool
	dot            *dotState     // nil with Options.NoTLS
	enc            *encState     // nil with Options.NoTLS, or where sys_enter cannot be attached
	encConns       int64         // encrypted-DNS connections stored
	tlsProbes      *bpf.Libc     // nil with Options.NoTLS, or where uprobes cannot run
	probes         []store.Probe // files probed so far, for every file of a rotated recording
	tlsErrLogged   bool
	storedLoss     Loss // the loss counters last written to this file

	// The guard (guard.go): when the hooks were last checked, the
	// recorder's events so far, and who sent the stopping signal.
	lastWatch      time.Time
	watchErrLogged bool
	stopBy         string
	// events counts them and lastEvent is the newest, "kind: detail", for
	// the signed checkpoints, which the stop's may read from the finisher.
	evMu      sync.Mutex
	events    int64
	lastEvent string
}

// Reading in bursts: when the ring is empty the reader sleeps pollInterval
// before looking again, instead of blocking in epoll at once. Under load a
// wakeup then collects many records, not one: a wakeup per message (and the
// goroutine handoff behind it) cost more than all the rest of the pipeline.
// After idlePolls empty looks in a row it blocks in epoll, so an idle
// recorder costs nothing. The interval is a trade: shorter, the wakeups
// alone cost much CPU; longer, the default ring would fill at high rates
// before the reader looks again.
const (
	pollInterval = 10 * time.Millisecond
	idlePolls    = 10
	readBurst    = 512 // events handed to the pipeline at once, at most
)

// read is the one goroutine on the ring buffer. It copies each record out of
// the reused Record, decodes it and hands it on in bursts; it ends after a
// Flush has returned everything that was in the ring, or when the reader is
// closed.
func (p *pipeline) read(rd *ringbuf.Reader, out chan<- []any, quit <-chan struct{}) {
	defer close(out)
	var rec ringbuf.Record
	var dec decoder
	burst := make([]any, 0, readBurst)
	send := func() bool {
		if len(burst) > 0 {
			select {
			case out <- burst:
			case <-quit:
				return false
			}
			burst = make([]any, 0, readBurst)
		}
		return true
	}
	idle := 0
	// The sleep adapts to the ring: when a look finds the ring more than a
	// quarter full, the next sleep is halved (down to 1 ms); when it finds
	// it nearly empty, doubled back towards pollInterval. A small ring
	// (--ring-size 1) is then drained before it overflows.
	sleep := pollInterval
	ringSize := rd.BufferSize()
	for {
		if n := rd.AvailableBytes(); n == 0 {
			if !send() {
				return
			}
			if idle < idlePolls {
				idle++
				time.Sleep(sleep)
				continue
			}
		} else if idle > 0 {
			switch {
			case n > ringSize/4:
				sleep = max(sleep/2, time.Millisecond)
			case n < ringSize/16:
				sleep = min(sleep*2, pollInterval)
			}
		}
		idle = 0
		err := rd.ReadInto(&rec)
		if errors.Is(err, ringbuf.ErrFlushed) || errors.Is(err, os.ErrClosed) {
			send()
			return
		}
		if err != nil {
			p.decodeErrors.Add(1)
			p.opts.Logger.Error("read ring buffer", "err", err)
			continue
		}
		ev, err := dec.decode(rec.RawSample)
		if err != nil {
			p.decodeErrors.Add(1)
			p.opts.Logger.Debug("undecodable record", "err", err)
			continue
		}
		burst = append(burst, ev)
		if len(burst) == readBurst && !send() {
			return
		}
	}
}

func (p *pipeline) loop(stop context.Context, rd *ringbuf.Reader, events <-chan []any) error {
	tick := time.NewTicker(p.opts.BatchInterval)
	defer tick.Stop()
	done := stop.Done()
	// Writes must outlive the stop signal: draining is the point of it.
	ctx := context.WithoutCancel(stop)
	for {
		select {
		case evs, ok := <-events:
			if !ok {
				// Drained: attribute what is still held, as far as known,
				// and store what the TCP streams hold of a message.
				p.releaseHeld(time.Time{}, true)
				if err := p.evictStreams(ctx, true); err != nil {
					return p.fail(err)
				}
				if err := p.expireEnc(ctx, time.Time{}); err != nil {
					return p.fail(err)
				}
				return p.commitRows(ctx, true)
			}
			for _, ev := range evs {
				if err := p.handle(ctx, ev); err != nil {
					return p.fail(err)
				}
				if p.batched >= p.opts.BatchSize {
					if err := p.commit(ctx); err != nil {
						return p.fail(err)
					}
				}
			}
		case <-tick.C:
			if err := p.releaseHeld(time.Now(), false); err != nil {
				return p.fail(err)
			}
			if err := p.commit(ctx); err != nil {
				return p.fail(err)
			}
			p.status()
			if p.cp != nil && p.cp.due(time.Now()) {
				p.signCheckpoint()
			}
			if time.Since(p.lastCheckpoint) >= checkpointEvery {
				p.lastCheckpoint = time.Now()
				if err := p.store.Checkpoint(ctx); err != nil {
					return p.fail(err)
				}
			}
			if p.lastBootNs > uint64(time.Minute) {
				p.procs.evict(p.lastBootNs - uint64(time.Minute))
			}
			if err := p.evictStreams(ctx, false); err != nil {
				return p.fail(err)
			}
			p.expireQueries()
			p.expireTLS(time.Now())
			if err := p.expireEnc(ctx, time.Now()); err != nil {
				return p.fail(err)
			}
			if (p.libc != nil || p.tlsProbes != nil) && (time.Since(p.lastLibcScan) >= libcScanEvery || p.libcDue && time.Since(p.lastLibcScan) >= libcScanAfterExec) {
				p.scanLibc(ctx)
			}
			if time.Since(p.lastWatch) >= p.opts.WatchEvery {
				if err := p.watch(ctx); err != nil {
					return p.fail(err)
				}
			}
			if p.rot != nil && p.rot.due(p.opts, time.Now()) {
				if err := p.rotate(ctx); err != nil {
					return p.fail(err)
				}
			}
		case <-done:
			// Stop: detach so nothing new arrives, then drain what the
			// kernel already wrote. Flush makes the reader return every
			// record still in the ring and then end.
			done = nil
			// The last look before detaching: a hook detached since the
			// last check is on record too.
			if err := p.watch(ctx); err != nil {
				return p.fail(err)
			}
			p.libc = nil // detached with the rest: no more scans
			p.tlsProbes = nil
			t := time.Now()
			if err := p.capture.StopHooks(); err != nil {
				p.opts.Logger.Warn("detach", "err", err)
			}
			p.opts.Logger.Debug("stop phase", "phase", "detach", "seconds", time.Since(t).Seconds())
			t = time.Now()
			if err := rd.Flush(); err != nil {
				return p.fail(fmt.Errorf("flush ring buffer: %w", err))
			}
			p.opts.Logger.Debug("stop phase", "phase", "flush", "seconds", time.Since(t).Seconds())
		}
	}
}

// fail abandons the current batch; earlier batches are already committed.
func (p *pipeline) fail(err error) error {
	p.store.Rollback()
	if p.capture != nil {
		p.capture.Detach()
	}
	return err
}

func (p *pipeline) commit(ctx context.Context) error {
	return p.commitRows(ctx, false)
}

// status reports to Options.Status, about once a second.
func (p *pipeline) status() {
	if p.opts.Status == nil {
		return
	}
	now := time.Now()
	if now.Sub(p.lastStatus) < time.Second {
		return
	}
	s := Status{Elapsed: now.Sub(p.started), Stored: p.storedObs, Loss: p.lastLoss,
		Rate: float64(p.storedObs-p.lastStatusObs) / now.Sub(p.lastStatus).Seconds(), FileBytes: fileSize(p.opts.Output)}
	if p.capture != nil {
		s.Tier = p.capture.Tier
	}
	if p.live != nil {
		s.LiveSkipped = p.live.skipped
	}
	p.lastStatus, p.lastStatusObs = now, p.storedObs
	p.opts.Status(s)
}

// commitRows writes a batch: the rows, the loss counters if they changed,
// in one transaction. all also writes rows still waiting for a pair.
func (p *pipeline) commitRows(ctx context.Context, all bool) error {
	if err := p.flushRows(ctx, all); err != nil {
		return err
	}
	loss := Loss{DecodeErrors: p.decodeErrors.Load(), Unattributed: p.unattributed, RingbufDrops: p.lastLoss.RingbufDrops, Filtered: p.filtered}
	if n, err := p.capture.Drops(); err == nil {
		loss.RingbufDrops = n
	} else if !p.dropsErrLogged {
		// The count stays at its last reading; say so once.
		p.dropsErrLogged = true
		p.opts.Logger.Error("cannot read the ring buffer drop counter; ringbuf_drops stays at its last value", "err", err)
	}
	loss.MsgDrops = p.lastLoss.MsgDrops
	if n, err := p.capture.MsgDrops(); err == nil {
		loss.MsgDrops = n
	} else if !p.msgDropsErrLogged {
		p.msgDropsErrLogged = true
		p.opts.Logger.Error("cannot read the message drop counter; msg_drops stays at its last value", "err", err)
	}
	loss.HookMisses = p.lastLoss.HookMisses
	if n, err := p.capture.MissedTotal(); err == nil {
		loss.HookMisses = n
		if n > 0 && !p.missesLogged {
			p.missesLogged = true
			p.opts.Logger.Warn("the kernel skipped hook calls: a program was already running on that CPU (fentry programs can be preempted on this kernel); those messages are lost and counted in loss.hook_misses. --hook kprobe or cgroup does not have this", "hook_misses", n, "hook", p.capture.Tier)
		}
	}
	if d := p.dot; d != nil {
		loss.TLSCut, loss.TLSUnbound, loss.DoHUnparsed = d.cut, d.unboundDropped, d.dohUnparsed
	}
	p.lastLoss = loss
	if p.rot != nil {
		// Each file of a rotated recording counts its own loss.
		b := p.rot.lossBase
		loss = Loss{RingbufDrops: loss.RingbufDrops - b.RingbufDrops, DecodeErrors: loss.DecodeErrors - b.DecodeErrors,
			Unattributed: loss.Unattributed - b.Unattributed, Filtered: loss.Filtered - b.Filtered,
			HookMisses: loss.HookMisses - b.HookMisses, MsgDrops: loss.MsgDrops - b.MsgDrops,
			TLSCut: loss.TLSCut - b.TLSCut, TLSUnbound: loss.TLSUnbound - b.TLSUnbound, DoHUnparsed: loss.DoHUnparsed - b.DoHUnparsed}
	}
	if loss != p.storedLoss {
		if err := p.store.InsertLoss(ctx, time.Now().UnixNano(), loss); err != nil {
			return err
		}
		p.storedLoss = loss
	}
	p.batched = 0
	if err := p.store.Commit(); err != nil {
		return err
	}
	if p.live != nil {
		p.live.committed()
	}
	p.storedObs += p.flushedObs
	p.flushedObs = 0
	// The chain head in the system log anchors a recording that is later
	// killed, or whose file is lost: about once a minute at the default
	// batch interval, and at the first batch.
	if seq, head := p.store.Head(); seq != p.loggedSeq && (p.loggedSeq == 0 || seq-p.loggedSeq >= chainLogEvery) {
		p.loggedSeq = seq
		p.opts.Logger.Info("chain head", "output", p.opts.Output, "link", seq, "hash", head)
	}
	return nil
}

// checkpointEvery is how often the WAL is copied into the main file while
// recording. SQLite does it by itself every 4000 pages (16 MB); a quiet
// recording would leave its newest minutes in the -wal for long, and a
// killed recording's .db copied without its -wal would lack them. More
// often costs a little CPU per message.
const checkpointEvery = 2 * time.Second

// chainLogEvery is how many chain links pass between two log lines.
const chainLogEvery = 300

func (p *pipeline) handle(ctx context.Context, ev any) error {
	switch e := ev.(type) {
	case *Exec:
		p.lastBootNs = max(p.lastBootNs, e.BootNs)
		if !e.Exit {
			p.procs.exec(e)
			p.libcDue = true // the new program may have brought a libc of its own
			return nil
		}
		if info := p.procs.exit(e); info != nil && info.dbID != 0 {
			return p.store.SetExit(ctx, info.dbID, p.wall(e.BootNs))
		}
		return nil
	case *Packet:
		p.lastBootNs = max(p.lastBootNs, e.BootNs)
		if e.Kind == bpf.EventOwner {
			return p.owner(ctx, e.Cookie, e.Ident)
		}
		if e.Ident == nil && e.Cookie != 0 {
			if id := p.procOwners[e.Cookie]; id != nil {
				// A socket sock_diag already named the holder of.
				e.Ident = id
				p.ownersFromProc++
				return p.packet(ctx, e)
			}
			p.held = append(p.held, pending{e, time.Now().Add(p.opts.OwnerWait)})
			p.heldBy[e.Cookie]++
			return nil
		}
		if e.Ident != nil && p.heldBy[e.Cookie] > 0 {
			if err := p.owner(ctx, e.Cookie, e.Ident); err != nil {
				return err
			}
		}
		return p.packet(ctx, e)
	case *Resolution:
		return p.resolution(ctx, e)
	case *TLSData:
		return p.tls(ctx, e)
	case *Signal:
		return p.signal(ctx, e)
	case *EncEvent:
		return p.encEvent(ctx, e)
	}
	return fmt.Errorf("unexpected event %T", ev)
}

// owner attributes held packets of a socket whose owner became known.
func (p *pipeline) owner(ctx context.Context, cookie uint64, id *Identity) error {
	if p.heldBy[cookie] == 0 {
		return nil
	}
	delete(p.heldBy, cookie)
	keep := p.held[:0]
	var errs []error
	for _, h := range p.held {
		if h.pkt.Cookie != cookie {
			keep = append(keep, h)
			continue
		}
		h.pkt.Ident = id
		errs = append(errs, p.packet(ctx, h.pkt))
	}
	clear(p.held[len(keep):])
	p.held = keep
	return errors.Join(errs...)
}

// releaseHeld writes held packets whose wait is over (all of them if all is
// set) without an owner.
func (p *pipeline) releaseHeld(now time.Time, all bool) error {
	keep := p.held[:0]
	var errs []error
	for _, h := range p.held {
		if !all && h.deadline.After(now) {
			keep = append(keep, h)
			continue
		}
		if p.heldBy[h.pkt.Cookie]--; p.heldBy[h.pkt.Cookie] <= 0 {
			delete(p.heldBy, h.pkt.Cookie)
		}
		if h.pkt.Ident == nil {
			// No hook saw the socket's reader: ask sock_diag and /proc
			// who holds it (sockdiag.go).
			if pid, ok := p.sockOwners.pid(h.pkt.Cookie); ok {
				if id, err := p.identFromProc(pid); err == nil {
					h.pkt.Ident = id
					p.ownersFromProc++
					if len(p.procOwners) >= maxProcOwners {
						clear(p.procOwners)
					}
					p.procOwners[h.pkt.Cookie] = id
				}
			}
		}
		errs = append(errs, p.packet(context.Background(), h.pkt))
	}
	clear(p.held[len(keep):])
	p.held = keep
	return errors.Join(errs...)
}

// evictStreams forgets TCP streams quiet for a minute (or all of them, at
// the stop), storing what they hold of a message in progress: a connection
// that closed in the middle of a message, a bogus length prefix.
func (p *pipeline) evictStreams(ctx context.Context, all bool) error {
	cutoff := p.lastBootNs - min(p.lastBootNs, uint64(time.Minute))
	var errs []error
	for k, s := range p.streams {
		if !all && s.lastNs >= cutoff {
			continue
		}
		for _, m := range s.flush() {
			errs = append(errs, p.message(ctx, s.last, m.Raw, m.OrigLen))
		}
		delete(p.streams, k)
	}
	return errors.Join(errs...)
}

// packet turns a datagram into a message, or a segment into the messages it
// completes, and writes them.
func (p *pipeline) packet(ctx context.Context, pkt *Packet) error {
	if !pkt.TCP {
		return p.message(ctx, pkt, pkt.Payload, int(pkt.OrigLen))
	}
	if p.opts.Logger.Enabled(context.Background(), slog.LevelDebug) {
		p.opts.Logger.Debug("tcp segment", "cookie", pkt.Cookie, "dir", pkt.Dir, "seq", pkt.TCPSeq,
			"len", pkt.OrigLen, "captured", len(pkt.Payload), "head", fmt.Sprintf("%x", pkt.Payload[:min(8, len(pkt.Payload))]))
	}
	k := streamKey{pkt.Cookie, pkt.Dir, pkt.Src, pkt.Dst}
	s := p.streams[k]
	if s == nil {
		s = &tcpStream{}
		p.streams[k] = s
	}
	s.last = pkt
	for _, m := range s.add(pkt.TCPSeq, pkt.Payload, int(pkt.OrigLen), pkt.BootNs) {
		if err := p.message(ctx, pkt, m.Raw, m.OrigLen); err != nil {
			return err
		}
	}
	return nil
}

// message records one observation of a DNS message. When the other side of
// the same message was seen moments ago (loopback: the client's send and
// the server's receive carry the same bytes), it becomes that row's second
// observation; otherwise it starts a row of its own.
func (p *pipeline) message(ctx context.Context, pkt *Packet, raw []byte, origLen int) error {
	if raw == nil {
		raw = []byte{} // the kernel could not read the bytes: stored empty, with the parse error
	}
	send := pkt.Dir == bpf.DirSend
	if !p.opts.Filter.keepsOwner(pkt.Ident, p.procComm) {
		p.filtered++
		return nil
	}
	side := Side{Seen: true, TsNs: p.wall(pkt.BootNs), Cookie: pkt.Cookie, Ident: pkt.Ident,
		Ifindex: pkt.Ifindex, IfName: p.ifNames.name(pkt.Ifindex, pkt.Ident)}
	// attribute completes the side once it is to be stored (not for an
	// observation the Filter leaves out): its process row.
	attribute := func() error {
		p.batched++
		if pkt.Ident == nil {
			p.unattributed++
			return nil
		}
		id, err := p.processID(ctx, pkt.Ident)
		side.ProcessID = id
		return err
	}
	src, dst := pkt.Src, pkt.Dst
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst = netip.AddrPortFrom(dst.Addr().Unmap(), dst.Port())
	key := pairKey{tcp: pkt.TCP, src: src, dst: dst, sum: maphash.Bytes(p.seed, raw)}
	// Identical bytes on one tuple can be in flight more than once (a
	// retransmission sent before the first copy is received): the rows
	// waiting under one key form a queue, and a side joins the oldest row
	// that still lacks it.
	for m := p.pairs[key]; m != nil; m = m.pairNext {
		if m.OrigLen != origLen || !bytes.Equal(m.Raw, raw) {
			continue
		}
		if send && !m.Send.Seen {
			if err := attribute(); err != nil {
				return err
			}
			side.Server = m.senderServer
			m.Send = side
			p.forgetPair(m)
			return nil
		}
		if !send && !m.Recv.Seen {
			if err := attribute(); err != nil {
				return err
			}
			side.Server = !m.senderServer
			m.Recv = side
			p.forgetPair(m)
			return nil
		}
	}
	m := &msgRow{MsgRow: store.MsgRow{Proto: "udp", Src: src, Dst: dst, DNS: store.ParseDNS(raw), OrigLen: origLen, Raw: raw}, pairSum: key.sum}
	if !p.opts.Filter.keepsName(m.DNS.QName) {
		p.filtered++
		return nil
	}
	p.learnResolvers(&m.DNS)
	if err := attribute(); err != nil {
		return err
	}
	if pkt.TCP {
		m.Proto = "tcp"
	}
	if pkt.Proto != "" {
		m.Proto = pkt.Proto
	}
	m.DoH = pkt.DoH
	m.senderServer = p.senderIsServer(m.Proto, src, dst)
	m.QRMismatch = qrMismatch(m.DNS.QR, m.senderServer)
	side.Server = m.senderServer == send
	if send {
		m.Send = side
	} else {
		m.Recv = side
	}
	p.lastMsgID++
	m.ID = p.lastMsgID
	p.transaction(m)
	p.rows = append(p.rows, m)
	if last := p.pairs[key]; last != nil {
		for last.pairNext != nil {
			last = last.pairNext
		}
		last.pairNext = m
	} else {
		p.pairs[key] = m
	}
	return nil
}

// txKey is a query as its response names it: the transport and the
// client's and server's ends, the DNS id and the question.
type txKey struct {
	tcp            bool
	client, server netip.AddrPort
	id, qtype      uint16
	qname          string
}

// outstandingQuery is a query waiting for its response.
type outstandingQuery struct {
	id   int64 // msgs row
	tsNs int64 // when the client sent it, if seen; else when first seen
	send bool  // tsNs is the client's send
}

// queryTimeout is how long a query waits for its response; after that it
// is unanswered (a later response is not linked to it).
const queryTimeout = 10 * time.Second

// transaction links a response to its query: same transport ends (the
// other way round), DNS id and question. A query sent again with the same
// id and question (a retransmission) replaces the first in the wait, so a
// response is linked once, to the newest; the earlier one stays unanswered.
func (p *pipeline) transaction(m *msgRow) {
	d := &m.DNS
	if d.ID == nil || d.QName == nil {
		return
	}
	k := txKey{tcp: m.Proto != "udp", id: *d.ID, qname: *d.QName}
	if d.QType != nil {
		k.qtype = *d.QType
	}
	if !m.senderServer {
		k.client, k.server = m.Src, m.Dst
		if p.answeredEarly(k, m) {
			return
		}
		p.outstanding[k] = outstandingQuery{id: m.ID, tsNs: m.First(), send: m.Send.Seen}
		return
	}
	k.client, k.server = m.Dst, m.Src
	q, ok := p.outstanding[k]
	if !ok {
		if m.Proto == "dot" || m.Proto == "doh" {
			if p.early == nil {
				p.early = map[txKey]*msgRow{}
			}
			p.early[k] = m
		}
		return
	}
	delete(p.outstanding, k)
	m.AnswerQuery(q.id, q.tsNs, q.send)
}

// answeredEarly links query m to a response of it seen before it, if one
// is waiting (only over TLS: the map is empty otherwise, and the common
// path does not hash the key).
func (p *pipeline) answeredEarly(k txKey, m *msgRow) bool {
	if len(p.early) == 0 {
		return false
	}
	r := p.early[k]
	if r == nil {
		return false
	}
	delete(p.early, k)
	if r.written || r.QueryID != 0 || r.First()-m.First() >= int64(earlyWindow) {
		return false
	}
	r.AnswerQuery(m.ID, m.First(), m.Send.Seen)
	return true
}

// earlyWindow is how much later than its response a query over TLS may
// be seen and still be linked to it.
const earlyWindow = time.Second

// expireQueries forgets queries that waited longer than queryTimeout, and
// responses that waited for their query.
func (p *pipeline) expireQueries() {
	for k, r := range p.early {
		if r.written {
			delete(p.early, k)
		}
	}
	cutoff := p.wall(p.lastBootNs) - int64(queryTimeout)
	for k, q := range p.outstanding {
		if q.tsNs < cutoff {
			delete(p.outstanding, k)
		}
	}
}

// pairKey finds the row a second observation of the same bytes belongs to.
type pairKey struct {
	tcp      bool
	src, dst netip.AddrPort
	sum      uint64 // hash of the message bytes; a match is confirmed byte for byte
}

// pairWindow is how long a message seen on one side only waits for its
// other side before it is written alone. On loopback the receive follows
// the send within microseconds.
const pairWindow = 20 * time.Millisecond

// flushRows hands the rows built so far to the store, except those still
// waiting for their other side (unless all is set).
//
// Rows are written in the order they were made, which is the order of
// their ids (assigned at creation, so that a response can name its query
// before either is written): the first row still waiting holds back the
// ones after it.
func (p *pipeline) flushRows(ctx context.Context, all bool) error {
	cutoff := p.wall(p.lastBootNs) - int64(pairWindow)
	n := 0
	for _, m := range p.rows {
		single := !m.Send.Seen || !m.Recv.Seen
		if single && !all && m.First() > cutoff {
			break
		}
		if single {
			p.forgetPair(m)
		}
		if p.live != nil {
			p.live.add(m)
		}
		if m.Send.Seen {
			p.flushedObs++
		}
		if m.Recv.Seen {
			p.flushedObs++
		}
		m.written = true
		if err := p.store.InsertMessage(ctx, &m.MsgRow); err != nil {
			return err
		}
		n++
	}
	rest := copy(p.rows, p.rows[n:])
	clear(p.rows[rest:])
	p.rows = p.rows[:rest]
	return nil
}

// forgetPair drops a row from the pairing index: it has both sides, or it
// is being written alone.
func (p *pipeline) forgetPair(m *msgRow) {
	k := pairKey{tcp: m.Proto != "udp", src: m.Src, dst: m.Dst, sum: m.pairSum}
	head := p.pairs[k]
	switch {
	case head == m && m.pairNext == nil:
		delete(p.pairs, k)
	case head == m:
		p.pairs[k] = m.pairNext
	default:
		for prev := head; prev != nil; prev = prev.pairNext {
			if prev.pairNext == m {
				prev.pairNext = m.pairNext
				break
			}
		}
	}
	m.pairNext = nil
}

// speakerKey is a flow by its two ends, the one that spoke first as a.
type speakerKey struct {
	tcp  bool
	a, b netip.AddrPort
}

// maxFirstSpeakers bounds firstSpeaker: a scan between DNS ports must not
// grow the recorder's memory.
const maxFirstSpeakers = 50_000

// senderIsServer tells from the transport alone whether a message goes
// from the server end of an exchange to the client end. Never from the DNS
// header: its QR bit is the sender's to set, and a process that marks its
// queries as responses must not pass for a server. The end on a
// DNS port (a DoT port, for dot) is the server (the listener, for TCP); between two DNS ports
// (resolver to resolver) the end that spoke first on the flow is the
// client.
func (p *pipeline) senderIsServer(proto string, src, dst netip.AddrPort) bool {
	tcp := proto != "udp"
	ports := p.opts.Ports
	if proto == "dot" && p.dot != nil {
		ports = p.dot.ports
	}
	if proto == "doh" && p.dot != nil {
		ports = p.dot.dohPorts
	}
	if server, ok := portRole(ports, src.Port(), dst.Port()); ok {
		return server
	}
	if _, ok := p.firstSpeaker[speakerKey{tcp, dst, src}]; ok {
		return true // the other end spoke first: this is the answer side
	}
	k := speakerKey{tcp, src, dst}
	if _, ok := p.firstSpeaker[k]; !ok {
		if len(p.firstSpeaker) >= maxFirstSpeakers {
			clear(p.firstSpeaker)
		}
		p.firstSpeaker[k] = struct{}{}
	}
	return false
}

// portRole is the sender's role as the ports tell it: the server when only
// the source is a DNS port, the client when only the destination is. With
// both or neither a DNS port, the ports cannot tell (ok is false).
func portRole(ports []uint16, src, dst uint16) (senderServer, ok bool) {
	srcDNS, dstDNS := slices.Contains(ports, src), slices.Contains(ports, dst)
	return srcDNS, srcDNS != dstDNS
}

// qrMismatch tells whether a message's QR bit contradicts its sender's
// role. A client sends queries and a server responses; a message whose bit
// says otherwise is stored as what the transport says it is, and flagged:
// the bit is the sender's to set, the ports are not. Without a header there
// is no bit to contradict.
func qrMismatch(qr *bool, senderServer bool) bool {
	return qr != nil && *qr != senderServer
}

// procComm is the command name of id's process (its thread group leader),
// as exec or /proc told it; "" if unknown.
func (p *pipeline) procComm(id *Identity) string {
	if info := p.procs.m[procKey{id.PID, ticks(id.StartNs)}]; info != nil {
		return info.comm
	}
	return ""
}

// processID writes the process and its ancestors (top first, so each row
// can point at its parent) and returns the process's row id.
func (p *pipeline) processID(ctx context.Context, id *Identity) (int64, error) {
	// Fast path: a process already written has its ancestors written too.
	if info := p.procs.m[procKey{id.PID, ticks(id.StartNs)}]; info != nil && info.dbID != 0 {
		return info.dbID, nil
	}
	var parentID *int64
	var parentKey *procKey
	for i := len(id.Ancestors) - 1; i >= -1; i-- {
		pid, start, comm := id.PID, id.StartNs, id.Comm
		if i >= 0 {
			a := id.Ancestors[i]
			pid, start, comm = a.PID, a.StartNs, a.Comm
		}
		info := p.procs.resolve(pid, start, comm, parentKey)
		if info.dbID == 0 {
			row := &ProcRow{
				PID: pid, StartTicks: info.key.ticks, ExecBootNs: info.execBootNs,
				ParentID: parentID, Comm: info.comm, Exe: info.exe, Argv: info.argv,
				UID: info.uid, GID: info.gid, CgroupID: info.cgroup, Source: info.source,
				ExeTruncated: info.exeCut, ArgvTruncated: info.argvCut,
			}
			if i < 0 && row.UID == nil {
				row.UID, row.GID = &id.UID, &id.GID
				row.CgroupID = &id.CgroupID
			}
			if info.parent != nil {
				row.PPID = &info.parent.pid
			}
			if info.exitBootNs != 0 {
				row.ExitNs = ptr(p.wall(info.exitBootNs))
			}
			if row.CgroupID != nil {
				row.Cgroup, row.Container = p.cgroups.of(pid, *row.CgroupID)
			}
			dbID, err := p.store.InsertProcess(ctx, row)
			if err != nil {
				return 0, err
			}
			info.dbID = dbID
		}
		parentID = &info.dbID
		parentKey = &info.key
	}
	return *parentID, nil
}

func (p *pipeline) wall(bootNs uint64) int64 {
	return p.anchorWall + (int64(bootNs) - p.anchorBoot)
}

// beginSession writes st's session row, with the recording id and first
// key when checkpoints are signed.
func (p *pipeline) beginSession(ctx context.Context, st *store.Store, sess Session) error {
	if p.cp == nil {
		return st.BeginSession(ctx, sess)
	}
	return p.cp.begin(ctx, st, sess)
}

// part is the number of the file being written: 0 when not rotating.
func (p *pipeline) part() int {
	if p.rot == nil {
		return 0
	}
	return p.rot.part
}

// signCheckpoint makes a periodic checkpoint of what is committed, and
// queues the anchors' counts for the next batch.
func (p *pipeline) signCheckpoint() {
	seq, head := p.store.Head()
	p.cp.make(p.part(), seq, head, p.store.Messages(), anchor.ReasonPeriodic)
	p.store.InsertAnchors(time.Now().UnixNano(), p.cp.stats())
}

// checkpointAtStop has st's last checkpoint made as soon as Finish has
// committed its stop link, before the indexes.
func (p *pipeline) checkpointAtStop(st *store.Store, reason string) {
	if p.cp == nil {
		return
	}
	cp, part := p.cp, p.part()
	st.OnStop = func(seq int64, head string, msgs int64) { cp.make(part, seq, head, msgs, reason) }
}

func (p *pipeline) session() Session {
	host, _ := os.Hostname()
	var uts unix.Utsname
	unix.Uname(&uts)
	ports := make([]string, len(p.opts.Ports))
	for i, port := range p.opts.Ports {
		ports[i] = strconv.Itoa(int(port))
	}
	return Session{
		Hostname:     host,
		MachineID:    readTrim("/etc/machine-id"),
		BootID:       readTrim("/proc/sys/kernel/random/boot_id"),
		Kernel:       unix.ByteSliceToString(uts.Release[:]),
		Version:      p.opts.Version,
		Cmdline:      p.opts.Cmdline,
		Hook:         string(p.capture.Tier),
		Ports:        strings.Join(ports, ","),
		Snaplen:      uint32(p.opts.Snaplen),
		Filters:      p.opts.Filter.JSON(),
		StartedNs:    time.Now().UnixNano(),
		AnchorWallNs: p.anchorWall,
		AnchorBootNs: p.anchorBoot,
	}
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// clockAnchor reads CLOCK_REALTIME and CLOCK_BOOTTIME as close together as
// it can (the pair from the tightest of a few tries): kernel timestamps are
// boot-clock, reports are wall-clock.
func clockAnchor() (wall, boot int64) {
	best := int64(-1)
	for range 5 {
		var b unix.Timespec
		t0 := time.Now()
		unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
		t1 := time.Now()
		if d := t1.Sub(t0).Nanoseconds(); best < 0 || d < best {
			best = d
			wall = t0.UnixNano() + d/2
			boot = b.Nano()
		}
	}
	return wall, boot
}
