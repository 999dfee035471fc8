package main

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

func recordCommand() *cli.Command {
	return &cli.Command{
		Name:  "record",
		Usage: "capture DNS with process identity into an SQLite file (needs root)",
		Description: `Records every DNS message local processes send or receive, with the process
that owns it (pid, exe, argv, uid, parents), until SIGINT or SIGTERM. Then it
detaches, drains, commits and prints the file's size and SHA-256.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "case.db", Usage: "evidence `FILE` to create (refuses an existing file)"},
			&cli.BoolFlag{Name: "force", Usage: "replace an existing output file"},
			&cli.StringFlag{Name: "hook", Value: "auto", Usage: "hook tier: auto, " + tierNames()},
			&cli.BoolFlag{Name: "stable-hooks", Usage: "fentry/kprobe tiers: hook ip_send_skb/ip6_send_skb rather than the static udp_send_skb/udp_v6_send_skb (done anyway where those are inlined or renamed)"},
			&cli.UintSliceFlag{Name: "port", Usage: "capture this `PORT` as DNS too (53 always is; repeat for more)"},
			&cli.UintFlag{Name: "snaplen", Value: record.DefaultSnaplen, Usage: fmt.Sprintf("keep at most `N` bytes of each message (max %d)", bpf.MaxSnaplen)},
			&cli.UintFlag{Name: "ring-size", Value: record.DefaultRingBytes >> 20, Usage: "kernel ring buffer size in `MiB` (power of two)"},
			&cli.IntFlag{Name: "batch-size", Value: record.DefaultBatchSize, Usage: "commit after `N` messages"},
			&cli.DurationFlag{Name: "batch-interval", Value: record.DefaultBatchInterval, Usage: "commit at least this often"},
			&cli.IntFlag{Name: "nice", Value: record.DefaultNice, Usage: "scheduling niceness `N` of the recorder's writer (-20..19): 10 yields CPU to the services it records when the host is saturated, and counts what it then cannot keep"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log debug details"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a Go CPU profile of the recorder to `FILE` (for `go tool pprof`)"},
		},
		Action: func(c *cli.Context) error {
			if p := c.String("cpuprofile"); p != "" {
				f, err := os.Create(p)
				if err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("--cpuprofile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			level := slog.LevelInfo
			if c.Bool("verbose") {
				level = slog.LevelDebug
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			hook, err := pickTier(c.String("hook"))
			if err != nil {
				return err
			}
			ports := []uint16{53}
			for _, p := range c.UintSlice("port") {
				if p == 0 || p > 65535 {
					return fmt.Errorf("--port %d: not a port", p)
				}
				if p != 53 {
					ports = append(ports, uint16(p))
				}
			}
			if n := c.Int("nice"); n < -20 || n > 19 {
				return fmt.Errorf("--nice %d: must be between -20 and 19", n)
			}
			ringMiB := c.Uint("ring-size")
			if ringMiB == 0 || ringMiB > 1024 || ringMiB&(ringMiB-1) != 0 {
				return fmt.Errorf("--ring-size %d: must be a power of two between 1 and 1024 MiB", ringMiB)
			}
			if os.Geteuid() != 0 {
				log.Warn("not running as root: loading BPF programs will probably fail")
			}
			sum, err := record.Run(c.Context, record.Options{
				Output:        c.String("output"),
				Force:         c.Bool("force"),
				Hook:          hook,
				Ports:         ports,
				Snaplen:       uint32(c.Uint("snaplen")),
				RingBytes:     uint32(ringMiB << 20),
				StableHooks:   c.Bool("stable-hooks"),
				BatchSize:     c.Int("batch-size"),
				BatchInterval: c.Duration("batch-interval"),
				Nice:          c.Int("nice"),
				Version:       version,
				Cmdline:       strings.Join(os.Args, " "),
				Logger:        log,
				Started: func(s record.Started) {
					log.Info("recording", "output", s.Output, "hook", s.Hook, "ports", s.Ports, "stop", "Ctrl-C or SIGTERM")
				},
			})
			if sum.Path != "" && sum.SHA256 != "" {
				log.Info("wrote evidence", "output", sum.Path, "messages", sum.Messages, "bytes", sum.Bytes, "sha256", sum.SHA256,
					"chain_links", sum.ChainSeq, "chain_head", sum.ChainHead)
				fmt.Printf("%s  %s\n", sum.SHA256, sum.Path)
			}
			if sum.WAL != "" {
				log.Warn("a reader held the file at the stop, so it stays in WAL mode: copy both files, together", "output", sum.Path, "wal", sum.WAL, "wal_bytes", sum.WALBytes, "wal_sha256", sum.WALSHA256)
				fmt.Printf("%s  %s\n", sum.WALSHA256, sum.WAL)
			}
			if err != nil {
				return fmt.Errorf("record: %w", err)
			}
			return nil
		},
	}
}

func tierNames() string {
	names := make([]string, len(bpf.Tiers))
	for i, t := range bpf.Tiers {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// pickTier maps --hook to a tier; auto lets the recorder probe.
func pickTier(name string) (bpf.Tier, error) {
	if name == string(bpf.TierAuto) {
		return bpf.TierAuto, nil
	}
	for _, t := range bpf.Tiers {
		if string(t) == name {
			return t, nil
		}
	}
	return "", fmt.Errorf("--hook %q: unknown tier (want auto, %s)", name, tierNames())
}
