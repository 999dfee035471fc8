package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/query/export"
	qformat "github.com/dnsrec/dnsrec/query/format"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:  "export",
		Usage: "write the DNS traffic, with its processes, as pcapng, a Zeek dns.log, OCSF events or a Parquet table",
		Description: `Writes every message that passes the filters to FILE, for the tools an
analyst already has:

   pcapng   one packet per DNS message, rebuilt from the stored bytes (raw
            IP, UDP or TCP with correct checksums); each packet's comments
            name the process that sent it and the one that received it, with
            pid, comm, exe, uid, command line and parent chain. Wireshark
            shows them under "Packet comments"; tshark -e frame.comment.
   zeek     a dns.log in Zeek's TSV format: Zeek's DNS fields, then host,
            status, note and the client (orig_*) and server (resp_*)
            processes. One row per query and its response.
   ocsf     OCSF 1.8.0 DNS Activity events (class 4003), one JSON object per
            line and per query and response; the process is actor.process.
   parquet  one flat table, one row per query and its response, with the
            processes as columns; for DuckDB, Trino, Athena, Spark.
   csv      the timeline's rows (messages and libc calls), then each
   jsonl    end's exe, command line and parent chain; --columns picks
            and orders the columns.

query/EXPORTS.md documents every field. --limit counts packets (pcapng) or
transactions (the others). The evidence is only read: FILE is written as
FILE.tmp, then renamed, so a failed or interrupted export leaves no partial
file. An existing FILE is kept unless --force. -o - writes to stdout.

   dnsrec query export --format pcapng -o case.pcapng
   dnsrec query export --format pcapng -o - --name evil.test | wireshark -k -i -
   dnsrec query export --format zeek -o dns.log --since 2024-05-01
   dnsrec query export --format ocsf -o dns.ocsf.jsonl --db web1.db --db web2.db
   dnsrec query export --format parquet -o dns.parquet --exe curl
   duckdb -c "SELECT client_comm, qname, count(*) FROM 'dns.parquet' GROUP BY ALL ORDER BY 3 DESC"`,
		Flags: append([]cli.Flag{
			dbFlag(),
			&cli.StringFlag{Name: "format", Usage: "`FORMAT` to write: " + strings.Join(export.Formats, ", ") + " (required)"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "`FILE` to write; - for stdout (required)"},
			&cli.BoolFlag{Name: "force", Usage: "replace FILE if it exists"},
			&cli.StringFlag{Name: "columns", Usage: "csv and jsonl: only these `COLUMNS`, in this order, separated by commas (time,src_pid,src_exe,src_argv,qname)"},
		}, filterFlags()...),
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("export: takes no arguments, got %q (filter with --name, --pid, --since, ...)", c.Args().Slice())
			}
			format := c.String("format")
			if format == "" {
				return fmt.Errorf("export: --format is required: one of %s", strings.Join(export.Formats, ", "))
			}
			if !slices.Contains(export.Formats, format) {
				return fmt.Errorf("export: --format %q: want one of %s", format, strings.Join(export.Formats, ", "))
			}
			out := c.String("output")
			if out == "" {
				return errors.New("export: -o/--output FILE is required (- for stdout)")
			}
			filter, err := parseFilter(c)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			paths := dbPaths(c)
			if out != "-" {
				if err := checkOutput(out, paths, c.Bool("force")); err != nil {
					return fmt.Errorf("export: %w", err)
				}
			}
			db, err := openEvidence(c)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			defer db.Close()
			st, err := writeExport(out, func(w io.Writer) (export.Stats, error) {
				return export.WriteColumns(c.Context, db, w, format, filter, fmtColumns(c))
			}, c.App.Writer)
			if err != nil {
				return fmt.Errorf("export: %w", err)
			}
			dest := out
			if out == "-" {
				dest = "stdout"
			}
			fmt.Fprintf(c.App.ErrWriter, "dnsrec: export: %s to %s\n", export.Summary(format, st), dest)
			return db.Close()
		},
	}
}

func fmtColumns(c *cli.Context) []string { return qformat.ParseColumns(c.String("columns")) }

// checkOutput refuses an output that exists (unless force) and one that is
// an evidence file or a file SQLite keeps beside it, existing or not.
func checkOutput(out string, evidence []string, force bool) error {
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	for _, target := range []string{out, out + ".tmp"} {
		ti, terr := os.Stat(target)
		absT, _ := filepath.Abs(target)
		for _, e := range evidence {
			absE, err := filepath.Abs(e)
			if err != nil {
				return err
			}
			for _, side := range []string{"", "-wal", "-shm", "-journal"} {
				if absT == absE+side {
					return fmt.Errorf("-o %s: that is the evidence %s", out, e+side)
				}
				if terr == nil {
					if si, err := os.Stat(e + side); err == nil && os.SameFile(ti, si) {
						return fmt.Errorf("-o %s: that is the evidence %s", out, e+side)
					}
				}
			}
		}
	}
	fi, err := os.Stat(absOut)
	switch {
	case err == nil && fi.IsDir():
		return fmt.Errorf("-o %s: is a directory", out)
	case err == nil && !force:
		return fmt.Errorf("-o %s: exists; use --force to replace it", out)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("-o %s: %w", out, err)
	}
	return nil
}

// writeExport runs write into out: stdout for "-", else out.tmp, synced and
// renamed over out only when write succeeded. On any failure the .tmp is
// removed.
func writeExport(out string, write func(io.Writer) (export.Stats, error), stdout io.Writer) (st export.Stats, err error) {
	if out == "-" {
		return write(stdout)
	}
	tmp := out + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return st, err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if st, err = write(f); err != nil {
		return st, err
	}
	if err = f.Sync(); err != nil {
		return st, fmt.Errorf("%s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return st, fmt.Errorf("%s: %w", tmp, err)
	}
	if err = os.Rename(tmp, out); err != nil {
		return st, err
	}
	return st, nil
}
