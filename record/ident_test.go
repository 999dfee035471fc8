//go:build linux && (amd64 || arm64)

package record_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/dnsrec/dnsrec/record"
)

// TestIdentityChangeNoticed: the kernel caches a process's identity; a
// process that drops to another uid after its first message must be
// recorded under its new uid from then on.
func TestIdentityChangeNoticed(t *testing.T) {
	requireRoot(t)
	const name = "uid.ident.test"
	startServer(t, name, "after."+name)
	path := filepath.Join(t.TempDir(), "ident.db")
	stop := startRecorder(t, path, record.Options{})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), envChild+"="+name, "DNSREC_TEST_SERVER=127.0.0.1:53", "DNSREC_TEST_SETUID=65534")
	pid, _ := run(t, cmd)
	stop()

	db := openRO(t, path)
	for qname, want := range map[string]int64{name: 0, "after." + name: 65534} {
		rows, err := db.Query(`SELECT DISTINCT uid FROM messages WHERE qname = ? AND pid = ? AND direction = 'send'`, qname, pid)
		if err != nil {
			t.Fatal(err)
		}
		var uids []int64
		for rows.Next() {
			var u int64
			rows.Scan(&u)
			uids = append(uids, u)
		}
		rows.Close()
		if len(uids) != 1 || uids[0] != want {
			t.Errorf("%s sent by pid %d with uids %v, want only %d", qname, pid, uids, want)
		}
	}
}
