package dnstext

import "testing"

func TestNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{TypeName(1), "A"},
		{TypeName(65534), "TYPE65534"},
		{RcodeName(3), "NXDOMAIN"},
		{RcodeName(4000), "RCODE4000"},
		{DisplayData(15, "10 mx.evil.test."), "10 mx.evil.test"},
		{DisplayData(5, "cdn.evil.test."), "cdn.evil.test."}, // CNAME data is a stored name: kept as is
		{DisplayData(33, `0 5 443 a\..evil.test.`), `0 5 443 a\..evil.test`},
		{ResolutionStatus("getaddrinfo", 0), "answered"},
		{ResolutionStatus("getaddrinfo", -2), "EAI_NONAME"},
		{ResolutionStatus("getaddrinfo", -99), "EAI -99"},
		{ResolutionStatus("gethostbyname_r", -1), "not found"},
		{ResolutionStatus("gethostbyname_r", 11), "errno 11"},
		{AddrAnswer("192.0.2.7"), "A 192.0.2.7"},
		{AddrAnswer("2001:db8::7"), "AAAA 2001:db8::7"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
