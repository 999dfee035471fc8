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

// TestResolverChain: dig clients ask a local forwarding resolver (dnsmasq,
// then unbound, both Debian packages) on 127.0.0.1, which asks the test's
// upstream server on 127.0.0.2, in the test's own network namespace, with
// the resolver's cache off and on. Four questions (several names and
// types, one name asked for two types) are asked at once, then again, and
// then a burst of digs asks fresh names, several digs per name.
//
// who-resolved lists each dig, exactly, with the resolver in its via
// column. In the timeline each dig's query has the link its case calls
// for: a fresh question is forwarded (one upstream candidate), a repeat is
// answered from the cache when the cache is on and forwarded again when it
// is off; and the upstream query a link names was sent by the resolver for
// the dig's own name and type. The resolver itself is not listed as a
// resolver of the names unless --resolvers asks for it.
func TestResolverChain(t *testing.T) {
	requireRoot(t)
	dig := lookExe(t, "dig")
	dir := t.TempDir()
	bin := buildDnsrec(t, dir)
	type question struct{ name, qtype string }
	questions := []question{{"c2.chain.test", "A"}, {"c2.chain.test", "AAAA"}, {"www.chain.test", "AAAA"}, {"cdn.chain.test", "TXT"}}
	burst := []string{"burst1.chain.test", "burst2.chain.test", "burst3.chain.test"}
	up := newTestServer(append([]string{"ready.chain.test", "c2.chain.test", "www.chain.test"}, burst...)...)
	up.addTXT("cdn.chain.test", 200)
	up.listen(t, "127.0.0.2:53")
	// The same server over DNS over TLS, for unbound's forward-tls-upstream.
	bundle := up.listenTLS(t, "127.0.0.2:853", dir)

	dnsmasq := func(cache bool) []string {
		size := "0"
		if cache {
			size = "1000"
		}
		return []string{lookExe(t, "dnsmasq"), "-k", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--server=127.0.0.2",
			"--listen-address=127.0.0.1", "--bind-interfaces", "--port=53", "--user=root", "--pid-file=", "--cache-size=" + size}
	}
	unboundConf := func(cache, overTLS bool) []string {
		forward := "\tforward-addr: 127.0.0.2\n"
		if overTLS {
			forward = "\tforward-addr: 127.0.0.2@853#dns.test\n\tforward-tls-upstream: yes\n"
		}
		conf := unboundServer(dir) + fmt.Sprintf(`	qname-minimisation: no
	do-not-query-localhost: no
	prefetch: no
	tls-cert-bundle: %q
	local-zone: "test." nodefault
%sforward-zone:
	name: "."
%sremote-control:
	control-enable: no
`, bundle, map[bool]string{false: "\tcache-max-ttl: 0\n\tcache-max-negative-ttl: 0\n", true: ""}[cache], forward)
		path := filepath.Join(dir, fmt.Sprintf("unbound-%v-%v.conf", cache, overTLS))
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		return []string{lookExe(t, "unbound"), "-d", "-c", path}
	}
	unbound := func(cache bool) []string { return unboundConf(cache, false) }
	// unbound asking upstream over DoT: the upstream leg is recorded in
	// clear (proto dot), so its clients are linked to it, not to the cache.
	unboundTLS := func(cache bool) []string { return unboundConf(cache, true) }

	for _, tc := range []struct {
		name  string
		cache bool
		argv  func(bool) []string
		dot   bool // the upstream leg is DNS over TLS
	}{
		{"dnsmasq-nocache", false, dnsmasq, false},
		{"dnsmasq-cache", true, dnsmasq, false},
		{"unbound-nocache", false, unbound, false},
		{"unbound-cache", true, unbound, false},
		{"unbound-tls-upstream-nocache", false, unboundTLS, true},
		{"unbound-tls-upstream-cache", true, unboundTLS, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := startResolver(t, tc.argv(tc.cache))
			comm := filepath.Base(tc.argv(tc.cache)[0])
			path := filepath.Join(dir, tc.name+".db")
			rec := startRecorderCLI(t, bin, "record", "-o", path, "--status-interval", "0")

			// asked is what each dig asked, by pid, and the link its
			// query must have: "forwarded" (exact or likely: one upstream
			// candidate), "cache", or "any" in a burst.
			type asked struct {
				question
				want string
			}
			digs := map[string]asked{}
			var mu sync.Mutex
			ask := func(q question, want string) {
				cmd := exec.Command(dig, "+tries=1", "+time=5", "@127.0.0.1", q.name, q.qtype)
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "status: NOERROR") {
					t.Errorf("dig %s %s: %v\n%s", q.name, q.qtype, err, out)
					return
				}
				mu.Lock()
				digs[strconv.Itoa(cmd.Process.Pid)] = asked{q, want}
				mu.Unlock()
			}
			// Each round asks its questions at once: a link that ignored
			// the name or the type would find several candidates.
			round := func(n int, q func(i int) (question, string)) {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						ask(q(i))
					}()
				}
				wg.Wait()
			}
			round(len(questions), func(i int) (question, string) { return questions[i], "forwarded" })
			round(len(questions), func(i int) (question, string) {
				// dnsmasq caches the types of addresses and names, not
				// TXT unless --cache-rr says so.
				q := questions[i]
				cached := tc.cache && !(comm == "dnsmasq" && q.qtype == "TXT")
				return q, map[bool]string{false: "forwarded", true: "cache"}[cached]
			})
			round(12, func(i int) (question, string) { return question{burst[i%3], "A"}, "any" })
			stopRecorder(t, rec)

			tl := queryCSV(t, bin, "--db", path, "timeline", "--name", "chain.test")
			// own holds the names of the resolver's upstream queries that
			// no client query is linked to: one whose answer it never read
			// (it asked again on another socket before the answer came),
			// or one asked again for a burst of clients on its TLS
			// connection. They count as the resolver's own lookups.
			own := map[string]bool{}
			named := map[string]bool{}
			upRE := regexp.MustCompile(`, upstream #(\d+)$`)
			for _, r := range tl {
				if m := upRE.FindStringSubmatch(r["via"]); m != nil && r["kind"] == "query" && r["src_pid"] != strconv.Itoa(resolver) {
					named[m[1]] = true
				}
			}
			for _, r := range tl {
				if r["kind"] == "query" && r["src_pid"] == strconv.Itoa(resolver) && !named[r["id"]] {
					own[r["qname"]] = true
				}
			}

			rows := queryCSV(t, bin, "--db", path, "who-resolved", "chain.test")
			wantVia := regexp.MustCompile(`^` + regexp.QuoteMeta(fmt.Sprintf("%s(%d): ", comm, resolver)) + `((exact|likely|ambiguous|cache) \d+(, )?)+$`)
			listed := map[string]bool{}
			for _, r := range rows {
				d, ok := digs[r["pid"]]
				if !ok && r["pid"] == strconv.Itoa(resolver) && (own[r["qname"]] || tc.dot) {
					// With the DoT upstream in this very process, both ends
					// of the upstream leg are probed, and who-resolved's
					// summary may count one of the resolver's upstream
					// queries as its own (docs/limits.md).
					t.Logf("who-resolved lists %s(%d) for %s, for which it asked upstream for no client (or over DoT)", comm, resolver, r["qname"])
					continue
				}
				if !ok {
					t.Errorf("who-resolved lists %s(%s), not one of the digs: %v", r["comm"], r["pid"], r)
					continue
				}
				listed[r["pid"]] = true
				if r["qname"] != d.name || r["count"] != "1" || !wantVia.MatchString(r["via"]) {
					t.Errorf("dig %s asked %s once: row %v", r["pid"], d.name, r)
				}
			}
			for pid, d := range digs {
				if !listed[pid] {
					t.Errorf("dig %s (%s %s) missing from who-resolved", pid, d.name, d.qtype)
				}
			}

			// The timeline shows each dig's query with its link, and the
			// upstream query it names is the resolver's, for the same
			// name and type.
			byID := map[string]map[string]string{}
			for _, r := range tl {
				byID[r["id"]] = r
			}
			kinds := map[string]int{}
			seen := map[string]bool{}
			viaRE := regexp.MustCompile(`^` + regexp.QuoteMeta(fmt.Sprintf("%s(%d): ", comm, resolver)) + `(exact|likely|ambiguous|cache)(, upstream #(\d+))?$`)
			for _, r := range tl {
				d, ok := digs[r["src_pid"]]
				if r["kind"] != "query" || !ok {
					continue
				}
				seen[r["src_pid"]] = true
				if r["dst_pid"] != strconv.Itoa(resolver) || r["qname"] != d.name || r["qtype"] != d.qtype {
					t.Errorf("timeline: dig %s asked %s %s of %s(%d): row %v", r["src_pid"], d.name, d.qtype, comm, resolver, r)
				}
				m := viaRE.FindStringSubmatch(r["via"])
				if m == nil {
					t.Errorf("timeline: dig %s's query for %s %s has via %q", r["src_pid"], d.name, d.qtype, r["via"])
					continue
				}
				kind, upID := m[1], m[3]
				kinds[kind]++
				if (kind == "cache") != (upID == "") {
					t.Errorf("timeline: dig %s's query for %s %s: link %q", r["src_pid"], d.name, d.qtype, r["via"])
				}
				switch {
				case d.want == "forwarded" && (kind == "exact" || kind == "likely"):
				case d.want == "cache" && kind == "cache":
				case d.want == "any":
				// "Cache off" is TTL 0 at most: unbound (cache-max-ttl 0)
				// still answers from an entry stored in the same second,
				// so a repeat that arrives just after the upstream answer
				// is served from it. Such a link is right only if an
				// upstream answer for its question reached the resolver in
				// the second before the dig's query.
				case d.want == "forwarded" && kind == "cache" && comm == "unbound" && answeredJustBefore(t, tl, r["src_pid"], d.name, d.qtype, resolver):
				default:
					t.Errorf("timeline: dig %s's query for %s %s is linked %q, want %s", r["src_pid"], d.name, d.qtype, r["via"], d.want)
				}
				if upID == "" {
					continue
				}
				u := byID[upID]
				if u == nil || u["kind"] != "query" || u["src_pid"] != strconv.Itoa(resolver) || u["qname"] != d.name || u["qtype"] != d.qtype {
					t.Errorf("timeline: dig %s's query for %s %s is linked to #%s, not a query of %s(%d) for the same question: %v", r["src_pid"], d.name, d.qtype, upID, comm, resolver, u)
				} else if (u["proto"] == "dot") != tc.dot || (tc.dot && u["dst"] != "127.0.0.2:853") {
					t.Errorf("timeline: dig %s's query for %s %s is linked to #%s over %s to %s (over DoT to 127.0.0.2:853: %v): %v", r["src_pid"], d.name, d.qtype, upID, u["proto"], u["dst"], tc.dot, u)
				}
			}
			for pid, d := range digs {
				if !seen[pid] {
					t.Errorf("timeline has no query of dig %s (%s %s)", pid, d.name, d.qtype)
				}
			}
			t.Logf("%s: links %v", tc.name, kinds)

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
// response for name and qtype reached resolver in the second before dig
// pid's query.
func answeredJustBefore(t *testing.T, tl []map[string]string, pid, name, qtype string, resolver int) bool {
	t.Helper()
	var asked time.Time
	for _, r := range tl {
		if r["kind"] == "query" && r["src_pid"] == pid && r["qname"] == name && r["qtype"] == qtype {
			asked = parseTimeCell(t, r["time"])
		}
	}
	if asked.IsZero() {
		t.Errorf("timeline has no query of dig %s for %s %s", pid, name, qtype)
		return false
	}
	for _, r := range tl {
		if r["kind"] != "response" || r["dst_pid"] != strconv.Itoa(resolver) || r["qname"] != name || r["qtype"] != qtype || r["src_pid"] == pid {
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

// unboundServer begins the server clause of an unbound configuration for a
// test: on 127.0.0.1:53, in the foreground as this user with files in dir,
// logging to stderr, one thread, answering localhost, iterating itself.
func unboundServer(dir string) string {
	return fmt.Sprintf(`server:
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
`, dir)
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
