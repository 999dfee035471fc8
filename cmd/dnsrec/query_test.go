package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// The end-to-end tests run the real command line in a child process: this
// test binary, re-executed with helperEnv set, runs main with the arguments
// after "--". That covers argument reordering, flag parsing, the default
// format on a pipe, stdout, stderr and the exit status, with no go build.
const helperEnv = "DNSREC_TEST_MAIN"

func TestMainHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return // only meaningful as the child of dnsrec()
	}
	i := slices.Index(os.Args, "--")
	os.Args = append([]string{"dnsrec"}, os.Args[i+1:]...)
	main()
	os.Exit(0)
}

type result struct {
	stdout, stderr string
	code           int
}

// dnsrec runs `dnsrec args...` in dir with env added to the environment.
func dnsrec(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestMainHelper$", "--"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, dbEnv+"=")
	}), append([]string{helperEnv + "=1"}, env...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return result{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

func build(t *testing.T, dir, name string, fill func(*querytest.Builder, string), host string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	b := querytest.New(t, p)
	fill(b, host)
	b.Close()
	return p
}

func readGolden(t *testing.T, name string) string {
	t.Helper()
	// The query package's golden files: the command line must print exactly
	// what the library renders.
	b, err := os.ReadFile(filepath.Join("..", "..", "query", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestQueryWhoResolved(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	db02 := build(t, dir, "db 02, copy?#.db", querytest.SecondHost, "db02")
	hashes := map[string][32]byte{web: querytest.Sum(t, web), db02: querytest.Sum(t, db02)}

	tests := []struct {
		name   string
		env    []string
		args   []string
		golden string // expected stdout, from query/testdata
	}{
		{
			name:   "flags after the name, csv on a pipe",
			args:   []string{"query", "who-resolved", "evil.com", "--db", web},
			golden: "who-resolved-evil.com.csv",
		},
		{
			name:   "flags before the name",
			args:   []string{"query", "who-resolved", "--db", web, "--format", "table", "evil.com"},
			golden: "who-resolved-evil.com.table",
		},
		{
			name:   "exact, json",
			args:   []string{"query", "who-resolved", "EVIL.COM.", "--exact", "--format=json", "--db", web},
			golden: "who-resolved-evil.com-exact.json",
		},
		{
			name: "two hosts, a file name with a comma, spaces, ? and #",
			// Relative paths: the file column shows them as given.
			args:   []string{"query", "who-resolved", "--db", "web01.db", "www.evil.com", "--db", "db 02, copy?#.db", "--format", "jsonl"},
			golden: "who-resolved-two-hosts-files.jsonl",
		},
		{
			name:   "DNSREC_DB",
			env:    []string{dbEnv + "=" + web},
			args:   []string{"query", "who-resolved", "evil.com"},
			golden: "who-resolved-evil.com.csv",
		},
		{
			name:   "--db wins over DNSREC_DB",
			env:    []string{dbEnv + "=" + filepath.Join(dir, "missing.db")},
			args:   []string{"query", "who-resolved", "evil.com", "--db", web},
			golden: "who-resolved-evil.com.csv",
		},
		{
			name:   "no match",
			args:   []string{"query", "who-resolved", "example.org", "--db", web, "--format", "json"},
			golden: "who-resolved-none.json",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dnsrec(t, dir, tt.env, tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
			}
			if want := readGolden(t, tt.golden); r.stdout != want {
				t.Errorf("stdout:\n%s\nwant (%s):\n%s", r.stdout, tt.golden, want)
			}
			if r.stderr != "" {
				t.Errorf("stderr: %s", r.stderr)
			}
		})
	}
	for p, h := range hashes {
		if querytest.Sum(t, p) != h {
			t.Errorf("%s: SHA-256 changed", p)
		}
	}
}

// TestQueryDefaultDB runs from a directory holding case.db, with no --db.
func TestQueryDefaultDB(t *testing.T) {
	dir := t.TempDir()
	build(t, dir, "case.db", querytest.Incident, "web01")
	r := dnsrec(t, dir, nil, "query", "who-resolved", "--format", "json", "beacon.evil.com")
	if r.code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil {
		t.Fatalf("%v:\n%s", err, r.stdout)
	}
	if len(rows) != 1 || rows[0]["comm"] != "evil" || rows[0]["pid"] != float64(2000) || rows[0]["exe"] != nil {
		t.Errorf("rows: %v", rows)
	}
}

func TestQueryErrors(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	foreign := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(foreign, []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		stderr string
	}{
		{"default file missing", []string{"query", "who-resolved", "evil.com"},
			"dnsrec: who-resolved: open case.db: no such file: case.db is the file read when neither --db nor $DNSREC_DB names one; name the evidence with --db FILE"},
		{"named file missing", []string{"query", "who-resolved", "evil.com", "--db", "gone.db"},
			"dnsrec: who-resolved: open gone.db: no such file\n"},
		{"foreign file", []string{"query", "who-resolved", "evil.com", "--db", foreign},
			"not a dnsrec database"},
		{"two names", []string{"query", "who-resolved", "a.com", "b.com", "--db", web},
			"want one NAME (none for every name), got 2 arguments"},
		{"bad format", []string{"query", "who-resolved", "evil.com", "--db", web, "--format", "xml"},
			`dnsrec: who-resolved: --format: unknown format "xml": want one of table, csv, json, jsonl` + "\n"},
		{"address", []string{"query", "who-resolved", "--db", web, "203.0.113.7"},
			"203.0.113.7 is an address, not a name: try resolved-to 203.0.113.7\n"},
		// The dangling flag stays last, so it cannot take the name as its value.
		{"--db without a value", []string{"query", "who-resolved", "evil.com", "--db"},
			`got 2 arguments ["evil.com" "--db"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := dnsrec(t, dir, nil, tt.args...)
			if r.code == 0 {
				t.Fatalf("exit 0, stdout:\n%s", r.stdout)
			}
			if !strings.Contains(r.stderr+r.stdout, tt.stderr) {
				t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.stderr, tt.stderr)
			}
		})
	}
	// A refused open must not have created the default file.
	if _, err := os.Stat(filepath.Join(dir, "case.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("case.db after the failed runs: %v", err)
	}
}
