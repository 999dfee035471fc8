package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

// recordCommand is the same on every platform, so that its help can be read
// anywhere; recordAction runs it on linux/amd64 and linux/arm64
// (record_linux.go) and refuses elsewhere (record_other.go).
func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "capture DNS with process identity into an SQLite file (Linux on amd64 or arm64, needs root)",
		Description: `Records every DNS message local processes send or receive, with the process
that owns it (pid, exe, argv, uid, parents), until SIGINT or SIGTERM, or until
--duration or --max-size says. Then it detaches, drains, commits and prints
the file's size and SHA-256.

Examples:
   sudo dnsrec record -o case.db
   sudo dnsrec record -o case.db --duration 2h --max-size 2GiB
   sudo dnsrec record -o case.db --live
   sudo dnsrec record -o case.db --live --live-format json | jq .qname
   sudo dnsrec record -o /var/lib/dnsrec/host.db --rotate 1h --max-size 1GiB --keep 168
   sudo dnsrec record -o case.db --domain evil.test --exclude-domain cdn.evil.test
   sudo dnsrec record -o case.db --pid 4242 --comm curl

With --rotate the recording is a series of files, case-0001.db, case-0002.db,
...: each is closed cleanly (indexed, hashed, its SHA-256 printed) and stands
alone, and no message is lost at a boundary. Read them all with
dnsrec query --db 'case-*.db'.

Filters (--domain, --exclude-domain, --pid, --comm) are applied before a
message is stored; what they leave out is counted, and the file's session
says which filters were on (dnsrec query info), so a filtered recording is
never mistaken for a full one.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "case.db", Usage: "evidence `FILE` to create (refuses an existing file)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing output file"},
			&cli.StringFlag{Name: "hook", Value: "auto", Usage: "hook tier: auto, " + record.TierNames()},
			&cli.BoolFlag{Name: "stable-hooks", Usage: "fentry/kprobe tiers: hook ip_send_skb/ip6_send_skb rather than the static udp_send_skb/udp_v6_send_skb (done anyway where those are inlined or renamed)"},
			&cli.UintSliceFlag{Name: "port", Usage: "capture this `PORT` as DNS too (53 always is; repeat for more)"},
			&cli.UintFlag{Name: "snaplen", Value: record.DefaultSnaplen, Usage: fmt.Sprintf("keep at most `N` bytes of each message, 1..%d; the default keeps every message whole (DNS allows 65535 bytes). A message cut short is flagged, and the records inside its first N bytes are still indexed", bpf.MaxSnaplen)},
			&cli.UintFlag{Name: "ring-size", Value: record.DefaultRingBytes >> 20, Usage: "kernel ring buffer size in `MiB` (power of two)"},
			&cli.IntFlag{Name: "batch-size", Value: record.DefaultBatchSize, Usage: "commit after `N` messages"},
			&cli.DurationFlag{Name: "batch-interval", Value: record.DefaultBatchInterval, Usage: "commit at least this often"},
			&cli.StringFlag{Name: "memory-limit", Value: record.DefaultMemoryLimit, Usage: "soft limit on the recorder's Go memory (`SIZE`, e.g. 24MiB; 0 for none): near it the garbage collector works harder instead of growing the heap. The ring buffer, the SQLite page cache and the binary come on top (about 35 MiB). A GOMEMLIMIT environment variable wins over the default"},
			&cli.IntFlag{Name: "nice", Value: record.DefaultNice, Usage: "scheduling niceness `N` of the recorder's writer (-20..19): 10 yields CPU to the services it records when the host is saturated, and counts what it then cannot keep"},
			&cli.DurationFlag{Name: "duration", Usage: "stop by itself after `D` (e.g. 30m, 2h), as cleanly as on Ctrl-C"},
			&cli.StringFlag{Name: "max-size", Usage: "stop by itself once the file reaches `SIZE` (e.g. 2GiB, 500MB), as cleanly as on Ctrl-C; the clean stop then adds the query indexes, about a tenth more"},
			&cli.StringFlag{Name: "rotate", Usage: "close the file cleanly and continue in the next one every `D` (e.g. 1h) or at `SIZE` (e.g. 1GiB): case.db becomes case-0001.db, case-0002.db, ... With --rotate, --max-size rotates instead of stopping"},
			&cli.IntFlag{Name: "keep", Usage: "with --rotate, keep at most `N` files of the series (the one being written included), removing the oldest"},
			&cli.StringSliceFlag{Name: "domain", Usage: "store only messages about `NAME` and its subdomains (repeat for more)"},
			&cli.StringSliceFlag{Name: "exclude-domain", Usage: "do not store messages about `NAME` and its subdomains (repeat for more)"},
			&cli.UintSliceFlag{Name: "pid", Usage: "store only what process `PID` and its descendants send and receive (repeat for more)"},
			&cli.StringSliceFlag{Name: "comm", Usage: "store only what threads named `COMM` (as in ps -o comm, at most 15 characters) send and receive (repeat for more)"},
			&cli.BoolFlag{Name: "no-tls", Usage: "do not put uprobes on the TLS libraries (OpenSSL libssl.so.3, GnuTLS libgnutls.so.30) nor the system call hook that ties their plaintext to its connection: DNS over TLS is then not recorded, nor are connections to encrypted-DNS servers"},
			&cli.StringSliceFlag{Name: "doh-server", Usage: "record connections to port 443 of this encrypted-DNS resolver besides the built-in list of public ones: an `IP` address, or a host NAME (matched against the TLS server name, and its addresses learnt from the DNS answers recorded); repeat for more"},
			&cli.UintSliceFlag{Name: "dot-port", Usage: "capture DNS over TLS on this `PORT` too (853 always is; repeat for more)"},
			&cli.UintSliceFlag{Name: "doh-port", Usage: "capture DNS over HTTPS to servers on this `PORT` too (443 always is; repeat for more)"},
			&cli.BoolFlag{Name: "no-libc", Usage: "do not put uprobes on the C library's resolver (getaddrinfo, gethostbyname*): names resolved through /etc/hosts, nscd or nss-resolve, which never cross port 53 with a process attached, are then not recorded"},
			&cli.StringSliceFlag{Name: "anchor", Usage: "send a signed checkpoint of the hash chain to `DEST` as it is made, so that evidence cut or rewritten on this host no longer matches: syslog+tls://HOST:PORT (RFC 5425), file:PATH (appended) or - (stderr); repeat for more. See docs/anchoring.md"},
			&cli.StringFlag{Name: "anchor-ca", Usage: "CA certificate `FILE` (PEM) of the syslog+tls anchors' server; the system's CAs if unset"},
			&cli.DurationFlag{Name: "checkpoint-every", Value: record.DefaultCheckpointEvery, Usage: "with --anchor, sign a checkpoint every `D` (and at each rotation and at the stop)"},
			&cli.StringFlag{Name: "sign-key", Usage: "with --anchor, sign every checkpoint with the note private key in `FILE` (e.g. on removable media) instead of a fresh key each time; gives up forward security, see docs/anchoring.md"},
			&cli.BoolFlag{Name: "live", Usage: "print each message on stdout as it is stored: time, sender > receiver, question, rcode and answers (lines a slow terminal cannot take are skipped and counted; the evidence never is)"},
			&cli.StringFlag{Name: "live-format", Value: "text", Usage: "`FORMAT` of --live: text, or json (one JSON object per line, for piping)"},
			&cli.DurationFlag{Name: "status-interval", Value: time.Minute, Usage: "when stderr is not a terminal, log a status line (messages stored, rate, loss, file size) every `D`; 0 never. On a terminal the status is one line redrawn every second. SIGUSR1 logs it at any time"},
			&cli.DurationFlag{Name: "watch-every", Value: 2 * time.Second, Usage: "check every `D` (100ms to 1m) that the recorder's BPF programs are still attached and its own; one found detached or replaced is logged as an ERROR, written to the evidence (events) and re-attached"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log debug details"},
			&cli.StringFlag{Name: "pidfile", Usage: "write the recorder's pid to `FILE` at the start, and remove it at the stop, for scripts to stop the right process (kill -TERM $(cat FILE)). Refuses a symbolic link, a directory every user may write in, and a pid file whose process is running; replaces a stale one"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the recorder to `FILE` (for `go tool pprof`)"},
		},
		Action: recordAction,
	}
}

// recordUnsupported says why a build for goos/goarch cannot record, or nil
// for linux/amd64 and linux/arm64, the platforms with BPF programs (bpf/'s
// committed x86 and arm64 objects).
func recordUnsupported(goos, goarch string) error {
	switch {
	case goos == "linux" && (goarch == "amd64" || goarch == "arm64"):
		return nil
	case goos == "linux":
		return fmt.Errorf("record: this build has no BPF programs for %s, only for amd64 and arm64; "+
			"record on a linux/amd64 or linux/arm64 host, then copy the evidence file here and use `dnsrec query`", goarch)
	default:
		return fmt.Errorf("record: recording needs Linux with eBPF on amd64 or arm64; this build is %s/%s. "+
			"Record on the Linux host, then copy the evidence file here and use `dnsrec query`", goos, goarch)
	}
}
