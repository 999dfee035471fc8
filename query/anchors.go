package query

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"time"

	"github.com/dnsrec/dnsrec/anchor"
)

// Problem kinds of a check against the anchors (VerifyOptions.Anchors).
const (
	ProblemNotAnchored   ProblemKind = "not-anchored"       // recorded without --anchor: nothing to check against
	ProblemNoCheckpoints ProblemKind = anchor.KindNone      // the anchors hold no checkpoint of this recording
	ProblemTailCut       ProblemKind = anchor.KindTailCut   // the file ends before a checkpoint's batch
	ProblemHeadDiffers   ProblemKind = anchor.KindRewritten // a checkpoint's batch hashes otherwise in the file
	ProblemSignature     ProblemKind = anchor.KindSignature // a signature or the key chain does not check
	ProblemGap           ProblemKind = anchor.KindGap       // checkpoints further apart than their interval allows
	ProblemNoStop        ProblemKind = anchor.KindNoStop    // the checkpoints end without the recording's stop
)

// VerifyOptions add to the check of each file's own chain.
type VerifyOptions struct {
	// Anchors, if set, is a file an anchor wrote (the file: anchor's, or
	// a syslog receiver's): each evidence file is also checked against
	// the signed checkpoints in it.
	Anchors string
	// Key, if set, is the verifier key the checkpoints must start from (a
	// --sign-key's public key); otherwise the file's own first key.
	Key string
}

// Anchored is what the check against the anchors found of one file.
type Anchored struct {
	Checked   int       // checkpoints of this file whose signature and key chain check
	LastTime  time.Time // the last of them
	LastBatch int64
}

// VerifyWith is Verify, and with o.Anchors also checks each file against
// the checkpoints that left the host (anchor.Check).
func (d *DB) VerifyWith(ctx context.Context, o VerifyOptions) ([]VerifyReport, error) {
	var found []anchor.Found
	if o.Anchors != "" {
		fh, err := os.Open(o.Anchors)
		if err != nil {
			return nil, fmt.Errorf("--anchors: %w", err)
		}
		found, err = anchor.Read(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("--anchors %s: %w", o.Anchors, err)
		}
	}
	var out []VerifyReport
	for _, f := range d.files {
		r, err := f.verify(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.path, err)
		}
		if o.Anchors != "" {
			if err := f.verifyAnchors(ctx, &r, found, o.Key); err != nil {
				return nil, fmt.Errorf("%s: %w", f.path, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *file) verifyAnchors(ctx context.Context, rep *VerifyReport, found []anchor.Found, key string) error {
	rep.Anchored = &Anchored{}
	var af anchor.File
	if f.version >= 12 {
		var rec, sk sql.NullString
		var part sql.NullInt64
		err := f.db.QueryRowContext(ctx, `SELECT recording_id, sign_key, part FROM sessions ORDER BY id LIMIT 1`).Scan(&rec, &sk, &part)
		if err != nil && err != sql.ErrNoRows {
			return fmt.Errorf("read sessions: %w", err)
		}
		af.Recording, af.FirstKey, af.Part = rec.String, sk.String, int(part.Int64)
	}
	if af.Recording == "" {
		rep.Problems = append(rep.Problems, VerifyProblem{Kind: ProblemNotAnchored,
			Text: "recorded without --anchor (no recording id in the session): there are no checkpoints to check it against"})
		return nil
	}
	links, err := f.chainLinks(ctx)
	if err != nil {
		return err
	}
	for _, l := range links {
		af.Heads = append(af.Heads, l.hash)
	}
	res := anchor.Check(af, found, key)
	rep.Anchored.Checked = res.Checked
	if res.Last != nil {
		rep.Anchored.LastTime, rep.Anchored.LastBatch = res.Last.Time(), res.Last.Batch
	}
	for _, p := range res.Problems {
		vp := VerifyProblem{Kind: ProblemKind(p.Kind), Batch: p.Batch, Text: p.Text}
		if !p.Time.IsZero() {
			vp.Time = p.Time.Format(time.RFC3339Nano)
		}
		rep.Problems = append(rep.Problems, vp)
	}
	return nil
}
