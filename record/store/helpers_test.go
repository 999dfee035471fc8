package store

import "github.com/dnsrec/dnsrec/internal/dnstest"

// The store's tests share their helpers with the recorder's (dnstest).
var (
	openRO   = dnstest.OpenRO
	roDSN    = dnstest.RODSN
	verify   = dnstest.Verify
	pack     = dnstest.Pack
	mustRR   = dnstest.MustRR
	query    = dnstest.Query
	response = dnstest.Response
)

func deref[T any](p *T) any { return dnstest.Deref(p) }
