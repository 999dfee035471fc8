// Package bpf holds dnsrec's kernel programs and loads them: the hook
// tiers, the ring buffer they write to, and the libc resolver probes.
//
// Each tier is one C file compiled by bpf2go (see gen.go) into a committed
// object, so building dnsrec needs no clang. All tiers share common.h: the
// record layout user space decodes (DNSEvent, ExecEvent, ResolveEvent), the
// ring buffer, the per-CPU drop counters and the process-table programs. A
// tier only differs in where it takes the DNS bytes and the owning process
// from:
//
//	fentry   fentry/fexit on udp_send_skb, skb_consume_udp, tcp_sendmsg,
//	         tcp_recvmsg (tracing.h): the sender's or reader's own context
//	kprobe   the same functions through kprobes, for kernels without BPF
//	         trampolines; symbol names resolved from /proc/kallsyms
//	cgroup   cgroup_skb + cgroup sock_addr + tp_btf; runs on locked-down
//	         kernels without kprobes or trampolines
//
// Every tier produces the same records for the same traffic; record's
// TestTiers checks that on stock kernels (make vmtest).
//
// The recorder uses it so: NewLoader validates a Config and the tier asked
// for, touching no kernel state; Loader.Open loads and attaches that tier,
// or for TierAuto the best one that runs here, and returns a Capture. The
// caller reads Capture.Events with a ringbuf.Reader, polls Drops, MsgDrops
// and MissedTotal for loss, calls Capture.LibcProbes().Scan as processes
// come, then Detach to stop new records, drains the ring, and Close.
//
// Files: tier.go names the tiers; tiers.go describes them (one tierDesc
// each), holds the loading steps every tier shares and the automatic
// choice (autoOrder, which reads preempt.go); fentry.go, kprobe.go and
// cgroup.go hold each tier's own part; capture.go the loaded Capture;
// libc.go the resolver uprobes (getaddrinfo, gethostbyname_r,
// gethostbyname2_r, in every tier's object), which attach per libc file
// rather than per tier, in every mount namespace, containers' own
// included.
//
// The committed objects are built twice, for x86 and arm64 (bpf2go -target
// amd64,arm64, each with its own headers/<arch>/vmlinux.h), and bpf2go tags
// their Go files by architecture, so loading builds on linux/amd64 and
// linux/arm64 only (//go:build linux && (amd64 || arm64)). Elsewhere the
// package holds the tier names and the constants of common.h (tier.go,
// types.go), which the command line's help shows, and pulls in no
// cilium/ebpf code.
package bpf
