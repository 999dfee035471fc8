package anchor

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Found is a checkpoint read from an anchor's output, not yet checked.
type Found struct {
	C      *Checkpoint // as its text says, before any signature check
	Signed []byte      // the signed note
	Line   int         // where it was found, from 1
}

// Read finds the checkpoints in what an anchor wrote: the file: anchor's
// lines, or a syslog file a receiver wrote (any line with
// "dnsrec-checkpoint ... note=BASE64" in it). Lines without one are skipped.
func Read(r io.Reader) ([]Found, error) {
	var out []Found
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		i := bytes.Index(line, []byte("dnsrec-checkpoint "))
		if i < 0 {
			continue
		}
		j := bytes.Index(line[i:], []byte(" note="))
		if j < 0 {
			continue
		}
		b64 := line[i+j+len(" note="):]
		if k := bytes.IndexAny(b64, " \t"); k >= 0 {
			b64 = b64[:k]
		}
		signed, err := base64.StdEncoding.DecodeString(string(b64))
		if err != nil {
			continue
		}
		c, err := parseText(noteText(signed))
		if err != nil {
			continue
		}
		out = append(out, Found{C: c, Signed: signed, Line: n})
	}
	return out, sc.Err()
}

// noteText is a signed note's text, unverified: everything up to the blank
// line before the signatures.
func noteText(signed []byte) string {
	s := string(signed)
	if i := strings.LastIndex(s, "\n\n"); i >= 0 {
		return s[:i+1]
	}
	return s
}

// File is what Check needs to know of an evidence file.
type File struct {
	Recording string // sessions.recording_id
	Part      int
	FirstKey  string   // sessions.sign_key: the key of the part's first checkpoint
	Heads     []string // chain link hashes, Heads[i] of link i+1
}

// Problem kinds.
const (
	KindNone      = "no-checkpoints" // the anchors hold none for this recording
	KindTailCut   = "tail-cut"       // the file ends before a checkpoint's batch
	KindRewritten = "head-differs"   // a checkpoint's batch has another hash in the file
	KindSignature = "signature"      // a signature or the key chain does not check
	KindGap       = "checkpoint-gap" // no checkpoint for longer than the interval allows
	KindNoStop    = "no-stop"        // the recording's checkpoints end without its stop
)

// Problem is one finding of Check.
type Problem struct {
	Kind  string
	Time  time.Time // of the checkpoint concerned
	N     int64     // its number
	Batch int64
	Text  string
}

// Result is Check's verdict.
type Result struct {
	Checked  int         // checkpoints of this file whose signature and key chain check
	Last     *Checkpoint // the last of them
	Problems []Problem
}

// gapSlack is what a checkpoint may be late by beyond its interval: a
// batch being written, a busy machine.
const gapSlack = 5 * time.Second

// Check compares f with the checkpoints found. trustKey, if set, is a
// verifier key known beforehand (a --sign-key's); otherwise the key chain
// starts from the file's own first key, and a part's first checkpoint must
// be signed by the key its session row names.
func Check(f File, found []Found, trustKey string) Result {
	var res Result
	problem := func(kind string, c *Checkpoint, format string, args ...any) {
		p := Problem{Kind: kind, Text: fmt.Sprintf(format, args...)}
		if c != nil {
			p.Time, p.N, p.Batch = c.Time(), c.N, c.Batch
		}
		res.Problems = append(res.Problems, p)
	}
	var mine []Found
	for _, x := range found {
		if x.C.Recording == f.Recording {
			mine = append(mine, x)
		}
	}
	if len(mine) == 0 {
		problem(KindNone, nil, "the anchors hold no checkpoint of recording %s", f.Recording)
		return res
	}
	sort.SliceStable(mine, func(i, j int) bool { return mine[i].C.N < mine[j].C.N })

	// The key chain: each checkpoint signed by the key its predecessor
	// named. A checkpoint forged with a key taken later is signed by the
	// wrong key for its place.
	var good []*Checkpoint
	var prev *Checkpoint
	seen := map[string]bool{}
	for _, x := range mine {
		c := x.C
		if seen[string(x.Signed)] {
			continue // the same checkpoint from two anchors
		}
		seen[string(x.Signed)] = true
		want := ""
		switch {
		case prev != nil && prev.N == c.N:
			problem(KindSignature, c, "checkpoint %d at %s (line %d) is a second, different checkpoint %d: forged", c.N, stamp(c), x.Line, c.N)
			continue
		case prev != nil && prev.N == c.N-1:
			want = prev.Next
		case c.N == 1 && trustKey != "":
			want = trustKey
		case c.N == 1 && f.Part <= 1:
			want = f.FirstKey
		case trustKey != "":
			want = trustKey
		}
		if want == "" {
			// The predecessor is missing: the signature is checked against
			// the key the checkpoint names, which proves nothing of its
			// origin; the break is reported.
			want = c.Key
			if prev != nil || c.N != 1 {
				problem(KindSignature, c, "key chain broken before checkpoint %d at %s: checkpoint %d is not in the anchors, so its key cannot be traced", c.N, stamp(c), c.N-1)
			}
		}
		v, err := note.NewVerifier(want)
		if err != nil {
			problem(KindSignature, c, "checkpoint %d at %s: key %q: %v", c.N, stamp(c), want, err)
			continue
		}
		if _, err := note.Open(x.Signed, note.VerifierList(v)); err != nil || c.Key != want {
			problem(KindSignature, c, "checkpoint %d at %s (line %d): not signed by the key the chain expects (%s): forged or altered", c.N, stamp(c), x.Line, keyID(want))
			continue
		}
		if c.Part == f.Part && c.Reason == ReasonStart && f.FirstKey != "" && c.Key != f.FirstKey {
			problem(KindSignature, c, "checkpoint %d at %s starts this part with key %s, the file's session names %s: the file was rewritten with new keys", c.N, stamp(c), keyID(c.Key), keyID(f.FirstKey))
		}
		good = append(good, c)
		prev = c
	}

	// The file against its checkpoints.
	var lastOK *Checkpoint
	cut, rewritten := 0, 0
	for _, c := range good {
		if c.Part != f.Part {
			continue
		}
		res.Checked++
		res.Last = c
		switch {
		case c.Batch > int64(len(f.Heads)):
			if cut++; cut == 1 {
				after := "no checkpoint of this file matches"
				if lastOK != nil {
					after = fmt.Sprintf("the last that matches is checkpoint %d at %s (batch %d)", lastOK.N, stamp(lastOK), lastOK.Batch)
				}
				problem(KindTailCut, c, "tail cut: checkpoint %d at %s saw batch %d (%d messages), the file ends at batch %d; %s",
					c.N, stamp(c), c.Batch, c.Messages, len(f.Heads), after)
			}
		case c.Batch >= 1 && f.Heads[c.Batch-1] != c.Head:
			if rewritten++; rewritten == 1 {
				problem(KindRewritten, c, "chain rewritten: checkpoint %d at %s says batch %d is %s, the file has %s",
					c.N, stamp(c), c.Batch, short(c.Head), short(f.Heads[c.Batch-1]))
			}
		default:
			lastOK = c
		}
	}
	if cut > 1 {
		res.Problems[len(res.Problems)-1].Text += fmt.Sprintf(" (%d later checkpoints are beyond the end too)", cut-1)
	}

	// Time between checkpoints, and the end.
	for i := 1; i < len(good); i++ {
		a, b := good[i-1], good[i]
		if a.Part != f.Part && b.Part != f.Part {
			continue
		}
		allowed := a.Interval + gapSlack
		if d := b.Time().Sub(a.Time()); a.Interval > 0 && d > allowed {
			problem(KindGap, a, "no checkpoint for %s between checkpoint %d at %s and %d at %s (interval %s): the recorder was stopped, stalled, or its checkpoints were removed",
				d.Round(time.Millisecond), a.N, stamp(a), b.N, stamp(b), a.Interval)
		}
	}
	if len(good) == 0 {
		return res
	}
	if last := good[len(good)-1]; last.Reason != ReasonStop && last.Part == f.Part {
		problem(KindNoStop, last, "the recording's checkpoints end at checkpoint %d at %s (batch %d) without a stop: the recorder was killed, or cut off from its anchors, after %s",
			last.N, stamp(last), last.Batch, stamp(last))
	}
	return res
}

func stamp(c *Checkpoint) string { return c.Time().Format(time.RFC3339Nano) }

func short(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return h
}

// keyID is a verifier key's name+hash, without the key itself.
func keyID(vkey string) string {
	if i := strings.LastIndex(vkey, "+"); i > 0 {
		return vkey[:i]
	}
	return vkey
}
