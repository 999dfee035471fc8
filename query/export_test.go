package query

import "context"

// DisableSummary makes d's who-resolved read the messages, for tests that
// compare the two ways.
func DisableSummary(d *DB) {
	for _, f := range d.files {
		f.noSummary = true
	}
}

// WhoSummarized tells whether every file of d answers who-resolved from its
// summary.
func WhoSummarized(ctx context.Context, d *DB) (bool, error) {
	for _, f := range d.files {
		ok, err := f.whoSummarized(ctx)
		if !ok || err != nil {
			return false, err
		}
	}
	return len(d.files) > 0, nil
}

// AddrSummarized tells whether every file of d answers resolved-to from
// its summary.
func AddrSummarized(ctx context.Context, d *DB) (bool, error) {
	for _, f := range d.files {
		ok, err := f.summarized(ctx, "addr", 7)
		if !ok || err != nil {
			return false, err
		}
	}
	return len(d.files) > 0, nil
}
