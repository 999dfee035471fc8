//go:build linux && (amd64 || arm64)

package record_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/record"
)

// Rotation, record-time filters and the interface of each observation,
// through the CLI as a user runs it.

// exchanges asks for name from 4 workers, each pausing after every
// exchange, for as long as more, given how many exchanges have got their
// answer, says so; it returns that count.
func exchanges(name string, pause time.Duration, more func(done int64) bool) int64 {
	var done atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &dns.Client{Timeout: 2 * time.Second}
			m := new(dns.Msg)
			m.SetQuestion(name+".", dns.TypeA)
			for more(done.Load()) {
				if r, _, err := c.Exchange(m, "127.0.0.1:53"); err == nil && len(r.Answer) == 1 {
					done.Add(1)
				}
				time.Sleep(pause)
			}
		}()
	}
	wg.Wait()
	return done.Load()
}

// exchangeFor asks for name, about 2k queries a second in all, for d, and
// returns how many exchanges got their answer.
func exchangeFor(name string, d time.Duration) int64 {
	stop := time.Now().Add(d)
	return exchanges(name, 2*time.Millisecond, func(int64) bool { return time.Now().Before(stop) })
}

// stopRecorder sends SIGINT and waits for a clean exit.
func stopRecorder(t *testing.T, rec *recorderCLI) {
	t.Helper()
	if err := rec.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := rec.wait(); err != nil {
		t.Fatalf("dnsrec record: %v\n%s", err, rec.logText())
	}
}

// queryCSV runs `dnsrec query ARGS --format csv` and returns its rows as
// maps by column.
func queryCSV(t *testing.T, bin string, args ...string) []map[string]string {
	t.Helper()
	cmd := exec.Command(bin, append(append([]string{"query"}, args...), "--format", "csv")...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("dnsrec query %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	recs, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("dnsrec query %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	var rows []map[string]string
	for _, r := range recs[1:] {
		m := map[string]string{}
		for i, c := range recs[0] {
			m[c] = r[i]
		}
		rows = append(rows, m)
	}
	return rows
}

// TestCLIRotationUnderLoad: a recording rotated every second under a
// steady load is a series of files that each stand alone (a session with
// its part number, stopped cleanly, out of WAL mode, verified, its SHA-256
// printed), and together they hold every observation: 4 per exchange.
func TestCLIRotationUnderLoad(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const name = "rotate.dnsrec.test"
	startServer(t, name)
	out := filepath.Join(dir, "case.db")

	rec := startRecorderCLI(t, bin, "record", "-o", out, "--rotate", "1s", "--status-interval", "0")
	completed := exchangeFor(name, 4500*time.Millisecond)
	stopRecorder(t, rec)

	files, err := filepath.Glob(filepath.Join(dir, "case-*.db"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 4 {
		t.Fatalf("%d files after 4.5 s rotated every second: %q\n%s", len(files), files, rec.logText())
	}
	hashes := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(rec.stdout.String()), "\n") {
		if sum, path, ok := strings.Cut(l, "  "); ok {
			hashes[path] = sum
		}
	}
	var total, drops int64
	for i, f := range files {
		if want := record.RotatedPath(out, i+1); f != want {
			t.Errorf("file %d is %s, want %s", i+1, f, want)
		}
		if _, err := os.Stat(f + "-wal"); err == nil {
			t.Errorf("%s-wal left behind: the file was not closed cleanly", f)
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hashes[f]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: printed SHA-256 %q, the file's is %x", f, got, sum)
		}
		db := openRO(t, f)
		var part, stopped *int64
		if err := db.QueryRow(`SELECT part, stopped_ns FROM sessions`).Scan(&part, &stopped); err != nil {
			t.Fatal(err)
		}
		if part == nil || *part != int64(i+1) || stopped == nil {
			t.Errorf("%s: sessions part %v, stopped_ns %v: want part %d, stopped", f, part, stopped, i+1)
		}
		var n, d int64
		if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		db.QueryRow(`SELECT coalesce(max(ringbuf_drops), 0) FROM loss`).Scan(&d)
		t.Logf("%s: %d observations, %d ring buffer drops", filepath.Base(f), n, d)
		total += n
		drops += d
		db.Close()
	}
	if total != 4*completed {
		t.Errorf("%d observations across %d files, want 4 x %d exchanges = %d (ring buffer drops %d)\n%s",
			total, len(files), completed, 4*completed, drops, rec.logText())
	}
	for _, r := range queryCSV(t, bin, "--db", filepath.Join(dir, "case-*.db"), "verify") {
		if !strings.HasPrefix(r["result"], "ok") || strings.Contains(r["result"], "not stopped") {
			t.Errorf("verify %s: %q %s", r["file"], r["result"], r["problem"])
		}
	}

	// A second recording does not mix its files with this series.
	cmd := exec.Command(bin, "record", "-o", out, "--rotate", "1s")
	msg, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "refusing") || !strings.Contains(string(msg), "--force") {
		t.Errorf("a rotated recording over an existing series: %v\n%s", err, msg)
	}
}

// rotatedRun records with args under a load asking for name for d, and
// returns the recorder, its output path and the exchanges completed.
func rotatedRun(t *testing.T, file, name string, d time.Duration, args ...string) (*recorderCLI, string, int64) {
	t.Helper()
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	startServer(t, name)
	out := filepath.Join(dir, file)
	rec := startRecorderCLI(t, bin, append([]string{"record", "-o", out, "--status-interval", "0"}, args...)...)
	completed := exchangeFor(name, d)
	stopRecorder(t, rec)
	return rec, out, completed
}

// TestCLIRotationKeep: --keep 2 leaves the newest two files of the series.
func TestCLIRotationKeep(t *testing.T) {
	requireRoot(t)
	rec, out, _ := rotatedRun(t, "keep.db", "keep.dnsrec.test", 3500*time.Millisecond, "--rotate", "1s", "--keep", "2")
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "keep-*.db"))
	var last int
	for n := 1; ; n++ {
		if !strings.Contains(rec.stdout.String(), "  "+record.RotatedPath(out, n)+"\n") {
			break
		}
		last = n
	}
	want := []string{record.RotatedPath(out, last-1), record.RotatedPath(out, last)}
	if last < 3 || !reflect.DeepEqual(files, want) {
		t.Errorf("files left %q, want the newest two %q (last file %d)\n%s", files, want, last, rec.logText())
	}
	if !strings.Contains(rec.logText(), "removed old evidence file") {
		t.Errorf("no log line for the removed files:\n%s", rec.logText())
	}
}

// TestCLIFilters: --domain and --exclude-domain keep only the names asked
// for; --pid keeps a process tree and --comm a command name. The session
// says which filters were on and how much they left out.
func TestCLIFilters(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	dig := lookExe(t, "dig")
	names := []string{"filter.test", "www.filter.test", "noise.filter.test", "a.noise.filter.test", "other.test"}
	startServer(t, names...)
	ask := func(name string, times int) {
		c := &dns.Client{Timeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetQuestion(name+".", dns.TypeA)
		for range times {
			if _, _, err := c.Exchange(m, "127.0.0.1:53"); err != nil {
				t.Fatal(err)
			}
		}
	}
	// What was stored of the test's own names: the recorder sees the
	// whole host, and another process's lookups are none of this test's.
	stored := func(path string) map[string]int {
		db := openRO(t, path)
		rows, err := db.Query(`SELECT qname, count(*) FROM messages WHERE qname IN ('filter.test', 'www.filter.test', 'noise.filter.test', 'a.noise.filter.test', 'other.test') GROUP BY qname`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		got := map[string]int{}
		for rows.Next() {
			var q string
			var n int
			rows.Scan(&q, &n)
			got[q] = n
		}
		return got
	}
	info := func(path string) map[string]string {
		rows := queryCSV(t, bin, "--db", path, "info")
		if len(rows) != 1 {
			t.Fatalf("info: %d rows", len(rows))
		}
		return rows[0]
	}

	t.Run("domain", func(t *testing.T) {
		path := filepath.Join(dir, "domain.db")
		rec := startRecorderCLI(t, bin, "record", "-o", path, "--domain", "filter.test", "--exclude-domain", "noise.filter.test", "--status-interval", "0")
		for _, n := range names {
			ask(n, 5)
		}
		stopRecorder(t, rec)
		if got, want := stored(path), map[string]int{"filter.test": 20, "www.filter.test": 20}; !reflect.DeepEqual(got, want) {
			t.Errorf("stored observations by name %v, want %v", got, want)
		}
		in := info(path)
		var filters map[string][]string
		if err := json.Unmarshal([]byte(in["filters"]), &filters); err != nil ||
			!reflect.DeepEqual(filters, map[string][]string{"domain": {"filter.test"}, "exclude_domain": {"noise.filter.test"}}) {
			t.Errorf("info filters %q (%v)", in["filters"], err)
		}
		if in["filtered"] != "60" { // 3 names x 5 exchanges x 4 observations
			t.Errorf("info filtered %q, want 60", in["filtered"])
		}
		// Every question warns that an absence proves nothing here.
		cmd := exec.Command(bin, "query", "--db", path, "who-resolved", "other.test")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil || !strings.Contains(stderr.String(), "a filtered recording") {
			t.Errorf("who-resolved on a filtered recording: %v, stderr %q", err, stderr.String())
		}
	})

	// A shell whose dig children are the process tree to keep; the test's
	// own queries (and its server's side of every exchange) are left out.
	t.Run("pid", func(t *testing.T) {
		path := filepath.Join(dir, "pid.db")
		sh := exec.Command("sh", "-c", "read go; "+dig+" +tries=1 +time=2 @127.0.0.1 filter.test >/dev/null; "+dig+" +tries=1 +time=2 @127.0.0.1 other.test >/dev/null")
		in, err := sh.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := sh.Start(); err != nil {
			t.Fatal(err)
		}
		defer sh.Process.Kill()
		rec := startRecorderCLI(t, bin, "record", "-o", path, "--pid", fmt.Sprint(sh.Process.Pid), "--status-interval", "0")
		ask("www.filter.test", 3)
		fmt.Fprintln(in, "go")
		if err := sh.Wait(); err != nil {
			t.Fatal(err)
		}
		stopRecorder(t, rec)
		db := openRO(t, path)
		rows, err := db.Query(`SELECT m.qname, p.exe, pp.pid FROM messages m JOIN processes p ON p.id = m.process_id
			LEFT JOIN processes pp ON pp.id = p.parent_id ORDER BY m.id`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var got []string
		for rows.Next() {
			var q, exe string
			var ppid int
			rows.Scan(&q, &exe, &ppid)
			got = append(got, q)
			if exe != dig || ppid != sh.Process.Pid {
				t.Errorf("%s stored from %s, child of %d: want %s, child of the shell %d", q, exe, ppid, dig, sh.Process.Pid)
			}
		}
		// Each dig's query and its response, as dig saw them.
		if want := []string{"filter.test", "filter.test", "other.test", "other.test"}; !slices.Equal(got, want) {
			t.Errorf("stored %q, want %q", got, want)
		}
	})

	t.Run("comm", func(t *testing.T) {
		path := filepath.Join(dir, "comm.db")
		rec := startRecorderCLI(t, bin, "record", "-o", path, "--comm", "dig", "--status-interval", "0")
		ask("www.filter.test", 3)
		if out, err := exec.Command(dig, "+tries=1", "+time=2", "@127.0.0.1", "other.test").CombinedOutput(); err != nil {
			t.Fatalf("dig: %v\n%s", err, out)
		}
		stopRecorder(t, rec)
		if got, want := stored(path), map[string]int{"other.test": 2}; !reflect.DeepEqual(got, want) {
			t.Errorf("stored observations by name %v, want %v (dig's query and response only)", got, want)
		}
		if f := info(path)["filters"]; f != `{"comm":["dig"]}` {
			t.Errorf("info filters %q", f)
		}
	})

	t.Run("bad", func(t *testing.T) {
		for _, args := range [][]string{
			{"--domain", "*.evil.test"},
			{"--comm", "a-command-name-too-long"},
			{"--pid", "0"},
			{"--keep", "3"},
			{"--rotate", "1 fortnight"},
		} {
			out, err := exec.Command(bin, append([]string{"record", "-o", filepath.Join(dir, "bad.db")}, args...)...).CombinedOutput()
			if err == nil || !strings.Contains(string(out), args[0]) {
				t.Errorf("record %q: %v\n%s", args, err, out)
			}
		}
	})
}

// TestCLIInterface: each observation names the device it crossed. A client
// in a network namespace of its own reaches the server over a veth pair:
// its side is stored with its namespace's veth1 (looked up inside that
// namespace), the server's with veth0; loopback traffic with lo.
func TestCLIInterface(t *testing.T) {
	requireRoot(t)
	ip, dig := lookExe(t, "ip"), lookExe(t, "dig")
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	const name = "iface.dnsrec.test"
	srv := startServer(t, name)

	// The client's namespace: it waits for its end of the pair, then asks
	// once the link is up, and lives on until the recorder has named its
	// device (looked up in this namespace).
	client := exec.Command("unshare", "--net", "sh", "-c",
		"read go; ip link set lo up; ip addr add 10.77.0.2/24 dev veth1; ip link set veth1 up; "+
			"until ip -o link show veth1 | grep -q LOWER_UP; do sleep 0.01; done; "+
			dig+" +tries=1 +time=3 @10.77.0.1 "+name+" >/dev/null; read done")
	in, err := client.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(); err != nil {
		t.Fatal(err)
	}
	defer client.Process.Kill()
	run := func(args ...string) {
		if out, err := exec.Command(ip, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %q: %v\n%s", args, err, out)
		}
	}
	run("link", "add", "veth0", "type", "veth", "peer", "name", "veth1")
	defer exec.Command(ip, "link", "del", "veth0").Run()
	run("link", "set", "veth1", "netns", fmt.Sprint(client.Process.Pid))
	run("addr", "add", "10.77.0.1/24", "dev", "veth0")
	run("link", "set", "veth0", "up")
	srv.listen(t, "10.77.0.1:53")

	path := filepath.Join(dir, "iface.db")
	rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")
	fmt.Fprintln(in, "go")
	waitUntil(t, 20*time.Second, "dig's query and answer stored with veth1", countAtLeast(path, 2,
		`SELECT count(*) FROM msgs m JOIN interfaces i ON i.id IN (m.s_iface, m.r_iface) WHERE i.name = 'veth1'`))
	fmt.Fprintln(in, "done")
	if err := client.Wait(); err != nil {
		t.Fatalf("client: %v", err)
	}
	c := &dns.Client{Timeout: 2 * time.Second}
	m := new(dns.Msg)
	m.SetQuestion(name+".", dns.TypeA)
	if _, _, err := c.Exchange(m, "127.0.0.1:53"); err != nil {
		t.Fatal(err)
	}
	stopRecorder(t, rec)

	db := openRO(t, path)
	// Every observation, by its side of the row.
	side := `SELECT f.a_addr, p.comm, i.name, i.netns = o.netns FROM msgs m JOIN flows f ON f.id = m.flow_id
		JOIN owners o ON o.id = m.X_owner JOIN processes p ON p.id = o.process_id
		LEFT JOIN interfaces i ON i.id = m.X_iface WHERE m.obs & BIT`
	rows, err := db.Query(strings.NewReplacer("X_", "s_", "BIT", "1").Replace(side) + " UNION ALL " + strings.NewReplacer("X_", "r_", "BIT", "2").Replace(side))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var addr, comm string
		var iface *string
		var sameNS *bool
		if err := rows.Scan(&addr, &comm, &iface, &sameNS); err != nil {
			t.Fatal(err)
		}
		s := "<none>"
		if iface != nil {
			s = *iface
		}
		got = append(got, fmt.Sprintf("%s %s %s", addr, comm, s))
		if sameNS == nil || !*sameNS {
			t.Errorf("%s %s: the interface's namespace is not its owner's", addr, comm)
		}
	}
	// dig's query and answer on its namespace's veth1, the server's side
	// of them on veth0; the loopback exchange on lo.
	for _, want := range []string{"10.77.0.2 dig veth1", "10.77.0.2 record.test veth0", "127.0.0.1 record.test lo"} {
		if !slices.Contains(got, want) {
			t.Errorf("no observation %q in %q", want, got)
		}
	}
	// The timeline names both ends' devices, read as a stream (no
	// limit) and as a page (a limit), which are two statements.
	for _, extra := range [][]string{nil, {"--limit", "100"}} {
		found := false
		args := append([]string{"--db", path, "timeline", "--name", name}, extra...)
		for _, r := range queryCSV(t, bin, args...) {
			if r["kind"] == "query" && r["src"] == "10.77.0.2:"+strings.Split(r["src"], ":")[1] && r["src_iface"] == "veth1" && r["dst_iface"] == "veth0" {
				found = true
			}
		}
		if !found {
			t.Errorf("timeline %q: no query from 10.77.0.2 with src_iface veth1 and dst_iface veth0", extra)
		}
	}
}

// TestSystemdUnit: contrib/dnsrec.service is a valid unit (where
// systemd-analyze is installed), and its ExecStart, run as systemd would
// run it (with STATE_DIRECTORY set and %% unescaped), records a rotated
// series that stops cleanly.
func TestSystemdUnit(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	unit, err := os.ReadFile("../contrib/dnsrec.service")
	if err != nil {
		t.Fatal(err)
	}
	local := strings.ReplaceAll(string(unit), "/usr/local/bin/dnsrec", bin)
	if analyze, err := exec.LookPath("systemd-analyze"); err == nil {
		path := filepath.Join(dir, "dnsrec.service")
		if err := os.WriteFile(path, []byte(local), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("no systemd-analyze: the unit's syntax is not checked")
	}
	var start string
	for _, l := range strings.Split(local, "\n") {
		if v, ok := strings.CutPrefix(l, "ExecStart=/bin/sh -c '"); ok {
			start = strings.TrimSuffix(v, "'")
		}
	}
	if start == "" {
		t.Fatal("no ExecStart=/bin/sh -c '...' line in the unit")
	}
	const name = "unit.dnsrec.test"
	startServer(t, name)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", strings.ReplaceAll(start, "%%", "%")+" --duration 3s")
	cmd.Env = append(os.Environ(), "STATE_DIRECTORY="+state)
	done := make(chan error, 1)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	waitUntil(t, time.Minute, "the unit's recorder started", func() bool { return strings.Contains(out.String(), "msg=recording") })
	exchangeFor(name, 200*time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("the unit's ExecStart: %v\n%s", err, out.String())
	}
	files, _ := filepath.Glob(filepath.Join(state, "dns-*-0001.db"))
	if len(files) != 1 {
		t.Fatalf("files %q in the state directory, want one dns-<time>-0001.db\n%s", files, out.String())
	}
	db := openRO(t, files[0])
	var n int
	var stopped *int64
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM messages WHERE qname = ?), stopped_ns FROM sessions`, name).Scan(&n, &stopped); err != nil {
		t.Fatal(err)
	}
	if n == 0 || stopped == nil {
		t.Errorf("%s: %d observations of %s, stopped_ns %v\n%s", files[0], n, name, stopped, out.String())
	}
}

// TestCLIRotationMaxSize: with --rotate, --max-size rotates the file that
// reaches it instead of stopping the recording.
func TestCLIRotationMaxSize(t *testing.T) {
	requireRoot(t)
	const name = "maxsize.dnsrec.test"
	rec, out, completed := rotatedRun(t, "cap.db", name, 3*time.Second, "--rotate", "1h", "--max-size", "256KiB")
	if strings.Contains(rec.logText(), "max-size") && strings.Contains(rec.logText(), "reached") {
		t.Errorf("the recording stopped at --max-size instead of rotating:\n%s", rec.logText())
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "cap-*.db"))
	if len(files) < 2 {
		t.Fatalf("%d files: --max-size 256KiB under load did not rotate\n%s", len(files), rec.logText())
	}
	var total int64
	for _, f := range files {
		db := openRO(t, f)
		var n int64
		if err := db.QueryRow(`SELECT count(*) FROM messages WHERE qname = ?`, name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		total += n
		db.Close()
	}
	if total != 4*completed {
		t.Errorf("%d observations across %d files, want 4 x %d exchanges", total, len(files), completed)
	}
}
