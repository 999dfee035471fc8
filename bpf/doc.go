// Package bpf holds dnsrec's kernel programs and the hook tiers that load
// them.
//
// Each tier is one C file compiled by bpf2go (see gen.go) into a committed
// object, so building dnsrec needs no clang. All tiers share common.h: the
// record layout user space decodes (DNSEvent, ExecEvent), the ring buffer,
// the per-CPU drop counter and the process-table programs. A tier only
// differs in where it takes the DNS bytes and the owning process from:
//
//	cgroup   cgroup_skb + cgroup sock_addr + tp_btf; runs on locked-down
//	         kernels without kprobes or trampolines
//
// Open loads and attaches one tier; the caller reads Capture.Events with a
// ringbuf.Reader, calls Detach to stop new records, drains, then Close.
package bpf
