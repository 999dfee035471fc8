//go:build linux && (amd64 || arm64)

package main

import (
	"cmp"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
	"github.com/dnsrec/dnsrec/record"
	"github.com/dnsrec/dnsrec/schema"
)

// canRecord: this build has BPF programs to load (see record_other.go).
const canRecord = true

// recordAction runs `dnsrec record`.
func recordAction(c *cli.Context) error {
	if p := c.String("cpuprofile"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	// The status: a line redrawn on a terminal (not when --live prints on
	// the same terminal), else a periodic log line; SIGUSR1 logs it.
	var term io.Writer
	if format.IsTerminal(os.Stderr) && !(c.Bool("live") && format.IsTerminal(os.Stdout)) {
		term = os.Stderr
	}
	if c.Duration("status-interval") < 0 {
		return fmt.Errorf("--status-interval %s: must be 0 or positive", c.Duration("status-interval"))
	}
	status := record.NewStatusPrinter(term, c.Duration("status-interval"))
	var logOut io.Writer = os.Stderr
	if term != nil {
		logOut = status.Writer(os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	status.SetLogger(log)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	go func() {
		for range usr1 {
			status.Log()
		}
	}()
	hook, err := pickTier(c.String("hook"))
	if err != nil {
		return err
	}
	ports := []uint16{53}
	// Only what the flags' types cannot carry into the kernel options is
	// checked here (a value that would wrap); the options themselves are
	// validated once, by record.Run (bpf.NewLoader).
	for _, p := range c.UintSlice("port") {
		if p > 65535 {
			return fmt.Errorf("--port %d: not a port", p)
		}
		if p != 53 {
			ports = append(ports, uint16(p))
		}
	}
	if n := c.Int("nice"); n < -20 || n > 19 {
		return fmt.Errorf("--nice %d: must be between -20 and 19", n)
	}
	// 0 would mean the default to record.Run.
	ringMiB := c.Uint("ring-size")
	if ringMiB == 0 || ringMiB > bpf.MaxRingBytes>>20 {
		return fmt.Errorf("--ring-size %d: must be between 1 and %d MiB, a power of two", ringMiB, bpf.MaxRingBytes>>20)
	}
	// The flag is a uint; the kernel option a uint32, which a larger value
	// would wrap (4294967296 to 0, then quietly the default).
	if n := c.Uint("snaplen"); c.IsSet("snaplen") && (n == 0 || n > bpf.MaxSnaplen) {
		return fmt.Errorf("--snaplen %d: must be between 1 and %d", n, bpf.MaxSnaplen)
	}
	if d := c.Duration("duration"); d < 0 {
		return fmt.Errorf("--duration %s: must be positive", d)
	}
	if err := setMemoryLimit(c); err != nil {
		return err
	}
	var maxSize int64
	if s := c.String("max-size"); s != "" {
		if maxSize, err = parseSize(s); err != nil {
			return fmt.Errorf("--max-size: %w", err)
		}
	}
	rotateEvery, rotateSize, err := parseRotate(c.String("rotate"))
	if err != nil {
		return err
	}
	keep := c.Int("keep")
	if keep < 0 || (c.IsSet("keep") && keep == 0) {
		return fmt.Errorf("--keep %d: must be at least 1", keep)
	}
	if keep > 0 && c.String("rotate") == "" {
		return fmt.Errorf("--keep needs --rotate: without rotation there is one file")
	}
	filter, err := recordFilter(c)
	if err != nil {
		return err
	}
	var live io.Writer
	liveJSON := false
	switch f := c.String("live-format"); f {
	case "text", "json":
		liveJSON = f == "json"
	default:
		return fmt.Errorf("--live-format %q: want text or json", f)
	}
	if c.Bool("live") {
		live = os.Stdout
	} else if c.IsSet("live-format") {
		return fmt.Errorf("--live-format needs --live")
	}
	if os.Geteuid() != 0 {
		log.Warn("not running as root: loading BPF programs will probably fail")
	}
	sum, err := record.Run(c.Context, record.Options{
		Output:        c.String("output"),
		Force:         c.Bool("force"),
		Hook:          hook,
		Ports:         ports,
		Snaplen:       uint32(c.Uint("snaplen")),
		RingBytes:     uint32(ringMiB << 20),
		StableHooks:   c.Bool("stable-hooks"),
		BatchSize:     c.Int("batch-size"),
		BatchInterval: c.Duration("batch-interval"),
		Nice:          c.Int("nice"),
		Duration:      c.Duration("duration"),
		MaxSize:       maxSize,
		RotateEvery:   rotateEvery,
		RotateSize:    rotateSize,
		Keep:          keep,
		Filter:        filter,
		NoLibc:        c.Bool("no-libc"),
		Closed: func(sum record.Summary, err error) {
			if err != nil {
				log.Error("a rotated-out file could not be finished cleanly; what it holds stays readable", "output", sum.Path, "err", err)
			}
			printEvidence(log, sum)
		},
		Live:     live,
		Status:   status.Update,
		LiveJSON: liveJSON,
		Version:  version,
		Cmdline:  strings.Join(os.Args, " "),
		Logger:   log,
		Started: func(s record.Started) {
			log.Info("recording", "output", s.Output, "hook", s.Hook, "ports", s.Ports, "stop", "Ctrl-C or SIGTERM")
		},
	})
	status.Clear()
	printEvidence(log, sum)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// printEvidence logs a finished file and prints its SHA-256 line (and its
// -wal's, if a reader kept it in WAL mode), as sha256sum does.
var printMu sync.Mutex

func printEvidence(log *slog.Logger, sum record.Summary) {
	printMu.Lock() // rotated-out files are reported from another goroutine
	defer printMu.Unlock()
	if sum.Path != "" && sum.SHA256 != "" {
		log.Info("wrote evidence", "stopped", cmp.Or(sum.Stopped, "signal"), "output", sum.Path, "messages", sum.Messages, "libc_resolutions", sum.Resolutions, "bytes", sum.Bytes, "sha256", sum.SHA256,
			"chain_links", sum.ChainSeq, "chain_head", sum.ChainHead)
		fmt.Printf("%s  %s\n", sum.SHA256, sum.Path)
	}
	if sum.WAL != "" {
		log.Warn("a reader held the file at the stop, so it stays in WAL mode: copy both files, together", "output", sum.Path, "wal", sum.WAL, "wal_bytes", sum.WALBytes, "wal_sha256", sum.WALSHA256)
		fmt.Printf("%s  %s\n", sum.WALSHA256, sum.WAL)
	}
}

// parseRotate reads --rotate: a duration (1h, 30m) or a size (1GiB, 500MB).
// "m" alone is minutes, as in a duration.
func parseRotate(v string) (every time.Duration, size int64, err error) {
	if v == "" {
		return 0, 0, nil
	}
	if d, derr := time.ParseDuration(v); derr == nil {
		if d < time.Second {
			return 0, 0, fmt.Errorf("--rotate %s: rotate at most once a second", v)
		}
		return d, 0, nil
	}
	size, err = parseSize(v)
	if err != nil {
		return 0, 0, fmt.Errorf("--rotate %q: want a duration (e.g. 1h, 30m) or a size (e.g. 1GiB, 500MB)", v)
	}
	if size < 64<<10 {
		return 0, 0, fmt.Errorf("--rotate %s: files of less than 64 KiB would be mostly schema", v)
	}
	return 0, size, nil
}

// recordFilter reads --domain, --exclude-domain, --pid and --comm.
func recordFilter(c *cli.Context) (record.Filter, error) {
	var f record.Filter
	for _, flag := range []struct {
		name string
		out  *[]string
	}{{"domain", &f.Domains}, {"exclude-domain", &f.ExcludeDomains}} {
		for _, v := range c.StringSlice(flag.name) {
			if strings.ContainsAny(v, "*?[") {
				return f, fmt.Errorf("--%s %q: give a domain, without wildcards: it matches the name and its subdomains", flag.name, v)
			}
			p, err := query.ParseName(v, true)
			if err != nil {
				return f, fmt.Errorf("--%s %q: %w", flag.name, v, err)
			}
			for _, rev := range p.Revs {
				*flag.out = append(*flag.out, schema.ReverseName(rev))
			}
		}
	}
	for _, p := range c.UintSlice("pid") {
		if p == 0 || p > 1<<22 {
			return f, fmt.Errorf("--pid %d: not a process id", p)
		}
		f.PIDs = append(f.PIDs, uint32(p))
	}
	for _, comm := range c.StringSlice("comm") {
		if comm == "" || len(comm) > 15 {
			return f, fmt.Errorf("--comm %q: a command name has 1 to 15 characters (the kernel keeps no more)", comm)
		}
		f.Comms = append(f.Comms, comm)
	}
	return f, nil
}

// pickTier maps --hook to a tier; auto lets the recorder probe.
func pickTier(name string) (bpf.Tier, error) {
	if name == string(bpf.TierAuto) {
		return bpf.TierAuto, nil
	}
	for _, t := range bpf.Tiers {
		if string(t) == name {
			return t, nil
		}
	}
	return "", fmt.Errorf("--hook %q: unknown tier (want auto, %s)", name, tierNames())
}

// setMemoryLimit applies --memory-limit as the Go runtime's soft memory
// limit. Under a burst the reader and the writer allocate quickly, and with
// the runtime's default (GOGC=100, no limit) the heap grows to twice what
// is live before a collection: at saturation the recorder's peak RSS went
// from about 50 MiB to 80 MiB, most of it garbage. A GOMEMLIMIT in the
// environment is left alone unless the flag is given.
func setMemoryLimit(c *cli.Context) error {
	if !c.IsSet("memory-limit") && os.Getenv("GOMEMLIMIT") != "" {
		return nil
	}
	s := c.String("memory-limit")
	limit := int64(math.MaxInt64) // the runtime's "no limit"
	if s != "0" {
		n, err := parseSize(s)
		if err != nil {
			return fmt.Errorf("--memory-limit: %w", err)
		}
		if n < 8<<20 {
			return fmt.Errorf("--memory-limit %s: below 8MiB the collector would run all the time; 0 means no limit", s)
		}
		limit = n
	}
	debug.SetMemoryLimit(limit)
	return nil
}
