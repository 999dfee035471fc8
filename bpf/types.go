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
)

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
