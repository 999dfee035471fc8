//go:build linux && (amd64 || arm64)

package record_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCLIBinaryRecords: the dnsrec binary itself (not the package inside
// the test) records a query of a process the test starts, with its exact
// pid and exe. In the kernel matrix (make vmtest) the binary is the static
// one `make build` / `make build-arm64` made for the guest's arch, passed as
// DNSREC_BIN; on the host it is built here.
func TestCLIBinaryRecords(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const name = "cli.tiers.test"
	srv := startServer(t, name)
	path := filepath.Join(dir, "cli.db")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), envChild+"="+name, "DNSREC_TEST_SERVER=127.0.0.1:53", "DNSREC_TEST_NET=udp")
	pid, _ := run(t, cmd)
	stopRecorder(t, rec)

	db := openRO(t, path)
	var gotPID int
	var exe, answers string
	err = db.QueryRow(`SELECT m.pid, coalesce(p.exe, ''),
		coalesce((SELECT group_concat(a.data, ';') FROM answers a WHERE a.message_id = m.id AND a.section = 'answer'), '')
		FROM messages m LEFT JOIN processes p ON p.id = m.process_id
		WHERE m.qname = ? AND m.role = 'client' AND m.direction = 'recv' AND m.qtype = 1`, name).Scan(&gotPID, &exe, &answers)
	if err != nil {
		t.Fatalf("the client's A answer: %v\n%s", err, dumpMessages(t, db, name))
	}
	if gotPID != pid || exe != self || answers != srv.addr4(name) {
		t.Errorf("recorded pid %d exe %q answers %q; want pid %d exe %q answers %q", gotPID, exe, answers, pid, self, srv.addr4(name))
	}
}
