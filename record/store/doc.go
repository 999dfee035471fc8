// Package store writes evidence files: the SQLite schema (package schema),
// the rows of one recording session, and the hash chain over every batch.
//
// A Store is the single writer of one file. The recorder's pipeline
// (package record) hands it rows (ProcRow, MsgRow, ResolutionRow, Loss) and
// commits them in batches; Finish stamps the stop, builds the indexes and the
// summaries, and leaves one self-contained file. ParseDNS reads a DNS message
// into the fields the file keeps.
//
// The package has no kernel dependency and builds on every platform, so
// that tests and the benchmark file generator (internal/gen) write files
// exactly as the recorder does.
package store
