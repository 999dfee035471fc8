package bpf

// The constants of common.h. Unlike the structs (twins.go) they build on
// every platform: the command line shows some of them in its help.

// Record kinds: the first byte of every ring buffer record (enum event_kind).
const (
	EventDNS   = 1
	EventExec  = 2
	EventExit  = 3
	EventOwner = 4
	// EventResolve is a libc resolver call that returned (ResolveEvent).
	EventResolve = 5
	// EventTLSData is the plaintext of a TLS library call (TLSEvent).
	EventTLSData = 6
	// EventTLSBind says which socket a TLS object's calls go to (TLSEvent).
	EventTLSBind = 7
	// EventSignal is another process signalling the recorder (SignalEvent).
	EventSignal = 8
	// EventEncConn is a connection to an encrypted-DNS server (EncEvent).
	EventEncConn = 12
	// EventEncHello is the first bytes sent on such a connection (EncEvent).
	EventEncHello = 13
)

// EncEvent.Via values (enum enc_via): the system call that named the remote.
const (
	EncViaConnect = 1
	EncViaSendto  = 2
	EncViaSendmsg = 3
)

// EncEvent.Match values (enum enc_match).
const (
	// EncMatchPort: the remote port is a DoT port.
	EncMatchPort = 1
	// EncMatchResolver: port 443 of an address in the resolver list.
	EncMatchResolver = 2
)

// EncHelloMax is the most first bytes an EventEncHello carries.
const EncHelloMax = 2048

// TLSHead.Lib values (enum tls_lib).
const (
	TLSLibOpenSSL = 1
	TLSLibGnuTLS  = 2
	// TLSLibGo: crypto/tls compiled into a Go executable.
	TLSLibGo = 3
)

// TLSHead.Flags bits (enum tls_flags).
const (
	// TLSUnbound: no socket was known for the object yet (memory BIO);
	// an EventTLSBind may follow.
	TLSUnbound = 1
	// TLSCut: the call moved more bytes than the record holds.
	TLSCut = 2
	// TLSSyscall: the socket came from a system call inside this call.
	TLSSyscall = 4
)

// DefaultDoTPort is the DNS-over-TLS port captured unless told otherwise.
const DefaultDoTPort = 853

// DefaultDoHPort is the DNS-over-HTTPS port captured unless told otherwise.
const DefaultDoHPort = 443

// ResolveEvent.Func values (enum resolve_func): the libc entry point.
const (
	ResolveGetaddrinfo     = 1
	ResolveGethostbynameR  = 2
	ResolveGethostbyname2R = 3
)

// ResolveEvent.Flags bits (enum resolve_flags).
const (
	ResolveNameCut  = 1
	ResolveAddrsCut = 2
	ResolveNested   = 4 // made inside another probed call of the same thread
)

// DNSEvent.Flags bits (enum dns_flags).
const (
	FlagIdent        = 1
	FlagIdentCurrent = 2
)

// DNSEvent.Dir values.
const (
	DirSend = 0
	DirRecv = 1
)

// ExecEvent.Flags bits.
const (
	ExecPathTruncated = 1
	ExecArgsTruncated = 2
)

// Limits compiled into the programs (common.h).
const (
	MaxPorts = 8
	// MaxSnaplen is the largest ring buffer size class (MAX_SNAP): any
	// whole DNS message (at most 65535 bytes), and the default.
	MaxSnaplen   = 65536
	MaxAncestors = 16
)
