//go:build linux && (amd64 || arm64)

package bpf

import (
	"errors"
	"fmt"
	"os"
	"slices"
)

// Config is what the kernel programs are told before they are loaded.
type Config struct {
	// Ports are the DNS ports to capture; at most MaxPorts.
	Ports []uint16
	// Snaplen is the most payload bytes kept per message, 1..MaxSnaplen.
	Snaplen uint32
	// RingBytes is the ring buffer size: a power of two, at least a page.
	RingBytes uint32
	// StableHooks makes the fentry and kprobe tiers hook only stable,
	// non-static functions (ip_send_skb and ip6_send_skb rather than
	// udp_send_skb and udp_v6_send_skb), as they do anyway where the
	// latter were inlined or cloned.
	StableHooks bool
	// DoTPorts are the DNS-over-TLS ports whose plaintext the TLS probes
	// keep, at most MaxPorts; none keeps the default, 853.
	DoTPorts []uint16
	// GuardPID is the recorder's own pid: signals other processes send
	// it are recorded (EventSignal, guard.h). 0 records none.
	GuardPID uint32
	// DoHPorts are the ports of DNS-over-HTTPS servers whose client
	// connections' plaintext the TLS probes keep, at most MaxPorts; none
	// keeps the default, 443.
	DoHPorts []uint16
}

// MaxRingBytes is the largest ring buffer Config takes: 1 GiB.
const MaxRingBytes = 1 << 30

// Validate reports a configuration the programs cannot take.
func (c Config) Validate() error {
	if len(c.Ports) == 0 || len(c.Ports) > MaxPorts {
		return fmt.Errorf("between 1 and %d ports can be captured, got %d", MaxPorts, len(c.Ports))
	}
	for _, p := range c.Ports {
		if p == 0 {
			return errors.New("port 0 cannot be captured")
		}
	}
	if len(c.DoTPorts) > MaxPorts {
		return fmt.Errorf("at most %d DoT ports can be captured, got %d", MaxPorts, len(c.DoTPorts))
	}
	for _, p := range c.DoTPorts {
		if p == 0 {
			return errors.New("DoT port 0 cannot be captured")
		}
	}
	if len(c.DoHPorts) > MaxPorts {
		return fmt.Errorf("at most %d DoH ports can be captured, got %d", MaxPorts, len(c.DoHPorts))
	}
	if slices.Contains(c.DoHPorts, 0) {
		return errors.New("DoH port 0 cannot be captured")
	}
	if c.Snaplen == 0 || c.Snaplen > MaxSnaplen {
		return fmt.Errorf("snaplen must be 1..%d, got %d", MaxSnaplen, c.Snaplen)
	}
	page := uint32(os.Getpagesize())
	if c.RingBytes < page || c.RingBytes > MaxRingBytes || c.RingBytes&(c.RingBytes-1) != 0 {
		got := fmt.Sprintf("%d bytes", c.RingBytes)
		if c.RingBytes >= 1<<20 && c.RingBytes%(1<<20) == 0 {
			got = fmt.Sprintf("%d MiB", c.RingBytes>>20)
		}
		return fmt.Errorf("ring buffer size must be a power of two between %d bytes and %d MiB, got %s", page, MaxRingBytes>>20, got)
	}
	return nil
}
