package main

import (
	"strings"
	"testing"

	"github.com/dnsrec/dnsrec/query/querytest"
)

// TestColumns: --columns picks and orders the columns of a listing in
// every format, and of the csv export.
func TestColumns(t *testing.T) {
	dir := t.TempDir()
	web := build(t, dir, "web01.db", querytest.Incident, "web01")
	run := func(args ...string) result {
		t.Helper()
		return dnsrec(t, dir, nil, append(args, "--db", web)...)
	}
	for _, tc := range []struct {
		format, want string
	}{
		{"csv", "qname,pid,comm\nwww.evil.com,901,curl\n"},
		{"json", "[\n" + `{"qname":"www.evil.com","pid":901,"comm":"curl"}` + "\n]\n"},
		{"table", "QNAME         PID  COMM\nwww.evil.com  901  curl\n"},
	} {
		r := run("query", "who-resolved", "www.evil.com", "--exact", "--columns", "qname,pid,comm", "--format", tc.format)
		if r.code != 0 || r.stdout != tc.want {
			t.Errorf("%s: exit %d\n%q\nwant\n%q\n%s", tc.format, r.code, r.stdout, tc.want, r.stderr)
		}
	}
	r := run("query", "export", "--format", "csv", "-o", "-", "--pid", "901", "--limit", "1", "--columns", "src_pid,src_exe,src_ancestry,qname")
	if want := "src_pid,src_exe,src_ancestry,qname\n901,/usr/bin/curl,sh(812) > sshd(640) > systemd(1),www.evil.com\n"; r.code != 0 || r.stdout != want {
		t.Errorf("export: exit %d\n%q\nwant\n%q\n%s", r.code, r.stdout, want, r.stderr)
	}
	r = run("query", "info", "--columns", "host,messages,observations", "--format", "csv")
	if !strings.HasPrefix(r.stdout, "host,messages,observations\nweb01,") {
		t.Errorf("info: %q %s", r.stdout, r.stderr)
	}
	r = run("query", "timeline", "--columns", "qname,nope")
	if r.code == 0 || !strings.Contains(r.stderr, `no column "nope": this listing has time,host,id,`) {
		t.Errorf("unknown column: exit %d, stderr %s", r.code, r.stderr)
	}
}
