package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// TestStoreEvents: the recorder's events are stored in order, counted
// once committed (what a checkpoint states), and the chain covers them:
// verify passes, and an edited or deleted event is caught.
func TestStoreEvents(t *testing.T) {
	ctx := context.Background()
	for _, edit := range []string{
		`UPDATE events SET detail = 'stopped by itself' WHERE kind = 'stop'`,
		`DELETE FROM events WHERE kind = 'detached'`,
	} {
		path := filepath.Join(t.TempDir(), "evidence.db")
		s := createStore(t, path)
		insertSample(t, s)
		for _, e := range []Event{
			{TsNs: 1_700_000_001_000_000_000, Kind: "start", Detail: "recorder pid 7"},
			{TsNs: 1_700_000_003_000_000_000, Kind: "detached", Detail: "link 9 of program dns_egress"},
		} {
			if err := s.InsertEvent(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if n := s.Events(); n != 0 {
			t.Errorf("Events() = %d before the commit, want 0", n)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertEvent(ctx, Event{TsNs: 1_700_000_009_000_000_000, Kind: "stop", Detail: "stopped by SIGTERM from pid 99"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Finish(ctx, 1_700_000_009_000_000_000); err != nil {
			t.Fatal(err)
		}
		if n := s.Events(); n != 3 {
			t.Errorf("Events() = %d after the stop, want 3", n)
		}
		db := openRO(t, path)
		var kinds string
		if err := db.QueryRow(`SELECT group_concat(kind, ',') FROM (SELECT kind FROM events ORDER BY id)`).Scan(&kinds); err != nil || kinds != "start,detached,stop" {
			t.Errorf("events: %q, %v", kinds, err)
		}
		db.Close()
		if rep := verify(t, path); !rep.OK() {
			t.Fatalf("verify: %+v", rep)
		}
		rw, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.Exec(edit); err != nil {
			t.Fatal(err)
		}
		rw.Close()
		if rep := verify(t, path); rep.OK() {
			t.Errorf("verify passed after %s", edit)
		}
	}
}
