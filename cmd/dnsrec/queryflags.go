package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/format"
)

// filterFlags are the filters every listing takes.
func filterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "since", Usage: "only messages at or after `TIME`: RFC 3339 (2024-05-01T10:00:00Z), a date, or a duration before now (2h, 30m, 7d)", Category: "Filters"},
		&cli.StringFlag{Name: "until", Usage: "only messages before `TIME` (same forms as --since)", Category: "Filters"},
		&cli.Int64SliceFlag{Name: "pid", Usage: "only messages of process `PID` (either end); repeatable", Category: "Filters"},
		&cli.Int64SliceFlag{Name: "tree", Usage: "only messages of process `PID` and all its descendants (the children it started, theirs, ...); repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "container", Usage: "only messages of processes in the container whose id starts with `ID` (docker's short ids work) or the systemd-nspawn machine so named; repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "exe", Usage: "only messages of processes whose executable is `PATH` (absolute) or has that base name; repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "comm", Usage: "only messages of processes named `COMM`; repeatable", Category: "Filters"},
		&cli.Int64SliceFlag{Name: "uid", Usage: "only messages of processes running as `UID`; repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "qtype", Usage: "only questions of `TYPE` (A, AAAA, TXT, 16, ...); repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "rcode", Usage: "only responses with `RCODE` (NOERROR, NXDOMAIN, SERVFAIL, ...), and the queries they answered; repeatable", Category: "Filters"},
		&cli.StringSliceFlag{Name: "name", Usage: "only questions for `NAME` and its subdomains; *.NAME for the subdomains only, or a glob (c2-*.evil.test); repeatable", Category: "Filters"},
		&cli.IntFlag{Name: "limit", Usage: "at most `N` rows (0: all)", Category: "Filters"},
	}
}

// outputFlags are --format, --columns and --local.
func outputFlags() []cli.Flag {
	return []cli.Flag{
		formatFlag(),
		columnsFlag(),
		&cli.BoolFlag{Name: "local", Usage: "print times in the local time zone instead of UTC"},
	}
}

// columnsFlag is --columns.
func columnsFlag() cli.Flag {
	return &cli.StringFlag{Name: "columns", Usage: "only these `COLUMNS`, in this order, separated by commas (pid,comm,qname); for table, csv and json alike"}
}

// parseFilter reads filterFlags.
func parseFilter(c *cli.Context) (query.Filter, error) {
	var f query.Filter
	now := time.Now()
	for _, t := range []struct {
		flag string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		if v := c.String(t.flag); v != "" {
			ts, err := query.ParseTime(v, now)
			if err != nil {
				return f, fmt.Errorf("--%s: %w", t.flag, err)
			}
			*t.dst = ts
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return f, fmt.Errorf("--until %s is not after --since %s", f.Until.UTC().Format(time.RFC3339), f.Since.UTC().Format(time.RFC3339))
	}
	f.PIDs = c.Int64Slice("pid")
	if !isBoolFlag(c, "tree") {
		f.Trees = c.Int64Slice("tree")
	}
	for _, p := range append(append([]int64(nil), f.PIDs...), f.Trees...) {
		if p <= 0 {
			return f, fmt.Errorf("--pid/--tree %d: not a process id", p)
		}
	}
	f.UIDs = c.Int64Slice("uid")
	f.Exes = c.StringSlice("exe")
	f.Comms = c.StringSlice("comm")
	f.Containers = c.StringSlice("container")
	for _, s := range c.StringSlice("qtype") {
		t, err := query.ParseQType(s)
		if err != nil {
			return f, fmt.Errorf("--qtype: %w", err)
		}
		f.QTypes = append(f.QTypes, t)
	}
	for _, s := range c.StringSlice("rcode") {
		r, err := query.ParseRcode(s)
		if err != nil {
			return f, fmt.Errorf("--rcode: %w", err)
		}
		f.Rcodes = append(f.Rcodes, r)
	}
	for _, s := range c.StringSlice("name") {
		p, err := query.ParseName(s, true)
		if err != nil {
			return f, fmt.Errorf("--name %q: %w", s, err)
		}
		f.Names = append(f.Names, p)
	}
	f.Limit = c.Int("limit")
	if f.Limit < 0 {
		return f, fmt.Errorf("--limit %d: must not be negative", f.Limit)
	}
	return f, nil
}

// isBoolFlag tells whether c's command has a boolean flag name (process's
// --tree is one; everywhere else it takes a PID).
func isBoolFlag(c *cli.Context, name string) bool {
	if c.Command == nil {
		return false
	}
	for _, f := range c.Command.Flags {
		if _, ok := f.(*cli.BoolFlag); ok && slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// writeOptions reads outputFlags for out.
func writeOptions(c *cli.Context, out any) format.WriteOptions {
	var o format.WriteOptions
	o.Columns = format.ParseColumns(c.String("columns"))
	if c.Bool("local") {
		o.Location = time.Local
	}
	if f, ok := out.(*os.File); ok && format.IsTerminal(f) {
		o.MaxCell = maxCellWidth()
	}
	return o
}

// maxCellWidth is how much of a long cell a table shows on a terminal:
// $DNSREC_MAX_CELL, else 60 characters. Other formats are never cut.
func maxCellWidth() int {
	if v, err := strconv.Atoi(os.Getenv("DNSREC_MAX_CELL")); err == nil && v >= 0 {
		return v
	}
	return 60
}

// listing holds what every listing command opens: the output format and
// options, the filter and the evidence.
type listing struct {
	format format.Format
	opts   format.WriteOptions
	filter query.Filter
	db     *query.DB
}

// openListing parses the shared flags and opens the evidence. name
// prefixes errors.
func openListing(c *cli.Context, name string) (*listing, error) {
	out := c.App.Writer
	as, err := format.ParseFormat(c.String("format"), out)
	if err != nil {
		return nil, fmt.Errorf("%s: --format: %w", name, err)
	}
	filter, err := parseFilter(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	db, err := openEvidence(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &listing{format: as, opts: writeOptions(c, out), filter: filter, db: db}, nil
}

// writer starts the listing's output.
func (l *listing) writer(c *cli.Context, cols []string) (format.RowWriter, error) {
	return format.NewRowWriter(c.App.Writer, l.format, cols, l.opts)
}

// write renders a whole table.
func (l *listing) write(c *cli.Context, t *format.Table) error {
	return format.WriteWith(c.App.Writer, l.format, t, l.opts)
}
