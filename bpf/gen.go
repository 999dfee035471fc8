package bpf

// The generated objects are committed so that `go build` needs no clang.
// `make generate` reruns these with the pinned toolchain; CI fails on a diff.
// Go types are emitted once, from the cgroup tier: every tier shares
// common.h, and layout_test.go checks the layout against each object.
// -tags linux: the objects and cilium/ebpf stay out of other platforms'
// builds (see doc.go).
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags $BPF_CFLAGS -target amd64,arm64 -go-package bpf -tags linux -type dns_event -type exec_event -type ident -type ancestor -type resolve_event -type res_addr -type tls_event -type tls_head -type tls_conn -type signal_event -type enc_event cgroup cgroup.c -- -I./headers
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags $BPF_CFLAGS -target amd64,arm64 -go-package bpf -tags linux fentry fentry.c -- -I./headers
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags $BPF_CFLAGS -target amd64,arm64 -go-package bpf -tags linux kprobe kprobe.c -- -I./headers
