// Package dnstext is how DNS values are shown: record types and response
// codes by their mnemonics, record data as every output prints it, libc
// resolution outcomes, and addresses typed as answers. The recorder's live
// view and every question of `dnsrec query` print them alike because they
// share these functions; the package depends on nothing of dnsrec.
package dnstext
