//go:build linux && (amd64 || arm64)

package record

import (
	"net/netip"
	"reflect"
	"testing"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
)

func resolveRecord(t *testing.T, ev bpf.ResolveEvent) []byte {
	t.Helper()
	return encode(t, &ev, unsafe.Sizeof(ev))
}

func TestDecodeResolution(t *testing.T) {
	ev := bpf.ResolveEvent{Kind: bpf.EventResolve, Func: bpf.ResolveGetaddrinfo, Naddrs: 2, Flags: bpf.ResolveAddrsCut,
		BootNs: 9_000_000_900, CallNs: 9_000_000_100, Id: ident(4321, "getent", bpf.Ancestor{Pid: 900, StartNs: 400, Comm: comm16("bash")})}
	ev.Addrs[0].Family = 4
	copy(ev.Addrs[0].Addr[:], []byte{192, 0, 2, 55})
	ev.Addrs[1].Family = 6
	a6 := netip.MustParseAddr("2001:db8::55").As16()
	ev.Addrs[1].Addr = a6
	for i, c := range "Only-In-Hosts.TEST." {
		ev.Name[i] = int8(c)
	}
	got, err := Decode(resolveRecord(t, ev))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := got.(*Resolution)
	if !ok {
		t.Fatalf("Decode = %T, want *Resolution", got)
	}
	want := &Resolution{Func: "getaddrinfo", BootNs: 9_000_000_900, CallNs: 9_000_000_100, Name: "only-in-hosts.test", Spelling: "Only-In-Hosts.TEST", AddrsCut: true,
		Addrs: []netip.Addr{netip.MustParseAddr("192.0.2.55"), netip.MustParseAddr("2001:db8::55")},
		Ident: &Identity{PID: 4321, TID: 4322, UID: 1000, GID: 1001, StartNs: 5_000_000_123, Comm: "getent", CgroupID: 0x1234_5678_9abc,
			MntNS: 4026531841, NetNS: 4026531840, PidNS: 4026531836, NSPID: 7, Ancestors: []Ancestor{{PID: 900, StartNs: 400, Comm: "bash"}}}}
	if !reflect.DeepEqual(r, want) {
		t.Errorf("Decode:\n got %+v\nwant %+v", r, want)
	}

	for name, mod := range map[string]func(*bpf.ResolveEvent){
		"unknown function": func(e *bpf.ResolveEvent) { e.Func = 9 },
		"too many addrs":   func(e *bpf.ResolveEvent) { e.Naddrs = 17 },
		"bad family":       func(e *bpf.ResolveEvent) { e.Addrs[1].Family = 7 },
	} {
		bad := ev
		mod(&bad)
		if _, err := Decode(resolveRecord(t, bad)); err == nil {
			t.Errorf("%s: Decode succeeded", name)
		}
	}
	if _, err := Decode(resolveRecord(t, ev)[:100]); err == nil {
		t.Error("a short resolution record decoded")
	}
}

func TestPresentName(t *testing.T) {
	for in, want := range map[string][2]string{
		"www.Example.COM":  {"www.example.com", "www.Example.COM"},
		"Example.com.":     {"example.com", "Example.com"},
		"example.com.":     {"example.com", ""},
		"a b;c\\d.test":    {`a\ b\;c\\d.test`, ""},
		"x\x01Y\xffz.test": {`x\001y\255z.test`, `x\001Y\255z.test`},
		"":                 {"", ""},
	} {
		if norm, sent := presentName(in); norm != want[0] || sent != want[1] {
			t.Errorf("presentName(%q) = %q, %q, want %q, %q", in, norm, sent, want[0], want[1])
		}
	}
}
