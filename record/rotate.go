//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"errors"
	"fmt"
	"github.com/dnsrec/dnsrec/anchor"
	"github.com/dnsrec/dnsrec/record/store"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Rotation (Options.RotateEvery, RotateSize): the recording is a series of
// files, case-0001.db, case-0002.db, ..., each standing alone: its own
// sessions row, chain and SHA-256. At a rotation every row built so far is
// committed to the old file (a loopback message whose second side has not
// arrived yet is stored as seen, one side in each file); the new file is
// created and its session written before the old one is finished, and the
// old one is finished (stop link, query indexes, out of WAL mode, hashed)
// on another goroutine while recording goes on into the new one, so that
// the ring buffer is read throughout. What a file's rows point at (names,
// flows, owners, processes) is written again in the next file as it is
// first needed there; a response in the new file to a query in the old one
// is not linked to it (it would name a row of another file).

// RotatedPath is the name of file n of a rotated recording whose output
// was given as output: case.db -> case-0001.db.
func RotatedPath(output string, n int) string {
	ext := filepath.Ext(output)
	if ext == "" || strings.ContainsRune(ext, os.PathSeparator) {
		ext = ""
	}
	return fmt.Sprintf("%s-%04d%s", strings.TrimSuffix(output, ext), n, ext)
}

// rotatedFiles lists the files of a rotated recording of output that
// exist, by number.
func rotatedFiles(output string) (map[int]string, error) {
	dir, name := filepath.Split(output)
	ext := filepath.Ext(name)
	prefix := strings.TrimSuffix(name, ext) + "-"
	ents, err := os.ReadDir(cleanDir(dir))
	if err != nil {
		return nil, err
	}
	found := map[int]string{}
	for _, e := range ents {
		n, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok {
			continue
		}
		n, ok = strings.CutSuffix(n, ext)
		if !ok || len(n) < 4 || strings.Trim(n, "0123456789") != "" {
			continue
		}
		if i, err := strconv.Atoi(n); err == nil && i > 0 && RotatedPath(output, i) == filepath.Join(dir, e.Name()) {
			found[i] = filepath.Join(dir, e.Name())
		}
	}
	return found, nil
}

func cleanDir(dir string) string {
	if dir == "" {
		return "."
	}
	return dir
}

// checkRotationOutput refuses to start a rotated recording over the files
// of an earlier one (they would be mixed with the new ones, and --keep
// would delete them), unless force is set.
func checkRotationOutput(output string, force bool) error {
	if force {
		return nil
	}
	found, err := rotatedFiles(output)
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if len(found) > 0 {
		first := 0
		for n := range found {
			if first == 0 || n < first {
				first = n
			}
		}
		return fmt.Errorf("refusing to start a rotated recording: %s (and %d file(s) of its series) exist from an earlier recording; use another -o, move them, or --force to replace them",
			found[first], len(found))
	}
	return nil
}

// rotation is a rotated recording's state: which file is being written,
// and the finisher of the files before it.
type rotation struct {
	base        string // the output as given: files are RotatedPath(base, n)
	part        int    // the file being written
	fileStarted time.Time
	retryAt     time.Time // after a failed rotation, when to try again
	lossBase    Loss      // loss counted before this file began

	mu       sync.Mutex
	wg       sync.WaitGroup
	jobs     chan finishJob
	errs     []error
	onDisk   []int // finished files not removed by Keep, oldest first
	keep     int
	closed   func(Summary, error)
	log      func(msg string, args ...any)
	warnings func(msg string, args ...any)
}

type finishJob struct {
	store     *store.Store
	part      int
	stoppedNs int64
}

func newRotation(opts Options) *rotation {
	r := &rotation{base: opts.Output, part: 1, fileStarted: time.Now(), keep: opts.Keep, closed: opts.Closed,
		jobs: make(chan finishJob, 64), log: opts.Logger.Info, warnings: opts.Logger.Error}
	r.wg.Add(1)
	go r.finisher()
	return r
}

// due tells whether the file being written should be closed now.
func (r *rotation) due(opts Options, now time.Time) bool {
	if now.Before(r.retryAt) {
		return false
	}
	if opts.RotateEvery > 0 && now.Sub(r.fileStarted) >= opts.RotateEvery {
		return true
	}
	return opts.RotateSize > 0 && fileSize(RotatedPath(r.base, r.part)) >= opts.RotateSize
}

// finisher finishes the files rotated out, one at a time, in order, and
// then applies Keep.
func (r *rotation) finisher() {
	defer r.wg.Done()
	for j := range r.jobs {
		sum, err := j.store.Finish(context.Background(), j.stoppedNs)
		sum.Stopped = "rotated"
		if err != nil {
			err = fmt.Errorf("finish %s: %w", j.store.Path(), err)
			r.mu.Lock()
			r.errs = append(r.errs, err)
			r.mu.Unlock()
		}
		if r.closed != nil {
			r.closed(sum, err)
		}
		r.finished(j.part)
	}
}

// finished records that file part is complete and removes the oldest
// files beyond Keep (counting the one being written).
func (r *rotation) finished(part int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onDisk = append(r.onDisk, part)
	if r.keep <= 0 {
		return
	}
	for len(r.onDisk) > 0 && r.onDisk[0] <= r.part-r.keep {
		old := RotatedPath(r.base, r.onDisk[0])
		r.onDisk = r.onDisk[1:]
		var errs []error
		for _, p := range []string{old, old + "-wal", old + "-shm"} {
			if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		if err := errors.Join(errs...); err != nil {
			r.warnings("could not remove an old evidence file beyond --keep", "file", old, "err", err)
		} else {
			r.log("removed old evidence file", "file", old, "keep", r.keep)
		}
	}
}

// wait finishes every file rotated out and returns what failed.
func (r *rotation) wait() error {
	close(r.jobs)
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// rotate closes the file being written and continues in the next one.
// Everything built so far is committed first; the old file is finished in
// the background. If the next file cannot be created, recording goes on in
// the current one and the rotation is tried again a little later.
func (p *pipeline) rotate(ctx context.Context) error {
	r := p.rot
	if err := p.commitRows(ctx, true); err != nil {
		return err
	}
	next := RotatedPath(r.base, r.part+1)
	st, err := store.Create(ctx, next, p.opts.Force)
	if err == nil {
		sess := p.session()
		sess.Part = r.part + 1
		if err = p.beginSession(ctx, st, sess); err != nil {
			st.Finish(ctx, time.Now().UnixNano())
			os.Remove(next)
		}
	}
	if err != nil {
		r.retryAt = time.Now().Add(rotateRetry)
		p.opts.Logger.Error("could not start the next file; recording goes on in the current one", "file", next, "err", err, "retry_in", rotateRetry)
		return nil
	}
	old := p.store
	// The file's own stop: its finish (Finish) commits this first.
	p.eventIn(ctx, old, time.Now().UnixNano(), EventStop, fmt.Sprintf("rotated out: recording goes on in part %d, %s", r.part+1, next))
	p.checkpointAtStop(old, anchor.ReasonRotate)
	r.jobs <- finishJob{store: old, part: r.part, stoppedNs: time.Now().UnixNano()}
	r.mu.Lock()
	r.part++
	r.mu.Unlock()
	r.fileStarted = time.Now()
	p.store = st
	p.opts.Output = next
	p.opts.Logger.Info("rotated", "closed", old.Path(), "output", next, "part", r.part)

	// What pointed into the old file starts again.
	r.lossBase = p.lastLoss
	p.storedLoss = Loss{}
	clear(p.outstanding)
	p.lastMsgID = 0
	p.loggedSeq = 0
	p.lastCheckpoint = time.Now()
	p.procs.forgetRows()
	// The probes attached before still watch: say so in this file too.
	for _, pr := range p.probes {
		if err := st.InsertProbe(ctx, pr); err != nil {
			p.opts.Logger.Warn("could not note a probed file in the evidence", "path", pr.Path, "err", err)
		}
	}
	return p.event(ctx, time.Now().UnixNano(), EventStart, p.startDetail())
}

// rotateRetry is how long a failed rotation waits before the next try.
const rotateRetry = 10 * time.Second
