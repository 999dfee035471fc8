//go:build linux && (amd64 || arm64)

package bpf

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ErrUprobesUnsupported: this kernel cannot run the libc resolver probes
// (it has no kprobe program type, which uprobes use); the tier itself runs.
var ErrUprobesUnsupported = errors.New("this kernel cannot run uprobes: libc resolver calls are not recorded")

// libProbe is a function probed in a library file: the programs that run
// at its entry and, unless ret is "", at its return.
type libProbe struct{ symbol, entry, ret string }

// libKind is a kind of library whose files get the same uprobes: the C
// library's resolver calls (libcKind), the TLS libraries' (tlsKind, tls.go).
type libKind struct {
	name   string // in errors: "libc probes"
	match  func(base string) bool
	probes []libProbe
	// standard are where distributions put the library, attached at the
	// first Scan even if no process maps it yet.
	standard []string
	// allStandard: attach every standard location found, not the first.
	allStandard bool
	// waitLoader: a process that maps a dynamic loader but no such
	// library yet is read again at the next Scan (its libc may still come).
	waitLoader bool
	// goExe: also probe the executables that are Go programs (gotls.go).
	goExe bool
}

// programs are the names of the kind's programs.
func (k *libKind) programs() []string {
	var names []string
	for _, p := range k.probes {
		names = append(names, p.entry)
		if p.ret != "" {
			names = append(names, p.ret)
		}
	}
	if k.goExe {
		names = append(names, goTLSPrograms...)
	}
	return names
}

// libcKind: the resolver entry points probed in every libc, with the
// programs (common.h) that run at their entry and return.
var libcKind = &libKind{
	name:  "libc probes",
	match: isLibc,
	probes: []libProbe{
		{"getaddrinfo", "up_getaddrinfo", "ur_getaddrinfo"},
		{"gethostbyname_r", "up_gethostbyname_r", "ur_gethostbyname_r"},
		{"gethostbyname2_r", "up_gethostbyname2_r", "ur_gethostbyname2_r"},
	},
	standard:   standardLibcPaths,
	waitLoader: true,
}

// uprobePrograms are the names of every uprobe program of every kind.
func uprobePrograms() []string {
	return append(libcKind.programs(), tlsKind.programs()...)
}

// LibcTarget is one libc file the resolver probes are attached to.
type LibcTarget struct {
	// Path is the file's path in the mount namespace it was found in,
	// as that namespace's processes map it.
	Path string
	// OpenedAs is the path the probes were attached through, from this
	// process: /proc/<pid>/root/<Path>, /proc/<pid>/map_files/<range>
	// for a file deleted since it was mapped, or Path itself for the
	// host's libc found at a standard location.
	OpenedAs string
	// PID is the process it was found mapped in (0: found at a standard
	// location), MntNS that process's mount namespace (its inode).
	PID   int
	MntNS uint64
	// Dev and Inode identify the file as the kernel maps it (the device
	// of its superblock, as /proc/<pid>/maps shows it, in unix.Mkdev's
	// encoding): a uprobe attaches to an inode, so every process mapping
	// this file is covered by one attachment.
	Dev   uint64
	Inode uint64
	// Symbols are the functions probed (entry and return).
	Symbols []string
	// GoVersion is set when the file is a Go executable whose crypto/tls
	// is probed: the Go release that built it ("go1.26.8"; "" if the
	// executable does not say).
	GoVersion string
	// GoExe: the file is a Go executable (Path is the program's).
	GoExe bool
	// Skipped are the functions that could not be probed in this file,
	// and why.
	Skipped []LibcSkip
}

// LibcSkip is a resolver function not probed in one libc.
type LibcSkip struct {
	Symbol string
	Err    error
}

// Libc finds the C libraries processes on the host use, in every mount
// namespace (containers bring their own), and attaches the resolver
// probes to each, once per file. Scan is meant to be called again and
// again (every few seconds, or when processes start): it reads each
// process's /proc entry cheaply, and the memory map only of a process
// that runs a program not yet seen in its mount namespace.
//
// The TLS libraries are found and probed the same way (Capture.TLSProbes,
// with its own kind of library and probes).
//
// Its links belong to the Capture: Capture.Detach and Close remove them.
type Libc struct {
	c    *Capture
	proc string // procfs mount, "/proc"
	kind *libKind
	// first, if set, runs once before the first attachment (tls.go: the
	// sys_enter program); its error is returned by that Scan.
	first func() error

	mu       sync.Mutex
	detached bool
	files    map[fileID]bool  // libc files handled (attached, or refused for good)
	seen     map[progKey]bool // (mount namespace, exe) whose maps were read
	checked  bool             // the standard host locations were looked at
	targets  []LibcTarget
	links    []link.Link
}

type fileID struct{ dev, ino uint64 }

type progKey struct {
	mntns uint64
	exe   string
}

// detach removes every probe; later Scans attach nothing.
func (l *Libc) detach() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.detached = true
	var errs []error
	for i := len(l.links) - 1; i >= 0; i-- {
		if err := l.links[i].Close(); err != nil {
			errs = append(errs, fmt.Errorf("detach %s: %w", l.kind.name, err))
		}
	}
	l.links = nil
	return errors.Join(errs...)
}

// libcFound is one libc mapped by one process.
type libcFound struct {
	pid   int
	mntns uint64
	path  string // as in the maps, " (deleted)" removed
	gone  bool   // the maps said " (deleted)"
	span  string // the mapping's address range, for map_files
	id    fileID
	exe   bool // the process's executable, not a library
}

// Scan looks for libc files not seen before and attaches the probes to
// each. It returns the targets it added. Processes that vanish while they
// are read are passed over. The error says what could not be attached
// (ErrUprobesUnsupported where the kernel cannot run uprobes at all); the
// targets attached before it stay.
func (l *Libc) Scan() (added []LibcTarget, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.detached {
		return nil, errors.New(l.kind.name + ": the capture was detached")
	}
	for _, name := range l.kind.programs() {
		if l.c.coll.Programs[name] == nil {
			return nil, ErrUprobesUnsupported
		}
	}
	var errs []error
	if l.first != nil {
		errs = append(errs, l.first())
		l.first = nil
	}

	found, selfNS, err := l.walk()
	if err != nil {
		return nil, err
	}
	if !l.checked {
		// The host's own libc, even if no process maps it right now: a
		// short-lived command would otherwise run before the next Scan.
		l.checked = true
		found = append(l.standardLibs(selfNS), found...)
	}

	for _, f := range found {
		if l.files[f.id] {
			continue
		}
		t, ok, err := l.attach(f)
		if err != nil {
			errs = append(errs, err)
		}
		if !ok {
			continue // the process is gone; another will show the file
		}
		l.files[f.id] = true
		if len(t.Symbols) > 0 {
			l.targets = append(l.targets, t)
			added = append(added, t)
		}
	}
	return added, errors.Join(errs...)
}

// walk reads every process's mount namespace and executable, and the
// memory map of those whose (namespace, executable) was not read before.
func (l *Libc) walk() (found []libcFound, selfNS uint64, err error) {
	selfNS, _ = l.mntns("self")
	d, err := os.Open(l.proc)
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", l.kind.name, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, 0, fmt.Errorf("%s: read %s: %w", l.kind.name, l.proc, err)
	}
	live := map[uint64]bool{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		exe, err := os.Readlink(filepath.Join(l.proc, name, "exe"))
		if err != nil {
			continue // a kernel thread, a zombie, or gone
		}
		ns, err := l.mntns(name)
		if err != nil {
			continue
		}
		live[ns] = true
		k := progKey{ns, exe}
		if l.seen[k] {
			continue
		}
		libs, settled, err := l.readMaps(pid, exe)
		if err != nil {
			continue
		}
		for i := range libs {
			libs[i].mntns = ns
		}
		found = append(found, libs...)
		if settled {
			l.seen[k] = true
		}
	}
	// Forget the namespaces that are gone: their ids may come back.
	for k := range l.seen {
		if !live[k.mntns] {
			delete(l.seen, k)
		}
	}
	return found, selfNS, nil
}

// mntns reads the mount namespace of /proc/<pid> ("self" for this one).
func (l *Libc) mntns(pid string) (uint64, error) {
	s, err := os.Readlink(filepath.Join(l.proc, pid, "ns", "mnt"))
	if err != nil {
		return 0, err
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "mnt:["), "]")
	return strconv.ParseUint(s, 10, 64)
}

// isLibc says whether a mapped file's name is a C library's: glibc's
// libc.so.6 (libc-2.NN.so before 2.34), or musl's, which is its dynamic
// loader too (ld-musl-<arch>.so.1, linked as libc.musl-<arch>.so.1).
func isLibc(base string) bool {
	switch {
	case base == "libc.so.6":
		return true
	case strings.HasPrefix(base, "libc-2.") && strings.HasSuffix(base, ".so"):
		return true
	case strings.HasPrefix(base, "ld-musl-") && strings.HasSuffix(base, ".so.1"):
		return true
	case strings.HasPrefix(base, "libc.musl-") && strings.HasSuffix(base, ".so.1"):
		return true
	}
	return false
}

// readMaps returns the libc files pid maps. settled is false when the
// process maps a dynamic loader but no libc yet: it is starting, and its
// libc may still come.
//
// With the kind's goExe, the process's executable is among them (exe is
// its /proc/<pid>/exe link), for attachGo to see whether it is Go.
func (l *Libc) readMaps(pid int, exe string) (libs []libcFound, settled bool, err error) {
	exe = strings.TrimSuffix(exe, " (deleted)")
	b, err := os.ReadFile(filepath.Join(l.proc, strconv.Itoa(pid), "maps"))
	if err != nil {
		return nil, false, err
	}
	loader := false
	have := map[fileID]bool{}
	for line := range bytes.Lines(b) {
		f, ok := parseMapsLine(string(bytes.TrimRight(line, "\n")))
		if !ok {
			continue
		}
		if l.kind.goExe && f.path == exe {
			if !have[f.id] {
				have[f.id] = true
				f.pid, f.exe = pid, true
				libs = append(libs, f)
			}
			continue
		}
		base := filepath.Base(f.path)
		if !l.kind.match(base) {
			if strings.HasPrefix(base, "ld-linux") || strings.HasPrefix(base, "ld64.so") || strings.HasPrefix(base, "ld-2.") {
				loader = true
			}
			continue
		}
		if have[f.id] {
			continue
		}
		have[f.id] = true
		f.pid = pid
		libs = append(libs, f)
	}
	return libs, len(libs) > 0 || !loader || !l.kind.waitLoader, nil
}

// parseMapsLine reads a file mapping of /proc/<pid>/maps:
//
//	7f77...-7f77... r-xp 00026000 fe:00 326269   /usr/lib/x86_64-linux-gnu/libc.so.6
func parseMapsLine(line string) (libcFound, bool) {
	var f libcFound
	fields := strings.SplitN(line, " ", 6)
	if len(fields) < 6 {
		return f, false
	}
	path := strings.TrimLeft(fields[5], " ")
	if !strings.HasPrefix(path, "/") {
		return f, false
	}
	if p, ok := strings.CutSuffix(path, " (deleted)"); ok {
		path, f.gone = p, true
	}
	major, minor, ok := strings.Cut(fields[3], ":")
	if !ok {
		return f, false
	}
	maj, err1 := strconv.ParseUint(major, 16, 32)
	min, err2 := strconv.ParseUint(minor, 16, 32)
	ino, err3 := strconv.ParseUint(fields[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || ino == 0 {
		return f, false
	}
	f.path = path
	f.span = fields[0]
	f.id = fileID{unix.Mkdev(uint32(maj), uint32(min)), ino}
	return f, true
}

// standardLibcPaths are where distributions put libc, for the host's own
// when no process of this mount namespace maps one.
var standardLibcPaths = []string{
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
	"/lib/aarch64-linux-gnu/libc.so.6",
	"/usr/lib/aarch64-linux-gnu/libc.so.6",
	"/lib64/libc.so.6",
	"/usr/lib64/libc.so.6",
	"/lib/libc.so.6",
	"/usr/lib/libc.so.6",
	"/lib/ld-musl-x86_64.so.1",
	"/lib/ld-musl-aarch64.so.1",
}

// standardLibs finds the libraries of this process's mount namespace at
// standard locations: the first libc, every TLS library (OpenSSL and
// GnuTLS are different files).
func (l *Libc) standardLibs(selfNS uint64) []libcFound {
	var found []libcFound
	for _, p := range l.kind.standard {
		id, err := mappedID(p)
		if err != nil {
			continue
		}
		found = append(found, libcFound{path: p, mntns: selfNS, id: id})
		if !l.kind.allStandard {
			break
		}
	}
	return found
}

// mappedID is the (device, inode) the kernel shows for path when it is
// mapped: stat's device differs from it on btrfs (a subvolume's) and
// overlayfs (the overlay's, not the layer's), and only the mapped one
// matches what other processes' maps say. So map it and look.
func mappedID(path string) (fileID, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileID{}, err
	}
	defer f.Close()
	b, err := unix.Mmap(int(f.Fd()), 0, os.Getpagesize(), unix.PROT_READ, unix.MAP_PRIVATE)
	if err != nil {
		return fileID{}, fmt.Errorf("map %s: %w", path, err)
	}
	defer unix.Munmap(b)
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&b[0])))
	maps, err := os.Open("/proc/self/maps")
	if err != nil {
		return fileID{}, err
	}
	defer maps.Close()
	sc := bufio.NewScanner(maps)
	for sc.Scan() {
		if !strings.HasPrefix(sc.Text(), start) {
			continue
		}
		if m, ok := parseMapsLine(sc.Text()); ok {
			return m.id, nil
		}
	}
	return fileID{}, fmt.Errorf("map %s: mapping not found in /proc/self/maps", path)
}

// attach attaches every probe to one libc. ok is false when the file
// could not be opened (its process is gone): the file stays unhandled.
func (l *Libc) attach(f libcFound) (t LibcTarget, ok bool, err error) {
	if f.exe {
		return l.attachGo(f)
	}
	t = LibcTarget{Path: f.path, PID: f.pid, MntNS: f.mntns, Dev: f.id.dev, Inode: f.id.ino}
	switch {
	case f.pid == 0:
		t.OpenedAs = f.path
	case f.gone:
		t.OpenedAs = filepath.Join(l.proc, strconv.Itoa(f.pid), "map_files", f.span)
	default:
		t.OpenedAs = filepath.Join(l.proc, strconv.Itoa(f.pid), "root", f.path)
	}
	ex, err := link.OpenExecutable(t.OpenedAs)
	if err != nil {
		return t, false, nil
	}
	var errs []error
	for _, p := range l.kind.probes {
		var ret link.Link
		if p.ret != "" {
			ret, err = ex.Uretprobe(p.symbol, l.c.coll.Programs[p.ret], nil)
			if err != nil {
				t.Skipped = append(t.Skipped, LibcSkip{p.symbol, err})
				if !errors.Is(err, link.ErrNoSymbol) {
					errs = append(errs, fmt.Errorf("%s: %s in %s: %w", l.kind.name, p.symbol, t.OpenedAs, err))
				}
				continue
			}
		}
		entry, err := ex.Uprobe(p.symbol, l.c.coll.Programs[p.entry], nil)
		if err != nil {
			if ret != nil {
				ret.Close()
			}
			t.Skipped = append(t.Skipped, LibcSkip{p.symbol, err})
			if !errors.Is(err, link.ErrNoSymbol) {
				errs = append(errs, fmt.Errorf("%s: %s in %s: %w", l.kind.name, p.symbol, t.OpenedAs, err))
			}
			continue
		}
		if ret != nil {
			l.links = append(l.links, ret)
		}
		l.links = append(l.links, entry)
		t.Symbols = append(t.Symbols, p.symbol)
	}
	if len(t.Symbols) == 0 && len(errs) > 0 && f.pid != 0 {
		if _, serr := os.Stat(t.OpenedAs); serr != nil {
			return t, false, nil // vanished while attaching
		}
	}
	return t, true, errors.Join(errs...)
}
