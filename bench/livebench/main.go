//go:build linux

// Command livebench is dnsrec's live benchmark. It runs a real DNS workload,
// dnsperf against dnsmasq, inside a network namespace of its own, with no
// recorder, with `dnsrec record`, and with `tcpdump -w` as a peer, and prints
// one markdown table: capture overhead, recorded-versus-sent counts, ring
// buffer loss, recorder CPU per message, evidence bytes per message against
// pcap, peak RSS, and the writer microbenchmark. All figures come from the
// same run. With -baseline it measures a second recorder binary in the same
// run, interleaved, and prints both side by side.
//
// It needs root: it creates the namespace, and the recorder loads BPF.
// Nothing outside the namespace is contacted. The recorder itself runs on
// the host side, since it hooks every cgroup, so it also records whatever
// other DNS traffic the host has during a run; on a quiet machine that is a
// handful of messages against the hundreds of thousands dnsperf causes, and
// the recorded-versus-expected rows show any excess.
//
// See bench/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var startTime = time.Now()

// logf reports progress on stderr; the table alone goes to stdout.
func logf(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "livebench [%6.1fs] %s\n", time.Since(startTime).Seconds(), fmt.Sprintf(format, a...))
}

type config struct {
	dnsrec, baseline       string
	satSeconds, rounds     int
	rates                  []int
	rateSeconds, cpuRate   int
	names                  int
	recordArgs             []string
	writerCmd              string
	writerSrc, baselineSrc string
	writerTimeout          time.Duration
	stopTimeout            time.Duration
	keep, checkOnly        bool
	probeName, probeWant   string
	tls                    bool
	tlsRate, tlsRequests   int
	tlsRounds              int
}

func parseFlags() (config, error) {
	var c config
	var rates, recordArgs string
	flag.StringVar(&c.dnsrec, "dnsrec", "./dnsrec", "the recorder binary to measure (the \"after\" column with -baseline)")
	flag.StringVar(&c.baseline, "baseline", "", "a second recorder binary, measured in the same run (the \"before\" column)")
	flag.IntVar(&c.satSeconds, "sat-seconds", 5, "seconds per saturation run (P1, P5)")
	flag.IntVar(&c.rounds, "rounds", 3, "saturation rounds; each runs every mode once, and medians are reported")
	flag.StringVar(&rates, "rates", "5000,10000,20000", "fixed query rates for P2, comma-separated")
	flag.IntVar(&c.rateSeconds, "rate-seconds", 5, "seconds per fixed-rate run (P2, P3)")
	flag.IntVar(&c.cpuRate, "cpu-rate", 5000, "the rate of -rates whose recording gives P3 (CPU per message)")
	flag.IntVar(&c.names, "names", 1000, "distinct names in dnsperf's query file")
	flag.StringVar(&recordArgs, "record-args", "", "extra arguments for `dnsrec record`, split on spaces (e.g. \"--batch-size 2000\")")
	flag.StringVar(&c.writerCmd, "writer-bench", "go test -run ^$ -bench ^BenchmarkStoreInsert$ -benchtime 200000x ./record/...",
		"the writer microbenchmark (P3b), split on spaces; its result line must carry a msgs/s metric")
	flag.StringVar(&c.writerSrc, "writer-src", ".", "source tree the writer microbenchmark runs in for the dnsrec column")
	flag.StringVar(&c.baselineSrc, "baseline-src", "", "source tree of the baseline, for its writer microbenchmark (skipped if empty)")
	flag.DurationVar(&c.writerTimeout, "writer-timeout", 10*time.Minute, "timeout of the writer microbenchmark, compilation included")
	flag.DurationVar(&c.stopTimeout, "stop-timeout", 2*time.Minute, "how long the recorder may take to drain and close after SIGINT")
	flag.BoolVar(&c.keep, "keep", false, "keep the temporary directory (recordings, pcaps, query file)")
	flag.StringVar(&c.probeName, "probe-dns", "", "internal: query 127.0.0.1:53 for this A record in the current network namespace and exit")
	flag.StringVar(&c.probeWant, "probe-want", testAddr, "internal: the address -probe-dns expects")
	flag.BoolVar(&c.tls, "tls", true, "also measure encrypted DNS (T rows): DoT and DoH through unbound, and HTTPS that is not DNS through curl")
	flag.IntVar(&c.tlsRate, "tls-rate", 2000, "query rate of the DoT and DoH runs (T1, T2), for -rate-seconds")
	flag.IntVar(&c.tlsRequests, "tls-requests", 1000, "HTTPS requests per round of T3, one TLS connection each")
	flag.IntVar(&c.tlsRounds, "tls-rounds", 5, "rounds of T3; each runs every mode once, and medians are reported")
	flag.BoolVar(&c.checkOnly, "check", false, "only check the prerequisites (root, dnsperf, dnsmasq, tcpdump, ip) and exit")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: livebench [flags]   (as root; see bench/README.md)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", flag.Args())
	}
	for _, f := range strings.Split(rates, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		r, err := strconv.Atoi(f)
		if err != nil || r <= 0 {
			return c, fmt.Errorf("-rates: bad rate %q", f)
		}
		c.rates = append(c.rates, r)
	}
	c.recordArgs = strings.Fields(recordArgs)
	if c.satSeconds < 1 || c.rateSeconds < 1 || c.rounds < 1 || c.names < 1 || c.tlsRate < 1 || c.tlsRequests < 1 || c.tlsRounds < 1 {
		return c, errors.New("-sat-seconds, -rate-seconds, -rounds, -names, -tls-rate, -tls-requests and -tls-rounds must be at least 1")
	}
	return c, nil
}

type tools struct{ dnsperf, dnsmasq, tcpdump, ip string }

// findTools checks that we are root and that the workload's programs exist.
func findTools() (tools, error) {
	var t tools
	var errs []string
	if os.Geteuid() != 0 {
		errs = append(errs, "livebench needs root: it creates a network namespace and the recorder loads BPF programs (run: sudo make bench)")
	}
	var missing, pkgs []string
	find := func(dst *string, name, pkg string) {
		if p, err := exec.LookPath(name); err == nil {
			*dst = p
			return
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
			if p := filepath.Join(dir, name); isExecutable(p) {
				*dst = p
				return
			}
		}
		missing = append(missing, fmt.Sprintf("%s (Debian package %s)", name, pkg))
		pkgs = append(pkgs, pkg)
	}
	find(&t.dnsperf, "dnsperf", "dnsperf")
	find(&t.dnsmasq, "dnsmasq", "dnsmasq-base")
	find(&t.tcpdump, "tcpdump", "tcpdump")
	find(&t.ip, "ip", "iproute2")
	if len(missing) > 0 {
		errs = append(errs, fmt.Sprintf("missing %s; install with: apt-get install %s",
			strings.Join(missing, ", "), strings.Join(pkgs, " ")))
	}
	if len(errs) > 0 {
		return t, errors.New(strings.Join(errs, "\n"))
	}
	return t, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

func main() {
	cfg, err := parseFlags()
	if err != nil {
		fmt.Fprintf(os.Stderr, "livebench: %v\n", err)
		os.Exit(2)
	}
	if cfg.probeName != "" {
		if err := probeDNSHere(cfg.probeName, net.ParseIP(cfg.probeWant)); err != nil {
			fmt.Fprintf(os.Stderr, "livebench: probe A %s: %v\n", cfg.probeName, err)
			os.Exit(1)
		}
		return
	}
	t, err := findTools()
	if err != nil {
		fmt.Fprintf(os.Stderr, "livebench: %v\n", err)
		os.Exit(1)
	}
	if cfg.checkOnly {
		return
	}
	if err := run(cfg, t); err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "livebench: interrupted; cleaned up")
			os.Exit(130)
		}
		fmt.Fprintf(os.Stderr, "livebench: %v\n", err)
		os.Exit(1)
	}
	logf("done")
}

// recBin is one recorder binary under test, one column of the table.
type recBin struct {
	label string // "dnsrec", or "before"/"after" with -baseline
	path  string
	src   string // source tree for the writer microbenchmark; "" skips it
}

// recRun is one recording: a fresh database, one dnsperf run.
type recRun struct {
	perf     perfResult
	info     recInfo
	size     int64         // evidence file after the clean stop
	hwmKiB   int64         // VmHWM just before stopping
	lifeKiB  int64         // peak RSS over the whole life, the finish included (0: unknown)
	cpuTicks int64         // recorder utime+stime during the dnsperf run
	wall     time.Duration // of the dnsperf run
	allCPU   time.Duration // recorder's whole life, start and stop included
	allOK    bool
}

// tdRun is one tcpdump run.
type tdRun struct {
	perf                   perfResult
	packets, size, dropped int64
}

type binResults struct {
	sat       []*recRun
	satErrs   []error
	rate      map[int]*recRun
	rateErr   map[int]error
	writer    []writerResult
	writerErr error
}

type harness struct {
	cfg   config
	t     tools
	ns    string
	tmp   string
	qfile string
	clk   int64

	loadStart string
	others    []string // disturbing processes seen at the start or the end

	bins []recBin
	res  map[string]*binResults
	off  []perfResult
	td   []*tdRun
	tdEr []error
	tls  *tlsResults
}

func run(cfg config, t tools) error {
	h := &harness{cfg: cfg, t: t, clk: clockTicks(), res: map[string]*binResults{}, loadStart: loadAvg()}
	after, err := absExecutable(cfg.dnsrec, "-dnsrec")
	if err != nil {
		return err
	}
	if cfg.baseline != "" {
		before, err := absExecutable(cfg.baseline, "-baseline")
		if err != nil {
			return err
		}
		h.bins = []recBin{{"before", before, cfg.baselineSrc}, {"after", after, cfg.writerSrc}}
	} else {
		h.bins = []recBin{{"dnsrec", after, cfg.writerSrc}}
	}
	for _, b := range h.bins {
		h.res[b.label] = &binResults{rate: map[int]*recRun{}, rateErr: map[int]error{}}
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigc)
	go func() {
		select {
		case s := <-sigc:
			logf("%v: stopping the children and cleaning up (signal again to abandon the cleanup)", s)
			signal.Stop(sigc) // a second signal kills us; Pdeathsig then kills the children
			cancel()
		case <-ctx.Done():
		}
	}()

	h.tmp, err = os.MkdirTemp("", fmt.Sprintf("livebench-%d-", os.Getpid()))
	if err != nil {
		return err
	}
	if cfg.keep {
		defer logf("kept %s", h.tmp)
	} else {
		defer os.RemoveAll(h.tmp)
	}

	removeStaleNetns(ctx)
	if o := otherCapture(); len(o) > 0 {
		h.others = append(h.others, o...)
		logf("warning: other DNS load, servers or capture running on the host: %s; they disturb the figures, and a recorder records their traffic too", strings.Join(o, " "))
	}
	h.ns = fmt.Sprintf("%s%d", nsPrefix, os.Getpid())
	if err := createNetns(ctx, h.ns); err != nil {
		return err
	}
	defer deleteNetns(ctx, h.ns)

	h.qfile = filepath.Join(h.tmp, "queries.txt")
	var qb strings.Builder
	for i := 1; i <= cfg.names; i++ {
		fmt.Fprintf(&qb, "host%d.bench.test A\n", i)
	}
	if err := os.WriteFile(h.qfile, []byte(qb.String()), 0o644); err != nil {
		return err
	}

	dm, err := h.startDNSMasq(ctx)
	if err != nil {
		return err
	}
	defer dm.kill()

	logf("commands (network namespace %s):", h.ns)
	logf("  dnsmasq:  %s", cmdline(h.dnsmasqArgv()))
	logf("  dnsperf:  %s", cmdline(h.dnsperfArgv(0, cfg.satSeconds)))
	logf("  tcpdump:  %s", cmdline(h.tcpdumpArgv(filepath.Join(h.tmp, "sat-tcpdump-rN.pcap"))))
	for _, b := range h.bins {
		logf("  recorder: %s   (host side)", cmdline(h.recorderArgv(b, filepath.Join(h.tmp, "TAG.db"))))
	}

	if _, err := h.dnsperf(ctx, 0, 1); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := h.saturation(ctx); err != nil {
		return err
	}
	if err := h.fixedRates(ctx); err != nil {
		return err
	}
	if o := otherCapture(); len(o) > 0 {
		h.others = append(h.others, o...)
		logf("warning: other DNS load, servers or capture running on the host: %s", strings.Join(o, " "))
	}
	if cfg.tls {
		h.encrypted(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	dm.kill()
	h.writerBench(ctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	fmt.Print(h.table())
	return nil
}

func absExecutable(p, flagName string) (string, error) {
	a, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if !isExecutable(a) {
		return "", fmt.Errorf("%s %s: not an executable file (make build makes ./dnsrec)", flagName, p)
	}
	return a, nil
}

// --- the workload ---

const (
	testZone = "bench.test"
	testAddr = "192.0.2.1"
)

func (h *harness) nsExec(argv ...string) []string {
	return append([]string{h.t.ip, "netns", "exec", h.ns}, argv...)
}

// dnsmasqArgv: an authoritative-only answer for every name under the test
// zone, from the command line alone: no config file, no upstream, no
// /etc/hosts, no cache, no pid file, logging to stderr.
func (h *harness) dnsmasqArgv() []string {
	return h.nsExec(h.t.dnsmasq, "--conf-file=/dev/null", "--no-daemon", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=127.0.0.1", "--port=53",
		"--address=/"+testZone+"/"+testAddr, "--cache-size=0", "--pid-file=", "--log-facility=-")
}

func (h *harness) dnsperfArgv(rate, seconds int) []string {
	argv := h.nsExec(h.t.dnsperf, "-s", "127.0.0.1", "-p", "53", "-d", h.qfile, "-l", strconv.Itoa(seconds))
	if rate > 0 {
		argv = append(argv, "-Q", strconv.Itoa(rate))
	}
	return argv
}

// tcpdumpArgv: -U writes each packet out as it comes; -Z root keeps tcpdump
// from dropping to its own user, which could not write into our 0700
// temporary directory.
func (h *harness) tcpdumpArgv(file string) []string {
	return h.nsExec(h.t.tcpdump, "-i", "lo", "-n", "-U", "-Z", "root", "-w", file, "port", "53")
}

func (h *harness) recorderArgv(b recBin, db string) []string {
	return append([]string{b.path, "record", "-o", db, "--force"}, h.cfg.recordArgs...)
}

func (h *harness) startDNSMasq(ctx context.Context) (*bgProc, error) {
	p, err := startBG(ctx, "dnsmasq", "started", 15*time.Second, h.dnsmasqArgv()...)
	if err != nil {
		return nil, err
	}
	var perr error
	for range 50 {
		if perr = probeDNS(ctx, h.t.ip, h.ns, "host1."+testZone, net.ParseIP(testAddr)); perr == nil {
			return p, nil
		}
		if p.exited() {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.kill()
	return nil, fmt.Errorf("dnsmasq does not answer A host1.%s with %s: %v\n%s", testZone, testAddr, perr, tail(p.out.String(), 10))
}

func (h *harness) dnsperf(ctx context.Context, rate, seconds int) (perfResult, error) {
	out, err := runCmd(ctx, time.Duration(seconds)*time.Second+time.Minute, h.dnsperfArgv(rate, seconds)...)
	if err != nil {
		return perfResult{}, err
	}
	r, err := parseDNSPerf(out)
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, tail(out, 15))
	}
	if r.Completed == 0 {
		return r, fmt.Errorf("dnsperf completed no query:\n%s", tail(out, 15))
	}
	return r, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// recorded runs dnsperf (at rate, or saturating if 0) under a fresh
// recording by b and measures the recorder.
func (h *harness) recorded(ctx context.Context, b recBin, tag string, rate, seconds int) (*recRun, error) {
	return h.recordedWith(ctx, b, tag, func(ctx context.Context) (perfResult, error) {
		return h.dnsperf(ctx, rate, seconds)
	})
}

// recordedWith runs the workload work under a fresh recording by b and
// measures the recorder.
func (h *harness) recordedWith(ctx context.Context, b recBin, tag string, work func(context.Context) (perfResult, error)) (*recRun, error) {
	db := filepath.Join(h.tmp, tag+".db")
	rec, err := startBG(ctx, "recorder "+b.label, "recording", time.Minute, h.recorderArgv(b, db)...)
	if err != nil {
		return nil, err
	}
	defer rec.kill()
	if !h.cfg.keep {
		defer func() {
			for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
				os.Remove(db + suffix)
			}
		}()
	}
	pid := rec.pid()
	r := &recRun{}
	t0, err := procTicks(pid)
	if err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	start := time.Now()
	r.perf, err = work(ctx)
	r.wall = time.Since(start)
	if err != nil {
		_ = rec.stop(ctx, syscall.SIGINT, h.cfg.stopTimeout)
		return nil, err
	}
	if rec.exited() {
		return nil, fmt.Errorf("recorder %s exited during the run (%v):\n%s", b.label, rec.waitErr, tail(rec.out.String(), 10))
	}
	// Let the recorder finish what the kernel has already handed it: its
	// CPU time stops growing when it has caught up (at most 3 s).
	t1 := t0
	for i := 0; i < 10; i++ {
		if err := sleepCtx(ctx, 300*time.Millisecond); err != nil {
			return nil, err
		}
		t, err := procTicks(pid)
		if err != nil {
			break
		}
		if t == t1 && i > 0 {
			break
		}
		t1 = t
	}
	r.cpuTicks = t1 - t0
	if r.hwmKiB, err = vmHWMKiB(pid); err != nil {
		return nil, fmt.Errorf("recorder: %w", err)
	}
	if err := rec.stop(ctx, syscall.SIGINT, h.cfg.stopTimeout); err != nil {
		return nil, fmt.Errorf("stopping the recorder: %w", err)
	}
	r.allCPU, r.allOK = rec.rusageCPU()
	r.lifeKiB, _ = rec.rusageMaxRSSKiB()
	out, err := runCmd(ctx, 2*time.Minute, b.path, "query", "info", "--format", "json", "--db", db)
	if err != nil {
		return nil, err
	}
	if r.info, err = parseInfo([]byte(out)); err != nil {
		return nil, fmt.Errorf("%w:\n%s", err, tail(out, 5))
	}
	fi, err := os.Stat(db)
	if err != nil {
		return nil, err
	}
	r.size = fi.Size()
	if _, err := os.Stat(db + "-wal"); err == nil {
		logf("warning: %s-wal left behind after a clean stop", db)
	}
	return r, nil
}

func (h *harness) tcpdumpRun(ctx context.Context, tag string, seconds int) (*tdRun, error) {
	file := filepath.Join(h.tmp, tag+".pcap")
	p, err := startBG(ctx, "tcpdump", "listening on", 30*time.Second, h.tcpdumpArgv(file)...)
	if err != nil {
		return nil, err
	}
	defer p.kill()
	if !h.cfg.keep {
		defer os.Remove(file)
	}
	r := &tdRun{}
	if r.perf, err = h.dnsperf(ctx, 0, seconds); err != nil {
		return nil, err
	}
	// tcpdump reads the kernel's ring in blocks that it hands over at the
	// latest after its 1 s timeout; stopping earlier would cut the tail.
	if err := sleepCtx(ctx, 1500*time.Millisecond); err != nil {
		return nil, err
	}
	if err := p.stop(ctx, syscall.SIGINT, 30*time.Second); err != nil {
		return nil, err
	}
	if r.packets, r.size, err = pcapStats(file); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	r.dropped = tcpdumpDropped(p.out.String())
	return r, nil
}

// saturation interleaves the modes, rotating their order each round so
// that no mode always runs first or last.
func (h *harness) saturation(ctx context.Context) error {
	modes := []string{"off"}
	for _, b := range h.bins {
		modes = append(modes, b.label)
	}
	modes = append(modes, "tcpdump")
	s := h.cfg.satSeconds
	for r := 0; r < h.cfg.rounds; r++ {
		for i := range modes {
			mode := modes[(i+r)%len(modes)]
			tag := fmt.Sprintf("sat-%s-r%d", mode, r+1)
			switch mode {
			case "off":
				p, err := h.dnsperf(ctx, 0, s)
				if err != nil {
					return fmt.Errorf("saturation, no recorder: %w", err)
				}
				h.off = append(h.off, p)
				logf("P1 round %d/%d %-8s %s qps", r+1, h.cfg.rounds, mode, commas(p.QPS))
			case "tcpdump":
				t, err := h.tcpdumpRun(ctx, tag, s)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if err != nil {
					logf("P1 round %d/%d tcpdump: %v", r+1, h.cfg.rounds, err)
					h.tdEr = append(h.tdEr, err)
					continue
				}
				h.td = append(h.td, t)
				logf("P1 round %d/%d %-8s %s qps, %s packets, %s bytes", r+1, h.cfg.rounds, mode,
					commas(t.perf.QPS), commas(float64(t.packets)), commas(float64(t.size)))
			default:
				b := h.bin(mode)
				rr, err := h.recorded(ctx, b, tag, 0, s)
				if ctx.Err() != nil {
					return ctx.Err()
				}
				res := h.res[b.label]
				if err != nil {
					logf("P1 round %d/%d recorder %s: %v", r+1, h.cfg.rounds, b.label, err)
					res.satErrs = append(res.satErrs, err)
					continue
				}
				res.sat = append(res.sat, rr)
				logf("P1 round %d/%d %-8s %s qps, %s messages, %s drops, %s bytes", r+1, h.cfg.rounds, mode,
					commas(rr.perf.QPS), commas(float64(rr.info.Messages)), commas(float64(rr.info.Drops)), commas(float64(rr.size)))
			}
		}
	}
	return nil
}

func (h *harness) bin(label string) recBin {
	for _, b := range h.bins {
		if b.label == label {
			return b
		}
	}
	panic("no binary " + label)
}

func (h *harness) fixedRates(ctx context.Context) error {
	for i, rate := range h.cfg.rates {
		for j := range h.bins {
			b := h.bins[(i+j)%len(h.bins)] // alternate which binary goes first
			tag := fmt.Sprintf("rate%d-%s", rate, b.label)
			rr, err := h.recorded(ctx, b, tag, rate, h.cfg.rateSeconds)
			if ctx.Err() != nil {
				return ctx.Err()
			}
			res := h.res[b.label]
			if err != nil {
				logf("P2 %d qps recorder %s: %v", rate, b.label, err)
				res.rateErr[rate] = err
				continue
			}
			res.rate[rate] = rr
			logf("P2 %d qps %-8s sent %s completed %s, %s messages, %s drops, %.2f s CPU",
				rate, b.label, commas(float64(rr.perf.Sent)), commas(float64(rr.perf.Completed)),
				commas(float64(rr.info.Messages)), commas(float64(rr.info.Drops)), float64(rr.cpuTicks)/float64(h.clk))
		}
	}
	return nil
}

func (h *harness) writerBench(ctx context.Context) {
	argv := strings.Fields(h.cfg.writerCmd)
	if len(argv) == 0 {
		return
	}
	var env []string
	if argv[0] == "go" {
		goBin, err := exec.LookPath("go")
		if err != nil && isExecutable("/usr/local/go/bin/go") {
			goBin, err = "/usr/local/go/bin/go", nil
		}
		if err == nil {
			argv[0] = goBin
			env = []string{"PATH=" + filepath.Dir(goBin) + string(os.PathListSeparator) + os.Getenv("PATH")}
		}
	}
	for _, b := range h.bins {
		if b.src == "" {
			continue
		}
		res := h.res[b.label]
		logf("P3b %s: %s   (in %s)", b.label, cmdline(argv), b.src)
		out, err := runCmdIn(ctx, h.cfg.writerTimeout, b.src, env, argv...)
		if err == nil {
			var ws []writerResult
			if ws, err = parseWriterBench(out); err == nil {
				res.writer = ws
				logf("P3b %s: %s", b.label, writerCell(ws))
				continue
			}
			err = fmt.Errorf("%w\n%s", err, tail(out, 10))
		}
		res.writerErr = err
		logf("P3b %s failed: %v", b.label, err)
	}
}

// writerCell: "180,161 msgs/s (114.1 B/msg)", one per sub-benchmark.
func writerCell(ws []writerResult) string {
	var parts []string
	for _, w := range ws {
		s := commas(w.MsgsPerSec) + " msgs/s"
		if w.BytesPerMsg > 0 {
			s += fmt.Sprintf(" (%.1f B/msg)", w.BytesPerMsg)
		}
		if w.Name != "" {
			s = w.Name + ": " + s
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// --- the table ---

const (
	pass = "pass"
	fail = "FAIL"
	none = "—"
)

type row struct {
	id, measure, target string
	vals, results       []string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// commas formats a count or rate, rounded, with thousands separators.
func commas(f float64) string {
	n := int64(f + 0.5)
	if f < 0 {
		n = int64(f - 0.5)
	}
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func verdict(ok bool) string {
	if ok {
		return pass
	}
	return fail
}

// errCell is a short form of err for a table cell; the whole error went to
// stderr when it happened.
func errCell(err error) string {
	if err == nil {
		return "no data"
	}
	s := strings.SplitN(err.Error(), "\n", 2)[0]
	if len(s) > 70 {
		s = s[:70] + "…"
	}
	return "error: " + s + " (see stderr)"
}

func (h *harness) table() string {
	var rows []row
	n := len(h.bins)
	same := func(s string) []string {
		v := make([]string, n)
		for i := range v {
			v[i] = s
		}
		return v
	}
	perBin := func(f func(b recBin, r *binResults) (val, res string)) ([]string, []string) {
		vals, results := make([]string, n), make([]string, n)
		for i, b := range h.bins {
			vals[i], results[i] = f(b, h.res[b.label])
		}
		return vals, results
	}

	// B: the baseline workload.
	var offQPS []float64
	for _, p := range h.off {
		offQPS = append(offQPS, p.QPS)
	}
	offMed := median(offQPS)
	spread := (slices.Max(offQPS) - slices.Min(offQPS)) / offMed * 100
	rows = append(rows, row{id: "B", target: none, results: same(none),
		measure: fmt.Sprintf("dnsperf qps at saturation, nothing capturing (median of %d; min–max, spread)", len(offQPS)),
		vals: same(fmt.Sprintf("%s (%s–%s, %.1f%%)", commas(offMed), commas(slices.Min(offQPS)),
			commas(slices.Max(offQPS)), spread))})

	// P1t, computed first: P1 compares against it.
	tdRatio := -1.0
	tdVal := errCell(errors.Join(h.tdEr...))
	if len(h.td) > 0 {
		var q []float64
		var pk, done, dropped int64
		for _, t := range h.td {
			q = append(q, t.perf.QPS)
			pk += t.packets
			done += t.perf.Completed
			if t.dropped > 0 {
				dropped += t.dropped
			}
		}
		tdRatio = median(q) / offMed
		tdVal = fmt.Sprintf("%.3f (%s qps; pcap holds %.3f of 2×completed, %s dropped by kernel)",
			tdRatio, commas(median(q)), float64(pk)/float64(2*done), commas(float64(dropped)))
	}

	// P1
	vals, results := perBin(func(b recBin, r *binResults) (string, string) {
		if len(r.sat) == 0 {
			return errCell(errors.Join(r.satErrs...)), fail
		}
		var q []float64
		for _, s := range r.sat {
			q = append(q, s.perf.QPS)
		}
		ratio := median(q) / offMed
		extra := ""
		if len(r.satErrs) > 0 {
			extra = fmt.Sprintf(", %d of %d rounds failed", len(r.satErrs), h.cfg.rounds)
		}
		return fmt.Sprintf("%.3f (%s qps%s)", ratio, commas(median(q)), extra),
			verdict(ratio >= 0.97 && ratio >= tdRatio && len(r.satErrs) == 0)
	})
	rows = append(rows, row{id: "P1", measure: "qps recording ÷ qps off, saturation (medians)",
		target: "≥ 0.97 and ≥ tcpdump's", vals: vals, results: results})
	rows = append(rows, row{id: "P1t", measure: "qps with tcpdump -w ÷ qps off, saturation (medians), the peer",
		target: none, vals: same(tdVal), results: same(none)})

	// P1c: counts at saturation, for information.
	vals, results = perBin(func(b recBin, r *binResults) (string, string) {
		if len(r.sat) == 0 {
			return none, none
		}
		var msgs, done, drops int64
		for _, s := range r.sat {
			msgs += s.info.Messages
			done += s.perf.Completed
			drops += s.info.Drops
		}
		return fmt.Sprintf("%.4f (%s ÷ %s), drops %s", float64(msgs)/float64(4*done), commas(float64(msgs)),
			commas(float64(4*done)), commas(float64(drops))), none
	})
	rows = append(rows, row{id: "P1c", measure: "messages recorded ÷ 4×completed at saturation, all rounds; ring buffer drops",
		target: "(information)", vals: vals, results: results})

	// P2
	for _, rate := range h.cfg.rates {
		vals, results = perBin(func(b recBin, r *binResults) (string, string) {
			rr := r.rate[rate]
			if rr == nil {
				return errCell(r.rateErr[rate]), fail
			}
			exp := 4 * rr.perf.Completed
			got := rr.info.Messages
			drops := "drops " + commas(float64(rr.info.Drops))
			if !rr.info.HaveDrops {
				drops = "drops: not in info"
			}
			// More than expected is other DNS traffic on the host; allow a little.
			ok := rr.info.HaveDrops && rr.info.Drops == 0 && got >= exp && float64(got-exp) <= 10+0.0005*float64(exp)
			// dnsperf falls short of the rate when the machine is saturated.
			asked := int64(rate) * int64(h.cfg.rateSeconds)
			return fmt.Sprintf("%.4f (%s ÷ %s; sent %s of %s), %s", float64(got)/float64(exp), commas(float64(got)),
				commas(float64(exp)), commas(float64(rr.perf.Sent)), commas(float64(asked)), drops), verdict(ok)
		})
		rows = append(rows, row{id: "P2", measure: fmt.Sprintf("messages recorded ÷ 4×completed at %s qps for %d s; ring buffer drops", commas(float64(rate)), h.cfg.rateSeconds),
			target: "1.000, 0 drops", vals: vals, results: results})
	}

	// P3
	cpuRate := h.cfg.cpuRate
	if !slices.Contains(h.cfg.rates, cpuRate) && len(h.cfg.rates) > 0 {
		cpuRate = h.cfg.rates[0]
	}
	vals, results = perBin(func(b recBin, r *binResults) (string, string) {
		rr := r.rate[cpuRate]
		if rr == nil {
			return errCell(r.rateErr[cpuRate]), fail
		}
		if rr.info.Messages == 0 {
			return "no messages stored", fail
		}
		cpu := float64(rr.cpuTicks) / float64(h.clk)
		us := cpu * 1e6 / float64(rr.info.Messages)
		all := ""
		if rr.allOK {
			all = fmt.Sprintf("; %.1f µs with start and stop", rr.allCPU.Seconds()*1e6/float64(rr.info.Messages))
		}
		return fmt.Sprintf("%.1f µs (%.2f s CPU ÷ %s msgs, %.2f cores%s)", us, cpu, commas(float64(rr.info.Messages)),
			cpu/rr.wall.Seconds(), all), verdict(us <= 10)
	})
	rows = append(rows, row{id: "P3", measure: fmt.Sprintf("recorder CPU (utime+stime) per stored message at %s qps", commas(float64(cpuRate))),
		target: "≤ 10 µs", vals: vals, results: results})

	// P3b
	vals, results = perBin(func(b recBin, r *binResults) (string, string) {
		switch {
		case b.src == "":
			return "not run (no -baseline-src)", none
		case r.writer == nil:
			return errCell(r.writerErr), fail
		}
		ok := true
		for _, w := range r.writer {
			ok = ok && w.MsgsPerSec >= 200000
		}
		return writerCell(r.writer), verdict(ok)
	})
	rows = append(rows, row{id: "P3b", measure: "writer microbenchmark, BenchmarkStoreInsert (run in a source tree, not on the binary; every sub-benchmark must pass)",
		target: "≥ 200,000 msgs/s", vals: vals, results: results})

	// P5
	var pcapBPP []float64
	for _, t := range h.td {
		if t.packets > 0 {
			pcapBPP = append(pcapBPP, float64(t.size)/float64(t.packets))
		}
	}
	vals, results = perBin(func(b recBin, r *binResults) (string, string) {
		var bpm []float64
		for _, s := range r.sat {
			if s.info.Messages > 0 {
				bpm = append(bpm, float64(s.size)/float64(s.info.Messages))
			}
		}
		if len(bpm) == 0 || len(pcapBPP) == 0 {
			return "no data", fail
		}
		ratio := median(bpm) / median(pcapBPP)
		return fmt.Sprintf("%.2f (%.1f B/msg ÷ %.1f B/packet)", ratio, median(bpm), median(pcapBPP)), verdict(ratio <= 1.0)
	})
	rows = append(rows, row{id: "P5", measure: "evidence bytes per message ÷ pcap bytes per packet, saturation (medians)",
		target: "≤ 1.0", vals: vals, results: results})

	// P6
	vals, results = perBin(func(b recBin, r *binResults) (string, string) {
		var hwm, life int64
		k, lifeK := 0, 0
		runs := append([]*recRun(nil), r.sat...)
		for _, s := range r.rate {
			runs = append(runs, s)
		}
		for _, s := range runs {
			hwm, k = max(hwm, s.hwmKiB), k+1
			if s.lifeKiB > 0 {
				life, lifeK = max(life, s.lifeKiB), lifeK+1
			}
		}
		if k == 0 {
			return "no data", fail
		}
		if lifeK < k {
			return fmt.Sprintf("%.1f MiB before stopping; whole life unknown for %d of %d recordings", float64(hwm)/1024, k-lifeK, k), fail
		}
		return fmt.Sprintf("%.1f MiB whole life (%.1f MiB just before stopping; max of %d recordings)", float64(life)/1024, float64(hwm)/1024, k), verdict(life <= 64*1024)
	})
	rows = append(rows, row{id: "P6", measure: "recorder peak RSS over its whole life, the finish included (ru_maxrss), and VmHWM just before stopping",
		target: "≤ 64 MiB", vals: vals, results: results})

	rows = append(rows, h.tlsRows(perBin)...)
	return h.render(rows)
}

// loadAvg is the 1-minute load average: other work on the machine is noise.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

func cell(s string) string {
	return strings.NewReplacer("|", "/", "\n", " ").Replace(s)
}

func (h *harness) render(rows []row) string {
	var b strings.Builder
	kernel := "?"
	if k, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(k))
	}
	rates := make([]string, len(h.cfg.rates))
	for i, r := range h.cfg.rates {
		rates[i] = strconv.Itoa(r)
	}
	fmt.Fprintf(&b, "\ndnsrec live benchmark: kernel %s, %d CPUs, load average %s at start and %s at end; dnsmasq and dnsperf on loopback in a netns; saturation %d × %d s, fixed rates %s qps × %d s",
		kernel, runtime.NumCPU(), h.loadStart, loadAvg(), h.cfg.rounds, h.cfg.satSeconds, strings.Join(rates, "/"), h.cfg.rateSeconds)
	for _, bin := range h.bins {
		fmt.Fprintf(&b, "; %s = %s", bin.label, bin.path)
	}
	if len(h.cfg.recordArgs) > 0 {
		fmt.Fprintf(&b, "; record args %q", strings.Join(h.cfg.recordArgs, " "))
	}
	if len(h.others) > 0 {
		fmt.Fprintf(&b, "; WARNING: also running on the host: %s", strings.Join(slices.Compact(slices.Sorted(slices.Values(h.others))), " "))
	}
	b.WriteString("\n\n")
	if len(h.bins) == 1 {
		b.WriteString("| id | measure | value | target | result |\n|---|---|---|---|---|\n")
		for _, r := range rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r.id, cell(r.measure), cell(r.vals[0]), cell(r.target), r.results[0])
		}
		return b.String()
	}
	b.WriteString("| id | measure | before | after | target | result before / after |\n|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s / %s |\n", r.id, cell(r.measure), cell(r.vals[0]), cell(r.vals[1]),
			cell(r.target), r.results[0], r.results[1])
	}
	return b.String()
}
