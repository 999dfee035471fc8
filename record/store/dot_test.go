package store

import (
	"context"
	"path/filepath"
	"testing"
)

// TestDoTProto: a message de-framed from TLS plaintext is stored with proto
// dot (schema v9), in flows and through the messages view, and keeps its
// own flow apart from nothing else.
func TestDoTProto(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "evidence.db")
	s := createStore(t, path)
	_, dig := insertSample(t, s)
	for _, m := range []*MsgRow{
		oneSide(true, 1_700_000_003_000_000_000, "dot", "127.0.0.1:40001", "127.0.0.1:853", 0, dig, sampleIdent, sampleQuery, len(sampleQuery)),
		oneSide(false, 1_700_000_003_000_500_000, "dot", "127.0.0.1:853", "127.0.0.1:40001", 0, dig, sampleIdent, sampleResponse, len(sampleResponse)),
	} {
		if err := s.InsertMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatalf("commit dot messages: %v", err)
	}
	if _, err := s.Finish(ctx, 1_700_000_009_000_000_000); err != nil {
		t.Fatal(err)
	}
	db := openRO(t, path)
	var flows, views int
	if err := db.QueryRow(`SELECT count(*) FROM flows WHERE proto = 'dot' AND b_port = 853`).Scan(&flows); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE proto = 'dot'`).Scan(&views); err != nil {
		t.Fatal(err)
	}
	if flows != 1 || views != 2 {
		t.Errorf("dot flows %d, dot rows in the messages view %d; want 1 and 2", flows, views)
	}
}
