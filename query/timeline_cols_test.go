package query

import (
	"testing"
	"time"
)

// TestTimelineRowWidths: every kind of timeline row has one cell per
// TimelineColumns entry, so that a column added for one kind of row is
// added for all.
func TestTimelineRowWidths(t *testing.T) {
	now := time.Unix(1, 0)
	for name, row := range map[string][]any{
		"resolution": ResolutionTimelineRow(&Resolution{Time: now}),
		"encrypted":  ResolutionTimelineRow(&Resolution{Time: now, Enc: &EncConnEvent{Kind: "dot"}}),
		"event":      EventTimelineRow(&Event{Time: now, Kind: "start"}),
	} {
		if len(row) != len(TimelineColumns) {
			t.Errorf("%s row: %d cells, %d timeline columns", name, len(row), len(TimelineColumns))
		}
	}
}
