package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestQueryExport writes every format to a file: the evidence keeps its
// SHA-256, the output is where -o says and nothing else is left beside it.
func TestQueryExport(t *testing.T) {
	dir := t.TempDir()
	db := build(t, dir, "case.db", querytest.Incident, "web01")
	before := querytest.Sum(t, db)
	for _, tc := range []struct{ format, head, stderr string }{
		{"pcapng", "\x0a\x0d\x0d\x0a", "19 packets, one per DNS message"},
		{"zeek", "#separator \\x09\n", "13 rows from 19 DNS messages"},
		{"ocsf", `{"activity_id":`, "13 events from 19 DNS messages"},
		{"parquet", "PAR1", "13 rows from 19 DNS messages"},
		{"csv", "time,", "19 rows: 19 DNS messages and 0 libc calls"},
	} {
		t.Run(tc.format, func(t *testing.T) {
			out := filepath.Join(dir, "out."+tc.format)
			r := dnsrec(t, dir, nil, "query", "export", "--db", db, "--format", tc.format, "-o", out)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if !strings.Contains(r.stderr, tc.stderr) || r.stdout != "" {
				t.Errorf("stdout %q, stderr %q, want it to say %q", r.stdout, r.stderr, tc.stderr)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(got, []byte(tc.head)) {
				t.Errorf("%s starts with %q", out, got[:min(len(got), 16)])
			}
			if _, err := os.Stat(out + ".tmp"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s.tmp left behind: %v", out, err)
			}
		})
	}
	// Filters and stdout.
	r := dnsrec(t, dir, nil, "query", "export", "--db", db, "--format", "zeek", "-o", "-", "--pid", "950", "--limit", "2")
	if r.code != 0 || strings.Count(r.stdout, "\tpython3\t") != 2 || strings.Count(r.stdout, "\n") != 8+2+1 {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if after := querytest.Sum(t, db); after != before {
		t.Errorf("the evidence changed: %x, was %x", after, before)
	}
}

// TestQueryExportRefuses: no export overwrites a file it was not told to,
// writes over the evidence, or leaves a partial file.
func TestQueryExportRefuses(t *testing.T) {
	dir := t.TempDir()
	db := build(t, dir, "case.db", querytest.Incident, "web01")
	before := querytest.Sum(t, db)
	existing := filepath.Join(dir, "dns.log")
	if err := os.WriteFile(existing, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.pcapng")
	if err := os.Symlink(db, link); err != nil {
		t.Fatal(err)
	}
	old := filepath.Join(dir, "old.db")
	b := querytest.NewAtVersion(t, old, 1)
	b.Close()
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no format", []string{"-o", "x.log"}, "--format is required: one of pcapng, zeek, ocsf, parquet"},
		{"bad format", []string{"--format", "pcap", "-o", "x.pcap"}, `--format "pcap": want one of pcapng, zeek, ocsf, parquet, csv, jsonl`},
		{"no output", []string{"--format", "zeek"}, "-o/--output FILE is required"},
		{"existing", []string{"--format", "zeek", "-o", existing}, "exists; use --force to replace it"},
		{"the evidence", []string{"--format", "zeek", "-o", db, "--force"}, "that is the evidence " + db},
		{"its -wal", []string{"--format", "zeek", "-o", db + "-wal"}, "that is the evidence " + db + "-wal"},
		{"a link to it", []string{"--format", "pcapng", "-o", link, "--force"}, "that is the evidence " + db},
		{"relative path to it", []string{"--format", "zeek", "-o", "./case.db", "--force"}, "that is the evidence"},
		{"a directory", []string{"--format", "zeek", "-o", dir, "--force"}, "is a directory"},
		{"bad filter", []string{"--format", "zeek", "-o", "x.log", "--qtype", "NOPE"}, "--qtype"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"query", "export", "--db", db}, tt.args...)
			r := dnsrec(t, dir, nil, args...)
			if r.code == 0 {
				t.Fatalf("exit 0, stderr:\n%s", r.stderr)
			}
			if !strings.Contains(r.stderr, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", r.stderr, tt.stderr)
			}
		})
	}
	// A failed export (a v1 file it cannot read) leaves neither the file
	// nor its .tmp.
	out := filepath.Join(dir, "fail.parquet")
	r := dnsrec(t, dir, nil, "query", "export", "--db", old, "--format", "parquet", "-o", out)
	if r.code == 0 || !strings.Contains(r.stderr, "schema v1") {
		t.Errorf("v1 file: exit %d, stderr %q", r.code, r.stderr)
	}
	for _, p := range []string{out, out + ".tmp", filepath.Join(dir, "x.log")} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after failed exports: %v", p, err)
		}
	}
	if got, _ := os.ReadFile(existing); string(got) != "keep me" {
		t.Errorf("the existing file was overwritten: %q", got)
	}
	if after := querytest.Sum(t, db); after != before {
		t.Errorf("the evidence changed: %x, was %x", after, before)
	}
	// --force replaces.
	if r := dnsrec(t, dir, nil, "query", "export", "--db", db, "--format", "zeek", "-o", existing, "--force"); r.code != 0 {
		t.Fatalf("--force: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	if got, _ := os.ReadFile(existing); !bytes.HasPrefix(got, []byte("#separator")) {
		t.Errorf("--force did not replace the file: %q", got[:min(len(got), 20)])
	}
}
