package record

import "time"

// The defaults build on every platform: the command line shows them in
// record's help even where it cannot record.

// Defaults for Options' zero values.
const (
	// DefaultSnaplen keeps every message whole: a DNS message is at most
	// 65535 bytes, and 65536 is the largest the kernel side keeps
	// (bpf.MaxSnaplen).
	DefaultSnaplen       = 65536
	DefaultRingBytes     = 4 << 20
	DefaultBatchSize     = 4000
	DefaultBatchInterval = 200 * time.Millisecond
	DefaultOwnerWait     = time.Second
	// DefaultMemoryLimit is the recorder's soft Go memory limit (see
	// runtime/debug.SetMemoryLimit). What is live at saturation is about
	// 10 MiB (the reader's backlog, the batch, the open transactions), so
	// the limit binds only in bursts, where the heap would otherwise grow
	// to twice that and more before a collection.
	DefaultMemoryLimit = "24MiB"
)

// DefaultNice is the default scheduling niceness of the recorder's writer:
// none. A writer at the services' own priority takes CPU from the processes
// it watches when the host is saturated (dnsperf against dnsmasq on 2 cores
// reached about 0.55 of its qps with it), and --nice 10 gives some of that
// back (about 0.6 to 0.7, noisy) by storing less: the ring buffer overflows
// and the loss is counted. But a lowered writer also lost messages at 20k
// qps, which the host could otherwise record in full (2 of 3 runs lost 2.5%
// to 4%), so evidence comes first by default. Only the writer's thread is
// lowered: the ring buffer reader keeps its priority.
const DefaultNice = 0
