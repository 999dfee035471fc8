// Package bpf holds dnsrec's kernel programs and the hook tiers that load
// them.
//
// Each tier is one C file compiled by bpf2go (see gen.go) into a committed
// object, so building dnsrec needs no clang. All tiers share common.h: the
// record layout user space decodes (DNSEvent, ExecEvent), the ring buffer,
// the per-CPU drop counter and the process-table programs. A tier only
// differs in where it takes the DNS bytes and the owning process from:
//
//	fentry   fentry/fexit on udp_send_skb, skb_consume_udp, tcp_sendmsg,
//	         tcp_recvmsg (tracing.h): the sender's or reader's own context
//	kprobe   the same functions through kprobes, for kernels without BPF
//	         trampolines; symbol names resolved from /proc/kallsyms
//	cgroup   cgroup_skb + cgroup sock_addr + tp_btf; runs on locked-down
//	         kernels without kprobes or trampolines
//
// common.h also holds uprobes on libc's getaddrinfo, gethostbyname_r and
// gethostbyname2_r (EV_RESOLVE: the name a process asked for and the
// addresses it got), in every tier's object. They attach per libc file, not
// per tier: Capture.LibcProbes().Scan finds the C libraries in use in every
// mount namespace, containers' own included, and attaches to each once
// (libc.go); the recorder calls it again as processes come.
//
// Every tier produces the same records for the same traffic; record's
// TestTiers checks that on stock kernels (make vmtest).
//
// Open loads and attaches one tier, OpenAuto the best one that runs (both
// through a Loader, which validates the Config once, before the kernel is
// touched); the caller reads Capture.Events with a ringbuf.Reader, calls
// Detach to stop new records, drains, then Close. What differs between tiers
// (object, capability probe, attach plan, attach) is one tierDesc each, in
// tierDescs; the loading steps are the same for all (tiers.go). Each tier's
// own part is its file: fentry.go, kprobe.go, cgroup.go.
//
// The committed objects are built twice, for x86 and arm64 (bpf2go -target
// amd64,arm64, each with its own headers/<arch>/vmlinux.h), and bpf2go tags
// their Go files by architecture, so loading builds on linux/amd64 and
// linux/arm64 (//go:build linux && (amd64 || arm64)). Elsewhere the package
// holds the tier names and the
// constants of common.h (tier.go, types.go), which the command line's help
// shows, and pulls in no cilium/ebpf code.
package bpf
