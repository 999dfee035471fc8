//go:build linux && (amd64 || arm64)

package bpf

import (
	"os"
	"reflect"
	"strings"
	"structs"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// objects are the committed objects of every tier, for every architecture,
// read from their files rather than the embedded copies, so that the test
// checks the x86 and the arm64 objects on either kind of host. They all
// include common.h, and the Go types are generated from the cgroup tier's
// BTF only.
var objects = func() (objs []struct {
	name string
	load func() (*ebpf.CollectionSpec, error)
}) {
	for _, tier := range []string{"cgroup", "fentry", "kprobe"} {
		for _, arch := range objectArches {
			file := tier + "_" + arch + "_bpfel.o"
			objs = append(objs, struct {
				name string
				load func() (*ebpf.CollectionSpec, error)
			}{tier + "/" + arch, func() (*ebpf.CollectionSpec, error) { return ebpf.LoadCollectionSpec(file) }})
		}
	}
	return objs
}()

// objectArches are bpf2go's names for the targets in gen.go.
var objectArches = []string{"x86", "arm64"}

// TestGeneratedGoAgree: bpf2go writes one Go file per tier and architecture,
// and only the one of the build's architecture is compiled. The x86 and
// arm64 files must declare the same types, programs and maps, so that the
// layout checked below against every object is the one each build uses.
func TestGeneratedGoAgree(t *testing.T) {
	for _, tier := range []string{"cgroup", "fentry", "kprobe"} {
		var texts []string
		for _, arch := range objectArches {
			b, err := os.ReadFile(tier + "_" + arch + "_bpfel.go")
			if err != nil {
				t.Fatal(err)
			}
			var keep []string
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(l, "//go:build ") || strings.HasPrefix(l, "//go:embed ") {
					continue
				}
				keep = append(keep, l)
			}
			texts = append(texts, strings.Join(keep, "\n"))
		}
		for i := 1; i < len(texts); i++ {
			if texts[i] != texts[0] {
				t.Errorf("%s: the %s and %s Go files differ beyond their build tag and embed line; run make generate",
					tier, objectArches[0], objectArches[i])
			}
		}
	}
}

// TestLayout compares the Go twins of the event structs with the BTF that
// clang wrote for common.h into each embedded object: user space lays the Go
// types over ring buffer bytes, so a size or offset that differs would
// silently misread every record. It reads the ELF only and needs no root.
func TestLayout(t *testing.T) {
	twins := []struct {
		cName string
		goVal any
	}{
		{"dns_event", DNSEvent{}},
		{"exec_event", ExecEvent{}},
		{"ident", Ident{}},
		{"ancestor", Ancestor{}},
		{"resolve_event", ResolveEvent{}},
		{"res_addr", ResAddr{}},
		{"tls_event", TLSEvent{}},
		{"tls_head", TLSHead{}},
		{"tls_conn", TLSConn{}},
		{"enc_event", EncEvent{}},
	}
	for _, obj := range objects {
		spec, err := obj.load()
		if err != nil {
			t.Fatalf("%s: %v", obj.name, err)
		}
		if spec.Types == nil {
			t.Fatalf("%s: the embedded object has no BTF", obj.name)
		}
		for _, tc := range twins {
			t.Run(obj.name+"/"+tc.cName, func(t *testing.T) {
				var st *btf.Struct
				if err := spec.Types.TypeByName(tc.cName, &st); err != nil {
					t.Fatalf("struct %s in BTF: %v", tc.cName, err)
				}
				checkStruct(t, tc.cName, st, reflect.TypeOf(tc.goVal))
			})
		}
	}
}

var hostLayout = reflect.TypeFor[structs.HostLayout]()

// checkStruct compares size and member offsets and sizes, matching members
// by order, and recurses into nested structs and arrays of structs.
func checkStruct(t *testing.T, path string, st *btf.Struct, gt reflect.Type) {
	t.Helper()
	if gt.Kind() != reflect.Struct {
		t.Errorf("%s: Go type %v is not a struct", path, gt)
		return
	}
	if uintptr(st.Size) != gt.Size() {
		t.Errorf("%s: C size %d, Go size %d (%v)", path, st.Size, gt.Size(), gt)
	}
	var fields []reflect.StructField
	for i := range gt.NumField() {
		f := gt.Field(i)
		if f.Name == "_" && f.Type == hostLayout {
			continue
		}
		fields = append(fields, f)
	}
	if len(fields) != len(st.Members) {
		t.Errorf("%s: C has %d members, Go %v has %d fields", path, len(st.Members), gt, len(fields))
	}
	for i := range min(len(fields), len(st.Members)) {
		m, f := st.Members[i], fields[i]
		where := path + "." + m.Name + " (Go " + f.Name + ")"
		if m.BitfieldSize != 0 {
			t.Errorf("%s: bitfields have no Go twin", where)
			continue
		}
		if off := m.Offset.Bytes(); uintptr(off) != f.Offset || m.Offset%8 != 0 {
			t.Errorf("%s: C offset %d bits, Go offset %d bytes", where, m.Offset, f.Offset)
		}
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		if uintptr(size) != f.Type.Size() {
			t.Errorf("%s: C size %d, Go size %d (%v)", where, size, f.Type.Size(), f.Type)
		}
		checkNested(t, where, m.Type, f.Type)
	}
}

func checkNested(t *testing.T, path string, ct btf.Type, gt reflect.Type) {
	t.Helper()
	switch c := btf.UnderlyingType(ct).(type) {
	case *btf.Struct:
		checkStruct(t, path, c, gt)
	case *btf.Array:
		if gt.Kind() != reflect.Array {
			t.Errorf("%s: C array, Go %v", path, gt)
			return
		}
		if int(c.Nelems) != gt.Len() {
			t.Errorf("%s: C has %d elements, Go %d", path, c.Nelems, gt.Len())
		}
		checkNested(t, path+"[]", c.Type, gt.Elem())
	case *btf.Int:
		if uintptr(c.Size) != gt.Size() {
			t.Errorf("%s: C %s of %d bytes, Go %v", path, c.Name, c.Size, gt)
		}
		signed := c.Encoding&btf.Signed != 0
		goSigned := gt.Kind() >= reflect.Int && gt.Kind() <= reflect.Int64
		// char is unsigned in BTF unless declared signed; bpf2go turns it
		// into int8, which only matters for bytes >= 0x80 in comm strings.
		if signed != goSigned && !(c.Encoding&btf.Char != 0 && gt.Kind() == reflect.Int8) {
			t.Errorf("%s: C %s signed=%v, Go %v", path, c.Name, signed, gt)
		}
	}
}

// TestLayoutConstants pins the limits the Go side repeats from common.h
// against what each object was compiled with.
func TestLayoutConstants(t *testing.T) {
	for _, obj := range objects {
		t.Run(obj.name, func(t *testing.T) {
			spec, err := obj.load()
			if err != nil {
				t.Fatal(err)
			}
			var id *btf.Struct
			if err := spec.Types.TypeByName("ident", &id); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, m := range id.Members {
				if m.Name != "anc" {
					continue
				}
				found = true
				arr, ok := btf.UnderlyingType(m.Type).(*btf.Array)
				if !ok {
					t.Fatalf("ident.anc is %v, not an array", m.Type)
				}
				if arr.Nelems != MaxAncestors {
					t.Errorf("ident.anc has %d entries, MaxAncestors is %d", arr.Nelems, MaxAncestors)
				}
			}
			if !found {
				t.Error("ident has no anc member")
			}
			ports, ok := spec.Variables["dns_ports"]
			if !ok {
				t.Fatal("no dns_ports variable")
			}
			if got := ports.Size(); got != 2*MaxPorts {
				t.Errorf("dns_ports is %d bytes, want %d (MaxPorts %d)", got, 2*MaxPorts, MaxPorts)
			}
			// Capture reads both drop counters as one per-CPU u64 each.
			for _, name := range []string{"ringbuf_drops", "msg_drops"} {
				m := spec.Maps[name]
				if m == nil || m.Type != ebpf.PerCPUArray || m.MaxEntries != 1 || m.ValueSize != 8 {
					t.Errorf("map %s: %+v, want a one-entry per-CPU array of u64", name, m)
				}
			}
		})
	}
}
