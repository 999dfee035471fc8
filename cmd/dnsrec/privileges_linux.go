package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Capabilities the recorder needs (linux/capability.h).
const (
	capNetAdmin = 12 // attach cgroup socket programs
	capSysAdmin = 21 // BPF before Linux 5.8 split it out
	capPerfmon  = 38 // kprobes, tracepoints, reading kernel memory
	capBPF      = 39 // load programs, create maps
)

// checkPrivileges refuses to start without what loading the BPF programs
// needs, before anything is created: otherwise the first failure is
// cilium/ebpf's "remove memlock limit: operation not permitted", which
// names a symptom.
func checkPrivileges() error {
	eff, err := effectiveCaps()
	if err != nil {
		return nil // no /proc: let the load say what is wrong
	}
	return missingPrivileges(os.Geteuid(), eff)
}

func missingPrivileges(euid int, eff uint64) error {
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	bpfOK := has(capBPF) && has(capPerfmon) || has(capSysAdmin)
	if bpfOK && has(capNetAdmin) {
		return nil
	}
	var missing []string
	if !bpfOK {
		missing = append(missing, "CAP_BPF+CAP_PERFMON (or CAP_SYS_ADMIN)")
	}
	if !has(capNetAdmin) {
		missing = append(missing, "CAP_NET_ADMIN")
	}
	who := "root"
	if euid == 0 {
		who = "root with its capabilities (this root lacks them: a container or a capability bounding set?)"
	}
	return fmt.Errorf("record needs %s, or CAP_BPF+CAP_PERFMON+CAP_NET_ADMIN, to load its BPF programs; this process lacks %s. Run it with sudo, or grant them: setcap cap_bpf,cap_perfmon,cap_net_admin+ep %s",
		who, strings.Join(missing, " and "), executable())
}

func executable() string {
	if p, err := os.Executable(); err == nil {
		return p
	}
	return "dnsrec"
}

// effectiveCaps reads CapEff from /proc/self/status.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("/proc/self/status: no CapEff")
}
