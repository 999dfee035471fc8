// Package schema owns the SQL layout of a dnsrec evidence file.
//
// The schema is a sequence of numbered migrations under migrations/, embedded
// into the binary. A file is stamped with PRAGMA application_id (ApplicationID)
// so that dnsrec refuses databases written by something else, and PRAGMA
// user_version records how many migrations have been applied, so that an old
// dnsrec refuses a file from a newer one instead of misreading it.
//
// The package is pure Go and builds on every platform: analysts open evidence
// on their own laptops. Every table is documented in README.md.
package schema
