//go:build linux && (amd64 || arm64)

package record

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
	"unsafe"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// DNS over TLS in clear. The TLS probes (bpf/tls.h) deliver what a process
// wrote to or read from its TLS library, call by call, tied to the TCP
// connection the library used. A DoT stream is the DNS-over-TCP framing
// (RFC 7858: a 2-byte length, then the message) inside TLS, and a call may
// carry a part of a message or several: so the plaintext is reassembled per
// (process, TLS object, direction), de-framed, and each message goes through
// the same path as a message the packet hooks saw (message), with proto
// "dot".

// TLSData is a record of the TLS probes: the plaintext of one TLS call
// (Bind false), or the socket a TLS object was bound to (Bind true, no
// Data and no Ident).
type TLSData struct {
	Bind          bool
	Dir           uint8 // bpf.DirSend or bpf.DirRecv
	Lib           uint8 // bpf.TLSLibOpenSSL, bpf.TLSLibGnuTLS; 0 in a bind from outside a call
	Flags         uint8 // bpf.TLSUnbound, bpf.TLSCut, bpf.TLSSyscall
	PID, TID      uint32
	Obj           uint64 // the library's object: SSL*, gnutls_session_t
	Len           uint32 // bytes the call moved; Data holds the first of them
	BootNs        uint64
	Local, Remote netip.AddrPort // invalid while Flags has bpf.TLSUnbound
	Ident         *Identity
	Data          []byte
}

var tlsHeaderSize = int(unsafe.Sizeof(bpf.TLSEvent{}))

func (d *decoder) decodeTLS(raw []byte) (*TLSData, error) {
	if len(raw) < tlsHeaderSize {
		return nil, fmt.Errorf("tls record of %d bytes: %w", len(raw), errShort)
	}
	ev := (*bpf.TLSEvent)(unsafe.Pointer(&raw[0]))
	h := &ev.Head
	t := &TLSData{Bind: h.Kind == bpf.EventTLSBind, Dir: h.Dir, Lib: h.Lib, Flags: h.Flags,
		PID: ev.Id.Pid, TID: ev.Id.Tid, Obj: h.Obj, Len: h.Len, BootNs: h.BootNs}
	if t.Flags&bpf.TLSUnbound == 0 || t.Bind {
		var l, r netip.Addr
		switch h.Conn.Family {
		case 4:
			l, r = netip.AddrFrom4([4]byte(h.Conn.Laddr[:4])), netip.AddrFrom4([4]byte(h.Conn.Raddr[:4]))
		case 6:
			l, r = netip.AddrFrom16(h.Conn.Laddr), netip.AddrFrom16(h.Conn.Raddr)
		default:
			return nil, fmt.Errorf("tls record with address family %d", h.Conn.Family)
		}
		t.Local = netip.AddrPortFrom(l.Unmap(), h.Conn.Lport)
		t.Remote = netip.AddrPortFrom(r.Unmap(), h.Conn.Rport)
	}
	if t.Bind {
		return t, nil
	}
	if int(h.Cap) > len(raw)-tlsHeaderSize {
		return nil, fmt.Errorf("tls record claims %d bytes, has %d", h.Cap, len(raw)-tlsHeaderSize)
	}
	t.Data = bytes.Clone(raw[tlsHeaderSize : tlsHeaderSize+int(h.Cap)])
	t.Ident = d.decodeIdent(&ev.Id)
	return t, nil
}

// tlsObj is one TLS object of one process.
type tlsObj struct {
	pid uint32
	obj uint64
}

type tlsStreamKey struct {
	tlsObj
	dir uint8
}

// tlsStream is one direction of a DoT connection's plaintext, not yet
// de-framed.
type tlsStream struct {
	local, remote netip.AddrPort
	buf           []byte
	lastNs        uint64
}

// tlsHeld is plaintext of an object whose socket is not known yet (a memory
// BIO, or GnuTLS sends while corked), waiting for its EventTLSBind.
type tlsHeld struct {
	recs     []*TLSData
	deadline time.Time
}

// Bounds on what unbound plaintext may hold in memory: objects, and records
// per object. A memory-BIO connection that is not DoT is bound (and its
// records dropped) at the thread's next send or receive, so little waits.
const (
	tlsMaxHeldObjs = 4096
	tlsMaxHeldRecs = 64
	tlsHeldWait    = 5 * time.Second
)

// dohTLS is one client connection to a DoH port.
type dohTLS struct {
	local, remote netip.AddrPort
	http          *dohConn
	lastNs        uint64
	unparsed      uint64 // of http.unparsed, counted in dotState already
}

// dotState is the pipeline's DoT reassembly, and DoH's.
type dotState struct {
	ports    []uint16 // DoT, at either end
	dohPorts []uint16 // DoH, at the remote end
	streams  map[tlsStreamKey]*tlsStream
	held     map[tlsObj]*tlsHeld
	doh      map[tlsObj]*dohTLS
	// skip stops the kernel copying an object's plaintext (nil in tests
	// without a capture).
	skip func(pid uint32, obj uint64) error
	// unboundDropped counts plaintext records dropped because no socket
	// was ever bound to their object in time; notDNS, records of objects
	// bound to a socket that is neither DoT nor DoH (not a loss); cut
	// counts records the kernel could not copy whole (a DoT stream then
	// loses the message they were part of, a DoH connection the rest);
	// dohUnparsed, HTTP of DoH connections that could not be parsed;
	// dohSkipped, connections to a DoH port found not to be DoH.
	unboundDropped, notDNS, cut, dohUnparsed, dohSkipped uint64
	// dohLate counts calls of skipped connections that still arrived:
	// those the kernel copied before it was told to stop.
	dohLate       uint64
	skipErrLogged bool
}

func newDotState(ports []uint16) *dotState {
	return &dotState{ports: ports, streams: map[tlsStreamKey]*tlsStream{}, held: map[tlsObj]*tlsHeld{}, doh: map[tlsObj]*dohTLS{}}
}

func (d *dotState) isDoT(local, remote netip.AddrPort) bool {
	return slices.Contains(d.ports, local.Port()) || slices.Contains(d.ports, remote.Port())
}

func (d *dotState) wanted(local, remote netip.AddrPort) bool {
	return d.isDoT(local, remote) || slices.Contains(d.dohPorts, remote.Port())
}

// tls handles one record of the TLS probes.
func (p *pipeline) tls(ctx context.Context, t *TLSData) error {
	d := p.dot
	if d == nil {
		return nil
	}
	p.lastBootNs = max(p.lastBootNs, t.BootNs)
	o := tlsObj{t.PID, t.Obj}
	if t.Bind {
		h := d.held[o]
		if h == nil {
			return nil
		}
		delete(d.held, o)
		if !d.wanted(t.Local, t.Remote) {
			d.notDNS += uint64(len(h.recs))
			return nil
		}
		for _, r := range h.recs {
			r.Local, r.Remote = t.Local, t.Remote
			if err := p.dotData(ctx, r); err != nil {
				return err
			}
		}
		return nil
	}
	if t.Flags&bpf.TLSUnbound != 0 {
		h := d.held[o]
		if h == nil {
			if len(d.held) >= tlsMaxHeldObjs {
				p.expireTLS(time.Time{})
			}
			h = &tlsHeld{deadline: time.Now().Add(tlsHeldWait)}
			d.held[o] = h
		}
		if len(h.recs) >= tlsMaxHeldRecs {
			d.unboundDropped++
			return nil
		}
		h.recs = append(h.recs, t)
		return nil
	}
	return p.dotData(ctx, t)
}

// dotData adds a bound record's plaintext to its stream and stores every
// message it completes.
func (p *pipeline) dotData(ctx context.Context, t *TLSData) error {
	d := p.dot
	if !d.isDoT(t.Local, t.Remote) {
		if slices.Contains(d.dohPorts, t.Remote.Port()) {
			return p.dohData(ctx, t)
		}
		return nil
	}
	k := tlsStreamKey{tlsObj{t.PID, t.Obj}, t.Dir}
	s := d.streams[k]
	if s == nil || s.local != t.Local || s.remote != t.Remote {
		// New, or the object's address was reused for another connection.
		s = &tlsStream{local: t.Local, remote: t.Remote}
		d.streams[k] = s
	}
	s.lastNs = t.BootNs
	if t.Flags&bpf.TLSCut != 0 || len(t.Data) < int(t.Len) {
		// Part of the plaintext is missing: the framing is lost.
		d.cut++
		delete(d.streams, k)
		return nil
	}
	s.buf = append(s.buf, t.Data...)
	for len(s.buf) >= 2 {
		n := int(binary.BigEndian.Uint16(s.buf))
		if len(s.buf) < 2+n {
			break
		}
		msg := bytes.Clone(s.buf[2 : 2+n])
		s.buf = s.buf[2+n:]
		pkt := &Packet{Kind: bpf.EventDNS, Dir: t.Dir, TCP: true, Proto: "dot", OrigLen: uint32(n),
			Payload: msg, BootNs: t.BootNs, Ident: t.Ident, IdentFromCurrent: true}
		if t.Dir == bpf.DirSend {
			pkt.Src, pkt.Dst = t.Local, t.Remote
		} else {
			pkt.Src, pkt.Dst = t.Remote, t.Local
		}
		if err := p.message(ctx, pkt, msg, n); err != nil {
			return err
		}
	}
	if len(s.buf) == 0 {
		s.buf = nil
	}
	return nil
}

// expireTLS drops held plaintext whose bind did not come in time (all of it
// with a zero now) and forgets streams quiet for a minute.
func (p *pipeline) expireTLS(now time.Time) {
	d := p.dot
	if d == nil {
		return
	}
	for o, h := range d.held {
		if now.IsZero() || now.After(h.deadline) {
			d.unboundDropped += uint64(len(h.recs))
			delete(d.held, o)
		}
	}
	cutoff := p.lastBootNs - min(p.lastBootNs, uint64(time.Minute))
	for k, s := range d.streams {
		if now.IsZero() || s.lastNs < cutoff {
			delete(d.streams, k)
		}
	}
	for o, c := range d.doh {
		if now.IsZero() || c.lastNs < cutoff {
			delete(d.doh, o)
		}
	}
}

// scanTLS attaches the TLS probes to library files not seen before.
func (p *pipeline) scanTLS(ctx context.Context) {
	if p.tlsProbes == nil {
		return
	}
	added, err := p.tlsProbes.Scan()
	for _, t := range added {
		if t.GoExe {
			p.opts.Logger.Info("Go crypto/tls probes attached (DNS over TLS)", "executable", t.Path, "go", t.GoVersion, "mntns", t.MntNS, "pid", t.PID, "functions", t.Symbols)
			p.probed(ctx, "go", t)
		} else {
			p.opts.Logger.Info("TLS library probes attached (DNS over TLS)", "library", t.Path, "mntns", t.MntNS, "pid", t.PID, "functions", t.Symbols)
			p.probed(ctx, "tls", t)
		}
	}
	if err != nil {
		if errors.Is(err, bpf.ErrUprobesUnsupported) {
			p.opts.Logger.Warn("DNS over TLS is not recorded", "reason", err)
			p.tlsProbes = nil
			return
		}
		if !p.tlsErrLogged {
			p.tlsErrLogged = true
			p.opts.Logger.Warn("some TLS libraries or the sys_enter program could not be probed: DNS over TLS through them is not recorded (everything else is)", "err", err)
		}
	}
}

// logTLSLoss says, at the end, what DoT plaintext could not be turned into
// messages.
func (p *pipeline) logTLSLoss() {
	if d := p.dot; d != nil && (d.unboundDropped > 0 || d.cut > 0 || d.dohUnparsed > 0) {
		p.opts.Logger.Info("TLS plaintext not stored", "unbound", d.unboundDropped, "cut", d.cut, "doh_unparsed", d.dohUnparsed)
	}
	if d := p.dot; d != nil && d.dohSkipped > 0 {
		p.opts.Logger.Info("connections to DoH ports that were not DNS over HTTPS: ignored, not stored", "connections", d.dohSkipped, "calls_copied_after_verdict", d.dohLate)
	}
	if p.encConns > 0 {
		p.opts.Logger.Info("connections to encrypted-DNS servers recorded (query encrypted lists them)", "connections", p.encConns)
	}
}

// dohData follows a client connection to a DoH port: its HTTP, until the
// first request shows whether it is DoH. One that is not is given up: the
// kernel stops copying it, what was copied is dropped, and nothing of it
// is stored.
func (p *pipeline) dohData(ctx context.Context, t *TLSData) error {
	d := p.dot
	o := tlsObj{t.PID, t.Obj}
	c := d.doh[o]
	if c == nil || c.local != t.Local || c.remote != t.Remote {
		// New, or the object's address was reused for another connection.
		c = &dohTLS{local: t.Local, remote: t.Remote, http: newDoHConn()}
		d.doh[o] = c
	}
	c.lastNs = t.BootNs
	if v := c.http.verdict; v == dohNo || v == dohBroken {
		d.dohLate++ // copied before the kernel was told to stop
		return nil
	}
	var msgs []dohMsg
	verdict := c.http.verdict
	if t.Flags&bpf.TLSCut != 0 || len(t.Data) < int(t.Len) {
		// Part of the plaintext is missing: the HTTP framing is lost. A
		// first request that large is no DNS query.
		if verdict == dohUnknown {
			verdict = dohNo
		} else {
			d.cut++
			verdict = dohBroken
		}
		c.http.verdict = verdict
	} else {
		msgs, verdict = c.http.feed(t.Dir == bpf.DirSend, t.Data)
		d.dohUnparsed += c.http.unparsed - c.unparsed
		c.unparsed = c.http.unparsed
	}
	if verdict == dohNo || verdict == dohBroken {
		if verdict == dohNo {
			d.dohSkipped++
		}
		if d.skip != nil {
			if err := d.skip(t.PID, t.Obj); err != nil && !d.skipErrLogged {
				d.skipErrLogged = true
				p.opts.Logger.Warn("cannot tell the kernel to stop copying a connection that is not DoH (it is still not stored)", "err", err)
			}
		}
		return nil
	}
	for _, m := range msgs {
		dir := uint8(bpf.DirRecv)
		if m.send {
			dir = bpf.DirSend
		}
		pkt := &Packet{Kind: bpf.EventDNS, Dir: dir, TCP: true, Proto: "doh", OrigLen: uint32(len(m.raw)),
			Payload: m.raw, BootNs: t.BootNs, Ident: t.Ident, IdentFromCurrent: true,
			DoH: &store.DoHURL{Host: m.host, Path: m.path, JSON: m.json}}
		if m.send {
			pkt.Src, pkt.Dst = t.Local, t.Remote
		} else {
			pkt.Src, pkt.Dst = t.Remote, t.Local
		}
		if err := p.message(ctx, pkt, m.raw, len(m.raw)); err != nil {
			return err
		}
	}
	return nil
}
