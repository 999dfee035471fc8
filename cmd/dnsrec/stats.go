package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func statsCommand() *cli.Command {
	return &cli.Command{
		Name:  "stats",
		Usage: "what the recording holds: span, top names and processes, NXDOMAIN rates, unanswered queries, long and random-looking names",
		Description: `One row per figure, in sections (the section column):

   span             first and last message, counts
   top_names        names most asked for (client queries)
   top_domains      registered domains most asked for, with distinct names under each
   top_processes    processes that sent the most queries
   nxdomain_rate    processes by share of NXDOMAIN responses (10 responses or more)
   unanswered       names with the most queries that got no response
   long_names       the longest names asked for
   high_entropy     names with a random-looking label (bits per character): the DNS-tunnelling tell
   tunnel_suspects  domains with the most distinct random-looking names under them

   dnsrec query stats
   dnsrec query stats --since 24h --format json`,
		Flags: append(append([]cli.Flag{dbFlag()}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("stats: takes no arguments, got %q", c.Args().Slice())
			}
			l, err := openListing(c, "stats")
			if err != nil {
				return err
			}
			defer l.db.Close()
			t, err := l.db.Stats(c.Context, l.filter)
			if err != nil {
				return fmt.Errorf("stats: %w", err)
			}
			if err := l.write(c, t); err != nil {
				return fmt.Errorf("stats: write: %w", err)
			}
			return l.db.Close()
		},
	}
}
