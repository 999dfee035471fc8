//go:build linux && (amd64 || arm64)

package record

import "github.com/dnsrec/dnsrec/internal/dnstest"

// The recorder's tests share their helpers with the store's (dnstest).
var (
	openRO   = dnstest.OpenRO
	verify   = dnstest.Verify
	pack     = dnstest.Pack
	mustRR   = dnstest.MustRR
	query    = dnstest.Query
	response = dnstest.Response
)

func deref[T any](p *T) any { return dnstest.Deref(p) }
