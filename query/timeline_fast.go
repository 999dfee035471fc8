package query

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
	"unsafe"

	"github.com/dnsrec/dnsrec/internal/dnstext"
)

// messageRowWriter is a RowWriter that renders a message's timeline row
// (TimelineRow) itself, without building it as cells: each []any cell is
// an allocation, and the text formats' type switches and conversions cost
// as much again, a large share of a whole-file export. The bytes written
// are those Row(TimelineRow(m, via)) writes, with file first when it is
// not "" (several files).
type messageRowWriter interface {
	messageRow(file string, m *Message, via string) error
}

// cellSink receives a timeline row's cells in column order.
type cellSink interface {
	null()
	str(s string)  // a string cell, also when empty
	nstr(s string) // nullString(s): null when empty
	int(v int64)
	time(t time.Time)
	millis(d time.Duration)
	answers(rrs []RR)
}

// timelineCells sends what TimelineRow(m, via) holds to s.
func timelineCells(s cellSink, file string, m *Message, via string, scratch *[64]byte) {
	if file != "" {
		s.str(file)
	}
	s.time(m.Time)
	s.str(m.Host)
	s.int(m.ID)
	if m.Response {
		s.str("response")
	} else {
		s.str("query")
	}
	s.str(m.Proto)
	addr := func(a netip.AddrPort) {
		if !a.IsValid() {
			s.null()
			return
		}
		b := a.AppendTo(scratch[:0])
		s.str(unsafe.String(unsafe.SliceData(b), len(b)))
	}
	pid := func(p *Party) {
		if p == nil || p.Proc == nil {
			s.null()
			return
		}
		s.int(p.Proc.PID)
	}
	comm := func(p *Party) {
		if p == nil || p.Proc == nil {
			s.null()
			return
		}
		s.nstr(p.Proc.Comm)
	}
	addr(m.Src)
	pid(m.Sender)
	comm(m.Sender)
	addr(m.Dst)
	pid(m.Receiver)
	comm(m.Receiver)
	for _, p := range [2]*Party{m.Sender, m.Receiver} {
		if p == nil {
			s.null()
		} else {
			s.nstr(p.Iface)
		}
	}
	for _, p := range [2]*Party{m.Sender, m.Receiver} {
		if p == nil || p.Proc == nil {
			s.null()
		} else {
			s.nstr(p.Proc.Container)
		}
	}
	s.nstr(m.QName)
	if m.QName == "" && m.QType == 0 {
		s.null()
	} else {
		s.str(dnstext.TypeName(m.QType))
	}
	if m.Response && m.Rcode >= 0 {
		s.str(dnstext.RcodeName(m.Rcode))
	} else {
		s.null()
	}
	s.answers(m.Answers)
	if m.QueryID != 0 {
		s.int(m.QueryID)
	} else {
		s.null()
	}
	if m.Latency > 0 {
		s.millis(m.Latency)
	} else {
		s.null()
	}
	s.nstr(via)
	if m.Cut || m.ParseErr != "" || m.QRMismatch {
		s.nstr(m.Note())
	} else {
		s.null()
	}
}

// csvCells renders cells as text() does, into one buffer: the record's
// fields are views of it, valid until the next row.
type csvCells struct {
	buf  []byte
	ends []int
	loc  *time.Location
}

func (c *csvCells) end()          { c.ends = append(c.ends, len(c.buf)) }
func (c *csvCells) null()         { c.end() }
func (c *csvCells) str(s string)  { c.buf = append(c.buf, s...); c.end() }
func (c *csvCells) nstr(s string) { c.str(s) }
func (c *csvCells) int(v int64)   { c.buf = strconv.AppendInt(c.buf, v, 10); c.end() }
func (c *csvCells) time(t time.Time) {
	c.buf = t.In(c.loc).AppendFormat(c.buf, TimeLayout)
	c.end()
}
func (c *csvCells) millis(d time.Duration) {
	c.buf = strconv.AppendFloat(c.buf, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	c.end()
}
func (c *csvCells) answers(rrs []RR) {
	for i, r := range rrs {
		if i > 0 {
			c.buf = append(c.buf, ListSeparator...)
		}
		c.buf = append(c.buf, dnstext.TypeName(r.Type)...)
		c.buf = append(c.buf, ' ')
		c.buf = append(c.buf, dnstext.DisplayData(r.Type, r.Data)...)
	}
	c.end()
}

func (c *csvWriter) messageRow(file string, m *Message, via string) error {
	cc := &c.cells
	cc.buf, cc.ends, cc.loc = cc.buf[:0], cc.ends[:0], c.loc
	timelineCells(cc, file, m, via, &c.scratch)
	if len(cc.ends) != len(c.rec) {
		return fmt.Errorf("timeline row of %d cells for %d columns", len(cc.ends), len(c.rec))
	}
	start := 0
	for i, e := range cc.ends {
		if e == start {
			c.rec[i] = ""
		} else {
			c.rec[i] = unsafe.String(&cc.buf[start], e-start)
		}
		start = e
	}
	err := c.cw.Write(c.rec) // copies the fields
	clear(c.rec)
	return err
}

// jsonCells writes cells as the jsonWriter's Row does.
type jsonCells struct {
	j   *jsonWriter
	i   int
	err error
}

func (c *jsonCells) key() {
	j := c.j
	if c.i > 0 {
		j.bw.WriteByte(',')
	}
	if c.i < len(j.keys) {
		j.bw.Write(j.keys[c.i])
	}
	j.bw.WriteByte(':')
	c.i++
}

func (c *jsonCells) raw(b []byte) {
	c.j.buf = b
	c.j.bw.Write(b)
}

func (c *jsonCells) null() { c.key(); c.j.bw.WriteString("null") }

func (c *jsonCells) str(s string) {
	c.key()
	if b, ok := appendPlainJSON(c.j.buf[:0], s); ok {
		c.raw(b)
		return
	}
	c.marshal(s)
}

func (c *jsonCells) marshal(v any) {
	b, err := marshal(v)
	if err != nil {
		if c.err == nil && c.i-1 < len(c.j.cols) {
			c.err = fmt.Errorf("column %s: %w", c.j.cols[c.i-1], err)
		}
		return
	}
	c.j.bw.Write(b)
}

func (c *jsonCells) nstr(s string) {
	if s == "" {
		c.null()
		return
	}
	c.str(s)
}

func (c *jsonCells) int(v int64) { c.key(); c.raw(strconv.AppendInt(c.j.buf[:0], v, 10)) }

func (c *jsonCells) time(t time.Time) {
	c.key()
	b := append(c.j.buf[:0], '"')
	b = t.In(c.j.loc).AppendFormat(b, TimeLayout)
	c.raw(append(b, '"'))
}

func (c *jsonCells) millis(d time.Duration) {
	c.key()
	b := append(c.j.buf[:0], '"')
	b = strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	c.raw(append(b, '"'))
}

func (c *jsonCells) answers(rrs []RR) {
	c.key()
	b := append(c.j.buf[:0], '[')
	for i, r := range rrs {
		if i > 0 {
			b = append(b, ',')
		}
		start := len(b)
		b = append(b, '"')
		b = append(b, dnstext.TypeName(r.Type)...)
		b = append(b, ' ')
		b = append(b, dnstext.DisplayData(r.Type, r.Data)...)
		for _, ch := range b[start+1:] {
			if ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
				c.j.buf = b
				c.marshal(TypedAnswers(rrs))
				return
			}
		}
		b = append(b, '"')
	}
	c.raw(append(b, ']'))
}

func (j *jsonWriter) messageRow(file string, m *Message, via string) error {
	j.begin()
	c := &j.cells
	*c = jsonCells{j: j}
	timelineCells(c, file, m, via, &j.scratch)
	if c.i != len(j.cols) {
		return fmt.Errorf("timeline row of %d cells for %d columns", c.i, len(j.cols))
	}
	j.end()
	return c.err
}

// CountRows is w counting the rows written through it in *n. The
// timeline still renders each row straight into w's format when w can
// (see messageRowWriter).
func CountRows(w RowWriter, n *int64) RowWriter {
	return &countingRows{RowWriter: w, n: n}
}

type countingRows struct {
	RowWriter
	n *int64
}

func (c *countingRows) Row(cells []any) error {
	*c.n++
	return c.RowWriter.Row(cells)
}

// messageRow passes the row on to a writer that renders it itself.
func (c *countingRows) messageRow(file string, m *Message, via string) error {
	*c.n++
	if mw, ok := c.RowWriter.(messageRowWriter); ok {
		return mw.messageRow(file, m, via)
	}
	row := TimelineRow(m, via)
	if file != "" {
		row = append([]any{file}, row...)
	}
	return c.RowWriter.Row(row)
}
