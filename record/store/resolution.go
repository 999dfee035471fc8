package store

import (
	"context"
	"fmt"
	"net/netip"
)

// Resolution is a libc resolver call that returned: the
// process, the name it asked for and the addresses it got, whatever
// answered (DNS, /etc/hosts, nscd, nss-resolve).
type Resolution struct {
	Func     string // getaddrinfo, gethostbyname_r, gethostbyname2_r
	RC       int32  // 0: an answer; see schema migration 0005
	BootNs   uint64 // when the call returned
	CallNs   uint64 // when it was entered
	Name     string // normalized presentation form, as messages' names
	Spelling string // the name as passed, when its case differs from Name; else ""
	NameCut  bool
	AddrsCut bool
	Nested   bool // made inside another probed call of the same thread
	Addrs    []netip.Addr
	Ident    *Identity
}

// ResolutionRow is a Resolution as stored.
type ResolutionRow struct {
	*Resolution
	TsNs  int64 // wall clock
	DurNs int64
	Side  Side // the caller: Ident and its process row
}

// resolutions.flags bits (schema/README.md).
const (
	resolutionNameCut  = 1
	resolutionAddrsCut = 2
	resolutionNested   = 4
)

const (
	sqlResolution = `INSERT INTO resolutions (id, session_id, ts_ns, dur_ns, owner, func, name_id, rc, flags, spelling_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	sqlResAddr    = `INSERT INTO resolution_addrs (id, resolution_id, addr) VALUES (?, ?, ?)`
)

// InsertResolution queues a libc resolution for the next Commit.
func (s *Store) InsertResolution(_ context.Context, r *ResolutionRow) error {
	s.q.resolutions = append(s.q.resolutions, r)
	return nil
}

func (s *Store) writeResolution(ctx context.Context, r *ResolutionRow) error {
	owner, err := s.ownerID(ctx, &r.Side)
	if err != nil {
		return err
	}
	var nameID any
	if r.Name != "" {
		id, err := s.nameID(ctx, r.Name)
		if err != nil {
			return err
		}
		nameID = id
	}
	spelling, err := s.spellingID(ctx, r.Spelling)
	if err != nil {
		return err
	}
	flags := int64(0)
	if r.NameCut {
		flags |= resolutionNameCut
	}
	if r.AddrsCut {
		flags |= resolutionAddrsCut
	}
	if r.Nested {
		flags |= resolutionNested
	}
	id := s.nextRes
	if err := s.execRow(ctx, "resolutions", sqlResolution, id, s.sessionID, r.TsNs, r.DurNs, owner, r.Func, nameID, int64(r.RC), flags, spelling); err != nil {
		return fmt.Errorf("write resolution: %w", err)
	}
	s.nextRes++
	for _, a := range r.Addrs {
		if err := s.execRow(ctx, "resolution_addrs", sqlResAddr, s.nextResAddr, id, a.String()); err != nil {
			return fmt.Errorf("write resolution address: %w", err)
		}
		s.nextResAddr++
	}
	return nil
}
