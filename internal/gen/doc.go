// Package gen writes synthetic evidence files for benchmarks and tests: a
// host's day of DNS traffic, as large as asked (10 million messages by
// default), deterministic from a seed.
//
// The file is written through the recorder's own writer, store.Store, with
// the rows the pipeline would hand it: loopback messages seen by both ends
// share a row, responses name their query, the raw bytes are real DNS wire
// messages packed with miekg/dns and parsed with store.ParseDNS, processes
// are written with their ancestors when a message first refers to them, and
// the stop builds the same indexes and leaves the same single file as a
// clean `dnsrec record` stop. Queries measured on it therefore measure what
// an analyst would see.
//
// The traffic (see traffic.go): a server whose host processes (nginx,
// postfix, chronyd, dockerd, ...) resolve through a local dnsmasq on
// 127.0.0.1:53 that caches and forwards to an upstream resolver; three of
// its five containers use the same dnsmasq on docker0, two ask the
// upstream resolver directly. Names
// follow a long-tailed popularity over thousands of domains; some answer
// through CNAME chains, a few percent are NXDOMAIN, some queries go
// unanswered; short-lived tools run under ssh sessions and cron; a
// container tunnels data out through TXT queries for high-entropy names.
// One small incident is planted with exact counts (Facts.Incident): curl,
// started from bash in an ssh session, resolving c2.evil.test through a
// CNAME to 203.0.113.7.
//
// A file holds one recording session, as every file the recorder writes
// does.
package gen
