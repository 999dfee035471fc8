package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/urfave/cli/v2"
)

// devGenCommand is `dnsrec dev-gen`, hidden from --help: it writes a
// synthetic evidence file for benchmarks and tests (record/gen). See
// bench/README.md.
func devGenCommand() *cli.Command {
	return &cli.Command{
		Name:   "dev-gen",
		Hidden: true,
		Usage:  "write a synthetic evidence file for benchmarks (development)",
		Description: `Writes a day of a server's DNS traffic, with a planted incident (curl under
an ssh session resolving c2.evil.test), through the recorder's own writer, so
the file is laid out as a clean recording's. The same seed and size give the
same rows. Messages count as the recorder counts them: observations.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Required: true, Usage: "evidence `FILE` to create (never overwritten)"},
			&cli.Int64Flag{Name: "messages", Aliases: []string{"n"}, Value: 10_000_000, Usage: "`N` messages"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed `N` of the traffic"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("dev-gen: unexpected arguments %q", c.Args().Slice())
			}
			out := c.String("output")
			if _, err := os.Lstat(out); err == nil {
				return fmt.Errorf("dev-gen: %s exists; dev-gen never overwrites a file", out)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("dev-gen: %w", err)
			}
			if c.Int64("messages") <= 0 {
				return fmt.Errorf("dev-gen: --messages must be positive, got %d", c.Int64("messages"))
			}
			return devGen(c, out, c.Int64("messages"), c.Uint64("seed"))
		},
	}
}
