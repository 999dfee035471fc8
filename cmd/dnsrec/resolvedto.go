package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
)

func resolvedToCommand() *cli.Command {
	return &cli.Command{
		Name:      "resolved-to",
		Usage:     "which names answered with an address (or any address in a CIDR prefix), and who asked",
		ArgsUsage: "IP|CIDR",
		Description: `One row per address, name asked and asking process: the chain from the name
asked to the address (CNAMEs in order), the process that received the
answer with its parents, or the remote client's address when a local
resolver answered someone else.

   dnsrec query resolved-to 203.0.113.7
   dnsrec query resolved-to 203.0.113.0/24 --since 2024-05-01
   dnsrec query resolved-to 2001:db8::/32 --format json`,
		Flags: append(append([]cli.Flag{dbFlag()}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("resolved-to: want one IP or CIDR prefix, got %d arguments %q (see --help)", c.NArg(), c.Args().Slice())
			}
			prefix, err := query.ParsePrefix(c.Args().First())
			if err != nil {
				return fmt.Errorf("resolved-to: %w", err)
			}
			l, err := openListing(c, "resolved-to")
			if err != nil {
				return err
			}
			defer l.db.Close()
			rows, err := l.db.ResolvedTo(c.Context, prefix, l.filter)
			if err != nil {
				return fmt.Errorf("resolved-to %s: %w", prefix, err)
			}
			if err := l.write(c, query.ResolvedToTable(rows, len(l.db.Paths()) > 1)); err != nil {
				return fmt.Errorf("resolved-to: write: %w", err)
			}
			return l.db.Close()
		},
	}
}
