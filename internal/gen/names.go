package gen

import (
	"encoding/base32"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
)

// The incident's and the tunnel's names.
const (
	incidentDomain = "evil.test"
	incidentName   = "c2.evil.test"
	incidentCNAME  = "x1.evil-edge.test"
	incidentIP     = "203.0.113.7"
	incidentNX     = "update.evil.test"
	beaconName     = "beacon.evil.test"
	beaconIP       = "203.0.113.50"
	tunnelDomain   = "exfil.test"
	tunnelSuffix   = ".x." + tunnelDomain
	nxSuffix       = ".corp.example.internal" // the search domain: nothing exists there
)

// realNames are the most asked-for names, most popular first: what a
// server's daemons and containers keep resolving.
var realNames = []string{
	"sqs.eu-west-1.amazonaws.com", "registry-1.docker.io", "api.github.com", "kafka-1.prod.example.net",
	"kafka-2.prod.example.net", "db-primary.prod.example.net", "s3.eu-west-1.amazonaws.com",
	"sts.amazonaws.com", "o450123.ingest.sentry.io", "api.stripe.com", "hooks.slack.com",
	"oauth2.googleapis.com", "www.googleapis.com", "storage.googleapis.com", "login.microsoftonline.com",
	"graph.microsoft.com", "deb.debian.org", "security.debian.org", "pypi.org", "files.pythonhosted.org",
	"auth.docker.io", "production.cloudflare.docker.com", "objects.githubusercontent.com", "github.com",
	"ocsp.digicert.com", "r3.o.lencr.org", "acme-v02.api.letsencrypt.org", "api.segment.io",
	"cdn.jsdelivr.net", "fonts.googleapis.com", "fonts.gstatic.com", "proxy.golang.org", "sum.golang.org",
	"registry.npmjs.org", "dl-cdn.alpinelinux.org", "api.snapcraft.io", "smtp.sendgrid.net",
	"email-smtp.eu-west-1.amazonaws.com", "redis-0.cache.prod.example.net", "redis-1.cache.prod.example.net",
	"vault.prod.example.net", "consul.service.prod.example.net", "grafana.example.net", "hc-ping.com",
}

// hostLabels make the synthetic popular names: LABEL.DOMAIN.
var hostLabels = []string{
	"www", "api", "cdn", "static", "img", "login", "auth", "mail", "smtp", "app",
	"m", "assets", "edge", "media", "files", "download", "update", "status", "docs", "blog",
	"shop", "pay", "metrics", "telemetry", "events", "ws", "gateway", "sso", "portal", "admin",
	"v2.api", "eu.api", "us-east-1.api", "content", "video", "analytics", "track", "ads", "push", "sync",
}

// tailWords and tailZones make the long tail: WORD-K.ZONE.DOMAIN, each
// asked for a few times at most.
var (
	tailWords = []string{"ip", "host", "node", "srv", "vm", "pod", "db", "cache", "web", "lb", "worker", "job", "build", "ci", "runner", "shard"}
	tailZones = []string{"eu-west-1", "us-east-2", "fra1", "ams3", "internal", "prod", "staging", "cluster", "k8s", "lan", "dc2", "edge"}
	nxWords   = []string{"redis", "db", "kafka", "ldap", "wpad", "vault", "proxy", "mq", "smtp", "backup", "nas", "printer"}
)

var (
	syllables = []string{"ka", "lo", "mi", "ne", "ra", "su", "ti", "vo", "xe", "zu", "ba", "de", "fi", "go", "hu",
		"ja", "pe", "qu", "sa", "to", "we", "yo", "li", "mo", "nu", "ri", "se", "ta", "vi", "zo", "an", "el", "or", "ix"}
	tlds = []string{"com", "com", "com", "com", "net", "net", "org", "io", "de", "co.uk", "fr", "nl", "cloud", "dev", "app", "eu", "tech", "xyz"}
)

// nameModel is the population of names and how popular each is.
type nameModel struct {
	domains []string
	head    []string   // popular names, most popular first
	zipf    *rand.Zipf // over head
	tailN   int
	nxN     int
	edgeN   int
	seed    uint64
}

func newNameModel(rng *rand.Rand, seed uint64, messages int64) *nameModel {
	n := &nameModel{seed: seed}
	nDomains := clamp(messages/1000, 300, 10_000)
	seen := map[string]bool{}
	for _, r := range realNames {
		seen[registered(r)] = true
	}
	for len(n.domains) < nDomains {
		var b strings.Builder
		for range 2 + rng.IntN(2) {
			b.WriteString(syllables[rng.IntN(len(syllables))])
		}
		d := b.String() + "." + tlds[rng.IntN(len(tlds))]
		if !seen[d] {
			seen[d] = true
			n.domains = append(n.domains, d)
		}
	}
	nHead := clamp(messages/100, 300, 100_000)
	n.head = append(n.head, realNames...)
	for j := 0; len(n.head) < nHead; j++ {
		d := j % nDomains
		label := hostLabels[(j/nDomains+int(mix(uint64(d))%uint64(len(hostLabels))))%len(hostLabels)]
		n.head = append(n.head, label+"."+n.domains[d])
	}
	n.zipf = rand.NewZipf(rng, 1.07, 2, uint64(len(n.head)-1))
	n.tailN = clamp(messages/30, 1000, 1_000_000)
	n.nxN = clamp(messages/1000, 50, 10_000)
	n.edgeN = clamp(messages/5000, 50, 2000)
	return n
}

func clamp(v int64, lo, hi int) int {
	return int(max(int64(lo), min(v, int64(hi))))
}

// general picks the name of an ordinary lookup: mostly popular names, a
// long tail, and a few names under the search domain that do not exist.
func (n *nameModel) general(rng *rand.Rand) string {
	switch x := rng.Float64(); {
	case x < 0.035:
		k := rng.IntN(n.nxN)
		return nxWords[k%len(nxWords)] + strconv.Itoa(k/len(nxWords)) + nxSuffix
	case x < 0.335:
		return n.tail(rng.IntN(n.tailN))
	default:
		return n.head[n.zipf.Uint64()]
	}
}

func (n *nameModel) tail(k int) string {
	return tailWords[k%len(tailWords)] + "-" + strconv.Itoa(k) + "." + tailZones[(k/len(tailWords))%len(tailZones)] +
		"." + n.domains[mix(uint64(k)^n.seed)%uint64(len(n.domains))]
}

// domain is a random registered domain, for mail.
func (n *nameModel) domain(rng *rand.Rand) string { return n.domains[rng.IntN(len(n.domains))] }

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// tunnel is a fresh name carrying data out: two high-entropy labels and a
// sequence number under the tunnel's domain.
func tunnelName(rng *rand.Rand, seq int64) string {
	var b [45]byte
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	s := b32.EncodeToString(b[:]) // 72 characters
	return s[:52] + "." + s[52:] + "." + strconv.FormatInt(seq, 36) + tunnelSuffix
}

// registered approximates a name's registered domain: its last two labels
// (three under co.uk).
func registered(name string) string {
	labels := strings.Split(name, ".")
	k := 2
	if strings.HasSuffix(name, ".co.uk") {
		k = 3
	}
	if len(labels) <= k {
		return name
	}
	return strings.Join(labels[len(labels)-k:], ".")
}

// answer is what the upstream resolver answers for a question: the rcode,
// the answer and authority sections, and the smallest TTL (what a cache
// keeps it for). The same name always gets the same data; age (seconds in
// a cache) counts the TTLs down.
type answer struct {
	rcode  int
	ans    []dns.RR
	ns     []dns.RR
	minTTL uint32
}

func (n *nameModel) answer(name string, qtype uint16, age uint32) answer {
	var a answer
	add := func(rr dns.RR) {
		h := rr.Header()
		h.Ttl -= min(h.Ttl, age)
		a.ans = append(a.ans, rr)
	}
	negative := func(zone string, rcode int) answer {
		a.rcode = rcode
		soa := &dns.SOA{Hdr: hdr(zone, dns.TypeSOA, 300), Ns: "ns1." + dns.Fqdn(zone), Mbox: "hostmaster." + dns.Fqdn(zone),
			Serial: 2024030401, Refresh: 7200, Retry: 3600, Expire: 1209600, Minttl: 300}
		soa.Hdr.Ttl -= min(soa.Hdr.Ttl, age)
		a.ns = []dns.RR{soa}
		a.minTTL = 300
		return a
	}
	finish := func() answer {
		a.minTTL = 1 << 31
		for _, rr := range a.ans {
			a.minTTL = min(a.minTTL, rr.Header().Ttl+age)
		}
		return a
	}
	switch {
	case name == incidentName:
		add(&dns.CNAME{Hdr: hdr(name, dns.TypeCNAME, 60), Target: dns.Fqdn(incidentCNAME)})
		if qtype != dns.TypeA { // no IPv6: the alias, and no address
			nodata := negative(registered(incidentCNAME), dns.RcodeSuccess)
			nodata.minTTL = 60
			return nodata
		}
		add(&dns.A{Hdr: hdr(incidentCNAME, dns.TypeA, 60), A: netip.MustParseAddr(incidentIP).AsSlice()})
		return finish()
	case name == beaconName && qtype == dns.TypeA:
		add(&dns.A{Hdr: hdr(name, dns.TypeA, 30), A: netip.MustParseAddr(beaconIP).AsSlice()})
		return finish()
	case name == incidentNX:
		return negative(incidentDomain, dns.RcodeNameError)
	case strings.HasSuffix(name, nxSuffix):
		return negative(nxSuffix[1:], dns.RcodeNameError)
	case strings.HasSuffix(name, tunnelSuffix):
		h := mix(fnv(name) ^ n.seed)
		txt := make([]string, 3)
		for i := range txt {
			txt[i] = strconv.FormatUint(mix(h+uint64(i)), 36) + strconv.FormatUint(mix(h^uint64(i)), 36) + strconv.FormatUint(h>>uint(i), 36)
		}
		add(&dns.TXT{Hdr: hdr(name, dns.TypeTXT, 0), Txt: txt})
		return finish()
	case strings.HasSuffix(name, ".in-addr.arpa"):
		zone := name[strings.IndexByte(name, '.')+1:]
		if name == incidentPTR || mix(fnv(name)^n.seed)%2 == 0 {
			return negative(zone, dns.RcodeNameError)
		}
		add(&dns.PTR{Hdr: hdr(name, dns.TypePTR, 3600), Ptr: "host-" + strings.ReplaceAll(zone, ".", "-") + ".isp.example.net."})
		return finish()
	}
	h := mix(fnv(name) ^ n.seed)
	switch qtype {
	case dns.TypeMX:
		add(&dns.MX{Hdr: hdr(name, dns.TypeMX, 3600), Preference: 10, Mx: "mx1." + dns.Fqdn(name)})
		add(&dns.MX{Hdr: hdr(name, dns.TypeMX, 3600), Preference: 20, Mx: "mx2." + dns.Fqdn(name)})
		return finish()
	case dns.TypeA, dns.TypeAAAA:
	default:
		return negative(registered(name), dns.RcodeSuccess)
	}
	// CNAME chains: about one name in six is an alias of a CDN edge, and
	// some go through a second alias on the way.
	leaf := name
	if d := h % 100; d < 22 {
		if d < 6 {
			alias := name + ".cdn.cloudflare.net"
			add(&dns.CNAME{Hdr: hdr(leaf, dns.TypeCNAME, 300), Target: dns.Fqdn(alias)})
			leaf = alias
		}
		edge := n.edge(int((h >> 8) % uint64(n.edgeN)))
		add(&dns.CNAME{Hdr: hdr(leaf, dns.TypeCNAME, 300), Target: dns.Fqdn(edge)})
		leaf = edge
	}
	hl := mix(fnv(leaf) ^ n.seed)
	ttl := [...]uint32{30, 60, 300, 3600}[(hl>>50)%4]
	if qtype == dns.TypeA {
		for i := range 1 + int(hl>>8)%3 {
			add(&dns.A{Hdr: hdr(leaf, dns.TypeA, ttl), A: v4(hl, i)})
		}
		return finish()
	}
	if (hl>>40)%100 >= 45 { // no IPv6: NOERROR, the aliases and no address
		nodata := negative(registered(leaf), dns.RcodeSuccess)
		for _, rr := range nodata.ans {
			nodata.minTTL = min(nodata.minTTL, rr.Header().Ttl+age)
		}
		return nodata
	}
	for i := range 1 + int(hl>>12)%2 {
		add(&dns.AAAA{Hdr: hdr(leaf, dns.TypeAAAA, ttl), AAAA: v6(hl, i)})
	}
	return finish()
}

// incidentPTR is the reverse name of the address the attacker logs in
// from (no PTR record).
const incidentPTR = "23.100.51.198.in-addr.arpa"

// edge is CDN edge number e: what CNAME chains end at.
func (n *nameModel) edge(e int) string {
	switch e % 4 {
	case 0:
		return "e" + strconv.Itoa(1000+e) + ".dsca.akamaiedge.net"
	case 1:
		return "d" + strconv.FormatUint(mix(uint64(e)^n.seed)%(1<<52), 36) + ".cloudfront.net"
	case 2:
		return "prod-lb-" + strconv.Itoa(e) + ".elb.eu-west-1.amazonaws.com"
	}
	return "f" + strconv.Itoa(e) + ".global.ssl.fastly.net"
}

// v4 is address i of a leaf name: spread over 198.18.0.0/15 (the
// benchmarking range), so that each /24 is the answer of a few names.
func v4(h uint64, i int) []byte {
	k := (uint32(h>>20) + uint32(i)*4099) % (1 << 17)
	return []byte{198, 18 + byte(k>>16), byte(k >> 8), byte(k)}
}

func v6(h uint64, i int) []byte {
	b := netip.MustParseAddr("2001:db8::").As16()
	b[4], b[5], b[6], b[7] = byte(h>>24), byte(h>>32), byte(h>>40), byte(h>>48)
	b[15] = byte(i + 1)
	return b[:]
}

func hdr(name string, t uint16, ttl uint32) dns.RR_Header {
	return dns.RR_Header{Name: dns.Fqdn(name), Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
}

// fnv is FNV-1a: a stable hash (maphash's seeds are random per process).
func fnv(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// mix is splitmix64's finalizer.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}
