//go:build linux && (amd64 || arm64)

package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Owners the cgroup tier's hooks cannot see. A TCP
// server that receives its first bytes before it reads them through a hook
// — a query riding the SYN (TCP fast open: dnsmasq sends its upstream TCP
// queries so), or one that arrives before accept (TCP_DEFER_ACCEPT) — has
// the bytes counted to the socket they arrived on, whose reader no hook
// reports in time, or at all before Linux 6.3. When the owner wait runs
// out, the socket is looked up the way ss -p does it: sock_diag gives each
// TCP socket on a DNS port with its cookie (the id the BPF programs key
// sockets by) and inode, and /proc/*/fd says which process holds that
// inode. The identity then comes from /proc: what the process is at the
// time of the lookup. Only sockets in the recorder's own network
// namespace are visible this way.

// sockOwners caches what sock_diag and /proc said.
type sockOwners struct {
	procRoot string
	ports    []uint16
	byCookie map[uint64]uint32 // socket cookie -> pid
	lastScan time.Time
}

// maxProcOwners bounds the sockets whose holder the pipeline remembers.
const maxProcOwners = 4096

// sockScanEvery bounds how often an unknown cookie makes the recorder dump
// the sockets and walk /proc again.
const sockScanEvery = time.Second

func newSockOwners(procRoot string, ports []uint16) *sockOwners {
	return &sockOwners{procRoot: procRoot, ports: ports, byCookie: map[uint64]uint32{}}
}

// pid returns the process holding the socket with this cookie, if found.
func (s *sockOwners) pid(cookie uint64) (uint32, bool) {
	if pid, ok := s.byCookie[cookie]; ok {
		return pid, true
	}
	if time.Since(s.lastScan) < sockScanEvery {
		return 0, false
	}
	s.lastScan = time.Now()
	inodes := map[uint64]uint64{} // inode -> cookie
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		socks, err := dumpTCP(family)
		if err != nil {
			continue
		}
		for _, sk := range socks {
			if slices.Contains(s.ports, sk.sport) || slices.Contains(s.ports, sk.dport) {
				inodes[sk.inode] = sk.cookie
			}
		}
	}
	if len(inodes) == 0 {
		return 0, false
	}
	if len(s.byCookie) > 10_000 {
		clear(s.byCookie)
	}
	s.walkFDs(inodes)
	pid, ok := s.byCookie[cookie]
	return pid, ok
}

// walkFDs finds the processes holding the inodes. A socket shared by
// several processes (a server that forked after listen) goes to the one
// with the lowest pid, usually the parent.
func (s *sockOwners) walkFDs(inodes map[uint64]uint64) {
	ents, err := os.ReadDir(s.procRoot)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, err := strconv.ParseUint(e.Name(), 10, 32)
		if err != nil {
			continue
		}
		dir := s.procRoot + "/" + e.Name() + "/fd"
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			link, err := os.Readlink(dir + "/" + fd.Name())
			if err != nil {
				continue
			}
			num, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 64)
			if err != nil {
				continue
			}
			if cookie, ok := inodes[ino]; ok {
				if old, seen := s.byCookie[cookie]; !seen || uint32(pid) < old {
					s.byCookie[cookie] = uint32(pid)
				}
			}
		}
	}
}

// diagSock is one socket as sock_diag reports it.
type diagSock struct {
	sport, dport uint16
	cookie       uint64
	inode        uint64
}

// dumpTCP lists the TCP sockets of one address family in this network
// namespace, in every state (NETLINK_SOCK_DIAG, inet_diag_req_v2).
func dumpTCP(family uint8) ([]diagSock, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	// nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes).
	req := make([]byte, 16+56)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1) // seq
	req[16] = family
	req[17] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[20:], 0xffffffff) // every state
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	var out []diagSock
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return out, fmt.Errorf("sock_diag: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return out, fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				return out, errors.New("sock_diag: the kernel refused the dump")
			}
			// inet_diag_msg: family, state, timer, retrans (4 bytes);
			// inet_diag_sockid: sport, dport (big-endian), src[16],
			// dst[16], if (4), cookie[2] (4 each); then expires,
			// rqueue, wqueue, uid, inode (4 each).
			d := m.Data
			if len(d) < 72 {
				continue
			}
			out = append(out, diagSock{
				sport:  binary.BigEndian.Uint16(d[4:]),
				dport:  binary.BigEndian.Uint16(d[6:]),
				cookie: uint64(binary.NativeEndian.Uint32(d[44:])) | uint64(binary.NativeEndian.Uint32(d[48:]))<<32,
				inode:  uint64(binary.NativeEndian.Uint32(d[68:])),
			})
		}
	}
}

// identFromProc builds an identity for a process from /proc, as the
// kernel would have: its pid, ids, command name, namespaces, cgroup and
// parent chain (up to maxProcAncestors).
func (p *pipeline) identFromProc(pid uint32) (*Identity, error) {
	info, err := p.procs.readProc(pid)
	if err != nil {
		return nil, err
	}
	root := p.procs.procRoot
	id := &Identity{PID: pid, TID: pid, StartNs: info.key.ticks * (1e9 / userHZ), Comm: info.comm}
	if info.uid != nil {
		id.UID = *info.uid
	}
	if info.gid != nil {
		id.GID = *info.gid
	}
	ns := func(kind string) uint32 {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("%s/%d/ns/%s", root, pid, kind), &st) != nil {
			return 0
		}
		return uint32(st.Ino)
	}
	id.MntNS, id.NetNS, id.PidNS = ns("mnt"), ns("net"), ns("pid")
	if st, err := os.ReadFile(fmt.Sprintf("%s/%d/status", root, pid)); err == nil {
		for _, line := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(line, "NSpid:"); ok {
				if f := strings.Fields(v); len(f) > 0 {
					if n, err := strconv.ParseUint(f[len(f)-1], 10, 32); err == nil {
						id.NSPID = uint32(n)
					}
				}
			}
		}
	}
	if b, err := os.ReadFile(fmt.Sprintf("%s/%d/cgroup", root, pid)); err == nil && p.cgroups.root != "" {
		for _, line := range strings.Split(string(b), "\n") {
			if path, ok := strings.CutPrefix(line, "0::"); ok {
				var st unix.Stat_t
				if unix.Stat(p.cgroups.root+path, &st) == nil {
					id.CgroupID = st.Ino
				}
			}
		}
	}
	for parent := info.parent; parent != nil && len(id.Ancestors) < maxProcAncestors; {
		a, err := p.procs.readProc(parent.pid)
		if err != nil {
			break
		}
		id.Ancestors = append(id.Ancestors, Ancestor{PID: parent.pid, StartNs: a.key.ticks * (1e9 / userHZ), Comm: a.comm})
		parent = a.parent
	}
	return id, nil
}

// maxProcAncestors matches the depth of the parent chain the kernel reads.
const maxProcAncestors = 16
