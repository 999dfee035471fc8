// Package query is the read model of dnsrec evidence files: it opens them,
// offline and strictly read-only, and answers questions about them.
//
// An analyst copies case.db off a suspect host and asks, on their own laptop,
// which process resolved which name. Everything here is pure Go (no cgo, no
// BPF) so that it builds for macOS as well as Linux.
//
//   - Open attaches one or more evidence files, one per host, without ever
//     writing to them: each is opened with SQLite's mode=ro, and with
//     immutable=1 only as a fallback when mode=ro cannot work (a read-only
//     directory or file system) and no -wal file exists whose contents
//     immutable mode would silently ignore. Every file is checked with
//     schema.Check first, so that a foreign or newer file is refused instead
//     of misread.
//   - Messages, Transactions and Timeline stream the messages (and libc
//     resolutions) that pass a Filter, merged across files in time order;
//     the long streams read through internal/rawsqlite.
//   - The questions (WhoResolved, ResolvedTo, Process, Stats, Info, Verify,
//     SQL) run indexed SQL against every file and merge the results into
//     typed rows, each carrying the file and host it came from. Typed rows
//     convert to a format.Table, which package query/format renders as an
//     aligned table, CSV, a JSON array or JSON lines.
//
// A name is found through the names table: ParseName turns what the user
// typed into stored forms, reversed label by label, and who-resolved is a
// range scan of the names_rev index ("evil.com and its subdomains" never
// needs LIKE or a full scan), then the messages of those names by
// msgs.name_id. Where a clean stop wrote the summaries (package
// schema/summary) and they still cover the file, who-resolved and
// resolved-to without filters read them instead of the messages. Resolver
// links (package internal/relay) are computed when asked, never stored.
//
// Package query/export writes the messages in other tools' formats.
package query
