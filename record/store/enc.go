package store

import (
	"context"
	"fmt"
	"net/netip"
)

// EncConn is a connection a process opened to an encrypted-DNS server:
// DoT or DoQ by its port, or a listed DoH/DoT resolver on 443. Its content
// is not read; who, where, when and the TLS server name are.
type EncConn struct {
	Kind      string // dot, doq, doh-known
	Transport string // tcp, udp
	Via       string // connect, sendto, sendmsg
	BootNs    uint64
	Remote    netip.AddrPort
	Local     netip.AddrPort // invalid if the process sent nothing
	SNI       string         // "" if no ClientHello was read
	Resolver  string         // the list entry the address matched, for doh-known
	Ident     *Identity
}

// EncConnRow is an EncConn as stored.
type EncConnRow struct {
	*EncConn
	TsNs int64
	Side Side // the process: Ident and its process row
}

const sqlEncConn = `INSERT INTO enc_conns (id, session_id, ts_ns, owner, kind, transport, via, r_addr, r_port, l_addr, l_port, sni, resolver) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// InsertEncConn queues an encrypted-DNS connection for the next Commit.
func (s *Store) InsertEncConn(_ context.Context, r *EncConnRow) error {
	s.q.encConns = append(s.q.encConns, r)
	return nil
}

func (s *Store) writeEncConn(ctx context.Context, r *EncConnRow) error {
	owner, err := s.ownerID(ctx, &r.Side)
	if err != nil {
		return err
	}
	var laddr, lport any
	if r.Local.IsValid() {
		laddr, lport = r.Local.Addr().String(), int64(r.Local.Port())
	}
	if err := s.execRow(ctx, "enc_conns", sqlEncConn, s.nextEnc, s.sessionID, r.TsNs, owner, r.Kind, r.Transport, r.Via,
		r.Remote.Addr().String(), int64(r.Remote.Port()), laddr, lport, optStr(nullString(r.SNI)), optStr(nullString(r.Resolver))); err != nil {
		return fmt.Errorf("write encrypted-DNS connection: %w", err)
	}
	s.nextEnc++
	return nil
}
