package querytest

import (
	"strings"
	"testing"
	"time"
)

// Base is when every scenario's recording starts.
var Base = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

// At is Base plus d.
func At(d time.Duration) time.Time { return Base.Add(d) }

// Incident records one compromised host, host, into b:
//
//   - curl(901) < sh(812) < sshd(640) < systemd(1) resolves www.evil.com
//     three times (A, AAAA, A again from another thread), through a CNAME,
//     with an NS record in the authority section, and evil.com itself once
//     in uppercase with a trailing dot;
//   - python3(950), also under sh, resolves notevil.com, evil.com.example.net
//     and evil-x.com (none of which is evil.com or a subdomain of it) and
//     api.evil.com, which gets NXDOMAIN (no answers);
//   - a message whose process was not identified (pid 4242, comm nc)
//     resolves c2.evil.com;
//   - dnsmasq(300) answers www.evil.com for a LAN client (role server, which
//     who-resolved must ignore);
//   - evil(2000) and spawner(2001) are each other's parent (a corrupt chain)
//     and evil resolves beacon.evil.com; its process row has no exe and no
//     uid, the message carries uid 33.
func Incident(b *Builder, host string) {
	s := b.Session(host, Base)
	systemd := b.Process(Process{Session: s, PID: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd", UID: UID(0)})
	sshd := b.Process(Process{Session: s, PID: 640, Parent: systemd, Comm: "sshd", Exe: "/usr/sbin/sshd", UID: UID(0)})
	sh := b.Process(Process{Session: s, PID: 812, Parent: sshd, Comm: "sh", Exe: "/usr/bin/dash", UID: UID(1000)})
	curl := b.Process(Process{Session: s, PID: 901, Parent: sh, Comm: "curl", Exe: "/usr/bin/curl", UID: UID(1000)})
	py := b.Process(Process{Session: s, PID: 950, Parent: sh, Comm: "python3", Exe: "/usr/bin/python3.11", UID: UID(1000)})
	dnsmasq := b.Process(Process{Session: s, PID: 300, Parent: systemd, Comm: "dnsmasq", Exe: "/usr/sbin/dnsmasq", UID: UID(65534)})
	evil := b.Process(Process{Session: s, PID: 2000, Comm: "evil"})
	spawner := b.Process(Process{Session: s, PID: 2001, Parent: evil, Comm: "spawner"})
	b.SetParent(evil, spawner)

	curlMsg := func(ts time.Duration, dir string, resp bool, qname string, qtype int, answers ...Answer) {
		b.Message(Message{Session: s, Process: curl, PID: 901, Comm: "curl", UID: UID(1000), TS: At(ts),
			Direction: dir, Response: resp, QName: qname, QType: qtype, Answers: answers})
	}
	cname := Answer{Type: 5, Data: "cdn.evil.com"}
	curlMsg(1*time.Second, "send", false, "www.evil.com", 1)
	curlMsg(1*time.Second+time.Millisecond, "send", false, "www.evil.com", 28)
	curlMsg(1*time.Second+10*time.Millisecond, "recv", true, "www.evil.com", 1,
		cname, Answer{Name: "cdn.evil.com", Data: "203.0.113.7"}, Answer{Name: "cdn.evil.com", Data: "203.0.113.8"},
		Answer{Section: "authority", Name: "evil.com", Type: 2, Data: "ns1.evil.com"})
	curlMsg(1*time.Second+12*time.Millisecond, "recv", true, "www.evil.com", 28,
		cname, Answer{Name: "cdn.evil.com", Type: 28, Data: "2001:db8::7"})
	// A later lookup from a worker thread: same process, other thread comm.
	b.Message(Message{Session: s, Process: curl, PID: 901, Comm: "curl-worker", UID: UID(1000), TS: At(5 * time.Second),
		Direction: "send", QName: "www.evil.com"})
	curlMsg(5*time.Second+20*time.Millisecond, "recv", true, "www.evil.com", 1,
		cname, Answer{Name: "cdn.evil.com", Data: "203.0.113.8"}, Answer{Name: "cdn.evil.com", Data: "203.0.113.9"})
	curlMsg(8*time.Second, "send", false, "EVIL.COM.", 1)
	curlMsg(8*time.Second+5*time.Millisecond, "recv", true, "evil.com", 1, Answer{Data: "203.0.113.1"})

	pyMsg := func(ts time.Duration, dir string, resp bool, qname string, answers ...Answer) {
		b.Message(Message{Session: s, Process: py, PID: 950, Comm: "python3", UID: UID(1000), TS: At(ts),
			Direction: dir, Response: resp, QName: qname, Answers: answers})
	}
	pyMsg(2*time.Second, "send", false, "notevil.com")
	pyMsg(2*time.Second+9*time.Millisecond, "recv", true, "notevil.com", Answer{Data: "198.51.100.1"})
	pyMsg(3*time.Second, "send", false, "api.evil.com")
	b.Message(Message{Session: s, Process: py, PID: 950, Comm: "python3", UID: UID(1000), TS: At(3*time.Second + 20*time.Millisecond),
		Direction: "recv", Response: true, QName: "api.evil.com", Rcode: 3}) // NXDOMAIN
	pyMsg(3500*time.Millisecond, "send", false, "evil.com.example.net")
	pyMsg(3600*time.Millisecond, "send", false, "evil-x.com")

	b.Message(Message{Session: s, PID: 4242, Comm: "nc", UID: UID(0), TS: At(4 * time.Second),
		Direction: "send", QName: "c2.evil.com"})
	b.Message(Message{Session: s, PID: 4242, Comm: "nc", UID: UID(0), TS: At(4*time.Second + 11*time.Millisecond),
		Direction: "recv", Response: true, QName: "c2.evil.com", Answers: []Answer{{Data: "192.0.2.66"}}})

	b.Message(Message{Session: s, Process: dnsmasq, PID: 300, Comm: "dnsmasq", UID: UID(65534), TS: At(6 * time.Second),
		Direction: "recv", Role: "server", QName: "www.evil.com"})
	b.Message(Message{Session: s, Process: dnsmasq, PID: 300, Comm: "dnsmasq", UID: UID(65534), TS: At(6*time.Second + time.Millisecond),
		Direction: "send", Role: "server", Response: true, QName: "www.evil.com", Answers: []Answer{{Data: "203.0.113.66"}}})

	b.Message(Message{Session: s, Process: evil, PID: 2000, Comm: "evil", UID: UID(33), TS: At(7 * time.Second),
		Direction: "send", QName: "beacon.evil.com"})
}

// IncidentFile writes Incident for host into a new file at path, closed as
// a recorder's clean stop leaves it, and returns path.
func IncidentFile(tb testing.TB, path, host string) string {
	tb.Helper()
	b := New(tb, path)
	Incident(b, host)
	b.Close()
	return path
}

// SecondHost records another host, host, into b: wget(77) < bash(70) <
// systemd(1) resolves www.evil.com once, between curl's first lookups in
// Incident, so that merged rows interleave by time.
func SecondHost(b *Builder, host string) {
	s := b.Session(host, Base)
	systemd := b.Process(Process{Session: s, PID: 1, Comm: "systemd", Exe: "/sbin/init", UID: UID(0)})
	bash := b.Process(Process{Session: s, PID: 70, Parent: systemd, Comm: "bash", Exe: "/bin/bash", UID: UID(0)})
	wget := b.Process(Process{Session: s, PID: 77, Parent: bash, Comm: "wget", Exe: "/usr/bin/wget", UID: UID(0)})
	b.Message(Message{Session: s, Process: wget, PID: 77, Comm: "wget", UID: UID(0), TS: At(1500 * time.Millisecond),
		Direction: "send", QName: "www.evil.com"})
	b.Message(Message{Session: s, Process: wget, PID: 77, Comm: "wget", UID: UID(0), TS: At(1510 * time.Millisecond),
		Direction: "recv", Response: true, QName: "www.evil.com", Answers: []Answer{{Data: "203.0.113.7"}}})
}

// Spelled names, as Spelled sends them: base64 in the case of a label,
// whose entropy lowercasing lowers ("root:x:0:0" and "hello world").
const (
	SpelledRoot  = "cm9vdDp4OjA6MA.evil.test"
	SpelledHello = "exfil-aGVsbG8gd29ybGQ.evil.test"
	SpelledLibc  = "Beacon-C2.Evil.Test"
)

// Spelled records, with spellings kept (schema v15), a beacon,
// python3(4100) < sh(4000), sending names in mixed case:
//
//   - SpelledHello (TXT) at 1s, NXDOMAIN;
//   - SpelledRoot at 2s lowercased, at 3s as spelled, each answered
//     203.0.113.7;
//   - www.example.test at 4s, answered 192.0.2.1;
//   - SpelledLibc through getaddrinfo at 5s, which returns 203.0.113.9.
func Spelled(b *Builder, host string) {
	b.Spellings = true
	s := b.Session(host, Base)
	sh := b.Process(Process{Session: s, PID: 4000, Comm: "sh", Exe: "/usr/bin/dash", UID: UID(1000)})
	py := b.Process(Process{Session: s, PID: 4100, Parent: sh, Comm: "python3", Exe: "/usr/bin/python3.11", UID: UID(1000)})
	ask := func(at time.Duration, name string, qtype, rcode int, answers ...Answer) {
		b.Message(Message{Session: s, Process: py, PID: 4100, Comm: "python3", TS: At(at), Direction: "send", QName: name, QType: qtype})
		b.Message(Message{Session: s, Process: py, PID: 4100, Comm: "python3", TS: At(at + time.Millisecond), Direction: "recv",
			Response: true, QName: name, QType: qtype, Rcode: rcode, Answers: answers})
	}
	ask(time.Second, SpelledHello, 16, 3)
	ask(2*time.Second, strings.ToLower(SpelledRoot), 1, 0, Answer{Data: "203.0.113.7"})
	ask(3*time.Second, SpelledRoot, 1, 0, Answer{Data: "203.0.113.7"})
	ask(4*time.Second, "www.example.test", 1, 0, Answer{Data: "192.0.2.1"})
	b.Resolution(Resolution{Session: s, Process: py, PID: 4100, Comm: "python3", TS: At(5 * time.Second),
		Name: SpelledLibc, Addrs: []string{"203.0.113.9"}})
}

// SpelledFile writes Spelled for host into a new file at path, closed
// cleanly, and returns path.
func SpelledFile(tb testing.TB, path, host string) string {
	tb.Helper()
	b := New(tb, path)
	Spelled(b, host)
	b.Close()
	return path
}
