// Package query answers questions about dnsrec evidence files, offline and
// strictly read-only.
//
// An analyst copies case.db off a suspect host and asks, on their own laptop,
// which process resolved which name. Everything here is pure Go (no cgo, no
// BPF) so that it builds for macOS as well as Linux.
//
// The package has three layers:
//
//   - Open attaches one or more evidence files, one per host, without ever
//     writing to them: each is opened with SQLite's mode=ro, and with
//     immutable=1 only as a fallback when mode=ro cannot work (a read-only
//     directory or file system) and no -wal file exists whose contents
//     immutable mode would silently ignore. Every file is checked with
//     schema.Check first, so that a foreign or newer file is refused instead
//     of misread.
//   - Query methods on DB (WhoResolved, ...) run indexed SQL against every
//     file and merge the results into typed rows. Each row carries the host
//     it came from.
//   - Typed rows convert to a generic Table, which the format writers render
//     as an aligned table, CSV, a JSON array or JSON lines. New commands only
//     need a query and a conversion to Table.
//
// The SQL relies on the indexes that schema defines: who-resolved is a range
// scan over messages.qname_rev, so that a suffix search ("evil.com and its
// subdomains") never needs LIKE or a full scan.
package query
