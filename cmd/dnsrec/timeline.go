package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
)

func timelineCommand() *cli.Command {
	return &cli.Command{
		Name:  "timeline",
		Usage: "every DNS message and libc resolution in time order, with its processes, question, response code and answers",
		Description: `One row per DNS message. A message seen at both ends on this host (a client
and a local resolver) is one row that names both processes: src_* sent it,
dst_* received it. A response's reply_to is the id of the query it answers,
with the client's wait in latency_ms.

A name a process resolved through the C library is a row too: its id is
r<N>, its kind "libc getaddrinfo" (the function called), src_* is the
caller, rcode the call's outcome (answered, EAI_NONAME, ...), answers the
addresses it returned and latency_ms how long it took.

Pages: --limit N prints N rows, then prints on stderr the --after cursor that
continues after the last one, so a file of millions of messages scrolls
without being loaded:

   dnsrec query timeline --limit 100
   dnsrec query timeline --limit 100 --after 1716000000123456789.0.4711
   dnsrec query timeline --since 2h --comm curl --format csv > curl.csv
   dnsrec query timeline --name '*.evil.test' --rcode NXDOMAIN`,
		Flags: append(append([]cli.Flag{dbFlag(),
			&cli.StringFlag{Name: "after", Usage: "continue after `CURSOR`, as printed at the end of the previous page"},
		}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("timeline: takes no arguments, got %q (filter with --name, --pid, --since, ...)", c.Args().Slice())
			}
			l, err := openListing(c, "timeline")
			if err != nil {
				return err
			}
			defer l.db.Close()
			opts := query.TimelineOptions{Filter: l.filter}
			if a := c.String("after"); a != "" {
				cur, err := query.ParseCursor(a)
				if err != nil {
					return fmt.Errorf("timeline: --after: %w", err)
				}
				opts.After = &cur
			}
			w, err := l.writer(c, l.db.TimelineColumnsFor())
			if err != nil {
				return fmt.Errorf("timeline: %w", err)
			}
			last, err := l.db.Timeline(c.Context, opts, w)
			if err != nil {
				return fmt.Errorf("timeline: %w", err)
			}
			if err := w.Close(); err != nil {
				return fmt.Errorf("timeline: write: %w", err)
			}
			if last != nil && opts.Limit > 0 {
				fmt.Fprintf(c.App.ErrWriter, "dnsrec: next page: --after %s\n", last)
			}
			return l.db.Close()
		},
	}
}
