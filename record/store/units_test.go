package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestSummaryUnits: a loopback message is one message and two
// observations; the Summary counts both, apart.
func TestSummaryUnits(t *testing.T) {
	ctx := context.Background()
	s := createStore(t, filepath.Join(t.TempDir(), "units.db"))
	_, dig := insertSample(t, s) // three messages, each seen at one end
	m := oneSide(true, 1_700_000_003_000_000_000, "udp", "127.0.0.1:40000", "127.0.0.53:53", 7, dig, sampleIdent, sampleQuery, len(sampleQuery))
	m.Recv = m.Send
	m.Recv.Cookie = 8
	if err := s.InsertMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Finish(ctx, 1_700_000_009_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	if sum.DNSMessages != 4 || sum.Messages != 5 {
		t.Errorf("%d messages, %d observations; want 4 and 5", sum.DNSMessages, sum.Messages)
	}
}
