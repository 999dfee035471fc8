package store

import (
	"context"
	"database/sql"
	"net/netip"
	"path/filepath"
	"reflect"
	"testing"
)

// TestStoreResolution: a libc resolution is stored with its caller, its
// name in the shared names table and its addresses, and the chain covers
// it: verify passes, and an edited address is caught.
func TestStoreResolution(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "evidence.db")
	s := createStore(t, path)
	_, dig := insertSample(t, s)
	id := &Identity{PID: 4321, TID: 4321, UID: 1000, GID: 1001, Comm: "dig", MntNS: 11}
	for _, r := range []*ResolutionRow{
		{Resolution: &Resolution{Func: "getaddrinfo", Name: "www.evil.example", Addrs: []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("2001:db8::9")}},
			TsNs: 1_700_000_002_000_000_000, DurNs: 1500, Side: Side{Seen: true, Ident: id, ProcessID: dig}},
		{Resolution: &Resolution{Func: "gethostbyname_r", RC: -1, Name: "nx.evil.example", NameCut: true},
			TsNs: 1_700_000_002_500_000_000, Side: Side{Seen: true, Ident: id, ProcessID: dig}},
	} {
		if err := s.InsertResolution(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, 1_700_000_009_000_000_000); err != nil {
		t.Fatal(err)
	}
	db := openRO(t, path)
	r, err := db.Query(`SELECT r.id, r.ts_ns, r.dur_ns, o.process_id, o.pid, r.func, n.name, r.rc, r.flags,
		(SELECT group_concat(addr, ',') FROM (SELECT addr FROM resolution_addrs WHERE resolution_id = r.id ORDER BY id))
		FROM resolutions r LEFT JOIN owners o ON o.id = r.owner LEFT JOIN names n ON n.id = r.name_id ORDER BY r.id`)
	if err != nil {
		t.Fatal(err)
	}
	var got [][]any
	for r.Next() {
		v := make([]any, 10)
		p := make([]any, 10)
		for i := range v {
			p[i] = &v[i]
		}
		if err := r.Scan(p...); err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	r.Close()
	want := [][]any{
		{int64(1), int64(1_700_000_002_000_000_000), int64(1500), dig, int64(4321), "getaddrinfo", "www.evil.example", int64(0), int64(0), "203.0.113.9,2001:db8::9"},
		{int64(2), int64(1_700_000_002_500_000_000), int64(0), dig, int64(4321), "gethostbyname_r", "nx.evil.example", int64(-1), int64(1), nil},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolutions:\n got %v\nwant %v", got, want)
	}
	// The message's name and the resolution's are one names row.
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM names WHERE name = 'www.evil.example'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("names rows for www.evil.example: %d, %v", n, err)
	}
	db.Close()
	if rep := verify(t, path); !rep.OK() {
		t.Fatalf("verify: %+v", rep)
	}
	rw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rw.Exec(`UPDATE resolution_addrs SET addr = '198.51.100.1' WHERE id = 1`); err != nil {
		t.Fatal(err)
	}
	rw.Close()
	if rep := verify(t, path); rep.OK() {
		t.Error("verify passed after an address was edited")
	}
}
