//go:build linux && (amd64 || arm64)

package bpf

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// goTLSProgram uses crypto/tls's Conn so that the linker keeps its Write,
// Read and Close.
const goTLSProgram = `package main

import (
	"crypto/tls"
	"os"
)

func main() {
	c := tls.Client(nil, &tls.Config{})
	if len(os.Args) > 5 {
		c.Write(nil)
		c.Read(nil)
		c.Close()
	}
}
`

// buildGoTLS builds goTLSProgram for goarch with extra go build flags.
func buildGoTLS(t *testing.T, goarch string, flags ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is needed to build the test program")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(goTLSProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gotls\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "prog")
	cmd := exec.Command(goBin, append(append([]string{"build", "-o", out}, flags...), ".")...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build GOARCH=%s: %v\n%s", goarch, err, b)
	}
	return out
}

// objdumpRets are the offsets of the RET instructions of fn in bin, from
// the start of fn, as the Go toolchain's own disassembler lists them.
func objdumpRets(t *testing.T, bin, fn string) []uint64 {
	t.Helper()
	out, err := exec.Command("go", "tool", "objdump", "-s", "^"+regexp.QuoteMeta(fn)+"$", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go tool objdump: %v\n%s", err, out)
	}
	addr := regexp.MustCompile(`\t0x([0-9a-f]+)\t`)
	var start uint64
	var rets []uint64
	for _, l := range strings.Split(string(out), "\n") {
		m := addr.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		a, err := strconv.ParseUint(m[1], 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if start == 0 {
			start = a
		}
		if f := strings.Fields(l); f[len(f)-1] == "RET" {
			rets = append(rets, a-start)
		}
	}
	if start == 0 {
		t.Fatalf("go tool objdump listed nothing of %s:\n%s", fn, out)
	}
	return rets
}

// TestGoRetOffsets: the RET instructions found in crypto/tls.(*Conn).Read,
// on amd64 and arm64, are exactly those Go's own disassembler lists; a
// binary stripped of .symtab gives the same function and offsets through
// .gopclntab.
func TestGoRetOffsets(t *testing.T) {
	for _, arch := range []struct {
		goarch  string
		machine elf.Machine
		ret     func(code []byte, off uint64) bool
	}{
		{"amd64", elf.EM_X86_64, func(code []byte, off uint64) bool { return code[off] == 0xc3 }},
		// RET (X30): 0xd65f03c0, little-endian.
		{"arm64", elf.EM_AARCH64, func(code []byte, off uint64) bool {
			return off+4 <= uint64(len(code)) && string(code[off:off+4]) == "\xc0\x03\x5f\xd6"
		}},
	} {
		t.Run(arch.goarch, func(t *testing.T) {
			var found [][]uint64
			for _, flags := range [][]string{nil, {"-ldflags=-s -w"}} {
				bin := buildGoTLS(t, arch.goarch, flags...)
				f, err := elf.Open(bin)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if flags != nil {
					if _, err := f.Symbols(); err == nil {
						t.Fatalf("%s: built with %q, still has .symtab", bin, flags)
					}
				}
				funcs, err := goFuncs(f, goConnRead, goConnWrite)
				if err != nil {
					t.Fatal(err)
				}
				span := funcs[goConnRead]
				if span.size == 0 || funcs[goConnWrite].size == 0 {
					t.Fatalf("%s (%q): functions found %+v", bin, flags, funcs)
				}
				_, code, err := funcCode(f, span.addr, span.size)
				if err != nil {
					t.Fatal(err)
				}
				rets, err := retOffsets(arch.machine, code)
				if err != nil {
					t.Fatal(err)
				}
				if len(rets) == 0 {
					t.Fatalf("%s (%q): no RET found in %s", bin, flags, goConnRead)
				}
				for _, r := range rets {
					if !arch.ret(code, r) {
						t.Errorf("%s (%q): offset %#x is not a RET: % x", bin, flags, r, code[r:min(r+4, uint64(len(code)))])
					}
				}
				if flags == nil {
					if want := objdumpRets(t, bin, goConnRead); !slices.Equal(rets, want) {
						t.Errorf("%s: RET offsets %#x, go tool objdump says %#x", bin, rets, want)
					}
				}
				found = append(found, rets)
			}
			if !slices.Equal(found[0], found[1]) {
				t.Errorf("RET offsets with .symtab %#x, stripped %#x", found[0], found[1])
			}
		})
	}
}

// TestReadGoExe: a Go executable of this machine is read whole (version,
// file offsets of the three functions); one of the other architecture and
// a C program are not Go programs this can probe.
func TestReadGoExe(t *testing.T) {
	bin := buildGoTLS(t, runtime.GOARCH)
	x, err := readGoExe(bin)
	if err != nil {
		t.Fatal(err)
	}
	if x.version != runtime.Version() {
		t.Errorf("version %q", x.version)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, fn := range []struct {
		name string
		off  uint64
	}{{goConnWrite, x.write.off}, {goConnRead, x.read.off}, {goConnClose, x.close.off}} {
		var want uint64
		for _, s := range syms {
			if s.Name == fn.name {
				for _, p := range f.Progs {
					if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value < p.Vaddr+p.Filesz {
						want = s.Value - p.Vaddr + p.Off
					}
				}
			}
		}
		if want == 0 || fn.off != want {
			t.Errorf("%s at file offset %#x, want %#x", fn.name, fn.off, want)
		}
	}
	other := "arm64"
	if runtime.GOARCH == "arm64" {
		other = "amd64"
	}
	if _, err := readGoExe(buildGoTLS(t, other)); err == nil {
		t.Errorf("a %s executable was taken for one this machine can probe", other)
	}
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readGoExe(sh); err == nil {
		t.Errorf("%s was taken for a Go program", sh)
	}
}

func TestGoRegABI(t *testing.T) {
	for v, want := range map[string]bool{
		"go1.16.15": false, "go1.21.13": true, "go1.26.8": true, "go1.22rc1": true,
		"devel go1.27-abc": true, "": true,
	} {
		if got := goRegABI(v); got != want {
			t.Errorf("goRegABI(%q) = %v, want %v", v, got, want)
		}
	}
}
