//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
	"github.com/dnsrec/dnsrec/schema"
)

// resolveFuncs names enum resolve_func.
var resolveFuncs = map[uint8]string{
	bpf.ResolveGetaddrinfo:     "getaddrinfo",
	bpf.ResolveGethostbynameR:  "gethostbyname_r",
	bpf.ResolveGethostbyname2R: "gethostbyname2_r",
}

var resolveHeaderSize = int(unsafe.Sizeof(bpf.ResolveEvent{}))

func (d *decoder) decodeResolution(raw []byte) (*Resolution, error) {
	if len(raw) < resolveHeaderSize {
		return nil, fmt.Errorf("resolution record of %d bytes: %w", len(raw), errShort)
	}
	ev := (*bpf.ResolveEvent)(unsafe.Pointer(&raw[0]))
	fn, ok := resolveFuncs[ev.Func]
	if !ok {
		return nil, fmt.Errorf("resolution record of unknown function %d", ev.Func)
	}
	if int(ev.Naddrs) > len(ev.Addrs) {
		return nil, fmt.Errorf("resolution record claims %d addresses, holds at most %d", ev.Naddrs, len(ev.Addrs))
	}
	r := &Resolution{
		Func: fn, RC: ev.Rc, BootNs: ev.BootNs, CallNs: ev.CallNs,
		NameCut:  ev.Flags&bpf.ResolveNameCut != 0,
		AddrsCut: ev.Flags&bpf.ResolveAddrsCut != 0,
		Nested:   ev.Flags&bpf.ResolveNested != 0,
		Ident:    d.decodeIdent(&ev.Id),
	}
	r.Name, r.Spelling = presentName(cString(ev.Name[:]))
	for _, a := range ev.Addrs[:ev.Naddrs] {
		switch a.Family {
		case 4:
			r.Addrs = append(r.Addrs, netip.AddrFrom4([4]byte(a.Addr[:4])))
		case 6:
			r.Addrs = append(r.Addrs, netip.AddrFrom16(a.Addr).Unmap())
		default:
			return nil, fmt.Errorf("resolution record with address family %d", a.Family)
		}
	}
	return r, nil
}

// presentName turns the bytes a program passed to libc into the
// presentation form (RFC 1035 section 5.1) that names from DNS messages are
// stored in, normalized the same way, so that one name is one names row
// whichever way it was asked for. Bytes a label cannot hold as they are
// are escaped: \. inside a label is impossible here (libc splits at every
// dot), so only the specials and the unprintable need it. sent is the name
// in the case it was passed, when that differs from the normalized one.
func presentName(name string) (norm, sent string) {
	out := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '.':
			out = append(out, c)
		case c == '\\' || c == '"' || c == '(' || c == ')' || c == ';' || c == '@' || c == '$' || c == ' ':
			out = append(out, '\\', c)
		case c < 0x21 || c > 0x7e:
			out = append(out, '\\')
			if c < 100 {
				out = append(out, '0')
			}
			if c < 10 {
				out = append(out, '0')
			}
			out = strconv.AppendUint(out, uint64(c), 10)
		default:
			out = append(out, c)
		}
	}
	norm = schema.NormalizeName(string(out))
	if sent = string(out[:len(norm)]); sent == norm {
		sent = ""
	}
	return norm, sent
}

// resolution stores a libc resolver call, unless the record-time filters
// leave it out.
func (p *pipeline) resolution(ctx context.Context, r *Resolution) error {
	p.lastBootNs = max(p.lastBootNs, r.BootNs)
	if !p.opts.Filter.keepsOwner(r.Ident, p.procComm) || !p.opts.Filter.keepsName(&r.Name) {
		p.filtered++
		return nil
	}
	row := &ResolutionRow{Resolution: r, TsNs: p.wall(r.BootNs)}
	if r.CallNs != 0 && r.CallNs <= r.BootNs {
		row.DurNs = int64(r.BootNs - r.CallNs)
	}
	if r.Ident != nil {
		id, err := p.processID(ctx, r.Ident)
		if err != nil {
			return err
		}
		row.Side = Side{Seen: true, TsNs: row.TsNs, Ident: r.Ident, ProcessID: id}
	}
	p.batched++
	// A nested call (glibc's getaddrinfo calling gethostbyname2_r) is
	// stored, marked, for the record; the count and the live view are of
	// the calls the program made.
	if !r.Nested {
		p.resolutions++
		if p.live != nil {
			p.live.addResolution(row)
		}
	}
	return p.store.InsertResolution(ctx, row)
}

// The recorder looks for C libraries not seen before (a container started
// with its own) at least every libcScanEvery, and, after a process exec'd,
// once libcScanAfterExec has passed since the last look: at the next batch
// tick (Options.BatchInterval). A scan that finds nothing new costs about
// half a millisecond. The host's libc is probed from the start; a process
// in a new mount namespace that resolves a name before the next scan is
// not seen by the probes.
const (
	libcScanEvery     = 2 * time.Second
	libcScanAfterExec = 250 * time.Millisecond
)

// scanLibc attaches the resolver probes to C libraries not seen before,
// and logs what it attached; a failure is logged once, and recording goes
// on without what could not be probed.
func (p *pipeline) scanLibc(ctx context.Context) {
	p.lastLibcScan, p.libcDue = time.Now(), false
	p.scanTLS(ctx)
	if p.libc == nil {
		return
	}
	added, err := p.libc.Scan()
	for _, t := range added {
		p.opts.Logger.Info("libc resolver probes attached", "libc", t.Path, "mntns", t.MntNS, "pid", t.PID, "functions", t.Symbols)
		p.probed(ctx, "libc", t)
		for _, s := range t.Skipped {
			p.opts.Logger.Debug("libc function not probed", "libc", t.Path, "function", s.Symbol, "reason", s.Err)
		}
	}
	if err != nil {
		if errors.Is(err, bpf.ErrUprobesUnsupported) {
			p.opts.Logger.Warn("libc resolver calls are not recorded", "reason", err)
			p.libc = nil // for good: no later scan can do better
			return
		}
		if !p.libcErrLogged {
			p.libcErrLogged = true
			p.opts.Logger.Warn("some C libraries could not be probed: their resolver calls are not recorded (DNS messages still are)", "err", err)
		}
	}
}

// probed writes a file the probes were attached to into the evidence, and
// keeps it for the next files of a rotated recording.
func (p *pipeline) probed(ctx context.Context, kind string, t bpf.LibcTarget) {
	pr := store.Probe{TsNs: time.Now().UnixNano(), Kind: kind, Path: t.Path, PID: t.PID, MntNS: t.MntNS,
		Dev: t.Dev, Inode: t.Inode, GoVersion: t.GoVersion, Symbols: t.Symbols}
	p.probes = append(p.probes, pr)
	if err := p.store.InsertProbe(ctx, pr); err != nil {
		p.opts.Logger.Warn("could not note a probed file in the evidence", "path", t.Path, "err", err)
	}
}
