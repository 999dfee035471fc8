//go:build linux && (amd64 || arm64)

package query_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dnsrec/dnsrec/internal/gen"
	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/schema"
)

// The big benchmark file: gen.DefaultMessages observations (10 million)
// unless DNSREC_BENCH_MESSAGES says otherwise, generated once and kept in
// DNSREC_BENCH_DIR (default .cache/bench under the repository root) for
// the next run. See bench/README.md.
const (
	bigSeed        = 1
	bigDirEnv      = "DNSREC_BENCH_DIR"
	bigMessagesEnv = "DNSREC_BENCH_MESSAGES"
	// bigExportRows bounds each export sub-benchmark: enough rows for a
	// steady rate, not the whole file in every format.
	bigExportRows = 500_000
)

var big struct {
	once  sync.Once
	facts gen.Facts
	err   error
}

// BenchmarkBig times the questions an analyst asks, on a realistic
// evidence file written by the recorder's own writer (internal/gen): a day of
// a server's DNS, with a planted incident whose answers are known. Each
// sub-benchmark reports the rows it returned, and MB-peak-RSS: the
// process's peak resident memory while it ran (VmHWM, reset at its start
// after returning freed memory to the system). peak-rss, last, reports the
// highest of them.
func BenchmarkBig(b *testing.B) {
	f := bigFile(b)
	ctx := context.Background()
	db, err := query.Open(ctx, []string{f.Path})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	b.Logf("%s: %d messages (%d rows), %d names, %d processes, %.0f MB", f.Path, f.Messages, f.Rows, f.Names, f.Processes, float64(f.Summary.Bytes)/1e6)

	middle, err := middleCursor(f.Path, f.Rows/2)
	if err != nil {
		b.Fatal(err)
	}
	probe := netip.MustParsePrefix(f.Probe.IP + "/32")
	cidr := netip.MustParsePrefix(f.Probe.CIDR)

	var peak float64
	run := func(name string, fn func() (int, error)) {
		b.Run(name, func(b *testing.B) {
			debug.FreeOSMemory() // what ran before is not this query's
			resetPeakRSS()
			rows := 0
			for b.Loop() {
				n, err := fn()
				if err != nil {
					b.Fatal(err)
				}
				rows = n
			}
			b.ReportMetric(float64(rows), "rows")
			mb := peakRSS(b)
			b.ReportMetric(mb, "MB-peak-RSS")
			peak = max(peak, mb)
		})
	}
	who := func(name string, exact bool) func() (int, error) {
		return func() (int, error) {
			rs, err := db.WhoResolved(ctx, name, query.WhoResolvedOptions{Exact: exact})
			return len(rs), err
		}
	}
	timeline := func(after *query.Cursor) func() (int, error) {
		return func() (int, error) {
			var w countRows
			_, err := db.Timeline(ctx, query.TimelineOptions{Filter: query.Filter{Limit: 100}, After: after}, &w)
			return w.n, err
		}
	}
	resolvedTo := func(p netip.Prefix) func() (int, error) {
		return func() (int, error) {
			rs, err := db.ResolvedTo(ctx, p, query.Filter{})
			return len(rs), err
		}
	}

	// The incident: a name asked a few times, and its domain.
	run("who-resolved-exact", who(f.Incident.Name, true))
	run("who-resolved-suffix", who(f.Incident.Domain, false))
	// The worst cases: the most asked-for name, and the tunnel's domain
	// (every query a new name).
	run("who-resolved-exact-busy", who(f.BusyName, true))
	run("who-resolved-suffix-tunnel", who(f.Tunnel.Domain, false))
	run("info", func() (int, error) {
		t, err := db.Info(ctx)
		if err != nil {
			return 0, err
		}
		return len(t.Rows), nil
	})
	run("timeline-first-page", timeline(nil))
	run("timeline-middle-page", timeline(middle))
	// The incident's address (a few answers), then a busy shared address
	// (tens of thousands): resolved-to's cost follows the answers found.
	run("resolved-to-incident-ip", resolvedTo(netip.MustParsePrefix(f.Incident.IP+"/32")))
	run("resolved-to-ip", resolvedTo(probe))
	run("resolved-to-24", resolvedTo(cidr))
	run("stats", func() (int, error) {
		t, err := db.Stats(ctx, query.Filter{})
		if err != nil {
			return 0, err
		}
		return len(t.Rows), nil
	})
	// Exports: the first bigExportRows packets or transactions of the file
	// in each format, to io.Discard; rows/s is their throughput, reading
	// the evidence included.
	for _, format := range export.Formats {
		b.Run("export-"+format, func(b *testing.B) {
			resetPeakRSS()
			var rows int64
			for b.Loop() {
				st, err := export.Write(ctx, db, io.Discard, format, query.Filter{Limit: bigExportRows})
				if err != nil {
					b.Fatal(err)
				}
				rows += st.Rows
			}
			b.ReportMetric(float64(rows)/float64(b.N), "rows")
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			mb := peakRSS(b)
			b.ReportMetric(mb, "MB-peak-RSS")
			peak = max(peak, mb)
		})
	}
	b.Run("peak-rss", func(b *testing.B) {
		for b.Loop() {
		}
		b.ReportMetric(0, "ns/op")
		b.ReportMetric(peak, "MB-peak-RSS")
	})
}

// countRows is a RowWriter that only counts.
type countRows struct{ n int }

func (w *countRows) Row([]any) error { w.n++; return nil }
func (w *countRows) Close() error    { return nil }

// middleCursor is the timeline cursor of msgs row id: paging from it is
// reading the middle of the recording.
func middleCursor(path string, id int64) (*query.Cursor, error) {
	db, err := sql.Open("sqlite", (&url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro"}).String())
	if err != nil {
		return nil, err
	}
	defer db.Close()
	c := &query.Cursor{ID: id}
	if err := db.QueryRow(`SELECT ts_ns FROM msgs WHERE id = ?`, id).Scan(&c.TS); err != nil {
		return nil, fmt.Errorf("middle of %s: %w", path, err)
	}
	return c, nil
}

// bigFile returns the benchmark file, generating it on the first call of
// the test binary unless a previous run left it in the cache.
func bigFile(b *testing.B) gen.Facts {
	b.Helper()
	big.once.Do(func() { big.facts, big.err = loadOrMakeBig() })
	if big.err != nil {
		b.Fatal(big.err)
	}
	return big.facts
}

func loadOrMakeBig() (gen.Facts, error) {
	n := int64(gen.DefaultMessages)
	if s := os.Getenv(bigMessagesEnv); s != "" {
		v, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil || v <= 0 {
			return gen.Facts{}, fmt.Errorf("%s=%q: want a number of messages", bigMessagesEnv, s)
		}
		n = v
	}
	dir, err := bigDir()
	if err != nil {
		return gen.Facts{}, err
	}
	key, err := bigKey(n)
	if err != nil {
		return gen.Facts{}, err
	}
	dbPath, factsPath := filepath.Join(dir, key+".db"), filepath.Join(dir, key+".json")
	if f, err := loadBig(dbPath, factsPath, n); err == nil {
		return f, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(os.Stderr, "bigbench: %v; generating it again\n", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return gen.Facts{}, err
	}
	removeStaleBig(dir, key, n)

	tmp := fmt.Sprintf("%s.tmp-%d", dbPath, os.Getpid())
	os.Remove(tmp)
	fmt.Fprintf(os.Stderr, "bigbench: generating %s (%d messages; about 20 s per million here, once: later runs reuse it)\n", dbPath, n)
	start, last := time.Now(), time.Now()
	f, err := gen.Write(context.Background(), tmp, gen.Config{Messages: n, Seed: bigSeed, Progress: func(done, total int64) {
		if time.Since(last) >= 15*time.Second {
			last = time.Now()
			fmt.Fprintf(os.Stderr, "bigbench: %d/%d messages after %v\n", done, total, time.Since(start).Round(time.Second))
		}
	}})
	if err != nil {
		return gen.Facts{}, fmt.Errorf("generate the benchmark file: %w", err)
	}
	fmt.Fprintf(os.Stderr, "bigbench: %d messages, %.0f MB in %v\n", f.Messages, float64(f.Summary.Bytes)/1e6, time.Since(start).Round(time.Second))
	if err := os.Rename(tmp, dbPath); err != nil {
		os.Remove(tmp)
		return gen.Facts{}, err
	}
	f.Path, f.Summary.Path = dbPath, dbPath
	js, err := json.MarshalIndent(f, "", "\t")
	if err != nil {
		return gen.Facts{}, err
	}
	// The facts are written last: with them, the file is complete.
	if err := os.WriteFile(factsPath+".tmp", js, 0o644); err != nil {
		return gen.Facts{}, err
	}
	if err := os.Rename(factsPath+".tmp", factsPath); err != nil {
		return gen.Facts{}, err
	}
	// What generating took is not what the queries take.
	debug.FreeOSMemory()
	resetPeakRSS()
	return f, nil
}

func loadBig(dbPath, factsPath string, n int64) (gen.Facts, error) {
	js, err := os.ReadFile(factsPath)
	if err != nil {
		return gen.Facts{}, err
	}
	var f gen.Facts
	if err := json.Unmarshal(js, &f); err != nil {
		return gen.Facts{}, fmt.Errorf("%s: %w", factsPath, err)
	}
	fi, err := os.Stat(dbPath)
	if err != nil {
		return gen.Facts{}, err
	}
	if f.Messages != n || fi.Size() != f.Summary.Bytes {
		return gen.Facts{}, fmt.Errorf("%s: %d bytes and %d messages, its facts say %d bytes and %d messages wanted", dbPath, fi.Size(), f.Messages, f.Summary.Bytes, n)
	}
	f.Path = dbPath
	return f, nil
}

// bigDir is where generated files are kept: DNSREC_BENCH_DIR, or
// .cache/bench in the repository (git-ignored).
func bigDir() (string, error) {
	if d := os.Getenv(bigDirEnv); d != "" {
		return d, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".cache", "bench"), nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.mod above %s: set %s", wd, bigDirEnv)
		}
	}
}

// bigKey names a generated file by what makes it: the generator's version,
// the schema (migrations and stop-time indexes), size and seed. A change to
// any of them makes a new file.
func bigKey(n int64) (string, error) {
	ms, err := schema.Migrations()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, m := range ms {
		h.Write([]byte(m.SQL))
	}
	h.Write([]byte(schema.StopIndexes))
	return fmt.Sprintf("big-gen%d-schema%s-n%d-seed%d", gen.Version, hex.EncodeToString(h.Sum(nil))[:10], n, bigSeed), nil
}

// removeStaleBig deletes files of the same size and seed made by another
// generator or schema version: at 10 million messages each is 1.5 GB.
func removeStaleBig(dir, key string, n int64) {
	old, _ := filepath.Glob(filepath.Join(dir, fmt.Sprintf("big-gen*-n%d-seed%d.*", n, bigSeed)))
	for _, p := range old {
		if !strings.HasPrefix(filepath.Base(p), key+".") {
			os.Remove(p)
		}
	}
}

// resetPeakRSS sets the kernel's peak-RSS mark (VmHWM) to the current RSS
// (Linux: "5" to /proc/self/clear_refs). If that fails the peak is the
// process's since it started.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM from /proc/self/status, in MB.
func peakRSS(b *testing.B) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
