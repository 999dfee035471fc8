//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// preemptModelFile lists the preemption models a PREEMPT_DYNAMIC kernel
// can switch between, the current one in parentheses: "none (voluntary)
// full" (Debian 6.1, 6.12), "full (lazy)" (Debian 7.3).
const preemptModelFile = "/sys/kernel/debug/sched/preempt"

var reCurrentModel = regexp.MustCompile(`\((\w+)\)`)

// PreemptModel is the kernel's preemption model: none, voluntary, full,
// lazy or rt, and where that was read; "" when it cannot be told (no
// debugfs, no kernel config to read).
func PreemptModel() (model, source string) {
	if b, err := os.ReadFile(preemptModelFile); err == nil {
		if m := reCurrentModel.FindSubmatch(b); m != nil {
			return string(m[1]), preemptModelFile
		}
	}
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", ""
	}
	release := unix.ByteSliceToString(u.Release[:])
	for _, path := range []string{"/boot/config-" + release, "/proc/config.gz"} {
		if m := modelFromConfig(path); m != "" {
			// A PREEMPT_DYNAMIC kernel may have been booted with another
			// model than its default.
			if b, err := os.ReadFile("/proc/cmdline"); err == nil {
				for _, f := range strings.Fields(string(b)) {
					if v, ok := strings.CutPrefix(f, "preempt="); ok && dynamicConfig(path) {
						return v, "/proc/cmdline"
					}
				}
			}
			return m, path
		}
	}
	return "", ""
}

// modelFromConfig reads the default preemption model from a kernel
// config file (plain, or gzip'd as /proc/config.gz).
func modelFromConfig(path string) string {
	set := configSymbols(path)
	switch {
	case set == nil:
		return ""
	case set["CONFIG_PREEMPT_RT"]:
		return "rt"
	case set["CONFIG_PREEMPT_LAZY"] && !set["CONFIG_PREEMPT_DYNAMIC"]:
		return "lazy"
	case set["CONFIG_PREEMPT"] && !set["CONFIG_PREEMPT_DYNAMIC"]:
		return "full"
	case set["CONFIG_PREEMPT_VOLUNTARY"]:
		return "voluntary"
	case set["CONFIG_PREEMPT_NONE"]:
		return "none"
	case set["CONFIG_PREEMPT_LAZY"]:
		return "lazy"
	case set["CONFIG_PREEMPT"]:
		return "full"
	}
	return ""
}

func dynamicConfig(path string) bool { return configSymbols(path)["CONFIG_PREEMPT_DYNAMIC"] }

// configSymbols is the set of CONFIG_*=y in a kernel config, nil if it
// cannot be read.
func configSymbols(path string) map[string]bool {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		z, err := gzip.NewReader(f)
		if err != nil {
			return nil
		}
		r = z
	}
	set := map[string]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if k, ok := bytes.CutSuffix(sc.Bytes(), []byte("=y")); ok {
			set[string(k)] = true
		}
	}
	if sc.Err() != nil {
		return nil
	}
	return set
}

// PreemptsTracing tells whether a model lets the scheduler preempt a
// running fentry/fexit program. Their trampoline disables migration, not
// preemption, and runs each program at most once per CPU at a time (its
// "active" count): a task that preempts it mid-run and reaches the same
// hook on that CPU is not traced, and the kernel only counts the call in
// the program's recursion_misses. Under none and voluntary, kernel code
// is not preempted there. kprobe programs run with preemption disabled.
func PreemptsTracing(model string) bool {
	switch model {
	case "full", "lazy", "rt":
		return true
	}
	return false
}
