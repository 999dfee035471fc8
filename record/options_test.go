//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/bpf"
)

// TestRunRefusesBadConfig: options Run cannot use are refused before the
// output file is created, so an existing file survives even with Force. It
// loads nothing and needs no root.
func TestRunRefusesBadConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "case.db")
	if err := os.WriteFile(out, []byte("evidence"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"snaplen", Options{Snaplen: bpf.MaxSnaplen + 1}, "--snaplen 65537: must be between 1 and 65536"},
		{"ring size", Options{RingBytes: 3 << 20}, "ring buffer size must be a power of two"},
		{"port 0", Options{Ports: []uint16{53, 0}}, "port 0 cannot be captured"},
		{"too many ports", Options{Ports: make([]uint16, bpf.MaxPorts+1)}, "between 1 and 8 ports can be captured, got 9"},
		{"unknown tier", Options{Hook: "ebpf"}, `--hook "ebpf": unknown tier (want auto, fentry, kprobe, cgroup)`},
		{"keep without rotation", Options{Keep: 2}, "--keep needs --rotate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Output, tc.opts.Force = out, true
			_, err := Run(context.Background(), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want %q", err, tc.want)
			}
			if b, err := os.ReadFile(out); err != nil || string(b) != "evidence" {
				t.Errorf("the existing output file: %q, %v; want it untouched", b, err)
			}
		})
	}
}

// TestOptionsValidate: each rule of the options, on the values as Run uses
// them (defaults filled in), with the message naming the flag. Pure: no
// BPF, no root, no file.
func TestOptionsValidate(t *testing.T) {
	valid := func() Options {
		o := Options{Output: "case.db"}
		o.setDefaults()
		return o
	}
	if o := valid(); o.Validate() != nil {
		t.Fatalf("defaults refused: %v", o.Validate())
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string // "": valid
	}{
		{"every tier", func(o *Options) { o.Hook = bpf.TierCgroup }, ""},
		{"unknown tier", func(o *Options) { o.Hook = "xdp" }, `--hook "xdp": unknown tier (want auto, fentry, kprobe, cgroup)`},
		{"snaplen 1", func(o *Options) { o.Snaplen = 1 }, ""},
		{"snaplen 0", func(o *Options) { o.Snaplen = 0 }, "--snaplen 0: must be between 1 and 65536"},
		{"snaplen past a uint32", func(o *Options) { o.Snaplen = 1 << 32 }, "--snaplen 4294967296: must be between 1 and 65536"},
		{"ring a page", func(o *Options) { o.RingBytes = uint(os.Getpagesize()) }, ""},
		{"ring 1 GiB", func(o *Options) { o.RingBytes = bpf.MaxRingBytes }, ""},
		{"ring 0", func(o *Options) { o.RingBytes = 0 }, "--ring-size: ring buffer size must be a power of two between 4096 bytes and 1024 MiB, got 0 MiB"},
		{"ring 3 MiB", func(o *Options) { o.RingBytes = 3 << 20 }, "got 3 MiB"},
		{"ring 2 GiB", func(o *Options) { o.RingBytes = 2 << 30 }, "got 2048 MiB"},
		{"ring 4 GiB", func(o *Options) { o.RingBytes = 4 << 30 }, "got 4096 MiB"},
		{"ring half a page", func(o *Options) { o.RingBytes = 2048 }, "got 2048 bytes"},
		{"nice -20", func(o *Options) { o.Nice = -20 }, ""},
		{"nice 19", func(o *Options) { o.Nice = 19 }, ""},
		{"nice 20", func(o *Options) { o.Nice = 20 }, "--nice 20: must be between -20 and 19"},
		{"nice -21", func(o *Options) { o.Nice = -21 }, "--nice -21: must be between -20 and 19"},
		{"duration", func(o *Options) { o.Duration = -time.Second }, "--duration -1s: must be positive"},
		{"keep with rotation", func(o *Options) { o.Keep, o.RotateEvery = 3, time.Hour }, ""},
		{"keep with size rotation", func(o *Options) { o.Keep, o.RotateSize = 3, 1<<30 }, ""},
		{"keep without rotation", func(o *Options) { o.Keep = 3 }, "--keep needs --rotate: without rotation there is one file"},
		{"keep negative", func(o *Options) { o.Keep, o.RotateEvery = -1, time.Hour }, "--keep -1: must be at least 1"},
		{"dot ports", func(o *Options) { o.DoTPorts = []uint16{853, 8853, 10853} }, ""},
		{"dot port 0", func(o *Options) { o.DoTPorts = []uint16{0} }, "--dot-port 0: not a port"},
		{"too many dot ports", func(o *Options) { o.DoTPorts = []uint16{1, 2, 3, 4, 5, 6, 7, 8} }, "--dot-port: at most 8 DoT ports with 853, got 9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := valid()
			tc.edit(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
