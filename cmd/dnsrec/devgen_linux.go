//go:build linux && (amd64 || arm64)

package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/record/gen"
)

// devGen writes the file, with progress on stderr.
func devGen(c *cli.Context, out string, messages int64, seed uint64) error {
	start, last := time.Now(), time.Now()
	f, err := gen.Write(c.Context, out, gen.Config{Messages: messages, Seed: seed, Progress: func(done, total int64) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			fmt.Fprintf(c.App.ErrWriter, "dev-gen: %d/%d messages after %v\n", done, total, time.Since(start).Round(time.Second))
		}
	}})
	if err != nil {
		return fmt.Errorf("dev-gen: %w", err)
	}
	fmt.Fprintf(c.App.Writer, "%s: %d messages (%d rows), %d names, %d processes, %d bytes in %v\nsha256 %s\n"+
		"planted: curl (pid %d) resolves %s -> %s -> %s; try: dnsrec query who-resolved %s --db %s\n",
		out, f.Messages, f.Rows, f.Names, f.Processes, f.Summary.Bytes, time.Since(start).Round(time.Second), f.Summary.SHA256,
		incidentPID(f), f.Incident.Name, f.Incident.CNAME, f.Incident.IP, f.Incident.Domain, out)
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
