package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
)

func processCommand() *cli.Command {
	return &cli.Command{
		Name:      "process",
		Usage:     "a process: its command line, parents, children seen, and every name it resolved",
		ArgsUsage: "PID|EXE",
		Description: `One row per recorded process image matching PID, an executable path
(/usr/bin/curl), or a name (curl: the comm or the executable's base name):
its argv, uid, parent chain, the children seen, when it started and exited,
and the names it asked for with how many queries each.

--names lists instead one row per name it resolved, with query types,
answers and status, as who-resolved shows them.

   dnsrec query process 4242
   dnsrec query process /tmp/.x/beacon --format json
   dnsrec query process curl --names --since 1h`,
		Flags: append(append([]cli.Flag{dbFlag(),
			&cli.BoolFlag{Name: "names", Usage: "one row per name the process resolved, with answers and status"},
		}, outputFlags()...), filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("process: want one PID, executable or name, got %d arguments %q (see --help)", c.NArg(), c.Args().Slice())
			}
			arg := c.Args().First()
			l, err := openListing(c, "process")
			if err != nil {
				return err
			}
			defer l.db.Close()
			multi := len(l.db.Paths()) > 1
			var t *format.Table
			if c.Bool("names") {
				f := l.filter
				if pid, err := strconv.ParseInt(arg, 10, 64); err == nil {
					f.PIDs = append(f.PIDs, pid)
				} else if strings.HasPrefix(arg, "/") {
					f.Exes = append(f.Exes, arg)
				} else {
					f.Comms = append(f.Comms, arg)
				}
				rows, err := l.db.WhoResolved(c.Context, "*", query.WhoResolvedOptions{Filter: f})
				if err != nil {
					return fmt.Errorf("process %s: %w", arg, err)
				}
				if n := f.Limit; n > 0 && len(rows) > n {
					rows = rows[:n]
				}
				t = query.WhoResolvedTable(rows, multi)
			} else {
				rows, err := l.db.Processes(c.Context, arg, l.filter)
				if err != nil {
					return fmt.Errorf("process %s: %w", arg, err)
				}
				t = query.ProcessTable(rows, multi)
			}
			if err := l.write(c, t); err != nil {
				return fmt.Errorf("process: write: %w", err)
			}
			return l.db.Close()
		},
	}
}
