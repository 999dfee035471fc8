package gen

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/dnsrec/dnsrec/record/store"
)

// proc is one process image of the simulated host.
type proc struct {
	pid        uint32
	startBoot  uint64 // boot clock at its start
	execBoot   uint64 // boot clock of the exec that loaded it; 0 if not seen (procfs, inherited)
	comm, exe  string
	argv       []string
	uid, gid   uint32
	cgroup     uint64
	ns         nsSet
	nspid      uint32
	parent     *proc
	source     string // exec, procfs, inherited
	threads    []*store.Identity
	id         int64 // processes row, once written
	ancestry   string
	addr       netip.Addr     // source address of its direct lookups
	resolver   netip.AddrPort // where it sends its queries
	viaDnsmasq bool           // resolver is the host's dnsmasq (seen by both ends)
	edns       bool           // its resolver library adds EDNS0
	// alwaysKnown: the recorder identifies it on every message (the
	// incident's and the tunnel's processes, whose counts Facts gives).
	alwaysKnown bool
}

// nsSet are a process's namespace inodes.
type nsSet struct{ net, mnt, pid uint32 }

// The host's initial namespaces, as their inode numbers usually are.
var hostNS = nsSet{net: 4026531840, mnt: 4026531841, pid: 4026531836}

var (
	loopback     = netip.MustParseAddr("127.0.0.1")
	dnsmasqAddr  = netip.MustParseAddrPort("127.0.0.1:53")
	bridgeDNS    = netip.MustParseAddrPort("172.17.0.1:53") // dnsmasq on docker0, for the containers
	hostAddr     = netip.MustParseAddr("10.0.0.5")
	upstreamAddr = netip.MustParseAddrPort("10.0.0.1:53")
)

// procSpec describes a process to create.
type procSpec struct {
	comm, exe string
	argv      []string
	uid, gid  uint32
	source    string
	nspid     uint32 // 0: the pid (host pid namespace)
}

// spawn creates a process under parent (nil: none) at boot-clock time
// start, in parent's namespaces, cgroup and resolver setup.
func (m *model) spawn(parent *proc, s procSpec, start uint64) *proc {
	p := &proc{
		pid: m.nextPID(), startBoot: start, comm: s.comm, exe: s.exe, argv: s.argv,
		uid: s.uid, gid: s.gid, parent: parent, source: s.source, nspid: s.nspid,
		ns: hostNS, addr: loopback, resolver: dnsmasqAddr, viaDnsmasq: true,
	}
	if parent != nil {
		p.ns, p.cgroup, p.addr, p.resolver, p.viaDnsmasq, p.edns = parent.ns, parent.cgroup, parent.addr, parent.resolver, parent.viaDnsmasq, parent.edns
	}
	if s.source == "exec" {
		p.execBoot = start
	}
	if s.source == "inherited" && parent != nil {
		p.exe, p.argv = parent.exe, parent.argv
	}
	m.thread(p, p.pid, p.comm)
	return p
}

// fixedPID gives p a pid of its own choosing (daemons started at boot).
func (p *proc) fixedPID(pid uint32) *proc {
	p.pid = pid
	p.threads[0].PID, p.threads[0].TID = pid, pid
	if p.nspid == 0 {
		p.threads[0].NSPID = pid
	}
	return p
}

// thread adds an owner identity: a thread of p with its own comm.
func (m *model) thread(p *proc, tid uint32, comm string) *store.Identity {
	nspid := p.nspid
	if nspid == 0 {
		nspid = p.pid
	}
	id := &store.Identity{
		PID: p.pid, TID: tid, UID: p.uid, GID: p.gid, StartNs: p.startBoot, Comm: comm,
		CgroupID: p.cgroup, NetNS: p.ns.net, MntNS: p.ns.mnt, PidNS: p.ns.pid, NSPID: nspid,
	}
	p.threads = append(p.threads, id)
	return id
}

// threadsNamed gives p n more threads called comm.
func (m *model) threadsNamed(p *proc, n int, comm string) {
	for range n {
		m.thread(p, m.nextPID(), comm)
	}
}

// container moves p into a container of its own: new namespaces, cgroup
// and address. Its resolver is the host's dnsmasq listening on docker0
// (--dns 172.17.0.1), or with direct the upstream resolver itself.
func (m *model) container(p *proc, k int, direct bool) {
	base := uint32(4026532200 + 10*k)
	p.ns = nsSet{net: base, mnt: base + 1, pid: base + 2}
	p.cgroup = uint64(9000 + 100*k)
	p.addr = netip.AddrFrom4([4]byte{172, 17, 0, byte(2 + k)})
	p.resolver, p.viaDnsmasq = bridgeDNS, true
	if direct {
		p.resolver, p.viaDnsmasq = upstreamAddr, false
	}
	p.nspid = 1
	for _, t := range p.threads {
		t.CgroupID, t.NetNS, t.MntNS, t.PidNS, t.NSPID = p.cgroup, p.ns.net, p.ns.mnt, p.ns.pid, 1
	}
}

// nextPID allocates pids as the kernel does, counting up (threads take
// pids too).
func (m *model) nextPID() uint32 {
	m.lastPID += 1 + uint32(m.rng.IntN(3))
	return m.lastPID
}

// row is p's processes row, with its parent already written.
func (p *proc) row() *store.ProcRow {
	r := &store.ProcRow{PID: p.pid, StartTicks: p.startBoot / 1e7, ExecBootNs: p.execBoot, Comm: p.comm, Source: p.source}
	uid, gid, cg := p.uid, p.gid, p.cgroup
	r.UID, r.GID, r.CgroupID = &uid, &gid, &cg
	if p.parent != nil {
		ppid, parent := p.parent.pid, p.parent.id
		r.PPID, r.ParentID = &ppid, &parent
	}
	if p.exe != "" {
		exe := p.exe
		r.Exe = &exe
	}
	if p.argv != nil {
		b, _ := json.Marshal(p.argv)
		argv := string(b)
		r.Argv = &argv
	}
	if p.source == "exec" {
		no := false
		r.ExeTruncated, r.ArgvTruncated = &no, &no
	}
	return r
}

// ancestryString is the parent chain as query.Ancestry prints it.
func (p *proc) ancestryString() string {
	s := ""
	for a := p.parent; a != nil; a = a.parent {
		if s != "" {
			s += " > "
		}
		s += fmt.Sprintf("%s(%d)", a.comm, a.pid)
	}
	return s
}
