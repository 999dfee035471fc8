// Package querytest builds small dnsrec evidence files for tests of the
// query package and of the command line.
//
// The files are made the way the recorder makes them (schema.Migrate, WAL
// journal) but filled with plain INSERTs, so that a test states exactly which
// processes and messages exist and can assert exact query results without
// capturing any traffic.
package querytest
