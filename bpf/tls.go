//go:build linux && (amd64 || arm64)

package bpf

import (
	"fmt"
	"strings"

	"github.com/cilium/ebpf/link"
)

// tlsKind: the TLS libraries whose write and read calls are probed for DNS
// over TLS (tls.h). OpenSSL's SSL_write_ex/SSL_read_ex return 1 or 0, and
// their byte count through a pointer the entry noted.
var tlsKind = &libKind{
	name:  "tls probes",
	match: isTLSLib,
	probes: []libProbe{
		{"SSL_write", "tls_ssl_write", "tls_ret_int"},
		{"SSL_read", "tls_ssl_read", "tls_ret_int"},
		{"SSL_write_ex", "tls_ssl_write_ex", "tls_ret_int"},
		{"SSL_read_ex", "tls_ssl_read_ex", "tls_ret_int"},
		{"SSL_free", "tls_free", ""},
		{"gnutls_record_send", "tls_gnutls_send", "tls_ret_long"},
		{"gnutls_record_recv", "tls_gnutls_recv", "tls_ret_long"},
		{"gnutls_record_uncork", "tls_gnutls_uncork", "tls_gnutls_uncork_ret"},
		{"gnutls_deinit", "tls_free", ""},
	},
	standard:    standardTLSPaths,
	allStandard: true,
	// A program may load its TLS library long after it started (Python's
	// ssl module, dlopen): the standard locations cover the host's.
	waitLoader: false,
	// Go programs carry their own crypto/tls (gotls.go).
	goExe: true,
}

// isTLSLib says whether a mapped file is OpenSSL 3's libssl or GnuTLS.
func isTLSLib(base string) bool {
	return base == "libssl.so.3" || base == "libgnutls.so.30" ||
		strings.HasPrefix(base, "libssl.so.3.") || strings.HasPrefix(base, "libgnutls.so.30.")
}

var standardTLSPaths = []string{
	"/usr/lib/x86_64-linux-gnu/libssl.so.3",
	"/usr/lib/x86_64-linux-gnu/libgnutls.so.30",
	"/usr/lib/aarch64-linux-gnu/libssl.so.3",
	"/usr/lib/aarch64-linux-gnu/libgnutls.so.30",
	"/usr/lib64/libssl.so.3",
	"/usr/lib64/libgnutls.so.30",
	"/usr/lib/libssl.so.3",
	"/usr/lib/libgnutls.so.30",
}

// TLSProbes returns the capture's DNS-over-TLS probes; nothing is attached
// before its first Scan, which also attaches the sys_enter program that
// ties plaintext to its socket (it runs on every system call, so a
// recording without TLS never pays for it). The standard library locations
// are included in every Scan's search, so more than one Scan may be needed
// where standard locations are missing.
func (c *Capture) TLSProbes() *Libc {
	c.tlsOnce.Do(func() {
		c.tls = &Libc{
			c:     c,
			proc:  "/proc",
			kind:  tlsKind,
			files: map[fileID]bool{},
			seen:  map[progKey]bool{},
			first: c.AttachSysEnter,
		}
	})
	return c.tls
}

// AttachSysEnter attaches tls_sys_enter, once; later calls return the
// first one's error. Without it, plaintext of a call is still tied through
// an object already bound, which nothing else binds: DoT goes unrecorded,
// and Scan says why; and no encrypted-DNS connection is seen.
func (c *Capture) AttachSysEnter() error {
	c.sysEnterOnce.Do(func() { c.sysEnterErr = c.attachSysEnter() })
	return c.sysEnterErr
}

func (c *Capture) attachSysEnter() error {
	prog := c.coll.Programs["tls_sys_enter"]
	if prog == nil {
		return fmt.Errorf("tls probes: program tls_sys_enter missing from the object")
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: prog})
	if err != nil {
		return fmt.Errorf("tls probes: attach tls_sys_enter (tp_btf/sys_enter): %w", err)
	}
	c.addHook("tls_sys_enter", prog, l, "", 0)
	return nil
}

// tlsObjKey is struct tls_obj_key.
type tlsObjKey struct {
	Obj  uint64
	TGID uint32
	_    uint32
}

// SkipTLS tells the TLS probes to copy nothing more of a process's TLS
// object: user space found its connection is not DNS. The mark goes with the
// object (SSL_free, gnutls_deinit) or, under pressure, with the LRU.
func (c *Capture) SkipTLS(pid uint32, obj uint64) error {
	m := c.coll.Maps["tls_skip"]
	if m == nil {
		return fmt.Errorf("tls probes: map tls_skip missing from the object")
	}
	one := uint8(1)
	return m.Update(tlsObjKey{Obj: obj, TGID: pid}, one, 0)
}
