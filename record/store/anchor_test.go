package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/anchor"
	dnsquery "github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/schema"
)

// anchoredRecording writes a recording the way the recorder does with
// --anchor file:ANCHORS: a start checkpoint after the session, one after
// each of batches batches, and one after the stop link.
func anchoredRecording(t *testing.T, path, anchors string, batches int) {
	t.Helper()
	ctx := context.Background()
	rec := anchor.NewRecordingID()
	keys, err := anchor.NewKeys(rec)
	if err != nil {
		t.Fatal(err)
	}
	set, err := anchor.Open([]string{"file:" + anchors}, anchor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := Create(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	sess := testSession
	sess.RecordingID, sess.SignKey = rec, keys.First()
	if err := s.BeginSession(ctx, sess); err != nil {
		t.Fatal(err)
	}
	n := int64(0)
	mk := func(seq int64, head string, msgs int64, reason string) {
		n++
		c := &anchor.Checkpoint{Recording: rec, N: n, Batch: seq, Head: head, Messages: msgs, TimeNs: time.Now().UnixNano(),
			Interval: 10 * time.Second, Reason: reason}
		signed, err := keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		set.Send(c, anchor.Line(c, signed))
	}
	seq, head := s.Head()
	mk(seq, head, s.Messages(), anchor.ReasonStart)
	for i := range batches {
		q := oneSide(true, 1_700_000_001_000_000_000+int64(i)*1e9, "udp", fmt.Sprintf("10.0.0.2:%d", 40000+i), "192.0.2.53:53", 0, 0, nil, sampleQuery, len(sampleQuery))
		if err := s.InsertMessage(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(); err != nil {
			t.Fatal(err)
		}
		seq, head := s.Head()
		mk(seq, head, s.Messages(), anchor.ReasonPeriodic)
	}
	s.OnStop = func(seq int64, head string, msgs int64) { mk(seq, head, msgs, anchor.ReasonStop) }
	if _, err := s.Finish(ctx, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	if st := set.Close(5 * time.Second); st[0].Sent != n || st[0].Dropped != 0 {
		t.Fatalf("anchor: %+v, want %d sent", st[0], n)
	}
}

func verifyWith(t *testing.T, path, anchors string) dnsquery.VerifyReport {
	t.Helper()
	db, err := dnsquery.Open(context.Background(), []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.VerifyWith(context.Background(), dnsquery.VerifyOptions{Anchors: anchors})
	if err != nil {
		t.Fatal(err)
	}
	return rs[0]
}

func edit(t *testing.T, path string, f func(db *sql.DB)) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	f(db)
}

func mustExec(t *testing.T, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestAnchoredClean: an untouched file matches every checkpoint.
func TestAnchoredClean(t *testing.T) {
	dir := t.TempDir()
	path, anchors := filepath.Join(dir, "case.db"), filepath.Join(dir, "anchor.log")
	anchoredRecording(t, path, anchors, 3)
	r := verifyWith(t, path, anchors)
	if !r.OK() || r.Anchored == nil || r.Anchored.Checked != 5 || r.Anchored.LastBatch != r.Links {
		t.Fatalf("report %+v anchored %+v", r.Problems, r.Anchored)
	}
}

// TestAnchoredTailCut: the attacker deletes the last batches (after two
// checkpoints had left), their links and the stop, as the issue's
// attacker did. verify alone finds a consistent file that did not stop
// cleanly; against the anchors it names the cut and its time.
func TestAnchoredTailCut(t *testing.T) {
	dir := t.TempDir()
	path, anchors := filepath.Join(dir, "case.db"), filepath.Join(dir, "anchor.log")
	anchoredRecording(t, path, anchors, 3) // links: 1 session, 2-4 batches, 5 stop
	const keep = 2
	edit(t, path, func(db *sql.DB) {
		rows, err := db.Query(`SELECT tables FROM chain WHERE seq > ?`, keep)
		if err != nil {
			t.Fatal(err)
		}
		var cut []map[string]schema.ChainRange
		for rows.Next() {
			var js string
			rows.Scan(&js)
			var m map[string]schema.ChainRange
			json.Unmarshal([]byte(js), &m)
			cut = append(cut, m)
		}
		rows.Close()
		for _, m := range cut {
			for table, r := range m {
				mustExec(t, db, `DELETE FROM `+table+` WHERE id BETWEEN ? AND ?`, r.First, r.Last)
			}
		}
		mustExec(t, db, `DELETE FROM chain WHERE seq > ?`, keep)
		mustExec(t, db, `UPDATE sessions SET stopped_ns = NULL`)
		// The summaries a clean stop wrote go too, as after a kill.
		mustExec(t, db, `DELETE FROM who_summary`)
		mustExec(t, db, `DELETE FROM addr_summary`)
		mustExec(t, db, `DELETE FROM summaries`)
	})
	if r := verifyWith(t, path, ""); !r.OK() || r.Stopped || r.Links != keep {
		t.Fatalf("verify alone: %+v", r.Problems)
	}
	r := verifyWith(t, path, anchors)
	var cutAt *dnsquery.VerifyProblem
	for i, p := range r.Problems {
		if p.Kind == dnsquery.ProblemTailCut {
			cutAt = &r.Problems[i]
		}
	}
	// Checkpoint 3 saw batch 3: the first beyond the cut file.
	if cutAt == nil || cutAt.Batch != keep+1 || cutAt.Time == "" || !strings.Contains(cutAt.Text, "checkpoint 3 at "+cutAt.Time+" saw batch 3") ||
		!strings.Contains(cutAt.Text, "the file ends at batch 2") {
		t.Fatalf("no tail cut named: %+v", r.Problems)
	}
	if r.Problems[0].Kind != dnsquery.ProblemTailCut || len(r.Problems) != 1 {
		t.Errorf("problems: %+v", r.Problems)
	}
}

// TestAnchoredRewrite: a message is rewritten and the whole chain rebuilt
// with the project's own hashing. verify alone says ok; against the
// anchors the first checkpoint after the change fails.
func TestAnchoredRewrite(t *testing.T) {
	dir := t.TempDir()
	path, anchors := filepath.Join(dir, "case.db"), filepath.Join(dir, "anchor.log")
	anchoredRecording(t, path, anchors, 3)
	edit(t, path, func(db *sql.DB) {
		var raw []byte
		if err := db.QueryRow(`SELECT raw FROM msgs WHERE id = 2`).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		raw[0] ^= 0xff // the DNS id
		mustExec(t, db, `UPDATE msgs SET raw = ? WHERE id = 2`, raw)
		rebuildChain(t, db)
	})
	if r := verifyWith(t, path, ""); !r.OK() {
		t.Fatalf("verify alone should pass a rebuilt chain: %+v", r.Problems)
	}
	r := verifyWith(t, path, anchors)
	if len(r.Problems) != 1 || r.Problems[0].Kind != dnsquery.ProblemHeadDiffers || r.Problems[0].Batch != 3 ||
		!strings.Contains(r.Problems[0].Text, "checkpoint 3 at "+r.Problems[0].Time) {
		t.Fatalf("problems: %+v", r.Problems)
	}
}

// rebuildChain recomputes every link's digests and hashes from the rows, as
// an attacker with the source code would.
func rebuildChain(t *testing.T, db *sql.DB) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, ts_ns, tables, exits, stopped_ns FROM chain ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var links []*schema.ChainLink
	for rows.Next() {
		l := &schema.ChainLink{}
		var tables, exits string
		var stopped sql.NullInt64
		if err := rows.Scan(&l.Seq, &l.TsNs, &tables, &exits, &stopped); err != nil {
			t.Fatal(err)
		}
		json.Unmarshal([]byte(tables), &l.Tables)
		json.Unmarshal([]byte(exits), &l.Exits)
		if stopped.Valid {
			l.StoppedNs = &stopped.Int64
		}
		links = append(links, l)
	}
	rows.Close()
	prev := ""
	for _, l := range links {
		for _, ct := range schema.ChainTables {
			r, ok := l.Tables[ct.Name]
			if !ok {
				continue
			}
			h := schema.NewRowHasher()
			rs, err := db.Query(`SELECT `+ct.Columns+` FROM `+ct.Name+` WHERE id BETWEEN ? AND ? ORDER BY id`, r.First, r.Last)
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rs.Columns()
			vals, ptrs := make([]any, len(cols)), make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			for rs.Next() {
				rs.Scan(ptrs...)
				h.Row(vals)
			}
			rs.Close()
			r.Digest = h.Sum()
			l.Tables[ct.Name] = r
		}
		l.Prev = prev
		prev = l.Hash()
		mustExec(t, db, `UPDATE chain SET prev = ?, tables = ?, hash = ? WHERE seq = ?`, l.Prev, l.TablesJSON(), prev, l.Seq)
	}
}

// TestAnchoredNotAnchored: a file recorded without --anchor cannot pass a
// check against anchors.
func TestAnchoredNotAnchored(t *testing.T) {
	dir := t.TempDir()
	path, anchors := filepath.Join(dir, "plain.db"), filepath.Join(dir, "anchor.log")
	chainedSample(t, path)
	anchoredRecording(t, filepath.Join(dir, "other.db"), anchors, 1)
	r := verifyWith(t, path, anchors)
	if len(r.Problems) != 1 || r.Problems[0].Kind != dnsquery.ProblemNotAnchored {
		t.Fatalf("problems: %+v", r.Problems)
	}
}
