//go:build linux && (amd64 || arm64)

package record

import "github.com/dnsrec/dnsrec/record/store"

// The rows the pipeline hands the writer are the store's own types: the
// pipeline builds them, the store writes them, and the command line reads
// the Summary a recording ends with.
type (
	Session       = store.Session
	ProcRow       = store.ProcRow
	Identity      = store.Identity
	Ancestor      = store.Ancestor
	Side          = store.Side
	Loss          = store.Loss
	Summary       = store.Summary
	Resolution    = store.Resolution
	ResolutionRow = store.ResolutionRow
	Parsed        = store.Parsed
	Answer        = store.Answer
)

// msgRow is a message row as the pipeline holds it while it waits for its
// second side and its answer.
type msgRow struct {
	store.MsgRow
	senderServer bool    // the pipeline's reading of the transport, for the second side
	pairSum      uint64  // the hash its pairing index holds it under
	pairNext     *msgRow // the next row waiting under the same key
	written      bool    // handed to the store: no longer to be changed
}

func ptr[T any](v T) *T { return &v }
