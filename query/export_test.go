package query

import "context"

// DisableSummary makes d's who-resolved and resolved-to read the messages,
// for tests that compare the two ways.
func DisableSummary(d *DB) {
	for _, f := range d.files {
		f.noSummary = true
	}
}

// Summarized tells whether every file of d answers from its summary of
// kind ("who" for who-resolved, "addr" for resolved-to).
func Summarized(ctx context.Context, d *DB, kind string) (bool, error) {
	for _, s := range Summaries {
		if s.Kind != kind {
			continue
		}
		for _, f := range d.files {
			ok, err := f.summarized(ctx, s)
			if !ok || err != nil {
				return false, err
			}
		}
		return len(d.files) > 0, nil
	}
	return false, nil
}
