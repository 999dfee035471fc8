package anchor

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// QueueLen is how many checkpoints wait for an unreachable anchor, at
// most: at the default 10 s interval, almost three hours. Beyond it the
// oldest is dropped, and counted.
const QueueLen = 1000

// Backoff bounds between two tries to reach an anchor.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 60 * time.Second
)

// Stats is one anchor's counts, for the evidence file and `query info`.
type Stats struct {
	Dest    string
	Made    int64 // checkpoints handed to it
	Sent    int64 // written to it
	Dropped int64 // dropped: the queue was full, or the recorder stopped before they left
	Queued  int64 // waiting
	Err     string
}

// Options for Open.
type Options struct {
	CAFile   string // CA of syslog+tls anchors; the system pool when ""
	Hostname string // for the syslog header
	Logger   *slog.Logger
	Stderr   io.Writer // the "-" anchor; os.Stderr when nil
}

// Set is the anchors of one recording, each with its own queue and
// goroutine: a slow or unreachable one never holds up another, nor the
// recorder.
type Set struct {
	anchors []*sender
}

// ParseDest checks one --anchor value.
func ParseDest(d string) error {
	switch {
	case d == "-":
		return nil
	case strings.HasPrefix(d, "file:"):
		if strings.TrimPrefix(d, "file:") == "" {
			return fmt.Errorf("--anchor %q: file: needs a path", d)
		}
		return nil
	case strings.HasPrefix(d, "syslog+tls://"):
		u, err := url.Parse(d)
		if err != nil {
			return fmt.Errorf("--anchor %q: %w", d, err)
		}
		if u.Hostname() == "" || u.Port() == "" {
			return fmt.Errorf("--anchor %q: want syslog+tls://HOST:PORT", d)
		}
		return nil
	}
	return fmt.Errorf("--anchor %q: want syslog+tls://HOST:PORT, file:PATH or - (stderr)", d)
}

// Open starts the anchors. Nothing is dialled here: an anchor unreachable
// at the start is tried again like one lost later.
func Open(dests []string, o Options) (*Set, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	var tlsConf *tls.Config
	for _, d := range dests {
		if err := ParseDest(d); err != nil {
			return nil, err
		}
		if strings.HasPrefix(d, "syslog+tls://") && tlsConf == nil {
			tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
			if o.CAFile != "" {
				pem, err := os.ReadFile(o.CAFile)
				if err != nil {
					return nil, fmt.Errorf("--anchor-ca: %w", err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("--anchor-ca %s: no PEM certificate in it", o.CAFile)
				}
				tlsConf.RootCAs = pool
			}
		}
	}
	s := &Set{}
	for _, d := range dests {
		a := &sender{dest: d, o: o, tls: tlsConf, wake: make(chan struct{}, 1), done: make(chan struct{}), st: Stats{Dest: d}}
		if tlsConf != nil {
			a.tls = tlsConf.Clone()
		}
		go a.run()
		s.anchors = append(s.anchors, a)
	}
	return s, nil
}

// Send queues one checkpoint line for every anchor; it never blocks.
func (s *Set) Send(c *Checkpoint, line string) {
	for _, a := range s.anchors {
		a.enqueue(c, line)
	}
}

// Stats is every anchor's counts.
func (s *Set) Stats() []Stats {
	out := make([]Stats, len(s.anchors))
	for i, a := range s.anchors {
		a.mu.Lock()
		out[i] = a.st
		out[i].Queued = int64(len(a.q))
		a.mu.Unlock()
	}
	return out
}

// Close gives the anchors until wait to send what they hold, then stops
// them; what is still queued is counted as dropped.
func (s *Set) Close(wait time.Duration) []Stats {
	deadline := time.Now().Add(wait)
	for _, a := range s.anchors {
		a.mu.Lock()
		a.closing = deadline
		a.mu.Unlock()
		a.poke()
	}
	for _, a := range s.anchors {
		<-a.done
	}
	return s.Stats()
}

type item struct {
	c    *Checkpoint
	line string
}

type sender struct {
	dest string
	o    Options
	tls  *tls.Config
	wake chan struct{}
	done chan struct{}

	mu      sync.Mutex
	q       []item
	st      Stats
	closing time.Time // set by Close
	failing bool      // the last try failed: the next success is logged
}

func (a *sender) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *sender) enqueue(c *Checkpoint, line string) {
	a.mu.Lock()
	a.st.Made++
	if len(a.q) >= QueueLen {
		a.q = a.q[1:]
		a.st.Dropped++
		if a.st.Dropped == 1 || a.st.Dropped%100 == 0 {
			a.o.Logger.Error("anchor queue full: oldest checkpoint dropped", "anchor", a.dest, "dropped", a.st.Dropped)
		}
	}
	a.q = append(a.q, item{c, line})
	a.mu.Unlock()
	a.poke()
}

// run writes the queue out, reconnecting with backoff.
func (a *sender) run() {
	defer close(a.done)
	var w io.WriteCloser
	backoff := minBackoff
	var retryAt time.Time
	for {
		a.mu.Lock()
		closing := a.closing
		empty := len(a.q) == 0
		a.mu.Unlock()
		if !closing.IsZero() && (empty || time.Now().After(closing)) {
			break
		}
		if empty || time.Now().Before(retryAt) {
			wait := time.Until(retryAt)
			if empty {
				wait = time.Hour
			}
			if !closing.IsZero() {
				wait = min(wait, time.Until(closing))
			}
			select {
			case <-a.wake:
			case <-time.After(max(wait, time.Millisecond)):
			}
			continue
		}
		var err error
		if w == nil {
			w, err = a.dial(closing)
		}
		if err == nil {
			a.mu.Lock()
			it := a.q[0]
			a.mu.Unlock()
			if err = a.write(w, it); err == nil {
				a.mu.Lock()
				if len(a.q) > 0 && a.q[0].line == it.line {
					a.q = a.q[1:]
				}
				a.st.Sent++
				a.st.Err = ""
				if a.failing {
					a.failing = false
					a.o.Logger.Info("anchor reachable again", "anchor", a.dest, "queued", len(a.q))
				}
				a.mu.Unlock()
				backoff = minBackoff
				continue
			}
			w.Close()
			w = nil
		}
		a.mu.Lock()
		a.st.Err = err.Error()
		if !a.failing {
			a.failing = true
			a.o.Logger.Error("anchor unreachable: checkpoints queue and are retried; recording goes on", "anchor", a.dest, "err", err, "queued", len(a.q))
		}
		a.mu.Unlock()
		retryAt = time.Now().Add(backoff)
		backoff = min(backoff*2, maxBackoff)
	}
	if w != nil {
		w.Close()
	}
	a.mu.Lock()
	if n := len(a.q); n > 0 {
		a.st.Dropped += int64(n)
		a.o.Logger.Error("anchor: checkpoints not sent before the stop", "anchor", a.dest, "dropped", n, "err", a.st.Err)
		a.q = nil
	}
	a.mu.Unlock()
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func (a *sender) dial(closing time.Time) (io.WriteCloser, error) {
	switch {
	case a.dest == "-":
		return nopCloser{a.o.Stderr}, nil
	case strings.HasPrefix(a.dest, "file:"):
		f, err := os.OpenFile(strings.TrimPrefix(a.dest, "file:"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return f, nil
	}
	u, _ := url.Parse(a.dest)
	d := &net.Dialer{Timeout: 10 * time.Second}
	if !closing.IsZero() {
		d.Deadline = closing
	}
	conf := a.tls.Clone()
	conf.ServerName = u.Hostname()
	c, err := tls.DialWithDialer(d, "tcp", u.Host, conf)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// write sends one checkpoint. A syslog anchor gets an RFC 5424 message in
// RFC 5425 octet-counted framing; a file or stderr the line.
func (a *sender) write(w io.Writer, it item) error {
	if c, ok := w.(net.Conn); ok {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		msg := syslogMessage(a.o.Hostname, it)
		_, err := fmt.Fprintf(w, "%d %s", len(msg), msg)
		return err
	}
	_, err := io.WriteString(w, it.line+"\n")
	return err
}

// syslogMessage is an RFC 5424 message: facility user, severity notice,
// app dnsrec, msgid checkpoint.
func syslogMessage(host string, it item) string {
	if host == "" {
		host = "-"
	}
	// RFC 5424 allows at most six digits of a second.
	return fmt.Sprintf("<13>1 %s %s dnsrec %d checkpoint - %s", it.c.Time().Format("2006-01-02T15:04:05.000000Z07:00"), host, os.Getpid(), it.line)
}
