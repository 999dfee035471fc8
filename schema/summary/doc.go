// Package summary builds the summaries of an evidence file: derived tables
// of the schema (who_summary, addr_summary, and their extents in the
// summaries table) that a clean stop of the recorder computes once from the
// messages, so that who-resolved and resolved-to without filters read a
// few rows instead of every message of a busy name or address.
//
// Both sides use it: the recorder builds and writes the summaries
// (record.Store at a clean stop), and `dnsrec query` checks that a
// summary is current before it answers from it, and recomputes it to
// verify it. A summary is derived data, not in the hash chain. The
// package reads the file read-only, on connections of its own, and
// depends only on the schema and the internal leaf packages.
package summary
