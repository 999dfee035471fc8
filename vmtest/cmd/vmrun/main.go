//go:build linux

// Command vmrun runs a statically linked test binary on stock Debian kernels
// under QEMU (TCG), and optionally on the host kernel, and turns the results
// into a matrix and an exit status.
//
// Usage (from anywhere inside the repository):
//
//	go run ./vmtest/cmd/vmrun [flags] TEST_BINARY [ARGS...]
//	vmtest/run [flags] TEST_BINARY [ARGS...]          (same thing)
//
// ARGS form the run labelled "default". Use -run LABEL=ARGS (repeatable) for
// several runs per kernel; ARGS is split on white space, or is a JSON array of
// strings when it starts with '['.
//
// Kernels are amd64 or arm64 (Debian's cloud-arm64 kernels, booted with
// qemu-system-aarch64 -machine virt). Each VM gets the test binary of its
// kernel's architecture: TEST_BINARY for the one it is built for, -bin-arm64
// (or -bin-amd64) for the other; the host column runs TEST_BINARY.
//
// In each VM the binary is /test.bin, started by vmtest/init as PID 1 with the
// arguments of the run. A test reports a passed run by exiting 0, a failed one
// by exiting non-zero, and an unsupported one by printing a line
// "VMTEST-UNSUPPORTED: reason" and exiting 0.
//
// Exit status: 0 when no cell failed, 1 when any cell failed or errored
// (timeout, kernel panic, no result marker), 2 on a usage or setup error.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

type runSpec struct {
	Label string   `json:"label"`
	Args  []string `json:"args"`
}

type kernel struct {
	Label   string `json:"label"`   // "6.1", "host", or a file name
	Version string `json:"version"` // uname -r
	Path    string `json:"path"`    // vmlinuz; empty for host
	Host    bool   `json:"host"`
	Arch    string `json:"arch"` // GOARCH of the kernel: amd64 or arm64
}

func (k kernel) Title() string {
	if k.Version == "" || k.Version == k.Label {
		return k.Label
	}
	return fmt.Sprintf("%s (%s)", k.Label, k.Version)
}

type outcome struct {
	stalled bool // the guest reported a CPU stall and was killed for it

	Kernel  string  `json:"kernel"`
	Version string  `json:"version"`
	Arch    string  `json:"arch"`
	Run     string  `json:"run"`
	Status  string  `json:"status"` // passed, failed, unsupported, error
	Exit    *int    `json:"exit,omitempty"`
	Reason  string  `json:"reason,omitempty"`
	BootS   float64 `json:"boot_seconds,omitempty"` // until /init reported in
	TotalS  float64 `json:"total_seconds"`          // whole boot + run + power off
	Log     string  `json:"log"`
}

const (
	statusPassed      = "passed"
	statusFailed      = "failed"
	statusUnsupported = "unsupported"
	statusError       = "error"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

type config struct {
	root, cache, logDir string
	testBin             string            // the positional binary: the host's, and its arch's VMs'
	bins                map[string]string // GOARCH -> static test binary for VMs of that arch
	kernels             []string
	runs                []runSpec
	env                 []string
	adds                []string
	timeout             time.Duration
	stallGrace          time.Duration
	mem, smp, jobs      int
	accel, qemu, extra  string
	qemuArm64           string
	verbose             bool
}

func main() {
	os.Exit(run())
}

func usageErr(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "vmrun: "+format+"\n", args...)
	return 2
}

func run() int {
	var (
		c        config
		runs     multiFlag
		envs     multiFlag
		adds     multiFlag
		kernels  string
		testBins string
		binArm64 string
		binAmd64 string
	)
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: vmrun [flags] TEST_BINARY [ARGS...]

Runs a static test binary on Debian cloud kernels under qemu (TCG) and/or on
the host, and prints a kernel x run matrix. Kernels are fetched and cached by
vmtest/fetch-kernels.sh.

flags:
`)
		flag.PrintDefaults()
	}
	flag.StringVar(&kernels, "kernels", "5.10,6.1,6.12", "comma-separated kernels: 5.10, 6.1, 6.12, newest (Debian's newest cloud kernel, from trixie-backports), 6.1-arm64, 6.12-arm64 (Debian's cloud-arm64 kernels, under qemu-system-aarch64), host (this machine's kernel, no VM), or a path to a vmlinuz (x86 bzImage or arm64 Image)")
	flag.Var(&runs, "run", "LABEL=ARGS: a run per kernel with these test arguments (repeatable; ARGS split on spaces, or a JSON array)")
	flag.Var(&envs, "env", "KEY=VALUE for the test's environment (repeatable)")
	flag.Var(&adds, "add", "SRC[:DST]: extra host file for the initramfs (repeatable; DST defaults to /basename; {arch} in SRC becomes the guest's, amd64 or arm64)")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "limit for one boot (or host run), after which it is killed and counted as an error")
	flag.DurationVar(&c.stallGrace, "stall-grace", 90*time.Second, "how long a guest that reported a CPU stall (soft lockup, RCU stall) may go on before it is killed and booted once more")
	flag.IntVar(&c.mem, "mem", 1024, "guest memory in MiB")
	flag.IntVar(&c.smp, "smp", 2, "guest CPUs")
	flag.IntVar(&c.jobs, "j", 1, "VMs to run at the same time")
	flag.StringVar(&c.accel, "accel", "tcg", "qemu accelerator (kvm hung at 'Booting from ROM' on the dev machines)")
	flag.StringVar(&c.qemu, "qemu", "qemu-system-x86_64", "qemu binary for amd64 kernels")
	flag.StringVar(&c.qemuArm64, "qemu-arm64", "qemu-system-aarch64", "qemu binary for arm64 kernels (-machine virt)")
	flag.StringVar(&binArm64, "bin-arm64", "", "static linux/arm64 test binary for the arm64 kernels (when TEST_BINARY is an amd64 one)")
	flag.StringVar(&binAmd64, "bin-amd64", "", "static linux/amd64 test binary for the amd64 kernels (when TEST_BINARY is an arm64 one)")
	flag.StringVar(&c.extra, "append", "", "extra kernel command line parameters")
	flag.StringVar(&c.root, "root", "", "repository root (default: found from the working directory)")
	flag.StringVar(&c.cache, "cache", "", "cache directory (default: ROOT/.cache, or $VMTEST_CACHE)")
	flag.StringVar(&c.logDir, "logdir", "", "console logs directory (default: CACHE/vmtest-logs)")
	flag.BoolVar(&c.verbose, "v", false, "stream every console line to stdout, prefixed with the kernel")
	flag.StringVar(&testBins, "bin", "", "test binary (alternative to the first positional argument)")
	flag.Parse()

	pos := flag.Args()
	c.testBin = testBins
	if c.testBin == "" {
		if len(pos) == 0 {
			flag.Usage()
			return 2
		}
		c.testBin, pos = pos[0], pos[1:]
	}
	if len(pos) > 0 && pos[0] == "--" {
		pos = pos[1:]
	}
	if len(runs) == 0 || len(pos) > 0 {
		c.runs = append(c.runs, runSpec{Label: "default", Args: pos})
	}
	for _, r := range runs {
		rs, err := parseRun(r)
		if err != nil {
			return usageErr("-run %q: %v", r, err)
		}
		c.runs = append(c.runs, rs)
	}
	seen := map[string]bool{}
	for _, r := range c.runs {
		if seen[r.Label] {
			return usageErr("duplicate run label %q", r.Label)
		}
		seen[r.Label] = true
	}
	for _, e := range envs {
		if !strings.Contains(e, "=") {
			return usageErr("-env %q: want KEY=VALUE", e)
		}
	}
	c.env = envs
	c.adds = adds
	for _, k := range strings.Split(kernels, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.kernels = append(c.kernels, k)
		}
	}
	if len(c.kernels) == 0 {
		return usageErr("no kernels given")
	}
	if c.jobs < 1 {
		c.jobs = 1
	}

	c.bins = map[string]string{}
	for _, b := range []string{c.testBin, binAmd64, binArm64} {
		if b == "" {
			continue
		}
		p, err := filepath.Abs(b)
		if err != nil {
			return usageErr("%v", err)
		}
		arch, err := checkStatic(p)
		if err != nil {
			return usageErr("%v", err)
		}
		if b == c.testBin {
			c.testBin = p
		} else if want := map[string]string{binAmd64: "amd64", binArm64: "arm64"}[b]; arch != want {
			return usageErr("test binary %s is %s, want %s", p, arch, want)
		}
		if prev, ok := c.bins[arch]; ok && prev != p {
			return usageErr("two %s test binaries: %s and %s", arch, prev, p)
		}
		c.bins[arch] = p
	}
	var err error
	if c.root == "" {
		if c.root, err = findRoot(); err != nil {
			return usageErr("%v", err)
		}
	}
	if c.cache == "" {
		c.cache = os.Getenv("VMTEST_CACHE")
	}
	if c.cache == "" {
		c.cache = filepath.Join(c.root, ".cache")
	}
	if c.logDir == "" {
		c.logDir = filepath.Join(c.cache, "vmtest-logs")
	}
	if err := os.MkdirAll(c.logDir, 0o755); err != nil {
		return usageErr("%v", err)
	}

	ks, err := resolveKernels(&c)
	if err != nil {
		return usageErr("%v", err)
	}

	// One initramfs per architecture of the VMs: its own /init and test binary.
	initrds := map[string]string{}
	for _, k := range ks {
		if k.Host || initrds[k.Arch] != "" {
			continue
		}
		qemu, pkg := c.qemuFor(k.Arch), "qemu-system-x86"
		if k.Arch == "arm64" {
			pkg = "qemu-system-arm"
		}
		if _, err := exec.LookPath(qemu); err != nil {
			return usageErr("%s not found: apt-get install %s", qemu, pkg)
		}
		bin := c.bins[k.Arch]
		if bin == "" {
			flagName := "-bin-" + k.Arch
			return usageErr("kernel %s is %s, and no %s test binary was given (%s)", k.Title(), k.Arch, k.Arch, flagName)
		}
		initrd, err := buildInitramfs(&c, k.Arch, bin)
		if err != nil {
			return usageErr("building the %s initramfs: %v", k.Arch, err)
		}
		defer os.Remove(initrd)
		initrds[k.Arch] = initrd
	}

	outcomes := runMatrix(&c, ks, initrds)
	printMatrix(os.Stdout, &c, ks, outcomes)
	writeSummary(&c, outcomes)
	for _, o := range outcomes {
		if o.Status == statusFailed || o.Status == statusError {
			return 1
		}
	}
	return 0
}

func parseRun(s string) (runSpec, error) {
	label, args, ok := strings.Cut(s, "=")
	label = strings.TrimSpace(label)
	if !ok || label == "" {
		return runSpec{}, errors.New("want LABEL=ARGS")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_.+-]+$`).MatchString(label) {
		return runSpec{}, errors.New("label may only use letters, digits and _ . + -")
	}
	rs := runSpec{Label: label}
	args = strings.TrimSpace(args)
	if strings.HasPrefix(args, "[") {
		if err := json.Unmarshal([]byte(args), &rs.Args); err != nil {
			return runSpec{}, fmt.Errorf("JSON args: %w", err)
		}
	} else {
		rs.Args = strings.Fields(args)
	}
	return rs, nil
}

// checkStatic checks that p is a static x86-64 or arm64 ELF and returns
// its GOARCH.
func checkStatic(p string) (string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return "", fmt.Errorf("test binary %s: %w", p, err)
	}
	defer f.Close()
	var arch string
	switch f.Machine {
	case elf.EM_X86_64:
		arch = "amd64"
	case elf.EM_AARCH64:
		arch = "arm64"
	default:
		return "", fmt.Errorf("test binary %s is %v, want x86-64 or aarch64", p, f.Machine)
	}
	for _, ph := range f.Progs {
		if ph.Type == elf.PT_INTERP {
			return "", fmt.Errorf("test binary %s is dynamically linked; the VM has no libc: build it with CGO_ENABLED=0", p)
		}
	}
	return arch, nil
}

// kernelArch tells an arm64 Image (magic "ARM\x64" at 0x38, see the kernel's
// Documentation/arch/arm64/booting.rst) from anything else, taken as an x86
// bzImage.
func kernelArch(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 64)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if string(hdr[0x38:0x3c]) == "ARM\x64" {
		return "arm64", nil
	}
	return "amd64", nil
}

func (c *config) qemuFor(arch string) string {
	if arch == "arm64" {
		return c.qemuArm64
	}
	return c.qemu
}

func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "vmtest", "fetch-kernels.sh")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (a directory with vmtest/fetch-kernels.sh); use -root")
		}
		dir = parent
	}
}

func needsVM(ks []kernel) bool {
	for _, k := range ks {
		if !k.Host {
			return true
		}
	}
	return false
}

// resolveKernels maps the -kernels list to vmlinuz files, fetching series
// kernels through fetch-kernels.sh (which caches them).
func resolveKernels(c *config) ([]kernel, error) {
	var series []string
	for _, k := range c.kernels {
		if k != "host" && !strings.Contains(k, "/") {
			series = append(series, k)
		}
	}
	fetched := map[string]kernel{}
	if len(series) > 0 {
		cmd := exec.Command(filepath.Join(c.root, "vmtest", "fetch-kernels.sh"), series...)
		cmd.Env = append(os.Environ(), "VMTEST_CACHE="+c.cache)
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 3 {
				fetched[f[0]] = kernel{Label: f[0], Version: f[1], Path: f[2]}
			}
		}
		if err != nil {
			var missing []string
			for _, s := range series {
				if _, ok := fetched[s]; !ok {
					missing = append(missing, s)
				}
			}
			return nil, fmt.Errorf("fetch-kernels.sh failed (%v); no kernel for: %s", err, strings.Join(missing, ", "))
		}
	}
	var ks []kernel
	for _, k := range c.kernels {
		switch {
		case k == "host":
			var uts unix.Utsname
			_ = unix.Uname(&uts)
			ks = append(ks, kernel{Label: "host", Version: unix.ByteSliceToString(uts.Release[:]), Host: true, Arch: runtime.GOARCH})
		case strings.Contains(k, "/"):
			p, err := filepath.Abs(k)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				return nil, err
			}
			ks = append(ks, kernel{Label: filepath.Base(filepath.Dir(p)), Path: p})
		default:
			fk, ok := fetched[k]
			if !ok {
				return nil, fmt.Errorf("fetch-kernels.sh gave no kernel for %q", k)
			}
			ks = append(ks, fk)
		}
	}
	for i := range ks {
		if ks[i].Host {
			continue
		}
		arch, err := kernelArch(ks[i].Path)
		if err != nil {
			return nil, err
		}
		ks[i].Arch = arch
	}
	return ks, nil
}

// buildInitramfs builds /init (vmtest/init, static) and packs it with the test
// binary and the -add files. One initramfs serves every kernel and run: the
// per-run arguments travel on the kernel command line.
func buildInitramfs(c *config, arch, testBin string) (string, error) {
	work := filepath.Join(c.cache, "vmtest")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	initBin := filepath.Join(work, "init-"+arch)
	gobin := os.Getenv("GO")
	if gobin == "" {
		gobin = "go"
	}
	cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", initBin, "./vmtest/init")
	cmd.Dir = c.root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./vmtest/init: %w", err)
	}

	entries := []cpioEntry{
		{name: "dev", mode: 0o755, dir: true},
		{name: "dev/console", mode: 0o600, char: true, major: 5, minor: 1},
		{name: "dev/null", mode: 0o666, char: true, major: 1, minor: 3},
		{name: "proc", mode: 0o555, dir: true},
		{name: "sys", mode: 0o555, dir: true},
		{name: "tmp", mode: 0o1777, dir: true},
		{name: "run", mode: 0o755, dir: true},
		{name: "etc", mode: 0o755, dir: true},
		{name: "root", mode: 0o700, dir: true},
		{name: "init", mode: 0o755, src: initBin},
		{name: "test.bin", mode: 0o755, src: testBin},
	}
	for _, a := range c.adds {
		src, dst, ok := strings.Cut(a, ":")
		if !ok || dst == "" {
			dst = "/" + filepath.Base(src)
		}
		// {arch}: the file built for this initramfs's architecture.
		src = strings.ReplaceAll(src, "{arch}", arch)
		st, err := os.Stat(src)
		if err != nil {
			return "", fmt.Errorf("-add %s: %w", a, err)
		}
		mode := uint32(st.Mode().Perm())
		entries = append(entries, cpioEntry{name: dst, mode: mode, src: src})
	}
	f, err := os.CreateTemp(work, "initrd-"+arch+"-*.gz")
	if err != nil {
		return "", err
	}
	if err := writeInitramfs(f, entries); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

type job struct {
	k kernel
	r runSpec
}

func runMatrix(c *config, ks []kernel, initrds map[string]string) []outcome {
	var jobs []job
	for _, k := range ks {
		for _, r := range c.runs {
			jobs = append(jobs, job{k, r})
		}
	}
	out := make([]outcome, len(jobs))
	do := func(i int) {
		j := jobs[i]
		fmt.Fprintf(os.Stderr, "vmrun: %s / %s: starting\n", j.k.Title(), j.r.Label)
		var o outcome
		if j.k.Host {
			o = runHost(c, j.k, j.r)
		} else {
			o = runVM(c, j.k, j.r, initrds[j.k.Arch])
		}
		fmt.Fprintf(os.Stderr, "vmrun: %s / %s: %s in %.1fs\n", j.k.Title(), j.r.Label, o.Status, o.TotalS)
		out[i] = o
	}
	// Host runs first, one at a time; then the VMs, in order, c.jobs at once.
	queue := make(chan int, len(jobs))
	for i, j := range jobs {
		if j.k.Host {
			do(i)
		} else {
			queue <- i
		}
	}
	close(queue)
	var wg sync.WaitGroup
	for w := 0; w < c.jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range queue {
				do(i)
			}
		}()
	}
	wg.Wait()
	return out
}

func logName(c *config, k kernel, r runSpec) string {
	name := k.Label + "__" + r.Label + ".log"
	if k.Host {
		name = "host__" + r.Label + ".log"
	}
	name = strings.Map(func(r rune) rune {
		if r == '/' || r == ' ' {
			return '_'
		}
		return r
	}, name)
	return filepath.Join(c.logDir, name)
}

func nonce() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func encodeList(l []string) string {
	if l == nil {
		l = []string{}
	}
	b, _ := json.Marshal(l)
	return base64.RawURLEncoding.EncodeToString(b)
}

// COMMAND_LINE_SIZE is 2048 including the terminating NUL, on x86 and arm64.
const maxCmdline = 2047

func runVM(c *config, k kernel, r runSpec, initrd string) outcome {
	o := outcome{Kernel: k.Label, Version: k.Version, Arch: k.Arch, Run: r.Label, Log: logName(c, k, r)}
	id := nonce()
	console := "ttyS0"
	if k.Arch == "arm64" {
		console = "ttyAMA0" // the virt machine's PL011
	}
	appendLine := strings.Join([]string{
		// quiet keeps the boot short; loglevel=5 still shows the
		// registers and call trace of a stall report (printed at the
		// default level, which quiet hides).
		"console=" + console, "quiet", "loglevel=5", "panic=-1", "oops=panic",
		"vmtest.id=" + id,
		"vmtest.args=" + encodeList(r.Args),
		"vmtest.env=" + encodeList(c.env),
	}, " ")
	if c.extra != "" {
		appendLine += " " + c.extra
	}
	if len(appendLine) > maxCmdline {
		o.Status, o.Reason = statusError, fmt.Sprintf("kernel command line too long (%d > %d bytes): pass fewer arguments", len(appendLine), maxCmdline)
		return o
	}
	var args []string
	if k.Arch == "arm64" {
		// TCG emulates arm64 on the x86 machines, whatever -accel says.
		args = []string{"-machine", "virt", "-accel", "tcg", "-cpu", "max"}
	} else {
		accel := c.accel
		if accel == "tcg" {
			// One host thread runs both vCPUs. With a thread per vCPU
			// (MTTCG) a guest CPU could keep running stale code while the
			// kernel live-patched the sys_enter tracepoint our programs
			// attach to: both vCPUs then spun in syscall_trace_enter
			// (soft lockups, about one 6.1 fentry run in three here).
			accel = "tcg,thread=single"
		}
		args = []string{"-accel", accel, "-cpu", "max"}
	}
	args = append(args,
		"-smp", strconv.Itoa(c.smp), "-m", strconv.Itoa(c.mem),
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", k.Path, "-initrd", initrd,
		"-append", appendLine,
	)
	first := execAndParse(c, &o, c.qemuFor(k.Arch), args, nil, id, k)
	if first.stalled {
		// The guest's CPUs stopped making progress (a soft lockup or an
		// RCU stall under TCG, seen once in CI on a stock amd64 kernel).
		// Boot once more, keep the first log next to the second, and say
		// so: a stall that comes back fails the run.
		kept := o.Log + ".stall1"
		_ = os.Rename(o.Log, kept)
		fmt.Fprintf(os.Stderr, "vmrun: %s / %s: the guest stalled (%s); booting once more (first log: %s)\n", k.Title(), r.Label, first.Reason, kept)
		o = outcome{Kernel: k.Label, Version: k.Version, Arch: k.Arch, Run: r.Label, Log: first.Log}
		second := execAndParse(c, &o, c.qemuFor(k.Arch), args, nil, id, k)
		if second.Reason != "" {
			second.Reason += "; "
		}
		second.Reason += "second boot: the first stalled: " + first.Reason + " (log " + kept + ")"
		return second
	}
	if first.Status != statusError || first.BootS > 0 {
		return first
	}
	// The guest kernel died before /init reported in, so the test binary
	// never ran: a TCG boot flake (CI once saw "Fatal exception in
	// interrupt" 2.5 s into a stock kernel's boot). Boot once more, keep the
	// first log next to the second, and say so in the result.
	kept := o.Log + ".boot1"
	_ = os.Rename(o.Log, kept)
	fmt.Fprintf(os.Stderr, "vmrun: %s / %s: the kernel died before /init (%s); booting once more (first log: %s)\n", k.Title(), r.Label, first.Reason, kept)
	o = outcome{Kernel: k.Label, Version: k.Version, Arch: k.Arch, Run: r.Label, Log: first.Log}
	second := execAndParse(c, &o, c.qemuFor(k.Arch), args, nil, id, k)
	if second.Reason != "" {
		second.Reason += "; "
	}
	second.Reason += "second boot: the first died before /init: " + first.Reason
	return second
}

func runHost(c *config, k kernel, r runSpec) outcome {
	o := outcome{Kernel: "host", Version: k.Version, Arch: k.Arch, Run: r.Label, Log: logName(c, k, r)}
	env := append(os.Environ(), "VMTEST_HOST=1", "VMTEST_KERNEL="+k.Version)
	env = append(env, hostEnv(c.env, c.adds, k.Arch)...)
	bin := c.bins[k.Arch]
	if bin == "" {
		o.Status, o.Reason = statusError, fmt.Sprintf("no %s test binary for the host", k.Arch)
		return o
	}
	return execAndParse(c, &o, bin, r.Args, env, "", k)
}

// hostEnv is -env for a run on the host, where no initramfs exists: a value
// naming an -add destination (DNSREC_BIN=/dnsrec) becomes that file's
// absolute host path, with {arch} the host's.
func hostEnv(envs, adds []string, arch string) []string {
	dsts := map[string]string{}
	for _, a := range adds {
		src, dst, ok := strings.Cut(a, ":")
		if !ok || dst == "" {
			dst = "/" + filepath.Base(src)
		}
		src = strings.ReplaceAll(src, "{arch}", arch)
		if abs, err := filepath.Abs(src); err == nil {
			src = abs
		}
		dsts[dst] = src
	}
	out := make([]string, 0, len(envs))
	for _, e := range envs {
		k, v, _ := strings.Cut(e, "=")
		if src, ok := dsts[v]; ok {
			e = k + "=" + src
		}
		out = append(out, e)
	}
	return out
}

var (
	// reStall: the guest kernel says a CPU stopped making progress.
	reStall       = regexp.MustCompile(`watchdog: BUG: soft lockup|rcu: INFO: rcu_(preempt|sched) (self-)?detected stall`)
	reResult      = regexp.MustCompile(`VMTEST-RESULT: exit=(-?\d+) id=(\S*)`)
	reBoot        = regexp.MustCompile(`VMTEST-BOOT: .*id=(\S*)`)
	reUnsupported = regexp.MustCompile(`VMTEST-UNSUPPORTED:\s*(.*)`)
)

// execAndParse runs a VM (id != "") or the test binary on the host (id ==
// ""), tees its output into the log and fills in o from the markers.
func execAndParse(c *config, o *outcome, bin string, args, env []string, id string, k kernel) outcome {
	start := time.Now()
	logf, err := os.Create(o.Log)
	if err != nil {
		o.Status, o.Reason = statusError, err.Error()
		return *o
	}
	defer logf.Close()
	fmt.Fprintf(logf, "# vmrun: %s %s\n", bin, shellQuote(args))

	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	if env != nil {
		cmd.Env = env
	}
	cmd.Stdin = nil
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw

	if err := cmd.Start(); err != nil {
		o.Status, o.Reason = statusError, err.Error()
		return *o
	}
	var (
		exitCode    = -1
		gotResult   bool
		unsupported string
		panicLine   string
		stallLine   string
		stallKill   atomic.Bool
		parseDone   = make(chan struct{})
	)
	go func() {
		defer close(parseDone)
		br := bufio.NewReaderSize(pr, 64<<10)
		for {
			line, err := br.ReadString('\n')
			if len(line) > 0 {
				_, _ = logf.WriteString(line)
				clean := strings.TrimRight(line, "\r\n")
				if c.verbose {
					fmt.Printf("[%s/%s] %s\n", k.Label, o.Run, clean)
				}
				if m := reBoot.FindStringSubmatch(clean); m != nil && id != "" && m[1] == id && o.BootS == 0 {
					o.BootS = time.Since(start).Seconds()
				}
				if m := reResult.FindStringSubmatch(clean); m != nil && id != "" && m[2] == id {
					exitCode, _ = strconv.Atoi(m[1])
					gotResult = true
				}
				if m := reUnsupported.FindStringSubmatch(clean); m != nil && unsupported == "" {
					unsupported = strings.TrimSpace(m[1])
					if unsupported == "" {
						unsupported = "(no reason given)"
					}
				}
				if strings.Contains(clean, "Kernel panic") && panicLine == "" {
					panicLine = strings.TrimSpace(clean)
				}
				if id != "" && stallLine == "" && reStall.MatchString(clean) {
					stallLine = strings.TrimSpace(clean)
					// A stall may pass (an overloaded host starves the
					// vCPUs); one that lasts gets the VM killed.
					time.AfterFunc(c.stallGrace, func() {
						select {
						case <-parseDone:
						default:
							stallKill.Store(true)
							cancel()
						}
					})
				}
			}
			if err != nil {
				_, _ = io.Copy(io.Discard, pr)
				return
			}
		}
	}()
	waitErr := cmd.Wait()
	pw.Close()
	<-parseDone
	o.TotalS = time.Since(start).Seconds()

	if id == "" { // host: the process exit status is the result
		gotResult = true
		exitCode = 0
		if waitErr != nil {
			var ee *exec.ExitError
			if errors.As(waitErr, &ee) {
				exitCode = ee.ExitCode()
			} else {
				gotResult = false
			}
		}
	}
	switch {
	case stallKill.Load() && !gotResult:
		o.Status, o.Reason, o.stalled = statusError, fmt.Sprintf("killed %v after the guest reported %q", c.stallGrace, stallLine), true
	case ctx.Err() == context.DeadlineExceeded:
		o.Status, o.Reason = statusError, fmt.Sprintf("timed out after %v", c.timeout)
		if stallLine != "" {
			o.Reason += fmt.Sprintf(" (the guest reported %q)", stallLine)
		}
	case !gotResult:
		o.Status = statusError
		switch {
		case panicLine != "":
			o.Reason = "no result marker; " + panicLine
		case waitErr != nil:
			o.Reason = fmt.Sprintf("no result marker; %v", waitErr)
		default:
			o.Reason = "no result marker (the VM stopped before the test finished)"
		}
	default:
		o.Exit = &exitCode
		switch {
		case exitCode != 0:
			o.Status = statusFailed
			o.Reason = fmt.Sprintf("exit status %d", exitCode)
			if unsupported != "" {
				o.Reason += " (after VMTEST-UNSUPPORTED: " + unsupported + ")"
			}
		case unsupported != "":
			o.Status, o.Reason = statusUnsupported, unsupported
		default:
			o.Status = statusPassed
		}
	}
	fmt.Fprintf(logf, "\n# vmrun: %s %s in %.1fs (boot %.1fs)\n", o.Status, o.Reason, o.TotalS, o.BootS)
	return *o
}

func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && !strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}();&|<>!#~") {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}

func cell(o outcome) string {
	s := o.Status
	switch o.Status {
	case statusPassed, statusUnsupported:
	default:
		s = strings.ToUpper(s)
	}
	if o.BootS > 0 {
		return fmt.Sprintf("%s %.0fs (boot %.0fs)", s, o.TotalS, o.BootS)
	}
	return fmt.Sprintf("%s %.1fs", s, o.TotalS)
}

func printMatrix(w io.Writer, c *config, ks []kernel, outs []outcome) {
	idx := map[[2]string]outcome{}
	for _, o := range outs {
		idx[[2]string{o.Kernel, o.Run}] = o
	}
	header := []string{"kernel"}
	for _, r := range c.runs {
		header = append(header, r.Label)
	}
	rows := [][]string{header}
	for _, k := range ks {
		row := []string{k.Title()}
		for _, r := range c.runs {
			row = append(row, cell(idx[[2]string{k.Label, r.Label}]))
		}
		rows = append(rows, row)
	}
	widths := make([]int, len(header))
	for _, row := range rows {
		for i, s := range row {
			widths[i] = max(widths[i], len(s))
		}
	}
	fmt.Fprintf(w, "\nvmtest matrix: %s\n", filepath.Base(c.testBin))
	for n, row := range rows {
		for i, s := range row {
			sep := " | "
			if i == 0 {
				sep = ""
			}
			fmt.Fprintf(w, "%s%-*s", sep, widths[i], s)
		}
		fmt.Fprintln(w)
		if n == 0 {
			for i, wd := range widths {
				if i > 0 {
					fmt.Fprint(w, "-+-")
				}
				fmt.Fprint(w, strings.Repeat("-", wd))
			}
			fmt.Fprintln(w)
		}
	}
	counts := map[string]int{}
	for _, o := range outs {
		counts[o.Status]++
	}
	fmt.Fprintln(w)
	for _, o := range outs {
		if o.Status == statusPassed && o.Reason == "" {
			continue
		}
		fmt.Fprintf(w, "%s / %s: %s: %s\n    log: %s\n", o.Kernel, o.Run, o.Status, o.Reason, o.Log)
		if o.Status == statusFailed || o.Status == statusError {
			for _, l := range context3(o.Log) {
				fmt.Fprintf(w, "    | %s\n", l)
			}
			for _, l := range tail(o.Log, 25) {
				fmt.Fprintf(w, "    | %s\n", l)
			}
		}
	}
	// A plain "N passed, N failed" line, understood by CI log readers.
	fmt.Fprintf(w, "vmtest: %d passed, %d failed, %d skipped\n",
		counts[statusPassed], counts[statusFailed]+counts[statusError], counts[statusUnsupported])
}

// context3 is what a failed run's tail may not show: the last test that
// started, and the first stall report with its call trace.
func context3(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.ReplaceAll(string(b), "\r", ""), "\n")
	var out []string
	lastRun := ""
	for _, l := range lines {
		if strings.Contains(l, "=== RUN") {
			lastRun = l
		}
	}
	for i, l := range lines {
		if reStall.MatchString(l) {
			if lastRun != "" {
				out = append(out, "last test started: "+strings.TrimSpace(lastRun))
			}
			end := min(len(lines), i+40)
			out = append(out, "first stall report:")
			out = append(out, lines[i:end]...)
			out = append(out, "...")
			break
		}
	}
	return out
}

func tail(path string, n int) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(b), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}

func writeSummary(c *config, outs []outcome) {
	b, err := json.MarshalIndent(outs, "", "  ")
	if err != nil {
		return
	}
	_ = os.WriteFile(filepath.Join(c.logDir, "summary.json"), append(b, '\n'), 0o644)
}
