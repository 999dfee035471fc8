//go:build linux && (amd64 || arm64)

package record_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
)

// recorderLink finds, among the file descriptors of process pid, the BPF
// link that runs the program named prog, and returns its id: the link is
// then the recorder's own, not one of another program's.
func recorderLink(t *testing.T, pid int, prog string) link.ID {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		var linkID, progID uint64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			switch k {
			case "link_id":
				linkID = n
			case "prog_id":
				progID = n
			}
		}
		f.Close()
		if linkID == 0 || progID == 0 {
			continue
		}
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(progID))
		if err != nil {
			continue
		}
		info, err := p.Info()
		p.Close()
		if err == nil && info.Name == prog {
			return link.ID(linkID)
		}
	}
	t.Fatalf("process %d holds no BPF link of program %s", pid, prog)
	return 0
}

// TestCLIBlindingOnRecord detaches one of a running recorder's cgroup
// links from outside, as `bpftool link detach` does, makes another run a
// program of the test's (BPF_LINK_UPDATE), then stops the
// recorder with SIGTERM from a /bin/kill the test starts. The file must
// hold the detachment and the replacement (naming the programs), both
// re-attachments, and a stop
// event naming that kill's exact pid and exe; the log must say it at
// ERROR level; and DNS after the re-attachment must be recorded.
func TestCLIBlindingOnRecord(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const after = "after.blind.test"
	startServer(t, after)
	path := filepath.Join(dir, "case.db")
	anchorLog := filepath.Join(filepath.Dir(path), "anchor.log")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--hook", "cgroup", "--no-libc", "--no-tls", "--watch-every", "200ms",
		"--anchor", "file:"+anchorLog, "--checkpoint-every", "500ms")

	id := recorderLink(t, rec.cmd.Process.Pid, "dns_egress")
	l, err := link.NewFromID(id)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Detach(); err != nil {
		t.Fatalf("detach link %d: %v", id, err)
	}
	l.Close()
	rec.waitFor(t, "CAPTURE BLINDED")
	rec.waitFor(t, "re-attached")

	// Another: its link made to run someone else's program
	// (BPF_LINK_UPDATE), one that lets every packet through unseen.
	other, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "blind_test", Type: ebpf.CGroupSKB, AttachType: ebpf.AttachCGroupInetIngress, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ingress := recorderLink(t, rec.cmd.Process.Pid, "dns_ingress")
	il, err := link.NewFromID(ingress)
	if err != nil {
		t.Fatal(err)
	}
	if err := il.Update(other); err != nil {
		t.Fatalf("update link %d: %v", ingress, err)
	}
	il.Close()
	rec.waitFor(t, "CAPTURE BLINDED")
	rec.waitFor(t, "re-attached")
	// Capture works again: a query now is recorded.
	exchanges(after, 0, func(done int64) bool { return done < 1 })

	killPath, err := filepath.EvalSymlinks("/bin/kill")
	if err != nil {
		t.Skip("no /bin/kill")
	}
	kill := exec.Command("/bin/kill", "-TERM", strconv.Itoa(rec.cmd.Process.Pid))
	if err := kill.Run(); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(); err != nil {
		t.Fatalf("recorder: %v\n%s", err, rec.logText())
	}
	log := rec.logText()
	if !strings.Contains(log, "level=ERROR msg=\"CAPTURE BLINDED") || !strings.Contains(log, "program=dns_egress") {
		t.Errorf("no ERROR naming dns_egress in the log:\n%s", log)
	}

	db := openRO(t, path)
	events := map[string][]string{}
	rows, err := db.Query(`SELECT kind, detail FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k, d string
		if err := rows.Scan(&k, &d); err != nil {
			t.Fatal(err)
		}
		events[k] = append(events[k], d)
	}
	rows.Close()
	t.Logf("events: %q", events)
	if len(events["start"]) != 1 || !strings.Contains(events["start"][0], fmt.Sprintf("recorder pid %d ", rec.cmd.Process.Pid)) {
		t.Errorf("start events %q, want one naming pid %d", events["start"], rec.cmd.Process.Pid)
	}
	if len(events["detached"]) != 1 || !strings.Contains(events["detached"][0], fmt.Sprintf("link %d of program dns_egress", id)) {
		t.Errorf("detached events %q, want one naming link %d of dns_egress", events["detached"], id)
	}
	if len(events["replaced"]) != 1 || !strings.HasPrefix(events["replaced"][0], fmt.Sprintf("link %d runs program id ", ingress)) ||
		!strings.Contains(events["replaced"][0], " (blind_test), not the recorder's dns_ingress ") {
		t.Errorf("replaced events %q, want one naming link %d, blind_test and dns_ingress", events["replaced"], ingress)
	}
	if len(events["reattached"]) != 2 || !strings.HasPrefix(events["reattached"][0], "dns_egress re-attached as link ") ||
		!strings.HasPrefix(events["reattached"][1], "dns_ingress re-attached as link ") {
		t.Errorf("reattached events %q, want dns_egress's and dns_ingress's", events["reattached"])
	}
	sender := fmt.Sprintf("SIGTERM from pid %d exe %s argv [\"/bin/kill\",\"-TERM\",\"%d\"] uid %d", kill.Process.Pid, killPath, rec.cmd.Process.Pid, os.Getuid())
	if len(events["stop"]) != 1 || events["stop"][0] != "stopped by "+sender+` comm "kill"` {
		t.Errorf("stop events %q, want one stopped by %s", events["stop"], sender)
	}
	if len(events["signal"]) != 1 || !strings.HasPrefix(events["signal"][0], sender) {
		t.Errorf("signal events %q, want one from %s", events["signal"], sender)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = ?`, after).Scan(&n); err != nil || n == 0 {
		t.Errorf("%d messages of %s after the re-attachment (%v): capture did not resume", n, after, err)
	}
	db.Close()
	if out, err := exec.Command(bin, "query", "verify", "--db", path, "--anchors", anchorLog).CombinedOutput(); err != nil {
		t.Errorf("verify --anchors: %v\n%s", err, out)
	}
	// The signed checkpoints that left the host carry the events: the
	// stop's counts every one in the file, and one made after the
	// detachment already counts it.
	total := 0
	for _, d := range events {
		total += len(d)
	}
	b, err := os.ReadFile(anchorLog)
	if err != nil {
		t.Fatal(err)
	}
	var stopEvents, maxBefore int = -1, 0
	for _, l := range strings.Split(string(b), "\n") {
		m := regexp.MustCompile(` events=(\d+) .* reason=(\S+)`).FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		if m[2] == "stop" {
			stopEvents = n
		} else {
			maxBefore = max(maxBefore, n)
		}
	}
	if stopEvents != total || maxBefore < 3 {
		t.Errorf("checkpoints: the stop's counts %d events (want %d, every one in the file), the others at most %d (want the start, the detachment and its re-attachment: 3 or more)\n%s", stopEvents, total, maxBefore, b)
	}
}
