package record

import (
	"strings"
	"time"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record/store"
)

// The defaults build on every platform: the command line shows them in
// record's help even where it cannot record.

// Defaults for Options' zero values.
const (
	// DefaultSnaplen keeps every message whole: a DNS message is at most
	// 65535 bytes, and 65536 is the largest the kernel side keeps
	// (bpf.MaxSnaplen).
	DefaultSnaplen       = 65536
	DefaultRingBytes     = 4 << 20
	DefaultBatchSize     = store.DefaultBatchSize
	DefaultBatchInterval = 200 * time.Millisecond
	// DefaultCheckpointEvery is how often a signed checkpoint is made
	// when there are anchors.
	DefaultCheckpointEvery = 10 * time.Second
	DefaultOwnerWait       = time.Second
	// DefaultMemoryLimit is the recorder's soft Go memory limit (see
	// runtime/debug.SetMemoryLimit): above what is live at saturation (the
	// reader's backlog, the batch, the open transactions), so that it binds
	// only in bursts, where the heap would otherwise grow to twice that and
	// more before a collection.
	DefaultMemoryLimit = "24MiB"
)

// DefaultNice is the default scheduling niceness of the recorder's writer:
// none. A lowered writer gives CPU back to the services it watches on a
// saturated host, but it does so by storing less (the ring buffer overflows,
// and the loss is counted), and it loses messages even at rates the host
// could record in full: evidence comes first by default. Only the writer's
// thread is lowered: the ring buffer reader keeps its priority. docs/cost.md has
// the measurements.
const DefaultNice = 0

// TierNames lists the tiers --hook takes besides auto.
func TierNames() string {
	names := make([]string, len(bpf.Tiers))
	for i, t := range bpf.Tiers {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}
