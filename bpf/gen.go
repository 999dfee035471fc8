package bpf

// The generated objects are committed so that `go build` needs no clang.
// `make generate` reruns this with the pinned toolchain; CI fails on a diff.
//go:generate go tool bpf2go -cc $BPF_CLANG -cflags $BPF_CFLAGS -target amd64 -go-package bpf -type dns_event -type exec_event -type ident -type ancestor cgroup cgroup.c -- -I./headers
