package record

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/dnsrec/dnsrec/schema"
)

// KnownResolvers are public DNS-over-HTTPS and DNS-over-TLS services: a
// connection to port 443 of one of their addresses is recorded as
// encrypted DNS (kind doh-known). Compiled from the list of public servers
// on curl's wiki page "DNS-over-HTTPS"
// (https://github.com/curl/curl/wiki/DNS-over-HTTPS) and from each
// provider's own documentation of its resolver addresses and DoH/DoT host
// names. Addresses change and anycast services grow: --doh-server adds
// addresses and names, and the recorder learns the addresses of every
// listed name from the DNS answers it records.
var KnownResolvers = []Resolver{
	{"Cloudflare", []string{"cloudflare-dns.com", "one.one.one.one", "1dot1dot1dot1.cloudflare-dns.com", "security.cloudflare-dns.com", "family.cloudflare-dns.com", "mozilla.cloudflare-dns.com", "chrome.cloudflare-dns.com"},
		addrs("1.1.1.1", "1.0.0.1", "1.1.1.2", "1.0.0.2", "1.1.1.3", "1.0.0.3", "2606:4700:4700::1111", "2606:4700:4700::1001", "2606:4700:4700::1112", "2606:4700:4700::1002", "2606:4700:4700::1113", "2606:4700:4700::1003")},
	{"Google", []string{"dns.google", "dns.google.com", "8888.google"},
		addrs("8.8.8.8", "8.8.4.4", "2001:4860:4860::8888", "2001:4860:4860::8844")},
	{"Quad9", []string{"dns.quad9.net", "dns9.quad9.net", "dns10.quad9.net", "dns11.quad9.net", "dns12.quad9.net"},
		addrs("9.9.9.9", "149.112.112.112", "9.9.9.10", "149.112.112.10", "9.9.9.11", "149.112.112.11", "9.9.9.12", "149.112.112.12",
			"2620:fe::fe", "2620:fe::9", "2620:fe::10", "2620:fe::fe:10", "2620:fe::11", "2620:fe::fe:11", "2620:fe::12", "2620:fe::fe:12")},
	{"AdGuard", []string{"dns.adguard-dns.com", "unfiltered.adguard-dns.com", "family.adguard-dns.com", "dns.adguard.com", "dns-unfiltered.adguard.com", "dns-family.adguard.com"},
		addrs("94.140.14.14", "94.140.15.15", "94.140.14.140", "94.140.14.141", "94.140.14.15", "94.140.15.16",
			"2a10:50c0::ad1:ff", "2a10:50c0::ad2:ff", "2a10:50c0::1:ff", "2a10:50c0::2:ff", "2a10:50c0::bad1:ff", "2a10:50c0::bad2:ff")},
	{"NextDNS", []string{"dns.nextdns.io", "anycast.dns.nextdns.io", "steering.nextdns.io"},
		addrs("45.90.28.0", "45.90.30.0", "2a07:a8c0::", "2a07:a8c1::")},
	{"OpenDNS", []string{"doh.opendns.com", "dns.opendns.com", "doh.familyshield.opendns.com", "familyshield.opendns.com", "dns.umbrella.com", "doh.umbrella.com"},
		addrs("208.67.222.222", "208.67.220.220", "208.67.222.123", "208.67.220.123", "2620:119:35::35", "2620:119:53::53", "2620:119:35::123", "2620:119:53::123")},
	{"CleanBrowsing", []string{"doh.cleanbrowsing.org", "security-filter-dns.cleanbrowsing.org", "family-filter-dns.cleanbrowsing.org", "adult-filter-dns.cleanbrowsing.org"},
		addrs("185.228.168.9", "185.228.169.9", "185.228.168.10", "185.228.169.11", "185.228.168.168", "185.228.169.168",
			"2a0d:2a00:1::2", "2a0d:2a00:2::2", "2a0d:2a00:1::1", "2a0d:2a00:2::1", "2a0d:2a00:1::", "2a0d:2a00:2::")},
	{"Mullvad", []string{"dns.mullvad.net", "adblock.dns.mullvad.net", "base.dns.mullvad.net", "extended.dns.mullvad.net", "family.dns.mullvad.net", "all.dns.mullvad.net", "doh.mullvad.net"},
		addrs("194.242.2.2", "194.242.2.3", "194.242.2.4", "194.242.2.5", "194.242.2.6", "194.242.2.9",
			"2a07:e340::2", "2a07:e340::3", "2a07:e340::4", "2a07:e340::5", "2a07:e340::6", "2a07:e340::9")},
	{"DNS.SB", []string{"dns.sb", "doh.dns.sb", "doh.sb"},
		addrs("185.222.222.222", "45.11.45.11", "2a09::", "2a11::")},
	{"Control D", []string{"freedns.controld.com", "dns.controld.com"},
		addrs("76.76.2.0", "76.76.10.0", "2606:1a40::", "2606:1a40:1::")},
}

// Resolver is one encrypted-DNS service: its host names and addresses.
type Resolver struct {
	Name  string
	Hosts []string // normalized as names are stored
	Addrs []netip.Addr
}

func addrs(s ...string) []netip.Addr {
	out := make([]netip.Addr, len(s))
	for i, a := range s {
		out[i] = netip.MustParseAddr(a)
	}
	return out
}

// resolverSet matches addresses and host names against the known
// resolvers and those given with --doh-server.
type resolverSet struct {
	byAddr map[netip.Addr]string
	byHost map[string]string
}

// newResolverSet builds the set from the list and the --doh-server values,
// each an IP address or a host name.
func newResolverSet(extra []string) (*resolverSet, error) {
	s := &resolverSet{byAddr: map[netip.Addr]string{}, byHost: map[string]string{}}
	for _, r := range KnownResolvers {
		for _, a := range r.Addrs {
			s.byAddr[a.Unmap()] = r.Name
		}
		for _, h := range r.Hosts {
			s.byHost[schema.NormalizeName(h)] = r.Name
		}
	}
	for _, v := range extra {
		v = strings.TrimSpace(v)
		if a, err := netip.ParseAddr(v); err == nil {
			a = a.Unmap()
			if a.Zone() != "" {
				return nil, fmt.Errorf("--doh-server %q: an address with a zone cannot be matched", v)
			}
			if _, ok := s.byAddr[a]; !ok {
				s.byAddr[a] = v
			}
			continue
		}
		h := schema.NormalizeName(v)
		if !validHost(h) {
			return nil, fmt.Errorf("--doh-server %q: neither an IP address nor a host name", v)
		}
		if _, ok := s.byHost[h]; !ok {
			s.byHost[h] = h
		}
	}
	return s, nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if l == "" || len(l) > 63 {
			return false
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// addr names the resolver an address belongs to; "" if none.
func (s *resolverSet) addr(a netip.Addr) string { return s.byAddr[a.Unmap()] }

// host names the resolver a host name (an SNI, a DNS question) belongs to;
// "" if none.
func (s *resolverSet) host(h string) string { return s.byHost[schema.NormalizeName(h)] }

// learn adds an address a listed host name resolved to; it reports whether
// the address is new.
func (s *resolverSet) learn(host string, a netip.Addr) bool {
	name := s.host(host)
	a = a.Unmap()
	if name == "" || !a.IsValid() {
		return false
	}
	if _, ok := s.byAddr[a]; ok {
		return false
	}
	s.byAddr[a] = name
	return true
}

// all is every address of the set.
func (s *resolverSet) all() []netip.Addr {
	out := make([]netip.Addr, 0, len(s.byAddr))
	for a := range s.byAddr {
		out = append(out, a)
	}
	return out
}
