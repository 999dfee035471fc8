//go:build linux && (amd64 || arm64)

package record

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/dnsrec/dnsrec/anchor"
	"github.com/dnsrec/dnsrec/bpf"
)

// Options configure one recording.
type Options struct {
	Output    string   // evidence file to create
	Force     bool     // replace an existing output file
	Hook      bpf.Tier // hook tier to load; bpf.TierAuto (or "") picks the best
	Ports     []uint16 // DNS ports; 53 if empty
	Snaplen   uint     // payload bytes kept per message, 1..bpf.MaxSnaplen
	RingBytes uint     // ring buffer size: a power of two, a page to bpf.MaxRingBytes
	// StableHooks: fentry/kprobe tiers hook only stable functions (see
	// bpf.Config).
	StableHooks bool

	// A batch is committed after BatchSize messages or BatchInterval,
	// whichever comes first.
	BatchSize     int
	BatchInterval time.Duration
	// OwnerWait is how long a received message whose socket owner is not
	// yet known is held for its owner to show itself (see bpf/cgroup.c).
	OwnerWait time.Duration

	// Nice is the writer's scheduling niceness, -20..19 (see
	// DefaultNice); 0 leaves it as started.
	Nice int

	// Duration, if set, stops the recording by itself that long after
	// capture started. MaxSize, if set, stops it once the file and its
	// -wal reach that many bytes (checked four times a second; the clean
	// stop then adds the query indexes). Either stop is clean: drained,
	// committed and hashed, as after SIGINT.
	Duration time.Duration
	MaxSize  int64

	// RotateEvery and RotateSize, if either is set, make the recording a
	// series of files named by RotatedPath(Output, n): the file being
	// written is closed cleanly (committed, indexed, hashed) and recording
	// continues in the next one once it has been written that long, or
	// has reached that many bytes with its -wal. MaxSize then rotates too,
	// instead of stopping. Keep, if positive, is how many files of the
	// series stay on disk (the one being written included): older ones
	// are removed once the next is complete. Closed, if set, is called
	// (from another goroutine) with each file rotated out once it is
	// finished; the last file is Run's own Summary.
	RotateEvery time.Duration
	RotateSize  int64
	Keep        int
	Closed      func(Summary, error)

	// Live, if set, gets one line per message once it is committed (JSON
	// lines with LiveJSON). The printer has its own goroutine and backlog:
	// when Live cannot keep up, lines are skipped and counted
	// (Summary.LiveSkipped), and storing never waits for it.
	Live     io.Writer
	LiveJSON bool

	// Status, if set, is called about once a second from the recording
	// loop with its state (see StatusPrinter). It must not block.
	Status func(Status)

	// Filter narrows what is stored (see Filter); the zero value keeps
	// everything.
	Filter Filter

	// NoLibc leaves the C library's resolver unprobed: no libc
	// resolutions are recorded (see bpf.Libc).
	NoLibc bool

	// NoTLS leaves the TLS libraries unprobed: DNS over TLS is not
	// recorded. DoTPorts are DNS-over-TLS ports captured besides
	// bpf.DefaultDoTPort (853).
	NoTLS    bool
	DoTPorts []uint16
	// DoHServers are encrypted-DNS resolvers besides KnownResolvers, each
	// an IP address or a host name (--doh-server): connections to port 443
	// of them are recorded as encrypted DNS.
	DoHServers []string

	// Anchors, if any, receive a signed checkpoint (package anchor) every
	// CheckpointEvery, at each rotation and at the stop: "syslog+tls://
	// HOST:PORT", "file:PATH" or "-" (stderr). AnchorCA is the syslog
	// server's CA file. SignKeyFile, if set, is a note private key that
	// signs every checkpoint instead of a fresh key each time.
	// CheckpointEvents, if set, gives the recorder's events so far (their
	// count and the last one) for each checkpoint.
	Anchors          []string
	AnchorCA         string
	CheckpointEvery  time.Duration
	SignKeyFile      string
	CheckpointEvents func() (count int64, last string)

	// WatchEvery is how often the recorder checks that its BPF hooks are
	// still attached with its own programs (guard.go); DefaultWatchEvery
	// if 0.
	WatchEvery time.Duration

	// DoHPorts are DNS-over-HTTPS server ports whose client connections
	// are read besides bpf.DefaultDoHPort (443).
	DoHPorts []uint16

	Version string // dnsrec version, for the sessions row
	Cmdline string // how the recorder was invoked

	Logger *slog.Logger
	// Started, if set, is called once capture is running.
	Started func(Started)
}

// Started describes a running capture.
type Started struct {
	Output string
	Hook   bpf.Tier
	Ports  []uint16
}

func (o *Options) setDefaults() {
	if len(o.Ports) == 0 {
		o.Ports = []uint16{53}
	}
	if o.Snaplen == 0 {
		o.Snaplen = DefaultSnaplen
	}
	if o.RingBytes == 0 {
		o.RingBytes = DefaultRingBytes
	}
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.BatchInterval <= 0 {
		o.BatchInterval = DefaultBatchInterval
	}
	if o.WatchEvery == 0 {
		o.WatchEvery = DefaultWatchEvery
	}
	if o.OwnerWait <= 0 {
		o.OwnerWait = DefaultOwnerWait
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Hook == "" {
		o.Hook = bpf.TierAuto
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
}

// Validate reports options Run cannot use, in the terms of `dnsrec record`'s
// flags. Run calls it after filling in the defaults, before it creates
// anything; a zero Snaplen or RingBytes is refused here, so that the
// command line, which passes every flag's value, refuses an explicit 0.
func (o *Options) Validate() error {
	if o.WatchEvery != 0 && (o.WatchEvery < 100*time.Millisecond || o.WatchEvery > time.Minute) {
		return fmt.Errorf("--watch-every %s: must be between 100ms and 1m", o.WatchEvery)
	}
	if o.Hook != bpf.TierAuto && !slices.Contains(bpf.Tiers, o.Hook) {
		return fmt.Errorf("--hook %q: unknown tier (want auto, %s)", o.Hook, TierNames())
	}
	if o.Snaplen == 0 || o.Snaplen > bpf.MaxSnaplen {
		return fmt.Errorf("--snaplen %d: must be between 1 and %d", o.Snaplen, bpf.MaxSnaplen)
	}
	if page := uint(os.Getpagesize()); o.RingBytes < page || o.RingBytes > bpf.MaxRingBytes || o.RingBytes&(o.RingBytes-1) != 0 {
		got := fmt.Sprintf("%d bytes", o.RingBytes)
		if o.RingBytes%(1<<20) == 0 {
			got = fmt.Sprintf("%d MiB", o.RingBytes>>20)
		}
		return fmt.Errorf("--ring-size: ring buffer size must be a power of two between %d bytes and %d MiB, got %s", page, bpf.MaxRingBytes>>20, got)
	}
	if o.Nice < -20 || o.Nice > 19 {
		return fmt.Errorf("--nice %d: must be between -20 and 19", o.Nice)
	}
	if o.Duration < 0 {
		return fmt.Errorf("--duration %s: must be positive", o.Duration)
	}
	if n := len(o.dotPorts()); n > bpf.MaxPorts {
		return fmt.Errorf("--dot-port: at most %d DoT ports with %d, got %d", bpf.MaxPorts, bpf.DefaultDoTPort, n)
	}
	if slices.Contains(o.DoTPorts, 0) {
		return errors.New("--dot-port 0: not a port")
	}
	for _, a := range o.Anchors {
		if err := anchor.ParseDest(a); err != nil {
			return err
		}
	}
	if len(o.Anchors) == 0 && (o.AnchorCA != "" || o.SignKeyFile != "") {
		return errors.New("--anchor-ca and --sign-key need --anchor: checkpoints that stay on the host prove nothing")
	}
	if o.CheckpointEvery != 0 && o.CheckpointEvery < 100*time.Millisecond {
		return fmt.Errorf("--checkpoint-every %s: must be at least 100ms", o.CheckpointEvery)
	}
	if _, err := newResolverSet(o.DoHServers); err != nil {
		return err
	}
	if n := len(o.dohPorts()); n > bpf.MaxPorts {
		return fmt.Errorf("--doh-port: at most %d DoH ports with %d, got %d", bpf.MaxPorts, bpf.DefaultDoHPort, n)
	}
	if slices.Contains(o.DoHPorts, 0) {
		return errors.New("--doh-port 0: not a port")
	}
	if o.Keep < 0 {
		return fmt.Errorf("--keep %d: must be at least 1", o.Keep)
	}
	if o.Keep > 0 && !o.rotating() {
		return errors.New("--keep needs --rotate: without rotation there is one file")
	}
	return nil
}

func (o *Options) rotating() bool { return o.RotateEvery > 0 || o.RotateSize > 0 }

// bpfConfig is the kernel side's part of the options, once validated.
func (o *Options) bpfConfig() bpf.Config {
	return bpf.Config{Ports: o.Ports, Snaplen: uint32(o.Snaplen), RingBytes: uint32(o.RingBytes), StableHooks: o.StableHooks,
		DoTPorts: o.dotPorts(), DoHPorts: o.dohPorts(), GuardPID: uint32(os.Getpid())}
}

// dotPorts is 853 and the DoTPorts, each once.
func (o *Options) dotPorts() []uint16 {
	ports := []uint16{bpf.DefaultDoTPort}
	for _, p := range o.DoTPorts {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}

// dohPorts is 443 and the DoHPorts, each once.
func (o *Options) dohPorts() []uint16 {
	ports := []uint16{bpf.DefaultDoHPort}
	for _, p := range o.DoHPorts {
		if !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	return ports
}
