package main

import "github.com/urfave/cli/v2"

// recordCommand is wired in by the record slice.
func recordCommand() *cli.Command {
	return &cli.Command{Name: "record", Usage: "capture DNS with process identity into an SQLite file (root)"}
}
