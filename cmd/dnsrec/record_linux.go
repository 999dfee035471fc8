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

// recordAction runs `dnsrec record`: the flags become record.Options, which
// check themselves.
func recordAction(c *cli.Context) error {
	opts, err := recordOptions(c)
	if err != nil {
		return err
	}
	if err := opts.Validate(); err != nil {
		return err
	}
	if err := checkPrivileges(); err != nil {
		return err
	}
	if p := c.String("pidfile"); p != "" {
		pf, err := writePIDFile(p)
		if err != nil {
			return err
		}
		defer pf.remove()
	}
	if err := setMemoryLimit(c); err != nil {
		return err
	}
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
	log, status, stop := recordLog(c, opts.Live != nil)
	defer stop()
	opts.Logger, opts.Status = log, status.Update
	opts.Closed = func(sum record.Summary, err error) {
		if err != nil {
			log.Error("a rotated-out file could not be finished cleanly; what it holds stays readable", "output", sum.Path, "err", err)
		}
		printEvidence(log, sum)
	}
	opts.Started = func(s record.Started) {
		log.Info("recording", "output", s.Output, "hook", s.Hook, "ports", s.Ports, "stop", "Ctrl-C or SIGTERM")
	}
	sum, err := record.Run(c.Context, opts)
	status.Clear()
	printEvidence(log, sum)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	return nil
}

// recordLog makes the recorder's logger and its status: a line redrawn on
// a terminal (not when --live prints on the same terminal), else a periodic
// log line; SIGUSR1 logs it. stop ends the SIGUSR1 handling.
func recordLog(c *cli.Context, live bool) (log *slog.Logger, status *record.StatusPrinter, stop func()) {
	level := slog.LevelInfo
	if c.Bool("verbose") {
		level = slog.LevelDebug
	}
	var term io.Writer
	if format.IsTerminal(os.Stderr) && !(live && format.IsTerminal(os.Stdout)) {
		term = os.Stderr
	}
	status = record.NewStatusPrinter(term, c.Duration("status-interval"))
	var logOut io.Writer = os.Stderr
	if term != nil {
		logOut = status.Writer(os.Stderr)
	}
	log = slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	status.SetLogger(log)
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	go func() {
		for range usr1 {
			status.Log()
		}
	}()
	return log, status, func() { signal.Stop(usr1) }
}

// recordOptions reads the flags into record.Options. What a flag's type
// cannot carry into the option (a port above 65535, a size that is not a
// size) is refused here; the options' own rules are Options.Validate's.
func recordOptions(c *cli.Context) (record.Options, error) {
	opts := record.Options{
		Output:          c.String("output"),
		Force:           c.Bool("force"),
		Hook:            bpf.Tier(c.String("hook")),
		Snaplen:         c.Uint("snaplen"),
		RingBytes:       mebibytes(c.Uint("ring-size")),
		StableHooks:     c.Bool("stable-hooks"),
		BatchSize:       c.Int("batch-size"),
		BatchInterval:   c.Duration("batch-interval"),
		Nice:            c.Int("nice"),
		WatchEvery:      c.Duration("watch-every"),
		Duration:        c.Duration("duration"),
		Keep:            c.Int("keep"),
		NoLibc:          c.Bool("no-libc"),
		NoTLS:           c.Bool("no-tls"),
		DoHServers:      c.StringSlice("doh-server"),
		LiveJSON:        c.String("live-format") == "json",
		Anchors:         c.StringSlice("anchor"),
		AnchorCA:        c.String("anchor-ca"),
		SignKeyFile:     c.String("sign-key"),
		CheckpointEvery: c.Duration("checkpoint-every"),
		Version:         version,
		Cmdline:         strings.Join(os.Args, " "),
	}
	if c.Duration("status-interval") < 0 {
		return opts, fmt.Errorf("--status-interval %s: must be 0 or positive", c.Duration("status-interval"))
	}
	opts.Ports = []uint16{53}
	for _, p := range c.UintSlice("port") {
		if p > 65535 {
			return opts, fmt.Errorf("--port %d: not a port", p)
		}
		if p != 53 {
			opts.Ports = append(opts.Ports, uint16(p))
		}
	}
	for _, p := range c.UintSlice("dot-port") {
		if p > 65535 {
			return opts, fmt.Errorf("--dot-port %d: not a port", p)
		}
		opts.DoTPorts = append(opts.DoTPorts, uint16(p))
	}
	for _, p := range c.UintSlice("doh-port") {
		if p > 65535 {
			return opts, fmt.Errorf("--doh-port %d: not a port", p)
		}
		opts.DoHPorts = append(opts.DoHPorts, uint16(p))
	}
	// 0 means "keep every file" to the options, and is the flag's default.
	if c.IsSet("keep") && opts.Keep == 0 {
		return opts, fmt.Errorf("--keep 0: must be at least 1")
	}
	var err error
	if s := c.String("max-size"); s != "" {
		if opts.MaxSize, err = parseSize(s); err != nil {
			return opts, fmt.Errorf("--max-size: %w", err)
		}
	}
	if opts.RotateEvery, opts.RotateSize, err = parseRotate(c.String("rotate")); err != nil {
		return opts, err
	}
	if opts.Filter, err = recordFilter(c); err != nil {
		return opts, err
	}
	switch f := c.String("live-format"); f {
	case "text", "json":
	default:
		return opts, fmt.Errorf("--live-format %q: want text or json", f)
	}
	if c.Bool("live") {
		opts.Live = os.Stdout
	} else if c.IsSet("live-format") {
		return opts, fmt.Errorf("--live-format needs --live")
	}
	return opts, nil
}

// mebibytes converts --ring-size to bytes; a value that would wrap becomes
// the largest, which Options.Validate refuses.
func mebibytes(n uint) uint {
	if n > math.MaxUint>>20 {
		return math.MaxUint
	}
	return n << 20
}

// printEvidence logs a finished file and prints its SHA-256 line (and its
// -wal's, if a reader kept it in WAL mode), as sha256sum does.
var printMu sync.Mutex

func printEvidence(log *slog.Logger, sum record.Summary) {
	printMu.Lock() // rotated-out files are reported from another goroutine
	defer printMu.Unlock()
	if sum.Path != "" && sum.SHA256 != "" {
		log.Info("wrote evidence", "stopped", cmp.Or(sum.Stopped, "signal"), "output", sum.Path, "messages", sum.DNSMessages, "observations", sum.Messages, "libc_calls", sum.Resolutions, "bytes", sum.Bytes, "sha256", sum.SHA256,
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

// setMemoryLimit applies --memory-limit as the Go runtime's soft memory
// limit. Under a burst the reader and the writer allocate quickly, and with
// the runtime's default (GOGC=100, no limit) the heap grows to twice what
// is live before a collection, most of it garbage. A GOMEMLIMIT in the
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
