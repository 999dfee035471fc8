//go:build linux && (amd64 || arm64)

package bpf

import (
	"debug/buildinfo"
	"debug/elf"
	"debug/gosym"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"

	"github.com/cilium/ebpf/link"
	"golang.org/x/arch/arm64/arm64asm"
	"golang.org/x/arch/x86/x86asm"
)

// Go programs carry crypto/tls in the executable: the functions probed are
// found in its own symbol table (.symtab, or .gopclntab where the binary
// was stripped), and Read's returns by disassembling it (tls.h says why no
// uretprobe).
const (
	goConnWrite = "crypto/tls.(*Conn).Write"
	goConnRead  = "crypto/tls.(*Conn).Read"
	goConnClose = "crypto/tls.(*Conn).Close"
)

// goTLSPrograms are tls.h's programs for Go executables.
var goTLSPrograms = []string{"go_tls_write", "go_tls_read", "go_tls_read_ret", "go_tls_close"}

// goFunc is one function of a Go executable: its offset in the file (what
// a uprobe attaches to) and, for Read, the offsets of its RET instructions
// relative to its start.
type goFunc struct {
	off  uint64
	rets []uint64
}

// goExe is what the probes need from a Go executable.
type goExe struct {
	version string // "go1.26.8"
	write   goFunc
	read    goFunc
	close   goFunc // off 0: not found (Close is not needed, only helps)
}

// errNotGo: the executable is not a Go program (or not one this can probe).
var errNotGo = errors.New("not a Go executable")

// readGoExe reads a Go executable's crypto/tls functions. It returns
// errNotGo, wrapped, for anything that is not a Go program of this
// machine's architecture linking crypto/tls with the register ABI.
func readGoExe(path string) (*goExe, error) {
	f, err := elf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errNotGo, err)
	}
	defer f.Close()
	want := elf.EM_X86_64
	if runtime.GOARCH == "arm64" {
		want = elf.EM_AARCH64
	}
	if f.Machine != want {
		return nil, fmt.Errorf("%w: machine %v", errNotGo, f.Machine)
	}
	if f.Section(".gopclntab") == nil && f.Section(".go.buildinfo") == nil {
		return nil, errNotGo
	}
	x := &goExe{}
	if bi, err := buildinfo.ReadFile(path); err == nil {
		x.version = bi.GoVersion
	}
	if !goRegABI(x.version) {
		return nil, fmt.Errorf("%w: %s predates the register ABI (Go 1.17)", errNotGo, x.version)
	}
	funcs, err := goFuncs(f, goConnWrite, goConnRead, goConnClose)
	if err != nil {
		return nil, err
	}
	w, r := funcs[goConnWrite], funcs[goConnRead]
	if w.size == 0 || r.size == 0 {
		return nil, fmt.Errorf("%w: no crypto/tls (*Conn).Write and Read", errNotGo)
	}
	for _, fn := range []struct {
		name string
		dst  *goFunc
		rets bool
	}{{goConnWrite, &x.write, false}, {goConnRead, &x.read, true}, {goConnClose, &x.close, false}} {
		s := funcs[fn.name]
		if s.size == 0 {
			continue
		}
		off, code, err := funcCode(f, s.addr, s.size)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fn.name, err)
		}
		fn.dst.off = off
		if fn.rets {
			if fn.dst.rets, err = retOffsets(f.Machine, code); err != nil {
				return nil, fmt.Errorf("%s: %w", fn.name, err)
			}
			if len(fn.dst.rets) == 0 {
				return nil, fmt.Errorf("%s: no RET instruction found", fn.name)
			}
		}
	}
	return x, nil
}

// goRegABI says whether a Go version ("go1.21.13", "devel ...") passes
// arguments in registers on amd64 and arm64: from Go 1.17 on amd64, 1.18 on
// arm64. An unknown version is taken as recent.
func goRegABI(v string) bool {
	rest, ok := strings.CutPrefix(v, "go1.")
	if !ok {
		return true
	}
	if i := strings.IndexAny(rest, ".rcbeta-"); i >= 0 {
		rest = rest[:i]
	}
	minor, err := strconv.Atoi(rest)
	if err != nil {
		return true
	}
	if runtime.GOARCH == "arm64" {
		return minor >= 18
	}
	return minor >= 17
}

type funcSpan struct{ addr, size uint64 }

// goFuncs finds functions by name in .symtab, or in .gopclntab when the
// executable was stripped of .symtab (go build -ldflags=-s).
func goFuncs(f *elf.File, names ...string) (map[string]funcSpan, error) {
	out := map[string]funcSpan{}
	syms, err := f.Symbols()
	if err == nil {
		for _, s := range syms {
			for _, n := range names {
				if s.Name == n && elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 0 {
					out[n] = funcSpan{s.Value, s.Size}
				}
			}
		}
		// A .symtab without them: no crypto/tls linked in (the .gopclntab
		// would say the same, at ten times the cost).
		return out, nil
	}
	pcln, text := f.Section(".gopclntab"), f.Section(".text")
	if pcln == nil || text == nil {
		return out, nil
	}
	data, err := pcln.Data()
	if err != nil {
		return nil, fmt.Errorf("read .gopclntab: %w", err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		return nil, fmt.Errorf("parse .gopclntab: %w", err)
	}
	for _, n := range names {
		if fn := tab.LookupFunc(n); fn != nil && fn.End > fn.Entry {
			out[n] = funcSpan{fn.Entry, fn.End - fn.Entry}
		}
	}
	return out, nil
}

// funcCode returns the file offset of the function at virtual address
// addr and its machine code.
func funcCode(f *elf.File, addr, size uint64) (off uint64, code []byte, err error) {
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Flags&elf.PF_X == 0 || addr < p.Vaddr || addr+size > p.Vaddr+p.Filesz {
			continue
		}
		off = addr - p.Vaddr + p.Off
		code = make([]byte, size)
		if _, err := p.ReadAt(code, int64(addr-p.Vaddr)); err != nil && err != io.EOF {
			return 0, nil, fmt.Errorf("read code at %#x: %w", addr, err)
		}
		return off, code, nil
	}
	return 0, nil, fmt.Errorf("address %#x is in no executable segment", addr)
}

// retOffsets disassembles a function and returns the offsets of its return
// instructions. amd64 instructions vary in length: decoding runs from the
// function's start, which is an instruction boundary, and a byte that does
// not decode (data, padding) is stepped over one at a time.
func retOffsets(m elf.Machine, code []byte) ([]uint64, error) {
	var rets []uint64
	switch m {
	case elf.EM_X86_64:
		for i := 0; i < len(code); {
			inst, err := x86asm.Decode(code[i:], 64)
			if err != nil || inst.Len == 0 {
				i++
				continue
			}
			if inst.Op == x86asm.RET {
				rets = append(rets, uint64(i))
			}
			i += inst.Len
		}
	case elf.EM_AARCH64:
		for i := 0; i+4 <= len(code); i += 4 {
			inst, err := arm64asm.Decode(code[i : i+4])
			if err == nil && inst.Op == arm64asm.RET {
				rets = append(rets, uint64(i))
			}
		}
	default:
		return nil, fmt.Errorf("no disassembler for %v", m)
	}
	return rets, nil
}

// attachGo attaches the Go probes to one executable. A file that is not a
// Go program using crypto/tls is handled (ok) with no symbols.
func (l *Libc) attachGo(f libcFound) (t LibcTarget, ok bool, err error) {
	t = LibcTarget{Path: f.path, PID: f.pid, MntNS: f.mntns, Dev: f.id.dev, Inode: f.id.ino, GoExe: true}
	// The process's own link to its executable: it works from any mount
	// namespace, and after the file was deleted or replaced.
	t.OpenedAs = fmt.Sprintf("%s/%d/exe", l.proc, f.pid)
	x, err := readGoExe(t.OpenedAs)
	if errors.Is(err, errNotGo) {
		return t, true, nil
	}
	if err != nil {
		return t, true, fmt.Errorf("go tls probes: %s: %w", t.Path, err)
	}
	t.GoVersion = x.version
	ex, err := link.OpenExecutable(t.OpenedAs)
	if err != nil {
		return t, false, nil // the process is gone
	}
	var links []link.Link
	fail := func(sym string, err error) (LibcTarget, bool, error) {
		for _, k := range links {
			k.Close()
		}
		t.Symbols = nil
		t.Skipped = append(t.Skipped, LibcSkip{sym, err})
		return t, true, fmt.Errorf("go tls probes: %s in %s: %w", sym, t.Path, err)
	}
	up := func(sym, prog string, off uint64) error {
		k, err := ex.Uprobe(sym, l.c.coll.Programs[prog], &link.UprobeOptions{Address: off})
		if err == nil {
			links = append(links, k)
		}
		return err
	}
	// The return probes first: an entry without them would fill go_reads.
	for _, r := range x.read.rets {
		if err := up(goConnRead, "go_tls_read_ret", x.read.off+r); err != nil {
			return fail(goConnRead, err)
		}
	}
	if err := up(goConnRead, "go_tls_read", x.read.off); err != nil {
		return fail(goConnRead, err)
	}
	if err := up(goConnWrite, "go_tls_write", x.write.off); err != nil {
		return fail(goConnWrite, err)
	}
	t.Symbols = []string{goConnWrite, goConnRead}
	if x.close.off != 0 {
		if err := up(goConnClose, "go_tls_close", x.close.off); err != nil {
			t.Skipped = append(t.Skipped, LibcSkip{goConnClose, err})
		} else {
			t.Symbols = append(t.Symbols, goConnClose)
		}
	}
	l.links = append(l.links, links...)
	return t, true, nil
}
