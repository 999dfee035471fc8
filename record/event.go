//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// Packet is one DNS transport payload (a UDP datagram or a TCP segment), or
// an owner announcement (Kind bpf.EventOwner, no payload).
type Packet struct {
	Kind             uint8
	Dir              uint8 // bpf.DirSend or bpf.DirRecv
	TCP              bool
	Src, Dst         netip.AddrPort
	OrigLen          uint32 // payload length on the wire
	Payload          []byte // at most snaplen bytes
	TCPSeq           uint32
	BootNs           uint64
	Cookie           uint64
	Ident            *Identity // nil when the owner was not known in the kernel
	IdentFromCurrent bool
	Ifindex          uint32        // network device (cgroup tier); 0 when the hook does not know it
	Proto            string        // "dot" or "doh" for a message read from TLS plaintext (tls.go); else "" (udp or tcp by TCP)
	DoH              *store.DoHURL // for proto "doh": the URL that carried it
}

// Exec is an exec or exit of a process.
type Exec struct {
	Exit          bool
	PID, PPID     uint32
	StartNs       uint64
	PStartNs      uint64
	BootNs        uint64
	CgroupID      uint64
	UID, GID      uint32
	Comm          string
	Exe           string // absolute path; "" for exits
	Argv          []string
	PathTruncated bool
	ArgsTruncated bool
}

var (
	dnsHeaderSize  = int(unsafe.Sizeof(bpf.DNSEvent{}))
	execHeaderSize = int(unsafe.Sizeof(bpf.ExecEvent{}))
)

// Sizes of the exec record's data area (common.h).
const (
	argsMax  = 2048
	nameSlot = 128
)

// errShort is returned for records smaller than their kind's header.
var errShort = errors.New("record shorter than its header")

// Decode turns one ring buffer record into a *Packet, an *Exec or a
// *Resolution. Nothing in
// the result aliases raw, so the reader can reuse its record buffer; only the
// payload's own bytes are copied, not the size class the kernel reserved.
func Decode(raw []byte) (any, error) {
	return (&decoder{}).decode(raw)
}

// decoder decodes records for one reader goroutine. It keeps the thread and
// process names it has seen, so that the same comm is not a new string (two
// allocations) for every message and every ancestor of it.
type decoder struct {
	comms [256]struct {
		key [16]byte
		val string
	}
	// idents holds the identities decoded last, by the bytes they were
	// decoded from: a busy process sends message after message with the
	// same identity, and they then share one *Identity (nothing changes an
	// Identity once decoded).
	idents [64]struct {
		key []byte
		val *Identity
	}
}

// comm returns the NUL-terminated name in b as a string, from the cache when
// it holds the same bytes.
func (d *decoder) comm(b *[16]int8) string {
	var k [16]byte
	h := uint32(2166136261)
	for i, c := range b {
		k[i] = byte(c)
		h = (h ^ uint32(byte(c))) * 16777619
	}
	e := &d.comms[h&255]
	if e.key == k && (e.val != "" || k[0] == 0) {
		return e.val
	}
	e.key, e.val = k, cString(b[:])
	return e.val
}

func (d *decoder) decode(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, errShort
	}
	switch raw[0] {
	case bpf.EventDNS, bpf.EventOwner:
		return d.decodePacket(raw)
	case bpf.EventExec, bpf.EventExit:
		return decodeExec(raw)
	case bpf.EventResolve:
		return d.decodeResolution(raw)
	case bpf.EventTLSData, bpf.EventTLSBind:
		return d.decodeTLS(raw)
	case bpf.EventSignal:
		return decodeSignal(raw)
	case bpf.EventEncConn, bpf.EventEncHello:
		return d.decodeEnc(raw)
	default:
		return nil, fmt.Errorf("unknown record kind %d", raw[0])
	}
}

func (d *decoder) decodePacket(raw []byte) (*Packet, error) {
	if len(raw) < dnsHeaderSize {
		return nil, fmt.Errorf("dns record of %d bytes: %w", len(raw), errShort)
	}
	// Ring buffer samples are 8-byte aligned and little-endian like the
	// host, so the generated type can be laid over the bytes directly.
	ev := (*bpf.DNSEvent)(unsafe.Pointer(&raw[0]))
	p := &Packet{
		Kind:    ev.Kind,
		Dir:     ev.Dir,
		TCP:     ev.Proto == 6,
		OrigLen: ev.OrigLen,
		TCPSeq:  ev.TcpSeq,
		BootNs:  ev.BootNs,
		Cookie:  ev.Cookie,
		Ifindex: ev.Ifindex,
	}
	if int(ev.CapLen) > len(raw)-dnsHeaderSize {
		return nil, fmt.Errorf("dns record claims %d payload bytes, has %d", ev.CapLen, len(raw)-dnsHeaderSize)
	}
	p.Payload = bytes.Clone(raw[dnsHeaderSize : dnsHeaderSize+int(ev.CapLen)])
	if ev.Kind == bpf.EventDNS {
		var src, dst netip.Addr
		switch ev.Family {
		case 4:
			src = netip.AddrFrom4([4]byte(ev.Saddr[:4]))
			dst = netip.AddrFrom4([4]byte(ev.Daddr[:4]))
		case 6:
			src = netip.AddrFrom16(ev.Saddr)
			dst = netip.AddrFrom16(ev.Daddr)
		default:
			return nil, fmt.Errorf("dns record with address family %d", ev.Family)
		}
		p.Src = netip.AddrPortFrom(src, ev.Sport)
		p.Dst = netip.AddrPortFrom(dst, ev.Dport)
	}
	if ev.Flags&bpf.FlagIdent != 0 {
		p.Ident = d.decodeIdent(&ev.Id)
		p.IdentFromCurrent = ev.Flags&bpf.FlagIdentCurrent != 0
	}
	return p, nil
}

func (d *decoder) decodeIdent(id *bpf.Ident) *Identity {
	// The key is the identity's bytes up to its last used ancestor; the
	// slots after it may hold anything.
	n := min(int(id.Depth), len(id.Anc))
	used := int(unsafe.Offsetof(id.Anc)) + n*int(unsafe.Sizeof(id.Anc[0]))
	key := unsafe.Slice((*byte)(unsafe.Pointer(id)), used)
	e := &d.idents[(id.Tid^uint32(id.StartNs>>10))&uint32(len(d.idents)-1)]
	if e.val != nil && bytes.Equal(e.key, key) {
		return e.val
	}
	out := d.newIdent(id, n)
	e.key, e.val = append(e.key[:0], key...), out
	return out
}

func (d *decoder) newIdent(id *bpf.Ident, n int) *Identity {
	out := &Identity{
		PID: id.Pid, TID: id.Tid, UID: id.Uid, GID: id.Gid,
		StartNs:  id.StartNs,
		Comm:     d.comm(&id.Comm),
		CgroupID: id.CgroupId,
		MntNS:    id.Mntns, NetNS: id.Netns, PidNS: id.Pidns, NSPID: id.Nspid,
	}
	out.Ancestors = make([]Ancestor, n)
	for i := range n {
		out.Ancestors[i] = Ancestor{PID: id.Anc[i].Pid, StartNs: id.Anc[i].StartNs, Comm: d.comm(&id.Anc[i].Comm)}
	}
	return out
}

func decodeExec(raw []byte) (*Exec, error) {
	if len(raw) < execHeaderSize {
		return nil, fmt.Errorf("exec record of %d bytes: %w", len(raw), errShort)
	}
	ev := (*bpf.ExecEvent)(unsafe.Pointer(&raw[0]))
	e := &Exec{
		Exit:          ev.Kind == bpf.EventExit,
		PID:           ev.Pid,
		PPID:          ev.Ppid,
		StartNs:       ev.StartNs,
		PStartNs:      ev.PstartNs,
		BootNs:        ev.BootNs,
		CgroupID:      ev.CgroupId,
		UID:           ev.Uid,
		GID:           ev.Gid,
		Comm:          cString(ev.Comm[:]),
		PathTruncated: ev.Flags&bpf.ExecPathTruncated != 0,
		ArgsTruncated: ev.Flags&bpf.ExecArgsTruncated != 0,
	}
	if e.Exit {
		return e, nil
	}
	data := raw[execHeaderSize:]
	if int(ev.ArgsLen) > argsMax || len(data) < argsMax+int(ev.PathLen)*nameSlot {
		return nil, fmt.Errorf("exec record of %d bytes too short for %d args bytes and %d path slots", len(raw), ev.ArgsLen, ev.PathLen)
	}
	e.Argv = splitArgv(data[:ev.ArgsLen])
	e.Exe = joinSlots(data[argsMax:], int(ev.PathLen))
	return e, nil
}

// joinSlots rebuilds "/usr/bin/dig" from leaf-first slots "dig", "bin", "usr".
// Empty slots mark mount crossings.
func joinSlots(data []byte, n int) string {
	var parts []string
	for i := n - 1; i >= 0; i-- {
		if s := cString(data[i*nameSlot : (i+1)*nameSlot]); s != "" {
			parts = append(parts, s)
		}
	}
	return "/" + strings.Join(parts, "/")
}

// splitArgv splits NUL-separated arguments; a trailing NUL ends the last one.
func splitArgv(b []byte) []string {
	b = bytes.TrimSuffix(b, []byte{0})
	if len(b) == 0 {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

func cString[T int8 | uint8](b []T) string {
	buf := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		buf = append(buf, byte(c))
	}
	return string(buf)
}
