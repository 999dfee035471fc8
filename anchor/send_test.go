package anchor

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// signedSeries makes n checkpoints of a made-up file, as a recording would.
func signedSeries(t *testing.T, n int) (File, []*Checkpoint, []string) {
	t.Helper()
	rec := NewRecordingID()
	keys, err := NewKeys(rec)
	if err != nil {
		t.Fatal(err)
	}
	f := File{Recording: rec, FirstKey: keys.First()}
	var cs []*Checkpoint
	var lines []string
	for i := 1; i <= n; i++ {
		f.Heads = append(f.Heads, fmt.Sprintf("%x", sha256.Sum256([]byte{byte(i)})))
		reason := ReasonPeriodic
		if i == 1 {
			reason = ReasonStart
		} else if i == n {
			reason = ReasonStop
		}
		c := &Checkpoint{Recording: rec, N: int64(i), Batch: int64(i), Head: f.Heads[i-1], TimeNs: time.Now().UnixNano(), Interval: time.Second, Reason: reason}
		signed, err := keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		lines = append(lines, Line(c, signed))
	}
	return f, cs, lines
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// TestFileAndStderrAnchors: both get every line, in order.
func TestFileAndStderrAnchors(t *testing.T) {
	f, cs, lines := signedSeries(t, 3)
	path := filepath.Join(t.TempDir(), "anchor.log")
	var stderr syncBuf
	set, err := Open([]string{"file:" + path, "-"}, Options{Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		set.Send(cs[i], lines[i])
	}
	for _, st := range set.Close(5 * time.Second) {
		if st.Made != 3 || st.Sent != 3 || st.Dropped != 0 {
			t.Errorf("%+v", st)
		}
	}
	want := strings.Join(lines, "\n") + "\n"
	got, _ := os.ReadFile(path)
	if string(got) != want || stderr.b.String() != want {
		t.Fatalf("file:\n%s\nstderr:\n%s\nwant:\n%s", got, stderr.b.String(), want)
	}
	found, _ := Read(bytes.NewReader(got))
	if r := Check(f, found, ""); len(r.Problems) != 0 || r.Checked != 3 {
		t.Fatalf("%+v", r.Problems)
	}
}

// TestUnreachableAnchor: sending never blocks; the queue is bounded, the
// oldest dropped and counted, and what is left at the stop is counted too.
func TestUnreachableAnchor(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	set, err := Open([]string{"syslog+tls://" + addr}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, cs, lines := signedSeries(t, 1)
	start := time.Now()
	for range QueueLen + 5 {
		set.Send(cs[0], lines[0])
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Send blocked for %s", d)
	}
	st := set.Close(200 * time.Millisecond)[0]
	if st.Made != QueueLen+5 || st.Sent != 0 || st.Dropped != QueueLen+5 || !strings.Contains(st.Err, "connection refused") {
		t.Fatalf("%+v", st)
	}
}

// TestRsyslog: a stock rsyslog with rsyslog-gnutls (imtcp over TLS, a
// certificate made here) receives the checkpoints in RFC 5425 framing, and
// the file it writes verifies.
func TestRsyslog(t *testing.T) {
	// A declared test dependency (make check-deps): missing, it fails.
	rsyslogd, err := exec.LookPath("rsyslogd")
	if err != nil {
		rsyslogd, err = exec.LookPath("/usr/sbin/rsyslogd") // not on a user's PATH
	}
	if err != nil {
		t.Fatalf("rsyslogd not found: apt-get install rsyslog rsyslog-gnutls (or .ci/run): %v", err)
	}
	dir := t.TempDir()
	run := func(name string, args ...string) {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=dnsrec test CA", "-keyout", p("ca.key"), "-out", p("ca.pem"))
	run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
		"-subj", "/CN=127.0.0.1", "-keyout", p("key.pem"), "-out", p("srv.csr"))
	os.WriteFile(p("ext"), []byte("subjectAltName=IP:127.0.0.1\n"), 0o600)
	run("openssl", "x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"), "-CAcreateserial",
		"-days", "1", "-extfile", p("ext"), "-out", p("cert.pem"))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := fmt.Sprintf(`global(
  workDirectory="%[1]s"
  DefaultNetstreamDriver="gtls"
  DefaultNetstreamDriverCAFile="%[1]s/ca.pem"
  DefaultNetstreamDriverCertFile="%[1]s/cert.pem"
  DefaultNetstreamDriverKeyFile="%[1]s/key.pem"
)
module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
input(type="imtcp" address="127.0.0.1" port="%[2]d")
*.* action(type="omfile" file="%[1]s/received.log")
`, dir, port)
	os.WriteFile(p("rsyslog.conf"), []byte(conf), 0o600)
	var logs syncBuf
	cmd := exec.Command(rsyslogd, "-n", "-f", p("rsyslog.conf"), "-i", p("rsyslog.pid"))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rsyslogd does not listen on %s:\n%s", addr, logs.b.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	f, cs, lines := signedSeries(t, 4)
	set, err := Open([]string{"syslog+tls://" + addr}, Options{CAFile: p("ca.pem"), Hostname: "recorder1"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range cs {
		set.Send(cs[i], lines[i])
	}
	if st := set.Close(10 * time.Second)[0]; st.Sent != 4 || st.Dropped != 0 {
		t.Fatalf("%+v\nrsyslogd:\n%s", st, logs.b.String())
	}
	var got []byte
	for deadline := time.Now().Add(10 * time.Second); bytes.Count(got, []byte("\n")) < 4; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("rsyslog wrote:\n%s\nrsyslogd:\n%s", got, logs.b.String())
		}
		got, _ = os.ReadFile(p("received.log"))
	}
	t.Logf("rsyslog wrote:\n%s", got)
	if !bytes.Contains(got, []byte(" recorder1 dnsrec[")) || bytes.Contains(got, []byte(".K")) {
		t.Errorf("not the RFC 5424 header's host and app, or a time rsyslog could not read:\n%s", got)
	}
	found, err := Read(bytes.NewReader(got))
	if err != nil {
		t.Fatal(err)
	}
	if r := Check(f, found, ""); len(r.Problems) != 0 || r.Checked != 4 {
		t.Fatalf("problems %+v in what rsyslog wrote:\n%s", r.Problems, got)
	}
	// The receiver's file also shows a later cut of the evidence.
	f.Heads = f.Heads[:2]
	if r := Check(f, found, ""); len(r.Problems) == 0 || r.Problems[0].Kind != KindTailCut {
		t.Fatalf("cut file: %+v", r.Problems)
	}
}
