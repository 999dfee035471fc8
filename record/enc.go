//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// Encrypted DNS that cannot be opened is still on record. The sys_enter
// program (bpf/tls.h) reports each connection a process opens to a DoT port
// or to port 443 of a known resolver (EncEvent, with the identity), and then
// the first bytes the process sends on it, with both ends of the socket
// (EncHello). The row waits for the hello, whose SNI it takes, for at most
// encHelloWait.

type (
	EncConn    = store.EncConn
	EncConnRow = store.EncConnRow
)

// EncEvent is a record of the encrypted-DNS connection hook: a connection
// (Hello false), or the first bytes sent on one (Hello true: no Ident).
type EncEvent struct {
	Hello         bool
	Proto         uint8 // IPPROTO_TCP, IPPROTO_UDP
	Via           uint8 // bpf.EncVia*
	Match         uint8 // bpf.EncMatch*
	PID, TID, FD  uint32
	BootNs        uint64
	Local, Remote netip.AddrPort // Local only in a hello
	Len           uint32         // bytes the send carried; Data holds the first of them
	Data          []byte
	Ident         *Identity
}

var encHeaderSize = int(unsafe.Sizeof(bpf.EncEvent{}))

func (d *decoder) decodeEnc(raw []byte) (*EncEvent, error) {
	if len(raw) < encHeaderSize {
		return nil, fmt.Errorf("encrypted-DNS record of %d bytes: %w", len(raw), errShort)
	}
	ev := (*bpf.EncEvent)(unsafe.Pointer(&raw[0]))
	e := &EncEvent{Hello: ev.Kind == bpf.EventEncHello, Proto: ev.Proto, Via: ev.Via, Match: ev.Match,
		PID: ev.Id.Pid, TID: ev.Id.Tid, FD: ev.Fd, BootNs: ev.BootNs, Len: ev.Len}
	var l, r netip.Addr
	switch ev.Conn.Family {
	case 4:
		l, r = netip.AddrFrom4([4]byte(ev.Conn.Laddr[:4])), netip.AddrFrom4([4]byte(ev.Conn.Raddr[:4]))
	case 6:
		l, r = netip.AddrFrom16(ev.Conn.Laddr).Unmap(), netip.AddrFrom16(ev.Conn.Raddr).Unmap()
	default:
		return nil, fmt.Errorf("encrypted-DNS record with address family %d", ev.Conn.Family)
	}
	e.Remote = netip.AddrPortFrom(r, ev.Conn.Rport)
	if !e.Hello {
		e.Ident = d.decodeIdent(&ev.Id)
		return e, nil
	}
	e.Local = netip.AddrPortFrom(l, ev.Conn.Lport)
	if int(ev.Cap) > len(raw)-encHeaderSize {
		return nil, fmt.Errorf("encrypted-DNS record claims %d bytes, has %d", ev.Cap, len(raw)-encHeaderSize)
	}
	e.Data = bytes.Clone(raw[encHeaderSize : encHeaderSize+int(ev.Cap)])
	return e, nil
}

// encHelloWait is how long a connection's row waits for its first bytes.
const encHelloWait = 3 * time.Second

type encKey struct{ pid, fd uint32 }

type encPending struct {
	row      *EncConnRow
	deadline time.Time
}

// encState is the pipeline's encrypted-DNS connections not yet stored.
type encState struct {
	resolvers *resolverSet
	pending   map[encKey]*encPending
	// learn, if set, hands addresses learnt from DNS answers to the kernel.
	learn func([]netip.Addr) error
}

var viaNames = map[uint8]string{bpf.EncViaConnect: "connect", bpf.EncViaSendto: "sendto", bpf.EncViaSendmsg: "sendmsg"}

// encEvent handles one record of the encrypted-DNS connection hook.
func (p *pipeline) encEvent(ctx context.Context, e *EncEvent) error {
	s := p.enc
	if s == nil {
		return nil
	}
	p.lastBootNs = max(p.lastBootNs, e.BootNs)
	k := encKey{e.PID, e.FD}
	if e.Hello {
		pe := s.pending[k]
		// A hello on a socket other than the pending one (its fd reused)
		// is not its hello.
		if pe == nil || pe.row.Remote != e.Remote {
			return nil
		}
		delete(s.pending, k)
		pe.row.Local = e.Local
		if e.Proto == ipprotoTCP {
			if sni, err := ClientHelloSNI(e.Data); err == nil {
				pe.row.SNI = sni
				if pe.row.Resolver == "" {
					pe.row.Resolver = s.resolvers.host(sni)
				}
			}
		}
		return p.storeEnc(ctx, pe.row)
	}
	if old := s.pending[k]; old != nil {
		// The fd was connected again before anything was sent.
		delete(s.pending, k)
		if err := p.storeEnc(ctx, old.row); err != nil {
			return err
		}
	}
	c := &EncConn{Transport: "tcp", Via: viaNames[e.Via], BootNs: e.BootNs, Remote: e.Remote, Ident: e.Ident}
	if e.Proto == ipprotoUDP {
		c.Transport = "udp"
	}
	switch {
	case e.Match == bpf.EncMatchResolver:
		c.Kind = "doh-known"
		c.Resolver = s.resolvers.addr(e.Remote.Addr())
	case c.Transport == "udp":
		c.Kind = "doq"
	default:
		c.Kind = "dot"
	}
	if c.Kind != "doh-known" {
		c.Resolver = s.resolvers.addr(e.Remote.Addr())
	}
	row := &EncConnRow{EncConn: c, TsNs: p.wall(e.BootNs)}
	s.pending[k] = &encPending{row: row, deadline: time.Now().Add(encHelloWait)}
	return nil
}

const (
	ipprotoTCP = 6
	ipprotoUDP = 17
)

// storeEnc stores a connection, unless the record-time filters leave its
// process out.
func (p *pipeline) storeEnc(ctx context.Context, row *EncConnRow) error {
	if !p.opts.Filter.keepsOwner(row.Ident, p.procComm) {
		p.filtered++
		return nil
	}
	if row.Ident != nil {
		id, err := p.processID(ctx, row.Ident)
		if err != nil {
			return err
		}
		row.Side = Side{Seen: true, TsNs: row.TsNs, Ident: row.Ident, ProcessID: id}
	}
	p.batched++
	p.encConns++
	return p.store.InsertEncConn(ctx, row)
}

// expireEnc stores the connections whose first bytes did not come in time
// (all of them with a zero now).
func (p *pipeline) expireEnc(ctx context.Context, now time.Time) error {
	s := p.enc
	if s == nil {
		return nil
	}
	for k, pe := range s.pending {
		if now.IsZero() || now.After(pe.deadline) {
			delete(s.pending, k)
			if err := p.storeEnc(ctx, pe.row); err != nil {
				return err
			}
		}
	}
	return nil
}

// learnResolvers takes the addresses a listed resolver's host name resolved
// to, in a response the recorder stores, into the kernel's list.
func (p *pipeline) learnResolvers(d *Parsed) {
	s := p.enc
	if s == nil || s.learn == nil || d.QR == nil || !*d.QR || d.QName == nil || s.resolvers.host(*d.QName) == "" {
		return
	}
	var add []netip.Addr
	for _, a := range d.Answers {
		if a.Section != "answer" || (a.Type != 1 && a.Type != 28) {
			continue
		}
		if ip, err := netip.ParseAddr(a.Data); err == nil && s.resolvers.learn(*d.QName, ip) {
			add = append(add, ip)
		}
	}
	if len(add) > 0 {
		if err := s.learn(add); err != nil {
			p.opts.Logger.Warn("could not add resolver addresses learnt from DNS", "name", *d.QName, "err", err)
		}
	}
}

// startEnc fills the kernel's resolver list and attaches the sys_enter
// program; where that cannot be done, encrypted-DNS connections are not
// recorded, and the log says why.
func (p *pipeline) startEnc(c *bpf.Capture) {
	set, err := newResolverSet(p.opts.DoHServers)
	if err == nil {
		err = c.AddResolverAddrs(set.all())
	}
	if err == nil {
		err = c.AttachSysEnter()
	}
	if err != nil {
		p.opts.Logger.Warn("encrypted-DNS connections are not recorded", "err", err)
		return
	}
	p.enc = &encState{resolvers: set, pending: map[encKey]*encPending{}, learn: c.AddResolverAddrs}
}
