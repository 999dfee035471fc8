package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
)

// withoutFlag is flags without the one named name.
func withoutFlag(flags []cli.Flag, name string) []cli.Flag {
	var out []cli.Flag
	for _, f := range flags {
		if f.Names()[0] != name {
			out = append(out, f)
		}
	}
	return out
}

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

--tree lists the process PID and every descendant the recording saw (the
children it started, theirs, ...), one row each in tree order, the tree
column indented under its parent, with its command line and the names it
resolved. With --names, one row per name resolved anywhere in the tree.

   dnsrec query process 4242
   dnsrec query process /tmp/.x/beacon --format json
   dnsrec query process curl --names --since 1h
   dnsrec query process 24230 --tree`,
		Flags: append(append([]cli.Flag{dbFlag(),
			&cli.BoolFlag{Name: "names", Usage: "one row per name the process resolved, with answers and status"},
			&cli.BoolFlag{Name: "tree", Usage: "the process PID and all its descendants, each with its command line and the names it resolved"},
		}, outputFlags()...), withoutFlag(filterFlags(), "tree")...),
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
			tree := c.Bool("tree")
			pid, pidErr := strconv.ParseInt(arg, 10, 64)
			if tree && (pidErr != nil || pid <= 0) {
				return fmt.Errorf("process %s --tree: give the PID of the tree's root (a name can match several processes)", arg)
			}
			if c.Bool("names") {
				f := l.filter
				if tree {
					f.Trees = append(f.Trees, pid)
				} else if pidErr == nil {
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
			} else if tree {
				rows, err := l.db.ProcessTree(c.Context, pid, l.filter)
				if err != nil {
					return fmt.Errorf("process %s --tree: %w", arg, err)
				}
				t = query.ProcessTreeTable(rows, multi)
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
