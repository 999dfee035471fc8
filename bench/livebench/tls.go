//go:build linux

package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The encrypted-DNS rows. Inside the namespace, unbound serves the bench
// zone over DoT on 127.0.0.1:853 and over DoH on 127.0.0.1:443, and
// `openssl s_server -WWW` serves small files on 127.0.0.2:443: HTTPS that is
// not DNS. The clients are dnsperf -m dot / -m doh (OpenSSL) and curl
// (libcurl, OpenSSL), so every byte goes through the TLS library the
// recorder probes, at both ends for the DNS servers.
const (
	tlsDNSAddr = "127.0.0.1"
	tlsWebAddr = "127.0.0.2"
)

type tlsBed struct {
	dir          string
	unbound, web *bgProc
	curlConf     string
}

type tlsResults struct {
	dot, doh     map[string]*recRun // by binary label
	dotErr       map[string]error
	dohErr       map[string]error
	web          map[string][]float64 // requests/s per round, by mode ("off" too)
	webMsgs      map[string]int64     // messages stored during the HTTPS rounds
	webErr       error
	dotN, dohN   perfResult // the workloads' own figures without a recorder
	dotOffErr    error
	requests     int
	rate, second int
}

func (h *harness) startTLSBed(ctx context.Context) (*tlsBed, error) {
	b := &tlsBed{dir: filepath.Join(h.tmp, "tls")}
	www := filepath.Join(b.dir, "www")
	if err := os.MkdirAll(www, 0o755); err != nil {
		return nil, err
	}
	key, cert := filepath.Join(b.dir, "key.pem"), filepath.Join(b.dir, "cert.pem")
	if out, err := runCmd(ctx, time.Minute, "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
		"-nodes", "-subj", "/CN="+testZone, "-addext", "subjectAltName=IP:"+tlsDNSAddr+",IP:"+tlsWebAddr,
		"-days", "2", "-keyout", key, "-out", cert); err != nil {
		return nil, fmt.Errorf("making the certificate: %w\n%s", err, tail(out, 5))
	}
	conf := filepath.Join(b.dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`server:
	username: ""
	chroot: ""
	directory: %q
	pidfile: ""
	do-daemonize: no
	use-syslog: no
	verbosity: 1
	num-threads: 1
	interface: %[2]s@853
	interface: %[2]s@443
	tls-port: 853
	https-port: 443
	tls-service-key: %[3]q
	tls-service-pem: %[4]q
	http-endpoint: "/dns-query"
	access-control: 127.0.0.0/8 allow
	do-not-query-localhost: yes
	local-zone: "%[5]s." redirect
	local-data: "%[5]s. 60 IN A %[6]s"
`, b.dir, tlsDNSAddr, key, cert, testZone, testAddr)), 0o644); err != nil {
		return nil, err
	}
	var err error
	if b.unbound, err = startBG(ctx, "unbound", "start of service", 30*time.Second, h.nsExec("unbound", "-d", "-c", conf)...); err != nil {
		return nil, err
	}
	// Files of 512 bytes, one per request: s_server -WWW answers HTTP/1.0
	// and closes, so each request is a TLS handshake too.
	var cb strings.Builder
	body := strings.Repeat("x", 511) + "\n"
	for i := 1; i <= h.cfg.tlsRequests; i++ {
		name := "f" + strconv.Itoa(i)
		if err := os.WriteFile(filepath.Join(www, name), []byte(body), 0o644); err != nil {
			b.stop()
			return nil, err
		}
		fmt.Fprintf(&cb, "url = \"https://%s/%s\"\noutput = \"/dev/null\"\n", tlsWebAddr, name)
	}
	b.curlConf = filepath.Join(b.dir, "curl.conf")
	if err := os.WriteFile(b.curlConf, []byte(cb.String()), 0o644); err != nil {
		b.stop()
		return nil, err
	}
	web := fmt.Sprintf("cd %q && exec openssl s_server -accept %s:443 -cert %q -key %q -WWW", www, tlsWebAddr, cert, key)
	if b.web, err = startBG(ctx, "openssl s_server", "ACCEPT", 30*time.Second, h.nsExec("sh", "-c", web)...); err != nil {
		b.stop()
		return nil, err
	}
	return b, nil
}

func (b *tlsBed) stop() {
	b.web.kill()
	b.unbound.kill()
}

func (h *harness) dnsperfTLS(ctx context.Context, mode string, port, rate, seconds int) (perfResult, error) {
	argv := h.nsExec(h.t.dnsperf, "-m", mode, "-s", tlsDNSAddr, "-p", strconv.Itoa(port), "-d", h.qfile,
		"-l", strconv.Itoa(seconds), "-Q", strconv.Itoa(rate))
	if mode == "doh" {
		argv = append(argv, "-O", "doh-uri=https://"+tlsDNSAddr+"/dns-query")
	}
	out, err := runCmd(ctx, time.Duration(seconds)*time.Second+time.Minute, argv...)
	if err != nil {
		return perfResult{}, err
	}
	r, err := parseDNSPerf(out)
	if err == nil && r.Completed == 0 {
		err = fmt.Errorf("dnsperf -m %s completed no query", mode)
	}
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, tail(out, 15))
	}
	return r, nil
}

// curlHTTPS fetches every file once, one connection each, and returns the
// requests per second.
func (h *harness) curlHTTPS(ctx context.Context, bed *tlsBed) (perfResult, error) {
	start := time.Now()
	out, err := runCmd(ctx, 5*time.Minute, h.nsExec("curl", "-s", "-k", "-K", bed.curlConf, "-w", "%{http_code}\n")...)
	wall := time.Since(start)
	if err != nil {
		return perfResult{}, err
	}
	ok := int64(strings.Count(out, "200\n"))
	if ok != int64(h.cfg.tlsRequests) {
		return perfResult{}, fmt.Errorf("curl: %d of %d requests answered 200:\n%s", ok, h.cfg.tlsRequests, tail(out, 5))
	}
	return perfResult{Sent: ok, Completed: ok, QPS: float64(ok) / wall.Seconds()}, nil
}

// encrypted measures the TLS rows: CPU per DoT and DoH message stored at a
// fixed rate, and the cost on HTTPS that is not DNS, interleaved rounds.
func (h *harness) encrypted(ctx context.Context) {
	t := &tlsResults{dot: map[string]*recRun{}, doh: map[string]*recRun{}, dotErr: map[string]error{}, dohErr: map[string]error{},
		web: map[string][]float64{}, webMsgs: map[string]int64{}, requests: h.cfg.tlsRequests, rate: h.cfg.tlsRate, second: h.cfg.rateSeconds}
	h.tls = t
	bed, err := h.startTLSBed(ctx)
	if err != nil {
		t.webErr, t.dotOffErr = err, err
		for _, b := range h.bins {
			t.dotErr[b.label], t.dohErr[b.label] = err, err
		}
		logf("T: the TLS test bed did not start: %v", err)
		return
	}
	defer bed.stop()
	if t.dotN, err = h.dnsperfTLS(ctx, "dot", 853, t.rate, 1); err != nil {
		t.dotOffErr = err
		logf("T dot warm-up: %v", err)
	}
	if t.dohN, err = h.dnsperfTLS(ctx, "doh", 443, t.rate, 1); err != nil {
		logf("T doh warm-up: %v", err)
	}
	for _, b := range h.bins {
		for _, m := range []struct {
			mode string
			port int
			res  map[string]*recRun
			errs map[string]error
		}{{"dot", 853, t.dot, t.dotErr}, {"doh", 443, t.doh, t.dohErr}} {
			rr, err := h.recordedWith(ctx, b, "tls-"+m.mode+"-"+b.label, func(ctx context.Context) (perfResult, error) {
				return h.dnsperfTLS(ctx, m.mode, m.port, t.rate, t.second)
			})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				m.errs[b.label] = err
				logf("T %s %s: %v", m.mode, b.label, err)
				continue
			}
			m.res[b.label] = rr
			logf("T %s %-8s completed %s, %s messages stored, %.2f s CPU", m.mode, b.label, commas(float64(rr.perf.Completed)),
				commas(float64(rr.info.Messages)), float64(rr.cpuTicks)/float64(h.clk))
		}
	}
	modes := []string{"off"}
	for _, b := range h.bins {
		modes = append(modes, b.label)
	}
	if _, err := h.curlHTTPS(ctx, bed); err != nil { // warm-up
		t.webErr = err
		logf("T https: %v", err)
		return
	}
	for r := 0; r < h.cfg.tlsRounds; r++ {
		for i := range modes {
			mode := modes[(i+r)%len(modes)]
			var p perfResult
			var err error
			if mode == "off" {
				p, err = h.curlHTTPS(ctx, bed)
			} else {
				var rr *recRun
				rr, err = h.recordedWith(ctx, h.bin(mode), fmt.Sprintf("tls-web-%s-r%d", mode, r+1), func(ctx context.Context) (perfResult, error) {
					return h.curlHTTPS(ctx, bed)
				})
				if rr != nil {
					p = rr.perf
					t.webMsgs[mode] += rr.info.Messages
				}
			}
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				t.webErr = err
				logf("T https round %d %s: %v", r+1, mode, err)
				return
			}
			t.web[mode] = append(t.web[mode], p.QPS)
			logf("T https round %d/%d %-8s %.0f requests/s", r+1, h.cfg.tlsRounds, mode, p.QPS)
		}
	}
}

// tlsRows renders the encrypted-DNS rows.
func (h *harness) tlsRows(perBin func(f func(b recBin, r *binResults) (val, res string)) ([]string, []string)) []row {
	t := h.tls
	if t == nil {
		return nil
	}
	var rows []row
	for _, m := range []struct {
		id, mode string
		res      map[string]*recRun
		errs     map[string]error
	}{{"T1", "DoT", t.dot, t.dotErr}, {"T2", "DoH", t.doh, t.dohErr}} {
		vals, results := perBin(func(b recBin, _ *binResults) (string, string) {
			rr := m.res[b.label]
			if rr == nil {
				return errCell(m.errs[b.label]), fail
			}
			cpu := float64(rr.cpuTicks) / float64(h.clk)
			if rr.info.Messages == 0 {
				return fmt.Sprintf("none stored (%.2f s CPU for %s exchanges)", cpu, commas(float64(rr.perf.Completed))), none
			}
			us := cpu * 1e6 / float64(rr.info.Messages)
			return fmt.Sprintf("%.1f µs (%.2f s CPU ÷ %s msgs; %.2f of 4×completed)", us, cpu, commas(float64(rr.info.Messages)),
				float64(rr.info.Messages)/float64(4*rr.perf.Completed)), verdict(us <= 10)
		})
		rows = append(rows, row{id: m.id, measure: fmt.Sprintf("recorder CPU per stored %s message, dnsperf -m %s at %s qps for %d s against unbound (both ends probed)",
			m.mode, strings.ToLower(m.mode), commas(float64(t.rate)), t.second), target: "≤ 10 µs", vals: vals, results: results})
	}
	off := t.web["off"]
	vals, results := perBin(func(b recBin, _ *binResults) (string, string) {
		on := t.web[b.label]
		if len(on) == 0 || len(off) == 0 {
			return errCell(t.webErr), fail
		}
		ratio := median(on) / median(off)
		return fmt.Sprintf("%.3f (%.0f ÷ %.0f requests/s; spread %.1f%% on, %.1f%% off; %s messages stored)", ratio, median(on), median(off),
			spreadPct(on), spreadPct(off), commas(float64(t.webMsgs[b.label]))), verdict(ratio >= 0.97)
	})
	rows = append(rows, row{id: "T3", measure: fmt.Sprintf("HTTPS that is not DNS: curl requests/s recording ÷ off, %d requests (one TLS connection each) × %d rounds, medians",
		t.requests, h.cfg.tlsRounds), target: "≥ 0.97", vals: vals, results: results})
	return rows
}

func spreadPct(v []float64) float64 {
	m := median(v)
	if m == 0 {
		return 0
	}
	return (slices.Max(v) - slices.Min(v)) / m * 100
}
