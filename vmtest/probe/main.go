//go:build linux

// Command probe reports which BPF program types load, attach and fire on the
// running kernel, and which helpers the verifier accepts inside cgroup_skb and
// cgroup sock_addr (connect4) programs. It builds every program in Go with
// cilium/ebpf/asm: no clang, no object files.
//
// It is the proof-of-life test for the vmtest harness:
//
//	CGO_ENABLED=0 go build -o probe.bin ./vmtest/probe
//	go run ./vmtest/cmd/vmrun -kernels host,5.10,6.1,6.12 probe.bin
//
// Output: a human-readable table, plus one line per check for machines:
//
//	PROBE<TAB>section<TAB>name<TAB>ok|no<TAB>detail
//
// Flags:
//
//	-require a,b   print "VMTEST-UNSUPPORTED: ..." when a named attach check fails
//	-must a,b      exit 1 when a named attach check fails
//
// Names for -require/-must are the attach names, e.g. fentry/udp_sendmsg,
// kprobe/udp_sendmsg, tp_btf/sched_process_exec, cgroup_skb/ingress, ringbuf.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

type result struct {
	section, name string
	ok            bool
	detail        string
}

var (
	results        []result
	memlockRemoved bool
)

func record(section, name string, err error, detail string) {
	r := result{section: section, name: name, ok: err == nil, detail: detail}
	if err != nil {
		r.detail = shortErr(err)
	}
	results = append(results, r)
}

func shortErr(err error) string {
	var ve *ebpf.VerifierError
	var s string
	if errors.As(err, &ve) {
		// The last meaningful verifier line says why.
		s = ve.Cause.Error()
		for i := len(ve.Log) - 1; i >= 0; i-- {
			l := strings.TrimSpace(ve.Log[i])
			if l == "" || strings.HasPrefix(l, "processed ") || strings.HasPrefix(l, "verification time") ||
				strings.HasPrefix(l, "stack depth") || strings.HasPrefix(l, "mark_precise") {
				continue
			}
			s += ": " + l
			break
		}
	} else {
		s = err.Error()
	}
	// cilium/ebpf appends a MEMLOCK hint to every EPERM; after a successful
	// rlimit.RemoveMemlock it only misleads.
	if memlockRemoved {
		s = strings.ReplaceAll(s, " (MEMLOCK may be too low, consider rlimit.RemoveMemlock)", "")
	}
	s = strings.ReplaceAll(s, "\t", " ")
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 200 {
		s = s[:90] + " ... " + s[len(s)-105:]
	}
	return s
}

func main() {
	noop := flag.Bool("noop", false, "exit at once (used as the exec trigger)")
	require := flag.String("require", "", "comma-separated attach checks; report VMTEST-UNSUPPORTED when one fails")
	must := flag.String("must", "", "comma-separated attach checks; exit 1 when one fails")
	flag.Parse()
	if *noop {
		return
	}

	var uts unix.Utsname
	_ = unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	fmt.Printf("probe: kernel %s\n", release)
	if err := rlimit.RemoveMemlock(); err != nil {
		fmt.Printf("probe: rlimit.RemoveMemlock: %v\n", err)
	} else {
		memlockRemoved = true
	}
	_, btfErr := os.Stat("/sys/kernel/btf/vmlinux")
	record("env", "kernel BTF (/sys/kernel/btf/vmlinux)", btfErr, "")
	if lk, err := os.ReadFile("/sys/kernel/security/lockdown"); err == nil {
		record("env", "lockdown", nil, strings.TrimSpace(string(lk)))
	}
	_, pmuErr := os.Stat("/sys/bus/event_source/devices/kprobe/type")
	record("env", "kprobe PMU (/sys/bus/event_source/devices/kprobe)", pmuErr, "")
	cg, err := cgroup2Root()
	record("env", "cgroup2 mount", err, cg)

	attachChecks(cg)
	helperChecks()
	printResults(release)

	var missing, fatal []string
	for _, r := range results {
		if r.section != "attach" || r.ok {
			continue
		}
		if inList(*require, r.name) {
			missing = append(missing, r.name)
		}
		if inList(*must, r.name) {
			fatal = append(fatal, r.name)
		}
	}
	if len(fatal) > 0 {
		fmt.Printf("probe: required checks failed: %s\n", strings.Join(fatal, ", "))
		os.Exit(1)
	}
	if len(missing) > 0 {
		fmt.Printf("VMTEST-UNSUPPORTED: %s not available on %s\n", strings.Join(missing, ", "), release)
	}
}

func inList(list, name string) bool {
	for _, s := range strings.Split(list, ",") {
		if strings.TrimSpace(s) == name {
			return true
		}
	}
	return false
}

// cgroup2Root finds a cgroup v2 mount in /proc/self/mountinfo.
func cgroup2Root() (string, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if f := strings.Fields(post); len(f) > 0 && f[0] == "cgroup2" {
			if pf := strings.Fields(pre); len(pf) >= 5 {
				return pf[4], nil
			}
		}
	}
	return "", errors.New("no cgroup2 mount")
}

// A hit counter shared by all attach-check programs: slot i counts the
// invocations of program i.
type attachCheck struct {
	name       string
	typ        ebpf.ProgramType
	attachType ebpf.AttachType
	attachTo   string
	ret        int32
	attach     func(p *ebpf.Program) (link.Link, error)
}

func counterInsns(hits *ebpf.Map, idx int, ret int32) asm.Instructions {
	return asm.Instructions{
		asm.StoreImm(asm.RFP, -4, int64(idx), asm.Word),
		asm.LoadMapPtr(asm.R1, hits.FD()),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, ret).WithSymbol("out"),
		asm.Return(),
	}
}

func attachChecks(cg string) {
	cgAttach := func(at ebpf.AttachType) func(p *ebpf.Program) (link.Link, error) {
		return func(p *ebpf.Program) (link.Link, error) {
			if cg == "" {
				return nil, errors.New("no cgroup2 mount")
			}
			return link.AttachCgroup(link.CgroupOptions{Path: cg, Attach: at, Program: p})
		}
	}
	checks := []attachCheck{
		{"fentry/udp_sendmsg", ebpf.Tracing, ebpf.AttachTraceFEntry, "udp_sendmsg", 0,
			func(p *ebpf.Program) (link.Link, error) { return link.AttachTracing(link.TracingOptions{Program: p}) }},
		{"kprobe/udp_sendmsg", ebpf.Kprobe, ebpf.AttachNone, "", 0,
			func(p *ebpf.Program) (link.Link, error) { return link.Kprobe("udp_sendmsg", p, nil) }},
		{"tp_btf/sched_process_exec", ebpf.Tracing, ebpf.AttachTraceRawTp, "sched_process_exec", 0,
			func(p *ebpf.Program) (link.Link, error) { return link.AttachTracing(link.TracingOptions{Program: p}) }},
		{"cgroup_skb/ingress", ebpf.CGroupSKB, ebpf.AttachCGroupInetIngress, "", 1, cgAttach(ebpf.AttachCGroupInetIngress)},
		{"cgroup_skb/egress", ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress, "", 1, cgAttach(ebpf.AttachCGroupInetEgress)},
		{"cgroup/connect4", ebpf.CGroupSockAddr, ebpf.AttachCGroupInet4Connect, "", 1, cgAttach(ebpf.AttachCGroupInet4Connect)},
		{"cgroup/sendmsg4", ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP4Sendmsg, "", 1, cgAttach(ebpf.AttachCGroupUDP4Sendmsg)},
		{"cgroup/recvmsg4", ebpf.CGroupSockAddr, ebpf.AttachCGroupUDP4Recvmsg, "", 1, cgAttach(ebpf.AttachCGroupUDP4Recvmsg)},
		{"cgroup/sock_create", ebpf.CGroupSock, ebpf.AttachCGroupInetSockCreate, "", 1, cgAttach(ebpf.AttachCGroupInetSockCreate)},
	}

	// Ring buffer map, and the feature probe's view of it.
	rb, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if err == nil {
		rb.Close()
	}
	record("attach", "ringbuf", err, "map created; features.HaveMapType: "+errStr(features.HaveMapType(ebpf.RingBuf)))

	hits, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: uint32(len(checks))})
	if err != nil {
		for _, c := range checks {
			record("attach", c.name, fmt.Errorf("hit counter map: %w", err), "")
		}
		return
	}
	defer hits.Close()

	type attached struct {
		idx int
		l   link.Link
		p   *ebpf.Program
	}
	var live []attached
	errs := make([]error, len(checks))
	kinds := make([]string, len(checks))
	for i, c := range checks {
		spec := &ebpf.ProgramSpec{
			Name:         fmt.Sprintf("probe_%d", i),
			Type:         c.typ,
			AttachType:   c.attachType,
			AttachTo:     c.attachTo,
			License:      "GPL",
			Instructions: counterInsns(hits, i, c.ret),
		}
		p, err := ebpf.NewProgram(spec)
		if err != nil {
			errs[i] = fmt.Errorf("load: %w", err)
			continue
		}
		l, err := c.attach(p)
		if err != nil {
			p.Close()
			errs[i] = fmt.Errorf("attach: %w", err)
			continue
		}
		kinds[i] = linkKind(l)
		live = append(live, attached{i, l, p})
	}

	trigger()

	for i, c := range checks {
		if errs[i] != nil {
			record("attach", c.name, errs[i], "")
			continue
		}
		var n uint64
		if err := hits.Lookup(uint32(i), &n); err != nil {
			record("attach", c.name, fmt.Errorf("read hits: %w", err), "")
			continue
		}
		d := fmt.Sprintf("attached (%s), fired %d times", kinds[i], n)
		if n == 0 {
			record("attach", c.name, errors.New("attached but never fired: "+d), "")
			continue
		}
		record("attach", c.name, nil, d)
	}
	for _, a := range live {
		a.l.Close()
		a.p.Close()
	}
}

func linkKind(l link.Link) string {
	if info, err := l.Info(); err == nil && info != nil {
		return "bpf_link"
	}
	return "legacy attach"
}

func errStr(err error) string {
	if err == nil {
		return "ok"
	}
	return shortErr(err)
}

// trigger exercises every hook once: socket creation, connect, connected and
// unconnected UDP sends over loopback, recvfrom, and an exec.
func trigger() {
	srv, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Printf("probe: trigger: listen: %v\n", err)
		return
	}
	defer srv.Close()
	c, err := net.Dial("udp4", srv.LocalAddr().String()) // sock_create, connect4
	if err == nil {
		_, _ = c.Write([]byte("connected")) // udp_sendmsg, skb egress, skb ingress
		c.Close()
	}
	u, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err == nil {
		_, _ = u.WriteTo([]byte("unconnected"), srv.LocalAddr()) // sendmsg4
		u.Close()
	}
	buf := make([]byte, 64)
	for i := 0; i < 2; i++ {
		_ = srv.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := srv.ReadFrom(buf); err != nil { // recvmsg4
			break
		}
	}
	if exe, err := os.Executable(); err == nil {
		_ = exec.Command(exe, "-noop").Run() // sched_process_exec
	}
}

// Helper checks: does the verifier accept a call to the helper, with
// realistic arguments, inside a cgroup_skb and a cgroup sock_addr (connect4)
// program? Compared with features.HaveProgramHelper.
type helperCheck struct {
	name   string
	fn     asm.BuiltinFunc
	skOnly bool // only meaningful for cgroup_skb
	body   func(ringbuf *ebpf.Map) asm.Instructions
}

func call(fn asm.BuiltinFunc) func(*ebpf.Map) asm.Instructions {
	return func(*ebpf.Map) asm.Instructions { return asm.Instructions{fn.Call()} }
}

func helperChecks() {
	rb, rbErr := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 4096})
	if rbErr == nil {
		defer rb.Close()
	}
	tgidOff, tgidErr := taskTgidOffset()

	checks := []helperCheck{
		{"bpf_get_current_task", asm.FnGetCurrentTask, false, call(asm.FnGetCurrentTask)},
		{"bpf_get_current_task_btf", asm.FnGetCurrentTaskBtf, false, call(asm.FnGetCurrentTaskBtf)},
		{"bpf_probe_read_kernel", asm.FnProbeReadKernel, false, func(*ebpf.Map) asm.Instructions {
			return asm.Instructions{
				asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, -16),
				asm.Mov.Imm(asm.R2, 8),
				asm.Mov.Imm(asm.R3, 0),
				asm.FnProbeReadKernel.Call(),
			}
		}},
		{"bpf_get_current_pid_tgid", asm.FnGetCurrentPidTgid, false, call(asm.FnGetCurrentPidTgid)},
		{"bpf_get_current_uid_gid", asm.FnGetCurrentUidGid, false, call(asm.FnGetCurrentUidGid)},
		{"bpf_get_current_comm", asm.FnGetCurrentComm, false, func(*ebpf.Map) asm.Instructions {
			return asm.Instructions{
				asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, -16),
				asm.Mov.Imm(asm.R2, 16),
				asm.FnGetCurrentComm.Call(),
			}
		}},
		{"bpf_get_current_cgroup_id", asm.FnGetCurrentCgroupId, false, call(asm.FnGetCurrentCgroupId)},
		{"bpf_get_socket_cookie", asm.FnGetSocketCookie, false, func(*ebpf.Map) asm.Instructions {
			return asm.Instructions{asm.Mov.Reg(asm.R1, asm.R6), asm.FnGetSocketCookie.Call()}
		}},
		{"bpf_ktime_get_boot_ns", asm.FnKtimeGetBootNs, false, call(asm.FnKtimeGetBootNs)},
		{"bpf_ringbuf_output", asm.FnRingbufOutput, false, func(rb *ebpf.Map) asm.Instructions {
			if rb == nil {
				return nil
			}
			return asm.Instructions{
				asm.Mov.Imm(asm.R1, 0),
				asm.StoreMem(asm.RFP, -8, asm.R1, asm.DWord),
				asm.LoadMapPtr(asm.R1, rb.FD()),
				asm.Mov.Reg(asm.R2, asm.RFP), asm.Add.Imm(asm.R2, -8),
				asm.Mov.Imm(asm.R3, 8),
				asm.Mov.Imm(asm.R4, 0),
				asm.FnRingbufOutput.Call(),
			}
		}},
		{"bpf_skb_load_bytes", asm.FnSkbLoadBytes, true, func(*ebpf.Map) asm.Instructions {
			return asm.Instructions{
				asm.Mov.Reg(asm.R1, asm.R6),
				asm.Mov.Imm(asm.R2, 0),
				asm.Mov.Reg(asm.R3, asm.RFP), asm.Add.Imm(asm.R3, -16),
				asm.Mov.Imm(asm.R4, 8),
				asm.FnSkbLoadBytes.Call(),
			}
		}},
		{"bpf_skb_cgroup_id", asm.FnSkbCgroupId, true, func(*ebpf.Map) asm.Instructions {
			return asm.Instructions{asm.Mov.Reg(asm.R1, asm.R6), asm.FnSkbCgroupId.Call()}
		}},
		// Reading the task's identity, the two ways a cgroup-tier program could.
		{"task->tgid via probe_read_kernel(get_current_task())", 0, false, func(*ebpf.Map) asm.Instructions {
			if tgidErr != nil {
				return nil
			}
			return asm.Instructions{
				asm.FnGetCurrentTask.Call(),
				asm.Mov.Reg(asm.R3, asm.R0), asm.Add.Imm(asm.R3, int32(tgidOff)),
				asm.Mov.Reg(asm.R1, asm.RFP), asm.Add.Imm(asm.R1, -16),
				asm.Mov.Imm(asm.R2, 4),
				asm.FnProbeReadKernel.Call(),
			}
		}},
		{"task->tgid via get_current_task_btf() deref", 0, false, func(*ebpf.Map) asm.Instructions {
			if tgidErr != nil {
				return nil
			}
			return asm.Instructions{
				asm.FnGetCurrentTaskBtf.Call(),
				asm.LoadMem(asm.R1, asm.R0, int16(tgidOff), asm.Word),
			}
		}},
	}

	type ctx struct {
		label string
		typ   ebpf.ProgramType
		at    ebpf.AttachType
	}
	ctxs := []ctx{
		{"cgroup_skb", ebpf.CGroupSKB, ebpf.AttachCGroupInetEgress},
		{"connect4", ebpf.CGroupSockAddr, ebpf.AttachCGroupInet4Connect},
	}
	for _, cx := range ctxs {
		for _, h := range checks {
			if h.skOnly && cx.typ != ebpf.CGroupSKB {
				continue
			}
			body := h.body(rb)
			if body == nil {
				why := rbErr
				if why == nil {
					why = tgidErr
				}
				record("helper/"+cx.label, h.name, fmt.Errorf("not tested: %w", why), "")
				continue
			}
			insns := asm.Instructions{asm.Mov.Reg(asm.R6, asm.R1)}
			insns = append(insns, body...)
			insns = append(insns, asm.Mov.Imm(asm.R0, 1), asm.Return())
			p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
				Name: "probe_helper", Type: cx.typ, AttachType: cx.at, License: "GPL", Instructions: insns,
			})
			detail := "loads"
			if err == nil {
				p.Close()
			} else {
				detail = shortErr(err)
			}
			if h.fn != 0 {
				detail += "; features.HaveProgramHelper: " + errStr(features.HaveProgramHelper(cx.typ, h.fn))
			}
			results = append(results, result{section: "helper/" + cx.label, name: h.name, ok: err == nil, detail: detail})
		}
	}
}

// taskTgidOffset returns the byte offset of task_struct.tgid from kernel BTF.
func taskTgidOffset() (uint32, error) {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return 0, err
	}
	var ts *btf.Struct
	if err := spec.TypeByName("task_struct", &ts); err != nil {
		return 0, err
	}
	for _, m := range ts.Members {
		if m.Name == "tgid" {
			return m.Offset.Bytes(), nil
		}
	}
	return 0, errors.New("task_struct has no tgid")
}

func printResults(release string) {
	section := ""
	for _, r := range results {
		if r.section != section {
			section = r.section
			fmt.Printf("\n== %s (%s)\n", section, release)
		}
		st := "ok"
		if !r.ok {
			st = "NO"
		}
		fmt.Printf("  %-55s %-3s %s\n", r.name, st, r.detail)
	}
	fmt.Println()
	for _, r := range results {
		st := "ok"
		if !r.ok {
			st = "no"
		}
		fmt.Printf("PROBE\t%s\t%s\t%s\t%s\n", r.section, r.name, st, r.detail)
	}
}
