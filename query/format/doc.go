// Package format renders listings: a Table (named columns, rows of cells)
// or a stream of rows through a RowWriter, as an aligned table for a
// terminal, CSV, a JSON array or JSON lines. Every `dnsrec query` command
// and the csv and jsonl exports write through it, so a command only builds
// rows. A CellRowWriter also takes a row cell by cell, for long streams.
// Table cells from the evidence are sanitized before a terminal sees them.
package format
