//go:build !unix

package store

// oNoFollow: elsewhere O_EXCL alone refuses whatever is at the path.
const oNoFollow = 0
