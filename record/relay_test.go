//go:build linux && (amd64 || arm64)

package record_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestResolverChain (issue 9, part 1): dig clients ask a local forwarding
// resolver (dnsmasq, then unbound, both Debian packages) on 127.0.0.1,
// which asks the test's upstream server on 127.0.0.2, in the test's own
// network namespace; many clients at once, for overlapping names, with the
// resolver's cache off and on. who-resolved lists each dig, exactly, with
// the resolver in its via column and every query accounted for; the
// resolver itself is not listed as a resolver of the names unless
// --resolvers asks for it; with the cache on, the second round is
// answered from it.
func TestResolverChain(t *testing.T) {
	requireRoot(t)
	dig := lookExe(t, "dig")
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	names := []string{"c2.chain.test", "www.chain.test", "cdn.chain.test"}
	up := newTestServer(append([]string{"ready.chain.test"}, names...)...)
	up.listen(t, "127.0.0.2:53")

	dnsmasq := func(cache bool) []string {
		size := "0"
		if cache {
			size = "1000"
		}
		return []string{lookExe(t, "dnsmasq"), "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--server=127.0.0.2",
			"--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--user=root", "--pid-file=", "--cache-size=" + size}
	}
	unbound := func(cache bool) []string {
		conf := fmt.Sprintf(`server:
	interface: 127.0.0.1
	port: 53
	do-ip6: no
	do-daemonize: no
	username: ""
	chroot: ""
	directory: %q
	pidfile: ""
	use-syslog: no
	logfile: ""
	num-threads: 1
	access-control: 127.0.0.0/8 allow
	module-config: "iterator"
	qname-minimisation: no
	do-not-query-localhost: no
	prefetch: no
	local-zone: "test." nodefault
%sforward-zone:
	name: "."
	forward-addr: 127.0.0.2
remote-control:
	control-enable: no
`, dir, map[bool]string{false: "\tcache-max-ttl: 0\n\tcache-max-negative-ttl: 0\n", true: ""}[cache])
		path := filepath.Join(dir, fmt.Sprintf("unbound-%v.conf", cache))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{lookExe(t, "unbound"), "-d", "-c", path}
	}

	for _, tc := range []struct {
		name  string
		cache bool
		argv  func(bool) []string
	}{
		{"dnsmasq-nocache", false, dnsmasq},
		{"dnsmasq-cache", true, dnsmasq},
		{"unbound-nocache", false, unbound},
		{"unbound-cache", true, unbound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := startResolver(t, tc.argv(tc.cache))
			comm := filepath.Base(tc.argv(tc.cache)[0])
			path := filepath.Join(dir, tc.name+".db")
			rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")

			// Two rounds of 12 digs at once, 4 per name.
			digs := map[string]string{} // pid -> name asked
			var mu sync.Mutex
			for range 2 {
				var wg sync.WaitGroup
				for i := range 12 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						cmd := exec.Command(dig, "+tries=1", "+time=5", "@127.0.0.1", names[i%3])
						out, err := cmd.CombinedOutput()
						if err != nil || !strings.Contains(string(out), "status: NOERROR") {
							t.Errorf("dig %s: %v\n%s", names[i%3], err, out)
							return
						}
						mu.Lock()
						digs[strconv.Itoa(cmd.Process.Pid)] = names[i%3]
						mu.Unlock()
					}()
				}
				wg.Wait()
			}
			time.Sleep(300 * time.Millisecond)
			stopRecorder(t, rec)

			rows := queryCSV(t, bin, "--db", path, "who-resolved", "chain.test")
			wantVia := regexp.MustCompile(`^` + regexp.QuoteMeta(fmt.Sprintf("%s(%d): ", comm, resolver)) + `((exact|likely|ambiguous|cache) \d+(, )?)+$`)
			kinds := map[string]int{}
			cached := map[string]string{} // pid of a dig linked "cache" -> its name
			for _, r := range rows {
				name, ok := digs[r["pid"]]
				if !ok {
					t.Errorf("who-resolved lists %s(%s), not one of the digs: %v", r["comm"], r["pid"], r)
					continue
				}
				delete(digs, r["pid"])
				if r["qname"] != name || r["count"] != "1" || !wantVia.MatchString(r["via"]) {
					t.Errorf("dig %s asked %s once: row %v", r["pid"], name, r)
				}
				for _, part := range strings.Split(strings.SplitN(r["via"], ": ", 2)[1], ", ") {
					kind, _, _ := strings.Cut(part, " ")
					kinds[kind]++
					if kind == "cache" {
						cached[r["pid"]] = name
					}
				}
			}
			if len(digs) > 0 {
				t.Errorf("digs missing from who-resolved: %v", digs)
			}
			t.Logf("%s: links %v", tc.name, kinds)
			if tc.cache && kinds["cache"] == 0 {
				t.Errorf("cache on, and no client query was answered from it: %v", kinds)
			}

			// The timeline shows each dig's query with its link, and the
			// upstream query it names is the resolver's.
			upstreamOf := map[string]string{}
			linked := 0
			tl := queryCSV(t, bin, "--db", path, "timeline", "--name", "chain.test")
			if !tc.cache {
				// "Cache off" is TTL 0 at most: unbound (cache-max-ttl 0)
				// still answers from an entry stored in the same second, so
				// a dig that arrives just after the upstream answer is
				// served from it. Such a link is right only if an upstream
				// answer for its name reached the resolver in the second
				// before the dig's query; otherwise it is wrong.
				for pid, name := range cached {
					if !answeredJustBefore(t, tl, pid, name, resolver) {
						t.Errorf("cache off, and dig %s's query for %s is linked as answered from cache with no upstream answer for it in the second before: links %v", pid, name, kinds)
					}
				}
			}
			for _, r := range tl {
				upstreamOf[r["id"]] = r["src_pid"]
			}
			for _, r := range tl {
				if r["kind"] != "query" || r["dst_pid"] != strconv.Itoa(resolver) {
					continue
				}
				if !strings.HasPrefix(r["via"], fmt.Sprintf("%s(%d): ", comm, resolver)) {
					t.Errorf("timeline: dig's query %s has via %q", r["id"], r["via"])
				}
				if _, up, ok := strings.Cut(r["via"], "upstream #"); ok {
					linked++
					if upstreamOf[up] != strconv.Itoa(resolver) {
						t.Errorf("timeline: query %s is linked to #%s, which %s did not send", r["id"], up, comm)
					}
				}
			}
			if linked == 0 {
				t.Errorf("timeline: no client query is linked to an upstream query")
			}

			// With --resolvers the resolver is listed too, as what it is:
			// a client of the upstream server.
			found := false
			for _, r := range queryCSV(t, bin, "--db", path, "who-resolved", "chain.test", "--resolvers") {
				if r["pid"] == strconv.Itoa(resolver) {
					found = true
				}
			}
			if !found {
				t.Errorf("who-resolved --resolvers does not list %s(%d)", comm, resolver)
			}
		})
	}
}

// answeredJustBefore tells whether, in timeline rows tl, an upstream
// response for name reached resolver in the second before dig pid's query.
func answeredJustBefore(t *testing.T, tl []map[string]string, pid, name string, resolver int) bool {
	t.Helper()
	var asked time.Time
	for _, r := range tl {
		if r["kind"] == "query" && r["src_pid"] == pid && r["qname"] == name {
			asked = parseTimeCell(t, r["time"])
		}
	}
	if asked.IsZero() {
		t.Errorf("timeline has no query of dig %s for %s", pid, name)
		return false
	}
	for _, r := range tl {
		if r["kind"] != "response" || r["dst_pid"] != strconv.Itoa(resolver) || r["qname"] != name || r["src_pid"] == pid {
			continue
		}
		at := parseTimeCell(t, r["time"])
		if !at.After(asked) && asked.Sub(at) <= time.Second {
			return true
		}
	}
	return false
}

func parseTimeCell(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("timeline time %q: %v", s, err)
	}
	return at
}

// startResolver runs a resolver in the foreground until the test ends,
// once it answers on 127.0.0.1:53, and returns its pid.
func startResolver(t *testing.T, argv []string) int {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion("ready.chain.test.", dns.TypeA)
	return startDaemon(t, argv, &dns.Client{Timeout: time.Second}, q, 1)
}

// startDaemon runs a DNS server in the foreground until the test ends, and
// returns its pid once it answers q on 127.0.0.1:53 with answers records.
func startDaemon(t *testing.T, argv []string, c *dns.Client, q *dns.Msg, answers int) int {
	t.Helper()
	var log strings.Builder
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		r, _, err := c.Exchange(q, "127.0.0.1:53")
		if err == nil && len(r.Answer) == answers {
			return cmd.Process.Pid
		}
		select {
		case <-done:
			t.Fatalf("%s exited: %s", argv[0], log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not answer %s on 127.0.0.1:53: %v %v\n%s", argv[0], q.Question[0].Name, r, err, log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
