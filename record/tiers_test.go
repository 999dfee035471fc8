//go:build linux && (amd64 || arm64)

package record_test

import (
	"crypto/sha256"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"

	"github.com/dnsrec/dnsrec/bpf"
	"github.com/dnsrec/dnsrec/record"
)

var (
	tiersFlag  = flag.String("tiers", "", "comma-separated hook tiers for TestTiers (default: all)")
	expectFlag = flag.String("expect-tiers", "", "tiers that must run on this kernel (default: all in a vmtest guest, cgroup elsewhere)")
)

// tierClient is one process of the workload every tier must record alike.
type tierClient struct {
	label, name, network, server string
	spawn                        bool // resolve from a grandchild of the test
	txt                          int  // ask TXT only, for an answer of this many bytes
}

var tierWorkload = []tierClient{
	{"udp4", "udp4.tiers.test", "udp", "127.0.0.1:53", false, 0},
	{"tcp4", "tcp4.tiers.test", "tcp", "127.0.0.1:53", false, 0},
	{"udp6", "udp6.tiers.test", "udp", "[::1]:53", false, 0},
	{"tcp6", "tcp6.tiers.test", "tcp", "[::1]:53", false, 0},
	{"grandchild", "grandchild.tiers.test", "udp", "127.0.0.1:53", true, 0},
	// Large answers, kept whole by every tier: over UDP with
	// EDNS 65535, and over TCP, where one write can exceed a size class.
	{"txt-udp", "txt-udp.tiers.test", "udp", "127.0.0.1:53", false, 30000},
	{"txt-tcp", "txt-tcp.tiers.test", "tcp", "127.0.0.1:53", false, 60000},
}

// tierVariant is a tier as TestTiers runs it: "kprobe", or "kprobe-stable"
// for the kprobe tier hooking only stable functions (ip_send_skb), the path
// kernels that inline or rename udp_send_skb take.
type tierVariant struct {
	name   string
	tier   bpf.Tier
	stable bool
}

func variants(names []bpf.Tier) []tierVariant {
	var out []tierVariant
	for _, n := range names {
		t, stable := strings.CutSuffix(string(n), "-stable")
		out = append(out, tierVariant{string(n), bpf.Tier(t), stable})
	}
	return out
}

func allVariants() []bpf.Tier {
	var out []bpf.Tier
	for _, t := range bpf.Tiers {
		out = append(out, t)
		if t != bpf.TierCgroup {
			out = append(out, t+"-stable")
		}
	}
	return out
}

func splitTiers(s string) []bpf.Tier {
	var out []bpf.Tier
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, bpf.Tier(f))
		}
	}
	return out
}

// TestTiers records the same workload (UDP and TCP over IPv4 and IPv6, and a
// short-lived grandchild) with each hook tier, checks each recording, and
// checks that all tiers that ran produced the same rows: process, ancestry,
// direction, qname, qtype, rcode and answers. Process identities are
// compared by role in the workload, since every run has new pids.
//
// A tier the kernel cannot run is skipped, unless it is expected to run
// (-expect-tiers), in which case the test fails. `make vmtest` runs this on
// stock kernels where every tier is expected.
//
// Asked for more than one tier, the test compares at least two: it fails
// when fewer than two could be compared although two are expected to run
// here, and skips, naming the tiers that could not run and why, when the
// kernel runs fewer than two (a host with the cgroup tier only). A tier
// that lost rows the kernel counted is compared too, on the rows it has.
func TestTiers(t *testing.T) {
	requireRoot(t)
	names := splitTiers(*tiersFlag)
	if len(names) == 0 {
		names = allVariants()
	}
	tiers := variants(names)
	expect := splitTiers(*expectFlag)
	if len(expect) == 0 {
		expect = []bpf.Tier{bpf.TierCgroup}
		if os.Getenv("VMTEST") != "" {
			expect = bpf.Tiers
			if runtime.GOARCH == "arm64" && !kernelAtLeast(6, 4) {
				// arm64 attaches BPF trampolines from 6.4 (ftrace direct
				// calls); Debian's arm64 6.1 refuses with ENOTSUPP.
				expect = []bpf.Tier{bpf.TierKprobe, bpf.TierCgroup}
			}
		}
	}
	qnames := make([]string, len(tierWorkload))
	for i, c := range tierWorkload {
		qnames[i] = c.name
	}
	srv := startServer(t, qnames...)
	for _, c := range tierWorkload {
		if c.txt > 0 {
			srv.addTXT(c.name, c.txt)
		}
	}

	results := map[string]tierResult{}
	unsupported := map[string]error{} // variants this kernel cannot run
	for _, v := range tiers {
		tier := v.name
		t.Run(tier, func(t *testing.T) {
			rows, lost, err := recordTier(t, v, srv)
			if errors.Is(err, bpf.ErrTierUnsupported) && !slices.Contains(expect, v.tier) {
				unsupported[tier] = err
				fmt.Printf("\nVMTEST-TIER tier=%s result=unsupported\n", tier)
				if len(tiers) == 1 {
					fmt.Printf("\nVMTEST-UNSUPPORTED: %v\n", err)
				}
				t.Skipf("tier %s unsupported here: %v", tier, err)
			}
			if err != nil {
				t.Fatalf("tier %s: %v", tier, err)
			}
			if t.Failed() {
				return
			}
			results[tier] = tierResult{rows, lost}
			if lost > 0 {
				fmt.Printf("\nVMTEST-TIER tier=%s result=passed-counted-loss rows=%d lost=%d\n", tier, len(rows), lost)
			} else {
				fmt.Printf("\nVMTEST-TIER tier=%s result=passed rows=%d\n", tier, len(rows))
			}
		})
	}

	// Where the kernel preempts fentry programs, auto must not pick fentry.
	if model, _ := bpf.PreemptModel(); bpf.PreemptsTracing(model) && os.Getenv("VMTEST") != "" && len(tiers) > 1 {
		l, err := bpf.NewLoader(bpf.TierAuto, bpf.Config{Ports: []uint16{53}, Snaplen: bpf.MaxSnaplen, RingBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		c, skipped, err := l.Open()
		if err != nil {
			t.Errorf("auto: %v", err)
		} else {
			if c.Tier == bpf.TierFentry {
				t.Errorf("auto chose fentry on a kernel whose preemption model is %s", model)
			}
			passed := false
			for _, s := range skipped {
				passed = passed || s.Tier == bpf.TierFentry && errors.Is(s.Err, bpf.ErrTierPassedOver)
			}
			if !passed {
				t.Errorf("auto did not say it passed fentry over: %v", skipped)
			}
			fmt.Printf("\nVMTEST-AUTO tier=%s preempt=%s\n", c.Tier, model)
			c.Close()
		}
	}

	if len(tiers) < 2 {
		return // one tier asked for (-tiers): its own checks are the test
	}
	compared := compareTiers(t, tiers, results)
	// Two tiers can run here when two are expected to, or did.
	canRun := map[bpf.Tier]bool{}
	for _, v := range tiers {
		if _, ok := results[v.name]; ok || slices.Contains(expect, v.tier) {
			canRun[v.tier] = true
		}
	}
	if len(compared) >= 2 {
		return
	}
	if len(canRun) >= 2 {
		t.Errorf("only %d tier(s) compared (%v), although %d can run here: the tiers were not checked against each other", len(compared), compared, len(canRun))
		return
	}
	var why []string
	for _, v := range tiers {
		if err, ok := unsupported[v.name]; ok {
			why = append(why, fmt.Sprintf("%s: %v", v.name, err))
		}
	}
	t.Skipf("tiers not compared: this kernel runs %d tier(s) (%v); could not run:\n  %s", len(compared), compared, strings.Join(why, "\n  "))
}

// tierResult is one tier's normalized rows, and how many rows it lost
// that the kernel counted (see recordTier).
type tierResult struct {
	rows []string
	lost int
}

// compareTiers checks every tier's rows against a reference, a tier that
// lost nothing, and returns the distinct tiers compared. A tier with counted
// loss must hold no row the reference lacks, and lack no more than it lost.
func compareTiers(t *testing.T, tiers []tierVariant, results map[string]tierResult) []bpf.Tier {
	t.Helper()
	ref := ""
	for _, v := range tiers {
		if r, ok := results[v.name]; ok && r.lost == 0 {
			ref = v.name
			break
		}
	}
	if ref == "" {
		if len(results) > 0 {
			t.Errorf("no tier recorded the workload whole, nothing to compare against: %d tier(s) lost rows", len(results))
		}
		return nil
	}
	compared := []bpf.Tier{}
	for _, v := range tiers {
		r, ok := results[v.name]
		if !ok {
			continue
		}
		if !slices.Contains(compared, v.tier) {
			compared = append(compared, v.tier)
		}
		if v.name == ref {
			continue
		}
		missing, extra := setDiff(results[ref].rows, r.rows)
		switch {
		case r.lost > 0 && len(extra) == 0 && len(missing) <= r.lost:
			t.Logf("tier %s lost %d rows, counted by the kernel; the %d it holds are %s's", v.name, r.lost, len(r.rows), ref)
		case len(missing)+len(extra) > 0:
			t.Errorf("tier %s differs from %s (%d rows lost and counted):\n  only in %s: %q\n  only in %s: %q", v.name, ref, r.lost, ref, missing, v.name, extra)
		}
	}
	return compared
}

// recordTier records the workload with one tier and returns its normalized
// client rows, after checking that every client's query and answer are there.
//
// One exception: fentry on a kernel that preempts kernel code (the lazy
// or full preemption model) skips hook calls under load, and a slow
// emulated CPU makes that likely. Rows missing there are accepted
// when the kernel counted at least as many skipped calls (loss.hook_misses):
// lost is then their number. Anywhere else, and beyond the count, a missing
// row fails.
func recordTier(t *testing.T, v tierVariant, srv *testServer) (rows []string, lost int, err error) {
	tier := v.name
	path := filepath.Join(t.TempDir(), tier+".db")
	opts := record.Options{Hook: v.tier, StableHooks: v.stable, OwnerWait: 300 * time.Millisecond}
	if os.Getenv("DNSREC_TEST_DEBUG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	stop, err := tryStartRecorder(t, path, opts)
	if err != nil {
		return nil, 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, 0, err
	}
	labels := map[int]string{os.Getpid(): "test"}
	for _, c := range tierWorkload {
		cmd := exec.Command(self)
		cmd.Env = append(os.Environ(), envChild+"="+c.name, "DNSREC_TEST_SERVER="+c.server, "DNSREC_TEST_NET="+c.network)
		if c.txt > 0 {
			cmd.Env = append(cmd.Env, "DNSREC_TEST_TXT=1")
		}
		if c.spawn {
			cmd.Env = append(cmd.Env, "DNSREC_TEST_SPAWN=1")
		}
		pid, out := run(t, cmd)
		if c.spawn {
			labels[pid] = "spawner"
			gpid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "pid=")))
			if err != nil {
				return nil, 0, fmt.Errorf("grandchild printed %q", out)
			}
			pid = gpid
		}
		labels[pid] = c.label
	}
	stop()

	db := openRO(t, path)
	var hook string
	if err := db.QueryRow(`SELECT hook FROM sessions`).Scan(&hook); err != nil || hook != string(v.tier) {
		t.Errorf("sessions.hook = %q (%v), want %s", hook, err, v.tier)
	}
	rows = tierRows(t, db, labels)
	var missing []string
	// What the kernel said it lost: ring buffer drops and skipped hook
	// calls (each a missing row below, if any).
	var drops, misses sql.NullInt64
	if err := db.QueryRow(`SELECT ringbuf_drops, hook_misses FROM loss ORDER BY id DESC LIMIT 1`).Scan(&drops, &misses); err != nil && !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("loss: %v", err)
	}
	lossNote := fmt.Sprintf("loss: ringbuf_drops=%d hook_misses=%d", drops.Int64, misses.Int64)
	fmt.Printf("\nVMTEST-LOSS tier=%s %s\n", tier, lossNote)
	for _, c := range tierWorkload {
		ancestry := "test"
		if c.spawn {
			ancestry = "spawner>test"
		}
		wants := []string{
			fmt.Sprintf("%s|%s|send|%s|1|0|", c.label, ancestry, c.name),
			fmt.Sprintf("%s|%s|recv|%s|1|0|%s", c.label, ancestry, c.name, srv.addr4(c.name)),
			fmt.Sprintf("%s|%s|send|%s|28|0|", c.label, ancestry, c.name),
			fmt.Sprintf("%s|%s|recv|%s|28|0|%s", c.label, ancestry, c.name, srv.addr6(c.name)),
		}
		if c.txt > 0 {
			wants = []string{
				fmt.Sprintf("%s|%s|send|%s|16|0|", c.label, ancestry, c.name),
				fmt.Sprintf("%s|%s|recv|%s|16|0|%s", c.label, ancestry, c.name, txtSummary(srv.txtRecords(c.name))),
			}
		}
		for _, want := range wants {
			if !slices.Contains(rows, want) {
				missing = append(missing, fmt.Sprintf("missing row %q; all messages for %s:\n%s", want, c.name, dumpMessages(t, db, c.name)))
			}
		}
	}
	if len(missing) == 0 {
		return rows, 0, nil
	}
	model, source := bpf.PreemptModel()
	if v.tier == bpf.TierFentry && bpf.PreemptsTracing(model) && misses.Int64 >= int64(len(missing)) {
		t.Logf("tier %s: %d rows missing, and the kernel (preemption model %s, from %s) counted %d skipped hook calls: counted loss, not compared", tier, len(missing), model, source, misses.Int64)
		return rows, len(missing), nil
	}
	for _, m := range missing {
		t.Errorf("tier %s (%s, preemption model %q): %s", tier, lossNote, model, m)
	}
	t.Errorf("tier %s: have %q", tier, rows)
	return rows, 0, nil
}

// tierRows renders every client message of the workload as
// label|ancestry|direction|qname|qtype|rcode|answers, and |cut when the
// message was stored cut, pids replaced by their
// role in the workload (ancestry up to the test process), as a sorted set.
func tierRows(t *testing.T, db *sql.DB, labels map[int]string) []string {
	t.Helper()
	q, err := db.Query(`SELECT m.id, m.pid, m.direction, m.qname, m.qtype, m.rcode,
		coalesce((SELECT group_concat(data, ';') FROM (SELECT a.data FROM answers a
			WHERE a.message_id = m.id AND a.section = 'answer' ORDER BY a.id)), ''), m.truncated
		FROM messages m WHERE m.role = 'client' AND m.qname_rev >= 'test.tiers.' AND m.qname_rev < 'test.tiers/'`)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := map[string]bool{}
	for q.Next() {
		var id, pid, qtype, rcode sql.NullInt64
		var dir, qname, answers string
		var cut bool
		if err := q.Scan(&id, &pid, &dir, &qname, &qtype, &rcode, &answers, &cut); err != nil {
			t.Fatal(err)
		}
		if qtype.Int64 == int64(dns.TypeTXT) && answers != "" {
			answers = txtSummary(strings.Split(answers, ";"))
		}
		label := labels[int(pid.Int64)]
		if !pid.Valid || label == "" {
			label = fmt.Sprintf("unknown(pid %v)", pid)
		}
		var up []string
		for _, p := range ancestry(t, db, qname, int(pid.Int64)) {
			l, ok := labels[p]
			if !ok {
				l = "?"
			}
			up = append(up, l)
			if l == "test" {
				break
			}
		}
		row := fmt.Sprintf("%s|%s|%s|%s|%d|%d|%s", label, strings.Join(up, ">"), dir, qname, qtype.Int64, rcode.Int64, answers)
		if cut {
			row += "|cut"
		}
		set[row] = true
	}
	if err := q.Err(); err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// txtSummary stands for a large TXT answer section in a row: how many
// records, how many bytes of data, and a hash of them in order.
func txtSummary(data []string) string {
	h := sha256.Sum256([]byte(strings.Join(data, ";")))
	n := 0
	for _, d := range data {
		n += len(d)
	}
	return fmt.Sprintf("%d TXT records, %d bytes, sha256 %x", len(data), n, h[:8])
}

// setDiff returns what is only in a and only in b (both sorted).
func setDiff(a, b []string) (onlyA, onlyB []string) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

// dumpMessages lists everything recorded for qname, for failure reports.
func dumpMessages(t *testing.T, db *sql.DB, qname string) string {
	q, err := db.Query(`SELECT id, direction, role, proto, saddr, sport, daddr, dport, coalesce(pid, -1), coalesce(qtype, -1),
		orig_len, length(raw), coalesce(parse_error, '') FROM messages WHERE qname = ? OR qname IS NULL ORDER BY id`, qname)
	if err != nil {
		return err.Error()
	}
	defer q.Close()
	var b strings.Builder
	for q.Next() {
		var id, sport, dport, pid, qtype, olen, rlen int64
		var dir, role, proto, saddr, daddr, perr string
		if err := q.Scan(&id, &dir, &role, &proto, &saddr, &sport, &daddr, &dport, &pid, &qtype, &olen, &rlen, &perr); err != nil {
			return err.Error()
		}
		fmt.Fprintf(&b, "  #%d %s %s %s %s:%d > %s:%d pid=%d qtype=%d len=%d/%d %s\n", id, dir, role, proto, saddr, sport, daddr, dport, pid, qtype, rlen, olen, perr)
	}
	return b.String()
}

// kernelAtLeast reports whether the running kernel's release is at least
// major.minor.
func kernelAtLeast(major, minor int) bool {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return false
	}
	var ma, mi int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(uts.Release[:]), "%d.%d", &ma, &mi); err != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
