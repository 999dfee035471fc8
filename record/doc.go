// Package record is the pipeline from the kernel's ring buffer to rows in an
// evidence file: what `dnsrec record` runs.
//
//	ring buffer --read--> Decode --> pipeline goroutine --> store.Store (SQLite, WAL)
//	 (one goroutine)                  |- held: received messages waiting
//	                                  |        for their socket's owner
//	                                  |- TCP reassembly (tcpStream)
//	                                  |- store.ParseDNS
//	                                  '- process table (exec events, /proc)
//
// One goroutine reads the ring buffer and decodes records into Packet and
// Exec values (event.go). One pipeline goroutine owns everything else and is
// the single writer of the file: it parses each message, resolves its
// process and ancestors to rows, and commits in batches (Options.BatchSize
// messages or Options.BatchInterval, whichever comes first), writing the
// loss counters with each batch in which they changed.
//
// Options (options.go) say what to record; Options.Validate holds every
// rule on their values, in the terms of `dnsrec record`'s flags, and needs
// neither root nor BPF. Run stops when its context ends: it detaches the hooks so nothing new
// arrives, flushes the ring buffer so everything already captured is read,
// commits, checkpoints, and leaves one self-contained file (store.Finish).
// Everything committed before an error stays in the file. The writer itself,
// which needs no kernel, is package record/store.
//
// The package records on linux/amd64 and linux/arm64, where package bpf has
// its objects. Elsewhere it holds only the defaults and tier names that
// record's help shows (defaults.go).
package record
