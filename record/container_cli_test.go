//go:build linux && (amd64 || arm64)

package record_test

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/dnsrec/dnsrec/bpf"
)

// TestContainerIdentity: a process in fresh pid, mount
// and network namespaces, in a cgroup with a docker-style path the test
// makes, is recorded with its container id and cgroup path, its pid inside
// its own namespace and its namespace ids; --container finds it by a short
// id, and only it.
func TestContainerIdentity(t *testing.T) {
	requireRoot(t)
	dig := lookExe(t, "dig")
	lookExe(t, "ip")
	root, cleanup, err := bpf.CgroupV2Root()
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	raw := make([]byte, 32)
	rand.Read(raw)
	id := hex.EncodeToString(raw)
	slice := filepath.Join(root, "dnsrec-test.slice")
	cg := filepath.Join(slice, "docker-"+id+".scope")
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// The namespaced processes have exited: the cgroups are empty.
		for _, d := range []string{cg, slice} {
			for range 50 {
				if err := os.Remove(d); err == nil || os.IsNotExist(err) {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()

	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	path := filepath.Join(dir, "container.db")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")
	child := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--net", "--mount", "sh", "-c",
		"echo 0 > "+cg+"/cgroup.procs && ip link set lo up && "+dig+" +tries=1 +time=1 @127.0.0.1 container.dnsrec.test; sleep 0.3")
	if out, err := child.CombinedOutput(); err != nil {
		t.Fatalf("namespaced dig: %v\n%s", err, out)
	}
	stopRecorder(t, rec)

	db := openRO(t, path)
	var container, cgroup, exe string
	var pid, nspid, pidns, netns int64
	err = db.QueryRow(`SELECT coalesce(p.container, ''), coalesce(p.cgroup, ''), coalesce(p.exe, ''), o.pid, o.nspid, o.pidns, o.netns
		FROM msgs m JOIN names n ON n.id = m.name_id JOIN owners o ON o.id = m.s_owner JOIN processes p ON p.id = o.process_id
		WHERE n.name = 'container.dnsrec.test' AND m.obs & 1 LIMIT 1`).Scan(&container, &cgroup, &exe, &pid, &nspid, &pidns, &netns)
	if err != nil {
		t.Fatal(err)
	}
	if container != id || cgroup != "/dnsrec-test.slice/docker-"+id+".scope" || exe != dig {
		t.Errorf("dig stored with container %q, cgroup %q, exe %q; want %s, /dnsrec-test.slice/docker-%s.scope, %s", container, cgroup, exe, id, id, dig)
	}
	if nspid < 1 || nspid > 10 || nspid == pid {
		t.Errorf("dig's pid inside its namespace: %d (host pid %d), want a small number of its own", nspid, pid)
	}
	if pidns == selfNS(t, "pid") || netns == selfNS(t, "net") {
		t.Errorf("dig's namespaces pid %d, net %d: the test's own", pidns, netns)
	}

	rows := queryCSV(t, bin, "--db", path, "who-resolved", "container.dnsrec.test", "--container", id[:12])
	if len(rows) != 1 || rows[0]["container"] != id || rows[0]["comm"] != "dig" {
		t.Errorf("who-resolved --container %s: %v", id[:12], rows)
	}
	if rows := queryCSV(t, bin, "--db", path, "who-resolved", "container.dnsrec.test", "--container", strings.Repeat("f", 12)); len(rows) != 0 {
		t.Errorf("who-resolved --container of another container: %v", rows)
	}
}

// selfNS is the inode of the test's own namespace of a kind.
func selfNS(t *testing.T, kind string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/"+kind, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Ino)
}
