package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
)

// dbEnv names the evidence file when --db is not given.
const dbEnv = "DNSREC_DB"

// defaultDB is the evidence file in the working directory, the name
// `dnsrec record` writes by default.
const defaultDB = "case.db"

func queryCommand() *cli.Command {
	return &cli.Command{
		Name:  "query",
		Usage: "answer questions about recordings, offline and read-only",
		Description: `Opens evidence files read-only: their SHA-256 never changes. Files being
recorded, and copies with or without their -wal, work too. Give --db once per
host to query several recordings together; every row names its host. --db
takes a glob ('case-*.db'), before or after the subcommand.`,
		Flags: []cli.Flag{dbFlag()},
		Subcommands: []*cli.Command{
			whoResolvedCommand(),
			encryptedCommand(),
			timelineCommand(),
			exportCommand(),
			resolvedToCommand(),
			processCommand(),
			statsCommand(),
			sqlCommand(),
			infoCommand(),
			verifyCommand(),
		},
	}
}

func whoResolvedCommand() *cli.Command {
	return &cli.Command{
		Name:      "who-resolved",
		Usage:     "which processes looked up NAME or its subdomains",
		ArgsUsage: "[NAME]",
		Description: `One row per process and name asked: the process, its command line and its
parents, the query types, when it first and last asked, how many queries it
sent, the answers it got (typed, CNAME chain in order) and what became of its
queries (NOERROR, NXDOMAIN, SERVFAIL, unanswered, cut at snaplen; each with a
count when more than one). Only the client side counts: a local resolver
answering others is not listed.

A client whose queries went through a local resolver (dnsmasq, unbound,
systemd-resolved on loopback) has the resolver in the via column, with how
sure the link to what the resolver asked upstream is: exact (the DNS id was
kept), likely (one upstream query fits), ambiguous (several do: clients
asking the same name at once), cache (answered without asking upstream).
The resolver's own row, for names it only asked on its clients' behalf, is
left out; --resolvers shows it.

A name the process resolved through the C library (getaddrinfo,
gethostbyname*: /etc/hosts, nscd, nss-resolve, or DNS) has a row of its
own with via "libc getaddrinfo", the addresses the calls returned as
answers, and their outcome (answered, EAI_NONAME, ...) as status.

NAME matches itself and its subdomains; *.NAME its subdomains only; a glob
such as 'c2-*.evil.test' whole names. With no NAME, or with . or '*', every
name is listed. An IP address is not a name: resolved-to answers for it. Internationalised names may be typed
as they read (bücher.evil.test) or in their xn-- form.

   dnsrec query who-resolved evil.test
   dnsrec query who-resolved --exact www.evil.test --format json
   dnsrec query who-resolved '*.evil.test' --since 24h --exe curl
   dnsrec query who-resolved evil.test --resolvers
   dnsrec query who-resolved --pid 4242          (every name, of one process)`,
		Flags: append(append([]cli.Flag{
			dbFlag(),
			&cli.BoolFlag{Name: "exact", Usage: "match NAME only, not its subdomains"},
			&cli.BoolFlag{Name: "resolvers", Usage: "also list local resolvers for the names they only asked on behalf of their clients"},
		}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return fmt.Errorf("who-resolved: want one NAME (none for every name), got %d arguments %q (see --help)", c.NArg(), c.Args().Slice())
			}
			name := c.Args().First()
			l, err := openListing(c, "who-resolved")
			if err != nil {
				return err
			}
			defer l.db.Close()
			rows, err := l.db.WhoResolved(c.Context, name, query.WhoResolvedOptions{Exact: c.Bool("exact"), Resolvers: c.Bool("resolvers"), Filter: l.filter})
			if err != nil {
				return fmt.Errorf("who-resolved %q: %w", name, err)
			}
			if n := l.filter.Limit; n > 0 && len(rows) > n {
				rows = rows[:n]
			}
			if err := l.write(c, query.WhoResolvedTable(rows, len(l.db.Paths()) > 1)); err != nil {
				return fmt.Errorf("who-resolved: write: %w", err)
			}
			return l.db.Close()
		},
	}
}

func encryptedCommand() *cli.Command {
	return &cli.Command{
		Name:  "encrypted",
		Usage: "which processes used encrypted DNS, to where",
		Description: `One row per process, server, TLS server name and kind: the connections
processes opened to a DNS-over-TLS port (kind dot: 853 and record's
--dot-port, over TCP; doq: the same ports over UDP, DNS over QUIC), or to
port 443 of a known public DoH/DoT resolver (doh-known; the built-in list
and record's --doh-server), with the process, its command line and its
parents, the server name (SNI) of its TLS ClientHello, the resolver the
address belongs to, when it first and last connected, and how often.

Their content was not read here: a connection whose DNS the TLS probes
opened also has its messages (proto dot) in who-resolved and timeline.
Filters on names, query types and response codes match no connection.

   dnsrec query encrypted
   dnsrec query encrypted --exe firefox --format json
   dnsrec query encrypted --since 24h`,
		Flags: append(append([]cli.Flag{dbFlag()}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("encrypted: takes no arguments, got %q (see --help)", c.Args().Slice())
			}
			l, err := openListing(c, "encrypted")
			if err != nil {
				return err
			}
			defer l.db.Close()
			rows, err := l.db.Encrypted(c.Context, l.filter)
			if err != nil {
				return fmt.Errorf("encrypted: %w", err)
			}
			if n := l.filter.Limit; n > 0 && len(rows) > n {
				rows = rows[:n]
			}
			if err := l.write(c, query.EncryptedTable(rows, len(l.db.Paths()) > 1)); err != nil {
				return fmt.Errorf("encrypted: write: %w", err)
			}
			return l.db.Close()
		},
	}
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "recording sessions: host, hook tier, kernel, times, counts and loss",
		Description: `One row per recording session in each file. Loss is never silent:
ringbuf_drops counts records the kernel could not queue, msg_drops the DNS
messages among them, hook_misses hook calls
the kernel skipped (a program already running on that CPU: fentry programs can be
preempted on kernels with the lazy or full preemption model), decode_errors
records user space could not read, unattributed messages stored without a
process. Of DNS over TLS and HTTPS read in clear: tls_cut counts library
calls too large for the kernel to copy whole (the stream they belong to is
lost), tls_unbound plaintext never tied to a socket, doh_unparsed HTTP of a
DoH connection that could not be parsed.`,
		Flags: []cli.Flag{dbFlag(), formatFlag(), columnsFlag()},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("info: takes no arguments, got %q", c.Args().Slice())
			}
			out := c.App.Writer
			as, err := format.ParseFormat(c.String("format"), out)
			if err != nil {
				return fmt.Errorf("info: --format: %w", err)
			}
			db, err := openEvidence(c)
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			defer db.Close()
			t, err := db.Info(c.Context)
			if err != nil {
				return fmt.Errorf("info: %w", err)
			}
			if err := format.WriteWith(out, as, t, format.WriteOptions{Columns: format.ParseColumns(c.String("columns"))}); err != nil {
				return fmt.Errorf("info: write: %w", err)
			}
			return db.Close()
		},
	}
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:  "verify",
		Usage: "check the evidence against its hash chain: exits non-zero if anything was altered, added or removed",
		Description: `Recomputes the hash chain the recorder wrote with every committed batch:
each link, each batch's rows in every table, rows no batch wrote, the exit
times and the stop time. Names the first altered or missing batch and the
table. Prints the chain head: compare it with the one the recorder printed
at the stop (or logged while recording). Each problem is printed on stderr;
with --format json or jsonl a "problems" column also lists every problem
with its kind (rows-altered, rows-missing, rows-added, link-missing, ...),
its table and its batch. The sha256 column is the file's SHA-256 as it is
on disk (a -wal beside it apart), next to the verdict, for the
chain-of-custody form.

This checks the file against itself only: a file cut at a batch boundary,
or rewritten with its chain rebuilt, passes. With --anchors FILE (what a
--anchor of the recorder wrote: its file:, or the syslog file of its
syslog+tls receiver) the file is also checked against the signed
checkpoints that left the host: a tail cut after a checkpoint, a chain
head that differs, a signature or key chain that does not check, a gap
between checkpoints, checkpoints that end without a stop (docs/anchoring.md).

   dnsrec query verify --db case.db
   dnsrec query verify --db case.db --anchors /var/log/remote/dnsrec.log`,
		Flags: []cli.Flag{dbFlag(), formatFlag(), columnsFlag(),
			&cli.StringFlag{Name: "anchors", Usage: "also check against the signed checkpoints in `FILE` (written by a --anchor: a file: anchor's output, or a syslog receiver's file)"},
			&cli.StringFlag{Name: "anchor-key", Usage: "with --anchors, the verifier `KEY` the checkpoints must be signed by (the public key of a --sign-key); otherwise the key chain starts at the file's own first key"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("verify: takes no arguments, got %q", c.Args().Slice())
			}
			out := c.App.Writer
			as, err := format.ParseFormat(c.String("format"), out)
			if err != nil {
				return fmt.Errorf("verify: --format: %w", err)
			}
			db, err := openEvidence(c)
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			defer db.Close()
			reports, err := db.VerifyWith(c.Context, query.VerifyOptions{Anchors: c.String("anchors"), Key: c.String("anchor-key")})
			if err != nil {
				return fmt.Errorf("verify: %w", err)
			}
			if err := format.WriteWith(out, as, query.VerifyTable(reports, as == format.FormatJSON || as == format.FormatJSONL), format.WriteOptions{Columns: format.ParseColumns(c.String("columns"))}); err != nil {
				return fmt.Errorf("verify: write: %w", err)
			}
			failed := 0
			for _, r := range reports {
				for _, p := range r.Problems {
					fmt.Fprintf(c.App.ErrWriter, "dnsrec: verify: %s: %s\n", r.Path, p)
				}
				if !r.OK() {
					failed++
				} else if a := r.Anchored; a != nil {
					fmt.Fprintf(c.App.ErrWriter, "dnsrec: verify: %s: matches %d signed checkpoints in %s, the last at %s (batch %d)\n",
						r.Path, a.Checked, c.String("anchors"), a.LastTime.Format(time.RFC3339), a.LastBatch)
				}
			}
			if c.String("anchors") == "" {
				fmt.Fprintln(c.App.ErrWriter, "dnsrec: verify: only internal consistency was checked: a file cut at a batch boundary, or rewritten with its chain rebuilt, passes this; --anchors FILE checks it against the checkpoints that left the host")
			}
			if failed > 0 {
				what := "their hash chain"
				if c.String("anchors") != "" {
					what = "their hash chain and the anchors' checkpoints"
				}
				return cli.Exit(fmt.Sprintf("dnsrec: verify: %d of %d files do not match %s", failed, len(reports), what), 1)
			}
			return db.Close()
		},
	}
}

// openEvidence opens the --db files and tells the user on stderr what to
// know about them before trusting the answers.
func openEvidence(c *cli.Context) (*query.DB, error) {
	paths, defaulted := dbPathsFrom(c)
	db, err := query.Open(c.Context, paths)
	if err != nil {
		if defaulted && errors.Is(err, query.ErrNoFile) {
			return nil, fmt.Errorf("%w: %s is the file read when neither --db nor $%s names one; name the evidence with --db FILE (or a glob, 'case-*.db'), or set $%s", err, defaultDB, dbEnv, dbEnv)
		}
		return nil, err
	}
	warnings, err := db.Warnings(c.Context)
	for _, w := range warnings {
		fmt.Fprintf(c.App.ErrWriter, "dnsrec: warning: %s\n", w)
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// pathList collects repeated --db values. It stands in for StringSliceFlag,
// which splits each value on commas and trims spaces: file names are
// evidence too, and "host a, 2024.db" must reach Open intact.
type pathList struct{ paths []string }

// Set takes one --db value. A value with glob characters (* ? [) that is
// not itself an existing file expands to the files it matches, in name
// order, so that 'case-*.db' (quoted, or from a shell that left it) opens
// a whole recording's files; matching nothing is an error.
func (p *pathList) Set(v string) error {
	if strings.ContainsAny(v, "*?[") {
		if _, err := os.Stat(v); err != nil {
			matches, err := filepath.Glob(v)
			if err != nil {
				return fmt.Errorf("%q: bad pattern: %v", v, err)
			}
			if len(matches) == 0 {
				dir, _ := filepath.Abs(filepath.Dir(v))
				return fmt.Errorf("%q: the glob matches no file in %s", v, dir)
			}
			p.paths = append(p.paths, matches...)
			return nil
		}
	}
	p.paths = append(p.paths, v)
	return nil
}

func (p *pathList) String() string {
	if p == nil {
		return ""
	}
	return strings.Join(p.paths, ", ")
}

// dbFlag is --db, shared by every query subcommand.
func dbFlag() cli.Flag {
	return &cli.GenericFlag{
		Name:        "db",
		Value:       &pathList{},
		Usage:       "evidence `FILE` to query, or a glob of files ('case-*.db'); repeat for several hosts",
		DefaultText: "$" + dbEnv + ", else " + defaultDB,
	}
}

// dbPaths applies the precedence: --db, else $DNSREC_DB, else case.db. The
// environment holds one file name, taken whole; several hosts need --db.
func dbPaths(c *cli.Context) []string {
	p, _ := dbPathsFrom(c)
	return p
}

// dbPathsFrom is dbPaths, and whether it fell back to case.db.
func dbPathsFrom(c *cli.Context) (paths []string, defaulted bool) {
	// The subcommand's --db, else the one given to `query` itself.
	for _, cc := range c.Lineage() {
		if p, ok := cc.Generic("db").(*pathList); ok && len(p.paths) > 0 {
			return p.paths, false
		}
	}
	if env := os.Getenv(dbEnv); env != "" {
		return []string{env}, false
	}
	return []string{defaultDB}, true
}

// formatFlag is --format, shared by every query subcommand.
func formatFlag() cli.Flag {
	names := make([]string, len(format.Formats))
	for i, f := range format.Formats {
		names[i] = string(f)
	}
	return &cli.StringFlag{
		Name:        "format",
		Usage:       "output `FORMAT`: " + strings.Join(names, ", "),
		DefaultText: "table on a terminal, csv otherwise",
	}
}
