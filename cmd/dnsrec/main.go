// Command dnsrec records which process resolved which DNS name, and answers
// questions about the recording offline. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "dnsrec: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	// --version only: urfave's default also takes -v, which `record` uses
	// for --verbose.
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and exit", DisableDefaultText: true}
	app := &cli.App{
		Name:                 "dnsrec",
		Usage:                "forensic DNS recorder: which process resolved which name, when, and what it got back",
		Version:              version,
		EnableBashCompletion: true,
		Commands: []*cli.Command{
			recordCommand(),
			queryCommand(),
			keygenCommand(),
		},
	}
	oneLineUsage(app)
	return app.RunContext(ctx, interspersed(app, args))
}
