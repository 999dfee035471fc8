//go:build linux && (amd64 || arm64)

package record

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Why a recording stopped by itself (Summary.Stopped).
var (
	errDuration = errors.New("duration reached")
	errMaxSize  = errors.New("max-size reached")
)

// sizeCheckEvery is how often a recording bounded by MaxSize looks at its
// file's size.
const sizeCheckEvery = 250 * time.Millisecond

// bound returns a context that ends like ctx, and also after
// opts.Duration or once the evidence file with its -wal reaches
// opts.MaxSize bytes; context.Cause says which.
func bound(ctx context.Context, opts Options) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	if opts.Duration > 0 {
		t := time.AfterFunc(opts.Duration, func() { cancel(errDuration) })
		context.AfterFunc(ctx, func() { t.Stop() })
	}
	if opts.MaxSize > 0 {
		go func() {
			tick := time.NewTicker(sizeCheckEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if fileSize(opts.Output) >= opts.MaxSize {
						cancel(errMaxSize)
						return
					}
				}
			}
		}()
	}
	return ctx, func() { cancel(context.Canceled) }
}

// fileSize is the size of an SQLite file and its -wal together.
func fileSize(path string) int64 {
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// stopReason says why a bounded recording stopped, or "" for a stop from
// outside (a signal).
func stopReason(ctx context.Context, opts Options) string {
	switch context.Cause(ctx) {
	case errDuration:
		return fmt.Sprintf("duration %s reached", opts.Duration)
	case errMaxSize:
		return fmt.Sprintf("max-size %d bytes reached", opts.MaxSize)
	}
	return ""
}
