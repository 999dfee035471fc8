package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/internal/dnstest"
	dnsquery "github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/schema"
)

// chainedSample writes the sample (two processes, three messages with
// answers, loss, an exit) in several batches and stops cleanly.
func chainedSample(t *testing.T, path string) Summary {
	t.Helper()
	ctx := context.Background()
	s := createStore(t, path)
	shell, _ := insertSample(t, s)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.SetExit(ctx, shell, 1_700_000_004_000_000_000); err != nil {
		t.Fatal(err)
	}
	if err := s.InsertLoss(ctx, 1_700_000_005_000_000_000, Loss{RingbufDrops: 3}); err != nil {
		t.Fatal(err)
	}
	sum, err := s.Finish(ctx, 1_700_000_009_000_000_000)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestChainDetectsTampering: an untouched recording verifies, with the head
// the recorder reported; each edit an attacker could make with sqlite3 is
// found and named.
func TestChainDetectsTampering(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "case.db")
	sum := chainedSample(t, orig)
	r := dnstest.Verify(t, orig)
	if !r.OK() || !r.Stopped || r.Head != sum.ChainHead || r.Links != sum.ChainSeq || r.Links < 3 || r.Rows == 0 {
		t.Fatalf("untouched file: %+v; recorder reported link %d head %s", r, sum.ChainSeq, sum.ChainHead)
	}

	// batchOf is the chain link that wrote row id of table in the
	// untouched file.
	origDB := dnstest.OpenRO(t, orig)
	batchOf := func(table, idSQL string) int64 {
		t.Helper()
		var id int64
		if err := origDB.QueryRow(idSQL).Scan(&id); err != nil {
			t.Fatalf("%s: %v", idSQL, err)
		}
		rows, err := origDB.Query(`SELECT seq, tables FROM chain ORDER BY seq`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var seq int64
			var tables string
			if err := rows.Scan(&seq, &tables); err != nil {
				t.Fatal(err)
			}
			var rgs map[string]schema.ChainRange
			if err := json.Unmarshal([]byte(tables), &rgs); err != nil {
				t.Fatal(err)
			}
			if rg, ok := rgs[table]; ok && rg.First <= id && id <= rg.Last {
				return seq
			}
		}
		t.Fatalf("no chain link wrote %s row %d", table, id)
		return 0
	}
	const (
		altered = dnsquery.ProblemRowsAltered
		missing = dnsquery.ProblemRowsMissing
	)
	for _, tc := range []struct {
		name, sql string
		kind      dnsquery.ProblemKind
		table     string
		batch     int64 // of the first problem; 0: not a batch's
		want      string
	}{
		{"qname", `UPDATE names SET name = 'www.harmless.example' WHERE name = 'www.evil.example'`, altered, "names", batchOf("names", `SELECT id FROM names WHERE name = 'www.evil.example'`), "names rows"},
		{"pid", `UPDATE owners SET pid = 1`, altered, "owners", batchOf("owners", `SELECT min(id) FROM owners`), "owners rows"},
		{"comm", `UPDATE owners SET comm = 'bash'`, altered, "owners", batchOf("owners", `SELECT min(id) FROM owners`), "owners rows"},
		{"exe", `UPDATE processes SET exe = '/usr/bin/true' WHERE exe = '/usr/bin/dig'`, altered, "processes", batchOf("processes", `SELECT id FROM processes WHERE exe = '/usr/bin/dig'`), "processes rows"},
		{"raw bytes", `UPDATE msgs SET raw = x'00' WHERE id = 1`, altered, "msgs", batchOf("msgs", `SELECT 1`), "msgs rows"},
		{"answer deleted", `DELETE FROM rrs WHERE id = 1`, missing, "rrs", batchOf("rrs", `SELECT 1`), "are missing"},
		{"message deleted", `DELETE FROM msgs WHERE id = 2`, missing, "msgs", batchOf("msgs", `SELECT 2`), "are missing"},
		{"row added", `INSERT INTO msgs (id, session_id, ts_ns, flow_id, obs, raw) VALUES (99, 1, 1, 1, 1, x'00')`, dnsquery.ProblemRowsAdded, "msgs", 0, "no committed batch wrote"},
		{"loss lowered", `UPDATE loss SET ringbuf_drops = 0`, altered, "loss", batchOf("loss", `SELECT min(id) FROM loss`), "loss rows"},
		{"exit time", `UPDATE processes SET exit_ns = 5 WHERE exit_ns IS NOT NULL`, dnsquery.ProblemExitAltered, "processes", 0, "exit_ns of process row"},
		{"stop time", `UPDATE sessions SET stopped_ns = 7`, dnsquery.ProblemStopAltered, "sessions", 0, "stopped_ns was altered"},
		{"session host", `UPDATE sessions SET hostname = 'elsewhere'`, altered, "sessions", batchOf("sessions", `SELECT min(id) FROM sessions`), "sessions rows"},
		{"link removed", `DELETE FROM chain WHERE seq = 2`, dnsquery.ProblemLinkMissing, "chain", 2, "chain link 2 is missing"},
		{"link edited", `UPDATE chain SET ts_ns = ts_ns + 1 WHERE seq = 2`, dnsquery.ProblemLinkAltered, "chain", 2, "chain link 2 was altered"},
		{"chain rebuilt without a batch", `DELETE FROM msgs; DELETE FROM rrs`, missing, "msgs", batchOf("msgs", `SELECT min(id) FROM msgs`), "are missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "tampered.db")
			copyFile(t, orig, p)
			db, err := sql.Open("sqlite", p)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(tc.sql); err != nil {
				t.Fatalf("%s: %v", tc.sql, err)
			}
			db.Close()
			r := dnstest.Verify(t, p)
			if r.OK() {
				t.Fatalf("%s went unnoticed: %+v", tc.sql, r)
			}
			if p := r.Problems[0]; p.Kind != tc.kind || p.Table != tc.table || p.Batch != tc.batch || !strings.Contains(p.Text, tc.want) {
				t.Errorf("first problem: %s of %s batch %d, %q; want %s of %s batch %d, about %q (all: %q)", p.Kind, p.Table, p.Batch, p.Text, tc.kind, tc.table, tc.batch, tc.want, r.Problems)
			}
		})
	}
}

// TestStoreIDsAfterFailedBatch: msgs and rrs rows are inserted with a NULL
// id where SQLite assigns the same one (multiRow). A batch that fails after
// some of its rows were inserted leaves a gap in the ids; the rows after it
// keep the ids they were given, and the file still verifies.
func TestStoreIDsAfterFailedBatch(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gap.db")
	s := createStore(t, path)
	_, dig := insertSample(t, s)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	queue := func(n int) {
		for i := range n {
			m := oneSide(i%2 == 0, 1_700_000_010_000_000_000+int64(i), "udp", "10.0.0.2:40001", "192.0.2.53:53", 7, dig, sampleIdent, sampleResponse, len(sampleResponse))
			if err := s.InsertMessage(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	// More rows than one multi-row statement, then an id the chain
	// refuses (not consecutive): the batch fails after writing some.
	queue(2*multiRows + 3)
	bad := oneSide(true, 1_700_000_011_000_000_000, "udp", "10.0.0.2:40001", "192.0.2.53:53", 7, dig, sampleIdent, sampleQuery, len(sampleQuery))
	bad.ID = 2
	s.InsertMessage(ctx, bad)
	if err := s.Commit(); err == nil {
		t.Fatal("a batch with a duplicate id committed")
	}
	queue(2*multiRows + 3)
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Finish(ctx, 1_700_000_019_000_000_000); err != nil {
		t.Fatal(err)
	}
	if r := dnstest.Verify(t, path); !r.OK() {
		t.Errorf("verify: %q", r.Problems)
	}
	db := dnstest.OpenRO(t, path)
	n := int64(2*multiRows + 3)
	var count, lo, hi, orphans int64
	if err := db.QueryRow(`SELECT count(*), min(id), max(id) FROM msgs WHERE id > 3`).Scan(&count, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if want := 3 + n + 1; count != n || lo != want || hi != want+n-1 {
		t.Errorf("msgs after the failed batch: %d rows, ids %d-%d; want %d, %d-%d", count, lo, hi, n, want, want+n-1)
	}
	if err := db.QueryRow(`SELECT count(*) FROM rrs WHERE message_id NOT IN (SELECT id FROM msgs)`).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("%d answers of no message (%v)", orphans, err)
	}
	if err := db.QueryRow(`SELECT count(*) FROM rrs r JOIN msgs m ON m.id = r.message_id WHERE m.id > 3`).Scan(&count); err != nil || count == 0 {
		t.Errorf("%d answers after the gap (%v)", count, err)
	}
}

// TestChainDigestsKnownAnswer: the digests the writer puts in the chain
// for the sample, table by table. The writer binds each row's values and
// hashes exactly what it binds: a change to what it binds, their order or
// their Go types changes these, and files written before no longer verify
// the same way. A schema version that adds a chained column changes its
// table's digest here; nothing else may.
func TestChainDigestsKnownAnswer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kat.db")
	chainedSample(t, path)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := map[string]string{
		"sessions":  "d408e829ed2611589d8f97206724ce1b5977496e24c286aacba9eedabb6253c3",
		"flows":     "403c5e750f5c6a2505e25183123e261f15d2453bf0f0c50feedc4f7c060d4241",
		"msgs":      "76e88f5a0e6eea279c03c739dbd174a846f94dcd88e997f246921cbace539c4b",
		"names":     "9d18befd2abc7a91d575fdd096927ef25a38b9199b2057e07580ebf700798c9b",
		"owners":    "bf98c5a407b8a913bdcc852bd6c97ad04febf4b1bd7b03d983679533ace9c38b",
		"processes": "c71fa8647dc78b6d2bee9b250320476dc2e2e429bf05396be8e17d99b7491224",
		"rrs":       "b8f80bd95233398edd0e9d51f357b14914c243a15f1cc02734a8e61df0998d4e",
		"loss":      "7901c19b369c931976422ba8901a3674944d2a825cb1f7eb71e36201cf7869d0",
		"spellings": "eb55938b51685ae4a400eb5c28a000d23c6d7634ce772a3ef65a9e796426885f",
	}
	rows, err := db.Query(`SELECT tables FROM chain ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var js string
		if err := rows.Scan(&js); err != nil {
			t.Fatal(err)
		}
		var tables map[string]schema.ChainRange
		if err := json.Unmarshal([]byte(js), &tables); err != nil {
			t.Fatal(err)
		}
		for name, r := range tables {
			got[name] = r.Digest
		}
	}
	for table, w := range want {
		if got[table] != w {
			t.Errorf("%s digest %s, want %s", table, got[table], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("tables hashed: %v", got)
	}
}
