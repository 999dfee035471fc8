package summary

import "testing"

// TestOutcomes: every status queryStatusSQL can give reads back as set,
// those past the byte (extended rcodes) included; the first response of
// a query wins, and a query without one reads as unanswered (-1).
func TestOutcomes(t *testing.T) {
	statuses := []int64{-3, -2, 0, 2, 5, 250, 251, 252, 1000, 4095}
	o := newOutcomes(int64(len(statuses)) + 2)
	for i, st := range statuses {
		o.set(int64(i+1), st)
		o.set(int64(i+1), 3) // a later response to the same query
	}
	for i, st := range statuses {
		if got := o.of(int64(i + 1)); got != st {
			t.Errorf("status %d read back as %d", st, got)
		}
	}
	if got := o.of(int64(len(statuses) + 1)); got != -1 {
		t.Errorf("a query without a response reads %d, want -1", got)
	}
	o.set(int64(len(statuses)+5), 0) // past the largest id: ignored
	if got := o.of(int64(len(statuses) + 5)); got != -1 {
		t.Errorf("an id past the extent reads %d, want -1", got)
	}
}
