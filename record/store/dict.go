package store

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/dnsrec/dnsrec/schema"
)

// Dictionary tables (names, flows, owners) hold what repeats across
// messages, so that a message row carries small integer keys. Ids are
// assigned here, in order of first sight, and rows are written inside the
// batch of the first message that needs them. The in-memory maps are caches
// of what the file holds; they are bounded, and emptied after a commit when
// they grow past their bound.

// Cache bounds: a DGA or a tunnel makes every name new, and the recorder's
// memory must not grow with the recording.
const (
	maxCachedNames  = 100_000
	maxCachedFlows  = 50_000
	maxCachedOwners = 20_000
)

type procRowKey struct {
	pid        uint32
	ticks      uint64
	execBootNs uint64
}

type flowKey struct {
	tcp  bool
	a, b netip.AddrPort
}

type ownerKey struct {
	processID          int64
	pid, tid, uid, gid uint32
	comm               string
	cgroup             uint64
	netns, mntns       uint32
	pidns, nspid       uint32
}

// ifaceKey is an interface as the file's interfaces table holds it: by
// index within a network namespace (0: unknown). Its row has the name it
// had when first seen.
type ifaceKey struct {
	netns, ifindex uint32
}

type dicts struct {
	names  map[string]int64
	spells map[string]int64 // spellings: names as sent, where they differ in case
	flows  map[flowKey]int64
	owners map[ownerKey]int64
	ifaces map[ifaceKey]int64   // never trimmed: a host has few
	procs  map[procRowKey]int64 // never trimmed: processes.(boot_id, pid, start_ticks, exec_boot_ns) is unique

	lastName, lastFlow, lastOwner, lastProc, lastIface, lastSpell int64
	namesTrimmed                                                  bool // names may be in the file but not in the cache

	// Entries made for the batch being written, forgotten if it fails.
	newNames  []string
	newSpells []string
	newFlows  []flowKey
	newOwners []ownerKey
	newIfaces []ifaceKey
}

func newDicts() dicts {
	return dicts{names: map[string]int64{}, spells: map[string]int64{}, flows: map[flowKey]int64{}, owners: map[ownerKey]int64{}, ifaces: map[ifaceKey]int64{}, procs: map[procRowKey]int64{}}
}

// committed makes this batch's entries permanent and bounds the caches.
// Ids keep counting up: a trimmed flow or owner seen again gets a new row,
// which is harmless; a name is looked up in the file first (names.rev is
// unique).
func (d *dicts) committed() {
	d.newNames, d.newFlows, d.newOwners, d.newIfaces = d.newNames[:0], d.newFlows[:0], d.newOwners[:0], d.newIfaces[:0]
	d.newSpells = d.newSpells[:0]
	if len(d.names) > maxCachedNames {
		clear(d.names)
		d.namesTrimmed = true
	}
	if len(d.spells) > maxCachedNames {
		clear(d.spells)
	}
	if len(d.flows) > maxCachedFlows {
		clear(d.flows)
	}
	if len(d.owners) > maxCachedOwners {
		clear(d.owners)
	}
}

// rollback forgets the entries whose rows were not committed. Their ids are
// not reused, so an id never names two different rows.
func (d *dicts) rollback() {
	for _, n := range d.newNames {
		delete(d.names, n)
	}
	for _, n := range d.newSpells {
		delete(d.spells, n)
	}
	for _, f := range d.newFlows {
		delete(d.flows, f)
	}
	for _, o := range d.newOwners {
		delete(d.owners, o)
	}
	for _, i := range d.newIfaces {
		delete(d.ifaces, i)
	}
	d.committed()
}

// nameID returns the names row of a normalized name, writing it if new.
func (s *Store) nameID(ctx context.Context, name string) (int64, error) {
	if id, ok := s.dict.names[name]; ok {
		return id, nil
	}
	rev := schema.ReverseName(name)
	if s.dict.namesTrimmed {
		id, found, err := s.queryID(ctx, sqlNameID, rev)
		if err != nil {
			return 0, fmt.Errorf("look up name: %w", err)
		}
		if found {
			s.dict.names[name] = id
			return id, nil
		}
	}
	s.dict.lastName++
	id := s.dict.lastName
	if err := s.execRow(ctx, "names", sqlName, id, name, rev); err != nil {
		return 0, fmt.Errorf("write name: %w", err)
	}
	s.dict.names[name] = id
	s.dict.newNames = append(s.dict.newNames, name)
	return id, nil
}

// spellingID returns the spellings row of a name as sent, writing it if
// new; nil for "" (sent as its names row spells it). A spelling trimmed
// from the cache and seen again gets a second row, which is harmless:
// rows are read by id.
func (s *Store) spellingID(ctx context.Context, sent string) (any, error) {
	if sent == "" {
		return nil, nil
	}
	if id, ok := s.dict.spells[sent]; ok {
		return id, nil
	}
	s.dict.lastSpell++
	id := s.dict.lastSpell
	if err := s.execRow(ctx, "spellings", sqlSpell, id, sent); err != nil {
		return nil, fmt.Errorf("write spelling: %w", err)
	}
	s.dict.spells[sent] = id
	s.dict.newSpells = append(s.dict.newSpells, sent)
	return id, nil
}

// flowID returns the flow of a message from src to dst, writing it if new,
// and whether the message travels from the flow's b side to its a side.
func (s *Store) flowID(ctx context.Context, proto string, src, dst netip.AddrPort) (int64, bool, error) {
	tcp := proto != "udp"
	if id, ok := s.dict.flows[flowKey{tcp, src, dst}]; ok {
		return id, false, nil
	}
	if id, ok := s.dict.flows[flowKey{tcp, dst, src}]; ok {
		return id, true, nil
	}
	s.dict.lastFlow++
	id := s.dict.lastFlow
	if err := s.execRow(ctx, "flows", sqlFlow, id, proto, src.Addr().String(), int64(src.Port()), dst.Addr().String(), int64(dst.Port())); err != nil {
		return 0, false, fmt.Errorf("write flow: %w", err)
	}
	k := flowKey{tcp, src, dst}
	s.dict.flows[k] = id
	s.dict.newFlows = append(s.dict.newFlows, k)
	return id, false, nil
}

// ownerID returns the owners row of an observation's identity, writing it
// if new; nil when the owner is not known.
func (s *Store) ownerID(ctx context.Context, side *Side) (any, error) {
	id := side.Ident
	if id == nil {
		return nil, nil
	}
	k := ownerKey{processID: side.ProcessID, pid: id.PID, tid: id.TID, uid: id.UID, gid: id.GID, comm: id.Comm,
		cgroup: id.CgroupID, netns: id.NetNS, mntns: id.MntNS, pidns: id.PidNS, nspid: id.NSPID}
	if oid, ok := s.dict.owners[k]; ok {
		return oid, nil
	}
	s.dict.lastOwner++
	oid := s.dict.lastOwner
	if err := s.execRow(ctx, "owners", sqlOwner, oid, nonZero(k.processID), int64(k.pid), int64(k.tid), int64(k.uid), int64(k.gid), k.comm,
		int64(k.cgroup), int64(k.netns), int64(k.mntns), int64(k.pidns), int64(k.nspid)); err != nil {
		return nil, fmt.Errorf("write owner: %w", err)
	}
	s.dict.owners[k] = oid
	s.dict.newOwners = append(s.dict.newOwners, k)
	return oid, nil
}

// ifaceID returns the interfaces row of an observation's network device,
// writing it if new; nil when the hook tier does not know the device.
func (s *Store) ifaceID(ctx context.Context, side *Side) (any, error) {
	if side.Ifindex == 0 {
		return nil, nil
	}
	k := ifaceKey{ifindex: side.Ifindex}
	if side.Ident != nil {
		k.netns = side.Ident.NetNS
	}
	if id, ok := s.dict.ifaces[k]; ok {
		return id, nil
	}
	s.dict.lastIface++
	id := s.dict.lastIface
	if err := s.execRow(ctx, "interfaces", sqlIface, id, nonZero(int64(k.netns)), int64(k.ifindex), optStr(nullString(side.IfName))); err != nil {
		return nil, fmt.Errorf("write interface: %w", err)
	}
	s.dict.ifaces[k] = id
	s.dict.newIfaces = append(s.dict.newIfaces, k)
	return id, nil
}
