// Package relay links the queries local clients sent to a local forwarding
// resolver (dnsmasq, unbound, systemd-resolved) to the queries that
// resolver then sent upstream. On most hosts the process that puts a query
// on the wire is such a resolver acting for the process that wanted the
// name, and the recording holds both legs: the client's query as the
// resolver received it (a loopback message with both processes), and the
// query the resolver sent upstream. Nothing of the link is stored: it is
// computed from the messages when a question is asked (package query) or a
// summary is built (package summary), by the same rules here.
//
// A client query D, received by a local server process R at tD and
// answered by R at tA, is linked to the upstream queries U that R sent for
// the same question (name and type) whose answers reached R between tD and
// tA: R answered D after, and so with, what came back. An unanswered D is
// linked to R's queries for the same question sent within Window after
// tD. Then:
//
//	exact      one candidate carries D's own DNS id (dnsmasq keeps it over TCP)
//	likely     one candidate
//	ambiguous  several candidates (clients asking the same name at once, a
//	           retry, a UDP answer truncated and asked again over TCP); the
//	           nearest (the last answer before tA) is named
//	cache      R answered with no upstream query for the question in between:
//	           from its cache, or its own data (/etc/hosts, a local zone)
//	unanswered R never answered, and sent nothing upstream for it
//
// Upstream queries that are a candidate of some client query are R's
// "forwarded" ones; the others are R's own (a prefetch, a DNSSEC lookup, or
// the resolver process resolving for itself).
package relay
