# dnsrec build, test and benchmark entry points. See README.md.

# sudo resets PATH (secure_path); fall back to the usual install location.
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests, go:generate and vmtest/run call `go` by name too.
export PATH := $(dir $(GO)):$(PATH)
# Pinned BPF toolchain: the committed objects in bpf/ were built with it, and
# `make check-generate` fails if they differ from what it produces.
CLANG   ?= clang-14
STRIP   ?= llvm-strip-14
# bpf2go defines __TARGET_ARCH_x86 / __TARGET_ARCH_arm64 per target (gen.go).
CFLAGS  := -O2 -g -Wall -Werror
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The DuckDB for node that reads the Parquet export back (query's tests).
DUCKDB_VERSION := 1.5.6-r.1

.PHONY: all build build-arm64 vmlinux-arm64 vmtest-all generate check-generate check-deps vet cross test unit fuzz bench vmtest vmtest-bin vmbench clean

all: build

## build: the static dnsrec binary (no cgo, no clang needed)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o dnsrec ./cmd/dnsrec

## build-arm64: the same for linux/arm64, as dnsrec-arm64 (records there too:
## bpf/ has arm64 objects)
build-arm64:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o dnsrec-arm64 ./cmd/dnsrec

## vmlinux-arm64: regenerate bpf/headers/arm64/vmlinux.h from the BTF of
## Debian's 6.12 cloud-arm64 kernel (fetched like vmtest's; needs bpftool).
## An arm64 Image has no ELF sections, so extract-btf.go finds the BTF blob.
vmlinux-arm64:
	mkdir -p .cache/vmtest
	k=$$(vmtest/fetch-kernels.sh 6.12-arm64 | awk '{print $$3}') && test -n "$$k" && \
	$(GO) run bpf/headers/extract-btf.go "$$k" .cache/vmtest/vmlinux-arm64.btf && \
	bpftool btf dump file .cache/vmtest/vmlinux-arm64.btf format c > bpf/headers/arm64/vmlinux.h

## generate: recompile the BPF programs and their Go bindings with bpf2go
generate:
	cd bpf && BPF_CLANG=$(CLANG) BPF_STRIP=$(STRIP) BPF_CFLAGS="$(CFLAGS)" $(GO) generate ./...

## check-generate: fail if the committed BPF objects (x86 and arm64) are stale
check-generate: generate
	git diff --exit-code -- bpf/ || { echo "bpf/: generated files differ from the committed ones; run make generate and commit" >&2; exit 1; }

vet:
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }

## cross: dnsrec must build where analysts work, for `dnsrec query` (record
## refuses off linux/amd64 and linux/arm64, the arches of the BPF objects),
## and so must every
## package (go build ./... checks the build tags of bpf/ and record/)
CROSS_TARGETS ?= darwin/arm64 darwin/amd64 windows/amd64 linux/arm64
cross:
	@for t in $(CROSS_TARGETS); do \
		echo "cross: $$t"; \
		export GOOS=$${t%/*} GOARCH=$${t#*/} CGO_ENABLED=0; \
		$(GO) build ./... && \
		$(GO) build -o /dev/null ./cmd/dnsrec && \
		$(GO) vet ./cmd/... ./query/... ./schema/... ./record/store/... ./internal/... || exit 1; \
	done

## unit: the tests that need no root
unit:
	$(GO) test -count=1 ./...

## check-deps: fail at once, in one line, naming the Debian packages (and
## the npm module) the tests need and this machine lacks (.ci/run installs
## them all).
check-deps:
	@missing=""; \
	for p in dig:dnsutils getent:libc-bin unbound:unbound tshark:tshark qemu-system-x86_64:qemu-system-x86 \
		qemu-system-aarch64:qemu-system-arm \
		cpio:cpio gcc:gcc node:nodejs npm:npm unshare:util-linux ip:iproute2 dnsmasq:dnsmasq-base python3:python3 \
		kdig:knot-dnsutils openssl:openssl curl:curl rsyslogd:rsyslog; do \
		command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make test needs:$$missing; run: sudo apt-get install -y$$missing (then npm install --prefix .cache/duckdb @duckdb/node-api@$(DUCKDB_VERSION)), or .ci/run, which does both" >&2; exit 1; \
	fi; \
	if ! ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1; then \
		echo "make test needs rsyslog's TLS driver: run: sudo apt-get install -y rsyslog-gnutls (or .ci/run)" >&2; exit 1; \
	fi; \
	if [ ! -d .cache/duckdb/node_modules/@duckdb/node-api ]; then \
		echo "make test needs DuckDB for node: run npm install --prefix .cache/duckdb @duckdb/node-api@$(DUCKDB_VERSION) (or .ci/run)" >&2; exit 1; \
	fi

## test: everything CI runs. As root the privileged tests load BPF for real,
## then the kernel matrix runs them again on stock kernels (vmtest).
test: check-deps vet cross
	@if command -v $(CLANG) >/dev/null; then $(MAKE) check-generate; else echo "note: $(CLANG) not installed, skipping check-generate" >&2; fi
	$(GO) test -count=1 -timeout 20m ./...
	$(GO) test -race -count=1 -timeout 20m ./record/ ./record/store/ ./query/
	$(MAKE) fuzz
	$(MAKE) vmtest

## fuzz: each fuzz target (name:package) for FUZZTIME (the seed corpus in
## record/testdata/fuzz and the f.Add seeds run in every plain `go test` too)
FUZZTIME ?= 10s
FUZZ_TARGETS := FuzzParseDNS:./record/store/ FuzzDecode:./record/ FuzzTCPStream:./record/ FuzzPairing:./record/ FuzzDoH:./record/
fuzz:
	for t in $(FUZZ_TARGETS); do $(GO) test -run '^$$' -fuzz "^$${t%%:*}$$" -fuzztime $(FUZZTIME) $${t#*:} || exit 1; done

# Stock Debian cloud kernels for the matrix, fetched into .cache/kernels.
VMTEST_KERNELS ?= 5.10,6.1,6.12,newest
# Debian's cloud-arm64 kernels, under qemu-system-aarch64 (TCG: the full
# arm64 matrix takes about 13 minutes here). Empty: no arm64 rows.
VMTEST_KERNELS_ARM64 ?= 6.1-arm64,6.12-arm64
comma := ,
VMTEST_BIN     := .cache/vmtest/record.test
VMTEST_BIN_ARM64 := .cache/vmtest/record-arm64.test
TIERS_TEST     := -test.v -test.run ^TestTiers$$

vmtest-bin:
	mkdir -p .cache/vmtest
	CGO_ENABLED=0 $(GO) test -c -o $(VMTEST_BIN) ./record
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) test -c -o $(VMTEST_BIN_ARM64) ./record
	for a in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$a $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o .cache/vmtest/dnsrec-$$a ./cmd/dnsrec || exit 1; \
	done

## vmtest: TestTiers per hook tier, and all tiers compared, on each kernel
## under QEMU (amd64 and arm64) and on the host: a kernel x tier matrix of
## passed/failed/unsupported
vmtest: vmtest-bin
	vmtest/run -kernels $(VMTEST_KERNELS),$(if $(VMTEST_KERNELS_ARM64),$(VMTEST_KERNELS_ARM64)$(comma))host \
		-bin-arm64 $(VMTEST_BIN_ARM64) \
		-add '.cache/vmtest/dnsrec-{arch}:/dnsrec' -env DNSREC_BIN=/dnsrec \
		-run 'cli=-test.v -test.run ^TestCLIBinaryRecords$$' \
		-run 'fentry=$(TIERS_TEST) -tiers fentry' \
		-run 'kprobe=$(TIERS_TEST) -tiers kprobe' \
		-run 'cgroup=$(TIERS_TEST) -tiers cgroup' \
		-run 'agree=$(TIERS_TEST)' \
		$(VMTEST_BIN)

## vmbench: per-tier capture overhead on each kernel, as ratios to no recorder
vmbench: vmtest-bin
	vmtest/run -kernels $(VMTEST_KERNELS),host \
		-run 'bench=-test.run ^$$ -test.bench ^BenchmarkTierOverhead$$ -test.benchtime 1000x -test.count 3' \
		$(VMTEST_BIN)
	vmtest/overhead-table.sh

## bench: Go benchmarks of the writer and the queries, then the live benchmark
## (bench/livebench, as root: dnsperf against dnsmasq in a netns, off, with
## ./dnsrec recording and with tcpdump; one markdown table). BENCH_ARGS passes
## flags, e.g. BENCH_ARGS='-baseline /tmp/dnsrec-old'. See bench/README.md.
## The live table is produced even if a Go benchmark fails; make fails after it.
## The query benchmarks include BenchmarkBig, on a generated 10-million-message
## file kept in .cache/bench (made on the first run, a few minutes; 1.6 GB).
bench:
	$(GO) run ./bench/livebench -check
	$(MAKE) build
	status=0; \
	$(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./record/ ./record/store/ ./query/ || status=$$?; \
	$(GO) run ./bench/livebench -dnsrec ./dnsrec $(BENCH_ARGS) || status=$$?; \
	exit $$status

clean:
	rm -f dnsrec dnsrec-arm64
