package query

import (
	"fmt"
	"net/netip"
	"strings"
)

// AllNames is the NAME that means every name; "" and "." mean it too (see
// nameArg).
const AllNames = "*"

// nameArg reads who-resolved's NAME: "", "." and "*" are every name (the
// root alone is never asked about by a process that resolves something,
// so "." would otherwise only ever answer nothing), and an IP address or
// prefix is refused, since no name is an address: the question is then
// resolved-to's.
func nameArg(name string) (string, error) {
	s := strings.TrimSpace(name)
	switch s {
	case "", ".", AllNames:
		return AllNames, nil
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return "", fmt.Errorf("%s is an address, not a name: try resolved-to %s", s, s)
	}
	if _, err := netip.ParsePrefix(s); err == nil {
		return "", fmt.Errorf("%s is an address prefix, not a name: try resolved-to %s", s, s)
	}
	return name, nil
}
