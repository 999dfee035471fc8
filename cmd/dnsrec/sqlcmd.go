package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query/format"
)

func sqlCommand() *cli.Command {
	return &cli.Command{
		Name:      "sql",
		Usage:     "run one read-only SQL statement on the evidence, for anything the other commands do not ask",
		ArgsUsage: "STATEMENT",
		Description: `Runs STATEMENT on every --db file (with a file column first when there are
several) and prints its rows. The files are opened read-only: a statement
that writes is refused by SQLite and reported as such. The tables and views
are documented in schema/README.md; the views messages and answers have one
row per observation, the simplest place to start.

   dnsrec query sql "SELECT qname, count(*) FROM messages WHERE direction = 'send' GROUP BY 1 ORDER BY 2 DESC LIMIT 10"
   dnsrec query sql "SELECT pid, exe, argv FROM processes WHERE exe LIKE '/tmp/%'"`,
		Flags: append([]cli.Flag{dbFlag()}, outputFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("sql: want one STATEMENT (quote it), got %d arguments", c.NArg())
			}
			out := c.App.Writer
			as, err := format.ParseFormat(c.String("format"), out)
			if err != nil {
				return fmt.Errorf("sql: --format: %w", err)
			}
			db, err := openEvidence(c)
			if err != nil {
				return fmt.Errorf("sql: %w", err)
			}
			defer db.Close()
			opts := writeOptions(c, out)
			w, err := db.SQL(c.Context, c.Args().First(), func(cols []string) (format.RowWriter, error) {
				return format.NewRowWriter(out, as, cols, opts)
			})
			if w != nil {
				if cerr := w.Close(); err == nil && cerr != nil {
					err = fmt.Errorf("write: %w", cerr)
				}
			}
			if err != nil {
				return fmt.Errorf("sql: %w", err)
			}
			return db.Close()
		},
	}
}
