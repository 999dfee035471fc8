//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"net/netip"
)

// MaxResolverAddrs is the size of the kernel's resolver address set.
const MaxResolverAddrs = 4096

// AddResolverAddrs adds addresses to the set whose port 443 the sys_enter
// program takes for encrypted DNS (tls.h, enc_addrs). Safe while recording:
// an address learnt from a DNS answer is added the same way.
func (c *Capture) AddResolverAddrs(addrs []netip.Addr) error {
	m := c.coll.Maps["enc_addrs"]
	if m == nil {
		return errors.New("encrypted DNS: map enc_addrs missing from the object")
	}
	for _, a := range addrs {
		a = a.Unmap()
		k := cgroupEncAddr{}
		switch {
		case a.Is4():
			k.Family = 4
			b := a.As4()
			copy(k.Addr[:], b[:])
		case a.Is6():
			k.Family = 6
			k.Addr = a.As16()
		default:
			return fmt.Errorf("encrypted DNS: resolver address %v is not IPv4 or IPv6", a)
		}
		if err := m.Put(&k, uint8(1)); err != nil {
			return fmt.Errorf("encrypted DNS: add resolver address %v: %w", a, err)
		}
	}
	return nil
}
