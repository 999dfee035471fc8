// Package export writes the DNS traffic of evidence files, with the
// processes that sent and received it, in formats other tools read:
// pcapng (one packet per message), Zeek's dns.log, OCSF DNS Activity
// events and a Parquet table (one row or event per transaction), and the
// timeline as CSV or JSON lines. It reads through package query's read
// model (messages, transactions) and never writes the evidence.
//
// query/EXPORTS.md documents every field; ParquetRow is the Parquet
// schema, and a test holds that document's table to it.
package export
