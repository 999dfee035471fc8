package anchor

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// recording makes n checkpoints of a made-up file whose chain grows by one
// link per checkpoint, every interval from t0, and returns the file, the
// lines an anchor would hold, and the keys (still holding the next key).
func recording(t *testing.T, n int, interval time.Duration, t0 time.Time, stop bool) (File, []string, *Keys) {
	t.Helper()
	rec := NewRecordingID()
	keys, err := NewKeys(rec)
	if err != nil {
		t.Fatal(err)
	}
	f := File{Recording: rec, FirstKey: keys.First()}
	var lines []string
	for i := 1; i <= n; i++ {
		f.Heads = append(f.Heads, fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)})))
		reason := ReasonPeriodic
		switch {
		case i == 1:
			reason = ReasonStart
		case i == n && stop:
			reason = ReasonStop
		}
		c := &Checkpoint{Recording: rec, N: int64(i), Batch: int64(i), Head: f.Heads[i-1], Messages: int64(10 * i),
			TimeNs: t0.Add(time.Duration(i-1) * interval).UnixNano(), Interval: interval, Reason: reason}
		signed, err := keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, Line(c, signed))
	}
	return f, lines, keys
}

func check(t *testing.T, f File, lines []string, trust string) Result {
	t.Helper()
	found, err := Read(strings.NewReader("unrelated line\n" + strings.Join(lines, "\n") + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return Check(f, found, trust)
}

func kinds(r Result) []string {
	var k []string
	for _, p := range r.Problems {
		k = append(k, p.Kind)
	}
	return k
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

func TestCheckClean(t *testing.T) {
	f, lines, _ := recording(t, 5, 10*time.Second, t0, true)
	r := check(t, f, lines, "")
	if len(r.Problems) != 0 || r.Checked != 5 || r.Last.N != 5 {
		t.Fatalf("checked %d, problems %v", r.Checked, r.Problems)
	}
}

// TestCheckTailCut: the file lost its last two links; the first checkpoint
// beyond its end is named, with its time.
func TestCheckTailCut(t *testing.T) {
	f, lines, _ := recording(t, 5, 10*time.Second, t0, true)
	f.Heads = f.Heads[:3]
	r := check(t, f, lines, "")
	if len(r.Problems) != 1 || r.Problems[0].Kind != KindTailCut || r.Problems[0].N != 4 || !r.Problems[0].Time.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("problems %+v", r.Problems)
	}
	if !strings.Contains(r.Problems[0].Text, "2026-12-07T10:00:30Z saw batch 4") || !strings.Contains(r.Problems[0].Text, "the file ends at batch 3") {
		t.Errorf("text: %s", r.Problems[0].Text)
	}
}

func TestCheckRewritten(t *testing.T) {
	f, lines, _ := recording(t, 4, 10*time.Second, t0, true)
	f.Heads[2] = strings.Repeat("ab", 32)
	r := check(t, f, lines, "")
	if len(r.Problems) != 1 || r.Problems[0].Kind != KindRewritten || r.Problems[0].N != 3 {
		t.Fatalf("problems %+v", r.Problems)
	}
}

// TestForwardSecurity: a key taken from the recorder now cannot make a
// checkpoint from before now: one forged with it, numbered as an earlier
// one, does not check. Keys already used are erased.
func TestForwardSecurity(t *testing.T) {
	f, lines, keys := recording(t, 4, 10*time.Second, t0, false)
	// What an attacker finds in memory: the key of the next checkpoint.
	stolen := edSigner{keys.name, keys.cur}
	if isZero(keys.cur.priv) {
		t.Fatal("the next key is erased before use")
	}
	// Checkpoint 2 rewritten to a forged head, signed with the stolen key
	// and naming it, as the attacker would.
	c := &Checkpoint{Recording: f.Recording, N: 2, Batch: 2, Head: strings.Repeat("cd", 32), Messages: 20,
		TimeNs: t0.Add(10 * time.Second).UnixNano(), Interval: 10 * time.Second, Reason: ReasonPeriodic, Key: keys.cur.vkey, Next: keys.next.vkey}
	forged, err := note.Sign(&note.Note{Text: c.Text()}, stolen)
	if err != nil {
		t.Fatal(err)
	}
	lines[1] = Line(c, forged) // the genuine checkpoint 2 removed from the anchor
	f.Heads[1] = c.Head        // and the file rewritten to match the forgery
	r := check(t, f, lines, "")
	var sig, chain bool
	for _, p := range r.Problems {
		if p.Kind == KindSignature && p.N == 2 && strings.Contains(p.Text, "not signed by the key the chain expects") {
			sig = true
		}
		if p.Kind == KindSignature && p.N == 3 && strings.Contains(p.Text, "key chain broken") {
			chain = true
		}
	}
	if !sig || !chain {
		t.Fatalf("forged checkpoint 2 passed: %+v", r.Problems)
	}
}

// TestKeysErased: each key is overwritten once it has signed.
func TestKeysErased(t *testing.T) {
	keys, err := NewKeys(NewRecordingID())
	if err != nil {
		t.Fatal(err)
	}
	first := keys.cur
	priv := first.priv
	if _, err := keys.Sign(&Checkpoint{Recording: "r", N: 1}); err != nil {
		t.Fatal(err)
	}
	if !isZero(priv) || len(priv) != ed25519.PrivateKeySize {
		t.Fatalf("used key not erased: %x", priv[:8])
	}
	if _, err := (edSigner{keys.name, first}).Sign([]byte("x\n")); err == nil {
		t.Fatal("an erased key signed")
	}
	keys.Close()
	if !isZero(keys.cur.priv) || !isZero(keys.next.priv) {
		t.Fatal("Close left keys")
	}
}

func TestCheckGapAndNoStop(t *testing.T) {
	// Checkpoints every 2 s that end without a stop: killed.
	f, lines, _ := recording(t, 4, 2*time.Second, t0, false)
	found, _ := Read(strings.NewReader(strings.Join(lines, "\n")))
	r := Check(f, found, "")
	if k := kinds(r); len(k) != 1 || k[0] != KindNoStop || r.Problems[0].N != 4 {
		t.Fatalf("problems %+v", r.Problems)
	}
	// Checkpoints whose last, the stop, came a minute late: the
	// recorder was stopped (SIGSTOP) or its checkpoints removed.
	rec := NewRecordingID()
	keys, _ := NewKeys(rec)
	f = File{Recording: rec, FirstKey: keys.First()}
	lines = nil
	for i, at := range []time.Duration{0, 2 * time.Second, 4 * time.Second, 64 * time.Second} {
		f.Heads = append(f.Heads, fmt.Sprintf("%064x", i+1))
		reason := ReasonPeriodic
		if i == 3 {
			reason = ReasonStop
		}
		c := &Checkpoint{Recording: rec, N: int64(i + 1), Batch: int64(i + 1), Head: f.Heads[i], TimeNs: t0.Add(at).UnixNano(), Interval: 2 * time.Second, Reason: reason}
		signed, _ := keys.Sign(c)
		lines = append(lines, Line(c, signed))
	}
	r = check(t, f, lines, "")
	if k := kinds(r); len(k) != 1 || k[0] != KindGap || r.Problems[0].N != 3 || !strings.Contains(r.Problems[0].Text, "no checkpoint for 1m0s") {
		t.Fatalf("problems %+v", r.Problems)
	}
}

// TestCheckWrongFirstKey: a file rewritten whole, with a session naming a
// key of the attacker's, does not start the anchors' key chain.
func TestCheckWrongFirstKey(t *testing.T) {
	f, lines, _ := recording(t, 3, 10*time.Second, t0, true)
	other, _ := NewKeys(f.Recording)
	f.FirstKey = other.First()
	r := check(t, f, lines, "")
	if len(r.Problems) == 0 || r.Problems[0].Kind != KindSignature || r.Problems[0].N != 1 {
		t.Fatalf("problems %+v", r.Problems)
	}
}

// TestFixedKey: with --sign-key every checkpoint is signed by the one key,
// and a verifier that knows it beforehand checks them against it.
func TestFixedKey(t *testing.T) {
	skey, vkey, err := note.GenerateKey(nil, "dnsrec-case")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := VerifierKey(skey); err != nil || got != vkey {
		t.Fatalf("VerifierKey: %q %v, want %q", got, err, vkey)
	}
	keys, err := FixedKeys(skey + "\n")
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecordingID()
	f := File{Recording: rec, FirstKey: keys.First(), Heads: []string{"h1", "h2"}}
	var lines []string
	for i := 1; i <= 2; i++ {
		c := &Checkpoint{Recording: rec, N: int64(i), Batch: int64(i), Head: f.Heads[i-1], TimeNs: t0.UnixNano(), Interval: time.Second, Reason: []string{ReasonStart, ReasonStop}[i-1]}
		signed, err := keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, Line(c, signed))
	}
	if r := check(t, f, lines, vkey); len(r.Problems) != 0 || r.Checked != 2 {
		t.Fatalf("problems %+v", r.Problems)
	}
	_, other, _ := note.GenerateKey(nil, "dnsrec-case")
	if r := check(t, f, lines, other); len(r.Problems) == 0 || r.Problems[0].Kind != KindSignature {
		t.Fatalf("checked against another key: %+v", r.Problems)
	}
}

// TestReadSyslog: checkpoints are found inside a receiver's syslog lines,
// and a line cut short in its note is skipped.
func TestReadSyslog(t *testing.T) {
	_, lines, _ := recording(t, 2, time.Second, t0, true)
	var b bytes.Buffer
	for _, l := range lines {
		fmt.Fprintf(&b, "2026-12-07T10:00:00+00:00 host dnsrec[42]: %s\n", l)
	}
	b.WriteString("2026-12-07T10:00:00+00:00 host dnsrec[42]: " + lines[0][:strings.Index(lines[0], "note=")+7] + "\n")
	found, err := Read(&b)
	if err != nil || len(found) != 2 || found[1].C.N != 2 || found[1].Line != 2 {
		t.Fatalf("found %d: %v", len(found), err)
	}
}
