//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
)

func comm16(s string) (c [16]int8) {
	for i := 0; i < len(s) && i < len(c); i++ {
		c[i] = int8(s[i])
	}
	return c
}

// encode serializes a generated struct the way the kernel lays it out, and
// checks that encoding/binary and the Go compiler agree on its size: the
// generated types must not rely on implicit padding.
func encode(t testing.TB, v any, goSize uintptr) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := binary.Write(&buf, binary.LittleEndian, v); err != nil {
		t.Fatalf("encode %T: %v", v, err)
	}
	if uintptr(buf.Len()) != goSize {
		t.Fatalf("%T encodes to %d bytes, unsafe.Sizeof is %d", v, buf.Len(), goSize)
	}
	return buf.Bytes()
}

func dnsRecord(t testing.TB, ev bpf.DNSEvent, payload []byte) []byte {
	t.Helper()
	return append(encode(t, &ev, unsafe.Sizeof(ev)), payload...)
}

// execRecord appends the data area: argv at 0, then leaf-first path slots.
func execRecord(t *testing.T, ev bpf.ExecEvent, args string, slots ...string) []byte {
	t.Helper()
	data := make([]byte, argsMax+len(slots)*nameSlot)
	copy(data, args)
	for i, s := range slots {
		copy(data[argsMax+i*nameSlot:(argsMax+(i+1)*nameSlot)-1], s) // keep a NUL
	}
	return append(encode(t, &ev, unsafe.Sizeof(ev)), data...)
}

func ident(pid uint32, comm string, ancestors ...bpf.Ancestor) bpf.Ident {
	id := bpf.Ident{
		StartNs: 5_000_000_123, CgroupId: 0x1234_5678_9abc, Pid: pid, Tid: pid + 1, Uid: 1000, Gid: 1001,
		Mntns: 4026531841, Netns: 4026531840, Pidns: 4026531836, Nspid: 7,
		Comm: comm16(comm), Depth: uint32(len(ancestors)),
	}
	copy(id.Anc[:], ancestors)
	return id
}

func TestDecodePacket(t *testing.T) {
	anc := []bpf.Ancestor{
		{StartNs: 4_000_000_000, Pid: 900, Comm: comm16("bash")},
		{StartNs: 3_000_000_000, Pid: 800, Comm: comm16("sshd")},
		{StartNs: 10_000_000, Pid: 1, Comm: comm16("systemd")},
	}
	wantAnc := []Ancestor{
		{PID: 900, StartNs: 4_000_000_000, Comm: "bash"},
		{PID: 800, StartNs: 3_000_000_000, Comm: "sshd"},
		{PID: 1, StartNs: 10_000_000, Comm: "systemd"},
	}
	wantIdent := &Identity{
		PID: 1000, TID: 1001, UID: 1000, GID: 1001, StartNs: 5_000_000_123, Comm: "dig",
		CgroupID: 0x1234_5678_9abc, MntNS: 4026531841, NetNS: 4026531840, PidNS: 4026531836, NSPID: 7,
		Ancestors: wantAnc,
	}
	payload := []byte("\x12\x34\x01\x00 rest of a query")

	v6src := netip.MustParseAddr("2001:db8::53")
	v6dst := netip.MustParseAddr("fe80::1")

	deep := make([]bpf.Ancestor, bpf.MaxAncestors)
	for i := range deep {
		deep[i] = bpf.Ancestor{Pid: uint32(100 + i), StartNs: uint64(i), Comm: comm16(fmt.Sprint("p", i))}
	}
	deepID := ident(5, "deep", deep...)
	deepID.Depth = 200 // more than the array holds

	tests := []struct {
		name string
		raw  []byte
		want *Packet
	}{
		{
			name: "IPv4 UDP query with identity and three ancestors",
			raw: dnsRecord(t, bpf.DNSEvent{
				Kind: bpf.EventDNS, Dir: bpf.DirSend, Proto: 17, Family: 4, Flags: bpf.FlagIdent | bpf.FlagIdentCurrent,
				Sport: 40000, Dport: 53, OrigLen: 100, CapLen: uint32(len(payload)), BootNs: 7_000_000_000, Cookie: 0xdeadbeef,
				Saddr: [16]uint8{10, 0, 0, 2}, Daddr: [16]uint8{192, 0, 2, 53}, Ifindex: 2,
				Id: ident(1000, "dig", anc...),
			}, payload),
			want: &Packet{
				Kind: bpf.EventDNS, Dir: bpf.DirSend,
				Src:     netip.MustParseAddrPort("10.0.0.2:40000"),
				Dst:     netip.MustParseAddrPort("192.0.2.53:53"),
				OrigLen: 100, Payload: payload, BootNs: 7_000_000_000, Cookie: 0xdeadbeef,
				Ident: wantIdent, IdentFromCurrent: true, Ifindex: 2,
			},
		},
		{
			name: "IPv6 TCP response without identity",
			raw: dnsRecord(t, bpf.DNSEvent{
				Kind: bpf.EventDNS, Dir: bpf.DirRecv, Proto: 6, Family: 6,
				Sport: 53, Dport: 51234, OrigLen: 2, CapLen: 2, TcpSeq: 0xfffffff0, BootNs: 1,
				Saddr: v6src.As16(), Daddr: v6dst.As16(),
			}, []byte{0, 40}),
			want: &Packet{
				Kind: bpf.EventDNS, Dir: bpf.DirRecv, TCP: true,
				Src:     netip.AddrPortFrom(v6src, 53),
				Dst:     netip.AddrPortFrom(v6dst, 51234),
				OrigLen: 2, Payload: []byte{0, 40}, TCPSeq: 0xfffffff0, BootNs: 1,
			},
		},
		{
			// The identity came from the socket map: not from current.
			name: "identity from the socket map, snaplen cut, trailing ring padding",
			raw: dnsRecord(t, bpf.DNSEvent{
				Kind: bpf.EventDNS, Dir: bpf.DirRecv, Proto: 17, Family: 4, Flags: bpf.FlagIdent,
				Sport: 53, Dport: 40000, OrigLen: 1400, CapLen: 3,
				Saddr: [16]uint8{192, 0, 2, 53}, Daddr: [16]uint8{10, 0, 0, 2},
				Id: ident(1000, "dig", anc...),
			}, []byte{1, 2, 3, 0, 0, 0, 0, 0}),
			want: &Packet{
				Kind: bpf.EventDNS, Dir: bpf.DirRecv,
				Src:     netip.MustParseAddrPort("192.0.2.53:53"),
				Dst:     netip.MustParseAddrPort("10.0.0.2:40000"),
				OrigLen: 1400, Payload: []byte{1, 2, 3}, Ident: wantIdent,
			},
		},
		{
			name: "owner announcement",
			raw: dnsRecord(t, bpf.DNSEvent{
				Kind: bpf.EventOwner, Flags: bpf.FlagIdent | bpf.FlagIdentCurrent, Cookie: 99, BootNs: 5,
				Id: ident(1000, "dig", anc...),
			}, nil),
			want: &Packet{Kind: bpf.EventOwner, Cookie: 99, BootNs: 5, Payload: []byte{}, Ident: wantIdent, IdentFromCurrent: true},
		},
		{
			name: "depth beyond the array and a 16-byte comm",
			raw: dnsRecord(t, bpf.DNSEvent{
				Kind: bpf.EventOwner, Flags: bpf.FlagIdent, Cookie: 1,
				Id: func() bpf.Ident { id := deepID; id.Comm = comm16("exactly16bytes!!"); return id }(),
			}, nil),
			want: func() *Packet {
				id := &Identity{PID: 5, TID: 6, UID: 1000, GID: 1001, StartNs: 5_000_000_123, Comm: "exactly16bytes!!",
					CgroupID: 0x1234_5678_9abc, MntNS: 4026531841, NetNS: 4026531840, PidNS: 4026531836, NSPID: 7}
				for i := range bpf.MaxAncestors {
					id.Ancestors = append(id.Ancestors, Ancestor{PID: uint32(100 + i), StartNs: uint64(i), Comm: fmt.Sprint("p", i)})
				}
				return &Packet{Kind: bpf.EventOwner, Cookie: 1, Payload: []byte{}, Ident: id}
			}(),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			p, ok := got.(*Packet)
			if !ok {
				t.Fatalf("Decode returned %T, want *Packet", got)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Errorf("Decode =\n%+v\nwant\n%+v", p, tc.want)
				if p.Ident != nil && tc.want.Ident != nil {
					t.Errorf("ident =\n%+v\nwant\n%+v", *p.Ident, *tc.want.Ident)
				}
			}
		})
	}
}

func TestDecodeExec(t *testing.T) {
	hdr := bpf.ExecEvent{
		Kind: bpf.EventExec, Pid: 4321, Ppid: 900, BootNs: 9_000_000_000, StartNs: 8_999_000_000,
		PstartNs: 4_000_000_000, CgroupId: 77, Uid: 1000, Gid: 1001, Comm: comm16("dig"),
	}
	with := func(f func(*bpf.ExecEvent)) bpf.ExecEvent { h := hdr; f(&h); return h }
	want := func(exe string, argv []string, f func(*Exec)) *Exec {
		e := &Exec{PID: 4321, PPID: 900, StartNs: 8_999_000_000, PStartNs: 4_000_000_000, BootNs: 9_000_000_000,
			CgroupID: 77, UID: 1000, GID: 1001, Comm: "dig", Exe: exe, Argv: argv}
		if f != nil {
			f(e)
		}
		return e
	}
	args := "dig\x00@192.0.2.53\x00evil.example\x00"

	tests := []struct {
		name string
		raw  []byte
		want *Exec
	}{
		{
			name: "argv and leaf-first path",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) { h.ArgsLen = uint16(len(args)); h.PathLen = 3 }),
				args, "dig", "bin", "usr"),
			want: want("/usr/bin/dig", []string{"dig", "@192.0.2.53", "evil.example"}, nil),
		},
		{
			// An empty slot marks a mount crossing: /usr is a mount point.
			name: "mount crossing",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) { h.ArgsLen = uint16(len(args)); h.PathLen = 4 }),
				args, "dig", "bin", "", "usr"),
			want: want("/usr/bin/dig", []string{"dig", "@192.0.2.53", "evil.example"}, nil),
		},
		{
			name: "only the slots path_len counts",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) { h.ArgsLen = 4; h.PathLen = 2 }),
				"dig\x00", "dig", "bin", "usr", "opt"),
			want: want("/bin/dig", []string{"dig"}, nil),
		},
		{
			name: "argument with spaces, empty argument, no trailing NUL",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) { h.ArgsLen = 12; h.PathLen = 2 }),
				"sh\x00-c\x00\x00a b c", "sh", "bin"),
			want: want("/bin/sh", []string{"sh", "-c", "", "a b c"}, nil),
		},
		{
			name: "truncation flags, no argv",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) {
				h.PathLen = 1
				h.Flags = bpf.ExecPathTruncated | bpf.ExecArgsTruncated
			}), "", "deep"),
			want: want("/deep", nil, func(e *Exec) { e.PathTruncated, e.ArgsTruncated = true, true }),
		},
		{
			name: "full 128-byte component",
			raw: execRecord(t, with(func(h *bpf.ExecEvent) { h.PathLen = 2 }),
				"", strings.Repeat("x", nameSlot-1), "tmp"),
			want: want("/tmp/"+strings.Repeat("x", nameSlot-1), nil, nil),
		},
		{
			name: "exit has no data area",
			raw:  encode(t, ptr(with(func(h *bpf.ExecEvent) { h.Kind = bpf.EventExit; h.PathLen = 3; h.ArgsLen = 9 })), unsafe.Sizeof(hdr)),
			want: want("", nil, func(e *Exec) { e.Exit = true }),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.raw)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			e, ok := got.(*Exec)
			if !ok {
				t.Fatalf("Decode returned %T, want *Exec", got)
			}
			if !reflect.DeepEqual(e, tc.want) {
				t.Errorf("Decode =\n%#v\nwant\n%#v", e, tc.want)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	good := dnsRecord(t, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 4, CapLen: 4}, []byte{1, 2, 3, 4})
	execHdr := bpf.ExecEvent{Kind: bpf.EventExec, ArgsLen: 4, PathLen: 2}

	tests := []struct {
		name    string
		raw     []byte
		isShort bool // errors.Is(err, errShort)
		errHas  string
	}{
		{name: "empty", raw: nil, isShort: true},
		{name: "dns header cut", raw: good[:dnsHeaderSize-1], isShort: true},
		{name: "kind byte only", raw: []byte{bpf.EventDNS}, isShort: true},
		{name: "exec header cut", raw: execRecord(t, execHdr, "ls\x00", "ls", "bin")[:execHeaderSize-1], isShort: true},
		{name: "exit header cut", raw: []byte{bpf.EventExit, 0, 0, 0}, isShort: true},
		{name: "unknown kind 0", raw: append([]byte{0}, good[1:]...), errHas: "unknown record kind 0"},
		{name: "unknown kind 9", raw: append([]byte{9}, good[1:]...), errHas: "unknown record kind 9"},
		{name: "cap_len beyond the record", raw: good[:len(good)-1], errHas: "claims 4 payload bytes, has 3"},
		{
			name:   "cap_len far beyond the record",
			raw:    dnsRecord(t, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 4, CapLen: 1 << 31}, nil),
			errHas: "claims 2147483648 payload bytes",
		},
		{
			name:   "unknown address family",
			raw:    dnsRecord(t, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 10}, nil),
			errHas: "address family 10",
		},
		{
			name:   "exec record without its path slots",
			raw:    execRecord(t, execHdr, "ls\x00", "ls"), // path_len says 2
			errHas: "too short",
		},
		{
			name:   "exec args_len beyond ARGS_MAX",
			raw:    execRecord(t, bpf.ExecEvent{Kind: bpf.EventExec, ArgsLen: argsMax + 1}, ""),
			errHas: "too short",
		},
		{
			name:   "exec path_len beyond the record",
			raw:    execRecord(t, bpf.ExecEvent{Kind: bpf.EventExec, PathLen: 65535}, "", "a", "b"),
			errHas: "too short",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.raw)
			if err == nil {
				t.Fatalf("Decode(%d bytes) = %+v, want an error", len(tc.raw), got)
			}
			if v := reflect.ValueOf(got); got != nil && !(v.Kind() == reflect.Pointer && v.IsNil()) {
				t.Errorf("Decode returned %+v with error %v", got, err)
			}
			if errors.Is(err, errShort) != tc.isShort {
				t.Errorf("err = %v; errors.Is(err, errShort) = %v, want %v", err, !tc.isShort, tc.isShort)
			}
			if tc.errHas != "" && !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("err = %q, want it to mention %q", err, tc.errHas)
			}
		})
	}
}

// TestDecodePayloadAliases pins the documented contract: the payload is a
// view of the record, not a copy (the reader must not reuse the buffer).
// TestDecodePayloadIsACopy: the reader reuses its record buffer, so the
// payload must not alias it.
func TestDecodePayloadIsACopy(t *testing.T) {
	raw := dnsRecord(t, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 4, CapLen: 2}, []byte{7, 8})
	got, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := got.(*Packet)
	raw[dnsHeaderSize] = 9
	if !bytes.Equal(p.Payload, []byte{7, 8}) {
		t.Errorf("payload %v follows the record buffer, want its own copy of [7 8]", p.Payload)
	}
}

// TestDecodeIdentShared: messages of one identity share one *Identity, and
// any difference in what the kernel sent, down to the last used ancestor,
// gives a fresh one; what lies beyond the used ancestors does not count.
func TestDecodeIdentShared(t *testing.T) {
	anc := []bpf.Ancestor{{StartNs: 4_000_000_000, Pid: 900, Comm: comm16("bash")}, {StartNs: 10, Pid: 1, Comm: comm16("systemd")}}
	var d decoder
	decode := func(id bpf.Ident) *Identity {
		t.Helper()
		p, err := d.decodePacket(dnsRecord(t, bpf.DNSEvent{Kind: bpf.EventDNS, Family: 4, Flags: bpf.FlagIdent, Id: id}, nil))
		if err != nil {
			t.Fatal(err)
		}
		return p.Ident
	}
	base := ident(1000, "dig", anc...)
	first := decode(base)
	junk := base
	junk.Anc[5] = bpf.Ancestor{Pid: 77, Comm: comm16("junk")} // past Depth
	if got := decode(junk); got != first {
		t.Errorf("same identity, different bytes past the used ancestors: a new *Identity")
	}
	changes := map[string]func(*bpf.Ident){
		"tid":             func(id *bpf.Ident) { id.Tid++ },
		"uid":             func(id *bpf.Ident) { id.Uid = 0 },
		"comm":            func(id *bpf.Ident) { id.Comm = comm16("curl") },
		"last ancestor":   func(id *bpf.Ident) { id.Anc[1].Comm = comm16("init") },
		"one fewer":       func(id *bpf.Ident) { id.Depth = 1 },
		"net namespace":   func(id *bpf.Ident) { id.Netns++ },
		"process restart": func(id *bpf.Ident) { id.StartNs++ },
	}
	for name, change := range changes {
		id := base
		change(&id)
		got := decode(id)
		if got == first {
			t.Errorf("%s changed: the cached *Identity came back", name)
			continue
		}
		if want := d.newIdent(&id, min(int(id.Depth), len(id.Anc))); !reflect.DeepEqual(got, want) {
			t.Errorf("%s changed: got %+v, want %+v", name, got, want)
		}
		if again := decode(base); !reflect.DeepEqual(again, first) {
			t.Errorf("after %s: base decodes to %+v, want %+v", name, again, first)
		}
	}
}
