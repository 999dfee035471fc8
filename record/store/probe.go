package store

import (
	"context"
	"fmt"
	"strings"
)

// Probe is one file the recorder attached uprobes to: a C library (Kind
// "libc"), a TLS library ("tls") or a Go executable ("go").
type Probe struct {
	TsNs      int64 // wall clock, when attached
	Kind      string
	Path      string
	PID       int // 0: found at a standard location
	MntNS     uint64
	Dev       uint64
	Inode     uint64
	GoVersion string
	Symbols   []string
}

const sqlProbe = `INSERT INTO probes (id, session_id, ts_ns, kind, path, pid, mntns, dev, inode, go_version, symbols) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// InsertProbe queues a probed file for the next Commit.
func (s *Store) InsertProbe(_ context.Context, p Probe) error {
	s.q.probes = append(s.q.probes, p)
	return nil
}

func (s *Store) writeProbe(ctx context.Context, p *Probe) error {
	var pid, mntns any
	if p.PID != 0 {
		pid, mntns = int64(p.PID), int64(p.MntNS)
	}
	var gov any
	if p.GoVersion != "" {
		gov = p.GoVersion
	}
	if err := s.execRow(ctx, "probes", sqlProbe, s.nextProbe, s.sessionID, p.TsNs, p.Kind, p.Path, pid, mntns,
		int64(p.Dev), int64(p.Inode), gov, strings.Join(p.Symbols, " ")); err != nil {
		return fmt.Errorf("write probed file %s: %w", p.Path, err)
	}
	s.nextProbe++
	return nil
}
