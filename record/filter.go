//go:build linux && (amd64 || arm64)

package record

import (
	"encoding/json"
	"slices"
	"strings"
)

// Filter narrows a recording (record --domain, --exclude-domain, --pid,
// --comm). It is applied in user space, to each observation before it is
// stored: what it leaves out is counted (loss.filtered), and the session
// row records the filter, so that a filtered recording is never mistaken
// for a full one. An empty Filter keeps everything.
type Filter struct {
	// Domains, if any, keep only messages whose question is one of these
	// names or below one; ExcludeDomains then drops those below any of
	// its names. Names are in stored form: lowercase, no trailing dot,
	// non-ASCII labels in their IDNA form (the command line makes them
	// with query.ParseName, as for the names a question asks).
	Domains, ExcludeDomains []string
	// PIDs, if any, keep only observations by one of these processes or
	// their descendants (by the ancestry the kernel read); Comms, if any,
	// only those by a process or thread whose command name is one of
	// these. An
	// observation whose process is not known passes neither.
	PIDs  []uint32
	Comms []string
}

// Empty tells whether the filter keeps everything.
func (f *Filter) Empty() bool {
	return len(f.Domains)+len(f.ExcludeDomains)+len(f.PIDs)+len(f.Comms) == 0
}

// JSON is the filter as the sessions row's filters column holds it; ""
// for an empty filter.
func (f *Filter) JSON() string {
	if f.Empty() {
		return ""
	}
	b, _ := json.Marshal(struct {
		Domains        []string `json:"domain,omitempty"`
		ExcludeDomains []string `json:"exclude_domain,omitempty"`
		PIDs           []uint32 `json:"pid,omitempty"`
		Comms          []string `json:"comm,omitempty"`
	}{f.Domains, f.ExcludeDomains, f.PIDs, f.Comms})
	return string(b)
}

// keepsOwner tells whether an observation by id passes --pid and --comm.
// A command name matches the thread's (id.Comm) or its process's, which
// procComm gives: dig sends from a thread named isc-net-0000.
func (f *Filter) keepsOwner(id *Identity, procComm func(*Identity) string) bool {
	if len(f.PIDs) == 0 && len(f.Comms) == 0 {
		return true
	}
	if id == nil {
		return false
	}
	if len(f.Comms) > 0 && !slices.Contains(f.Comms, id.Comm) && !slices.Contains(f.Comms, procComm(id)) {
		return false
	}
	if len(f.PIDs) == 0 || slices.Contains(f.PIDs, id.PID) {
		return true
	}
	for _, a := range id.Ancestors {
		if slices.Contains(f.PIDs, a.PID) {
			return true
		}
	}
	return false
}

// keepsName tells whether a message whose question is qname (nil: no
// question could be read) passes --domain and --exclude-domain.
func (f *Filter) keepsName(qname *string) bool {
	if len(f.Domains) == 0 && len(f.ExcludeDomains) == 0 {
		return true
	}
	if qname == nil {
		return len(f.Domains) == 0
	}
	if len(f.Domains) > 0 && !underAny(*qname, f.Domains) {
		return false
	}
	return !underAny(*qname, f.ExcludeDomains)
}

// underAny tells whether name is one of domains or below one of them.
func underAny(name string, domains []string) bool {
	for _, d := range domains {
		if name == d || (strings.HasSuffix(name, d) && name[len(name)-len(d)-1] == '.') {
			return true
		}
	}
	return false
}
