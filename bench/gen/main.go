// Command gen writes a synthetic evidence file for benchmarks and tests: a
// day of a server's DNS traffic, with a planted incident (curl under an ssh
// session resolving c2.evil.test), through the recorder's own writer, so
// the file is laid out as a clean recording's. The same seed and size give
// the same rows. Messages count as the recorder counts them: observations.
// See bench/README.md.
//
//	go run ./bench/gen -o FILE [-messages N] [-seed N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"time"

	"github.com/dnsrec/dnsrec/internal/gen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fl := flag.NewFlagSet("gen", flag.ContinueOnError)
	fl.SetOutput(stderr)
	out := fl.String("o", "", "evidence `FILE` to create (never overwritten)")
	messages := fl.Int64("messages", gen.DefaultMessages, "`N` messages")
	seed := fl.Uint64("seed", 1, "seed `N` of the traffic")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() != 0 {
		return fmt.Errorf("unexpected arguments %q", fl.Args())
	}
	if *out == "" {
		return errors.New("-o FILE is required")
	}
	if _, err := os.Lstat(*out); err == nil {
		return fmt.Errorf("%s exists; gen never overwrites a file", *out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if *messages <= 0 {
		return fmt.Errorf("-messages must be positive, got %d", *messages)
	}
	start, last := time.Now(), time.Now()
	f, err := gen.Write(ctx, *out, gen.Config{Messages: *messages, Seed: *seed, Progress: func(done, total int64) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stderr, "gen: %d/%d messages after %v\n", done, total, time.Since(start).Round(time.Second))
		}
	}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d messages (%d rows), %d names, %d processes, %d bytes in %v\nsha256 %s\n"+
		"planted: curl (pid %d) resolves %s -> %s -> %s; try: dnsrec query who-resolved %s --db %s\n",
		*out, f.Messages, f.Rows, f.Names, f.Processes, f.Summary.Bytes, time.Since(start).Round(time.Second), f.Summary.SHA256,
		incidentPID(f), f.Incident.Name, f.Incident.CNAME, f.Incident.IP, f.Incident.Domain, *out)
	return nil
}

func incidentPID(f gen.Facts) int64 {
	for _, r := range f.Incident.Resolvers {
		if r.QName == f.Incident.Name && r.Comm == "curl" {
			return r.PID
		}
	}
	return 0
}
