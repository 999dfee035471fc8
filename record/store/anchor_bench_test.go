package store

import (
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/anchor"
)

// recorderCores5k is the recorder's CPU at 5k qps, in cores (docs/cost.md).
const recorderCores5k = 0.07

// BenchmarkCheckpoint is the recorder's work for one checkpoint: sign the
// chain head with a fresh key (and make the next), queue the line for an
// anchor, and queue the anchors' counts for the next batch. At the default
// interval it happens every 10 s; the metric pct-of-recorder-5k is that
// work per second as a share of the recorder's CPU at 5k qps. There the
// counts ride a batch of messages that is committed anyway (one every
// 200 ms); "own-commit" is what an idle recorder pays instead, a batch of
// its own every 10 s, for a recording with nothing else to commit.
func BenchmarkCheckpoint(b *testing.B) {
	b.Run("sign+queue", func(b *testing.B) { benchCheckpoint(b, false) })
	b.Run("own-commit", func(b *testing.B) { benchCheckpoint(b, true) })
}

func benchCheckpoint(b *testing.B, commit bool) {
	s, err := Create(b.Context(), filepath.Join(b.TempDir(), "bench.db"), false)
	if err != nil {
		b.Fatal(err)
	}
	if err := s.BeginSession(b.Context(), testSession); err != nil {
		b.Fatal(err)
	}
	rec := anchor.NewRecordingID()
	keys, err := anchor.NewKeys(rec)
	if err != nil {
		b.Fatal(err)
	}
	set, err := anchor.Open([]string{"-"}, anchor.Options{Stderr: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer set.Close(time.Second)
	b.ResetTimer()
	for i := range b.N {
		seq, head := s.Head()
		c := &anchor.Checkpoint{Recording: rec, N: int64(i + 1), Batch: seq, Head: head, Messages: s.Messages(),
			TimeNs: time.Now().UnixNano(), Interval: 10 * time.Second, Reason: anchor.ReasonPeriodic}
		signed, err := keys.Sign(c)
		if err != nil {
			b.Fatal(err)
		}
		set.Send(c, anchor.Line(c, signed))
		var rows []AnchorRow
		for _, st := range set.Stats() {
			rows = append(rows, AnchorRow{Dest: st.Dest, Made: st.Made, Sent: st.Sent, Dropped: st.Dropped, Queued: st.Queued, Err: st.Err})
		}
		s.InsertAnchors(time.Now().UnixNano(), rows)
		if commit || i%50 == 49 { // else the queue grows with b.N
			if err := s.Commit(); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	perCheckpoint := b.Elapsed().Seconds() / float64(b.N)
	pct := perCheckpoint / (10 * recorderCores5k) * 100 // every 10 s, against 0.07 cores
	if commit {
		b.ReportMetric(perCheckpoint*1e3, "ms/idle-checkpoint")
		return
	}
	b.ReportMetric(pct, "pct-of-recorder-5k")
	b.Logf("one checkpoint: %.0f µs; every 10 s against the recorder's %.2f cores at 5k qps: %.3f%% (< 1%%)", perCheckpoint*1e6, recorderCores5k, pct)
	if pct >= 1 {
		b.Errorf("checkpoint work is %.3f%% of the recorder's CPU at 5k qps, want < 1%%", pct)
	}
}
