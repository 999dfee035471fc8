//go:build linux && (amd64 || arm64)

package record

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/dnsrec/dnsrec/internal/dnstext" // its display names, as every query output prints them
)

// liveBacklog is how many committed batches may wait for the printer. A
// terminal slower than the recording loses lines (counted), never rows.
const liveBacklog = 64

// LiveMsg is one stored message as the live view prints it.
type LiveMsg struct {
	Time     time.Time    `json:"time"`
	Proto    string       `json:"proto"`
	Src      string       `json:"src"`
	Dst      string       `json:"dst"`
	Sender   *LiveProcess `json:"sender,omitempty"`   // nil: remote, or not identified
	Receiver *LiveProcess `json:"receiver,omitempty"` // likewise
	Response bool         `json:"response"`
	QName    string       `json:"qname"`
	QType    string       `json:"qtype"`
	Rcode    string       `json:"rcode,omitempty"`
	Answers  []string     `json:"answers,omitempty"`
	Cut      bool         `json:"cut,omitempty"` // stored cut at snaplen, or what the kernel could read
	// Libc names the C library function of a libc resolution (then Proto
	// is "libc", Sender the caller, Rcode its outcome and Answers the
	// addresses it returned); "" for a DNS message.
	Libc string `json:"libc,omitempty"`
}

// LiveProcess is a local end of a message.
type LiveProcess struct {
	PID   uint32 `json:"pid"`
	Comm  string `json:"comm"`
	Iface string `json:"iface,omitempty"` // the network device of its side, where the hook tier knows it
}

// liveView prints committed messages on its own goroutine.
type liveView struct {
	batches chan []LiveMsg
	pending []LiveMsg // inserted, not yet committed
	skipped int64     // lines dropped because the printer was behind
	done    sync.WaitGroup
}

func newLiveView(w io.Writer, jsonl bool) *liveView {
	v := &liveView{batches: make(chan []LiveMsg, liveBacklog)}
	v.done.Add(1)
	go func() {
		defer v.done.Done()
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for batch := range v.batches {
			for i := range batch {
				if jsonl {
					enc.Encode(&batch[i])
				} else {
					bw.WriteString(batch[i].line())
					bw.WriteByte('\n')
				}
			}
			bw.Flush()
		}
	}()
	return v
}

// add remembers m for the next commit.
func (v *liveView) add(m *msgRow) {
	l := LiveMsg{Proto: m.Proto, Src: m.Src.String(), Dst: m.Dst.String(), Response: m.senderServer,
		Cut: len(m.Raw) < m.OrigLen}
	l.Time = time.Unix(0, m.First()).UTC()
	if m.Send.Seen && m.Send.Ident != nil {
		l.Sender = &LiveProcess{m.Send.Ident.PID, m.Send.Ident.Comm, m.Send.IfName}
	}
	if m.Recv.Seen && m.Recv.Ident != nil {
		l.Receiver = &LiveProcess{m.Recv.Ident.PID, m.Recv.Ident.Comm, m.Recv.IfName}
	}
	d := &m.DNS
	if d.QName != nil {
		l.QName = cmp.Or(d.Spelling, *d.QName) // as sent
	}
	if d.QType != nil {
		l.QType = dnstext.TypeName(*d.QType)
	}
	if l.Response && d.Rcode != nil {
		l.Rcode = dnstext.RcodeName(*d.Rcode)
	}
	for _, a := range d.Answers {
		if a.Section == "answer" {
			l.Answers = append(l.Answers, dnstext.TypeName(a.Type)+" "+dnstext.DisplayData(a.Type, a.Data))
		}
	}
	v.pending = append(v.pending, l)
}

// addResolution remembers a libc resolution for the next commit.
func (v *liveView) addResolution(r *ResolutionRow) {
	l := LiveMsg{Time: time.Unix(0, r.TsNs).UTC(), Proto: "libc", Libc: r.Func, Response: true, QName: cmp.Or(r.Spelling, r.Name),
		Rcode: dnstext.ResolutionStatus(r.Func, int64(r.RC))}
	if r.Ident != nil {
		l.Sender = &LiveProcess{PID: r.Ident.PID, Comm: r.Ident.Comm}
	}
	for _, a := range r.Addrs {
		l.Answers = append(l.Answers, dnstext.AddrAnswer(a.String()))
	}
	v.pending = append(v.pending, l)
}

// committed hands what was pending to the printer, or counts it skipped
// when the printer is behind: never waits.
func (v *liveView) committed() {
	if len(v.pending) == 0 {
		return
	}
	select {
	case v.batches <- v.pending:
	default:
		v.skipped += int64(len(v.pending))
	}
	v.pending = nil
}

// close waits for the printer to print what it was given.
func (v *liveView) close() int64 {
	close(v.batches)
	v.done.Wait()
	return v.skipped
}

// line is the text form: time, sender > receiver, the question, and for
// a response its rcode and answers.
func (l *LiveMsg) line() string {
	var b strings.Builder
	b.WriteString(l.Time.Local().Format("15:04:05.000"))
	b.WriteString("  ")
	if l.Libc != "" {
		// time  getent(812) > libc getaddrinfo  name  answered  A 192.0.2.7
		b.WriteString(liveEnd(l.Sender, "?"))
		b.WriteString(" > libc ")
		b.WriteString(l.Libc)
		b.WriteString("  ")
		b.WriteString(cmp.Or(l.QName, "?"))
		b.WriteString("  ")
		b.WriteString(l.Rcode)
		if len(l.Answers) > 0 {
			b.WriteString("  ")
			b.WriteString(strings.Join(l.Answers, "; "))
		}
		return b.String()
	}
	b.WriteString(liveEnd(l.Sender, l.Src))
	b.WriteString(" > ")
	b.WriteString(liveEnd(l.Receiver, l.Dst))
	b.WriteString("  ")
	b.WriteString(l.Proto)
	if l.Response {
		b.WriteString("  response  ")
	} else {
		b.WriteString("  query     ")
	}
	b.WriteString(cmp.Or(l.QName, "?"))
	b.WriteString(" ")
	b.WriteString(cmp.Or(l.QType, "?"))
	if l.Response {
		b.WriteString("  ")
		b.WriteString(cmp.Or(l.Rcode, "?"))
		if len(l.Answers) > 0 {
			b.WriteString("  ")
			b.WriteString(strings.Join(l.Answers, "; "))
		}
	}
	if l.Cut {
		b.WriteString("  (cut)")
	}
	return b.String()
}

// liveEnd names a message's end: comm(pid) for a local process, else the
// address.
func liveEnd(p *LiveProcess, addr string) string {
	if p != nil {
		return fmt.Sprintf("%s(%d)", p.Comm, p.PID)
	}
	return addr
}
