package query

import (
	"net/netip"
	"unsafe"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query/format"
)

// messageRow writes a message's timeline row (TimelineRow) to w cell by
// cell, with file first when it is not "" (several files): the bytes are
// those w.Row(TimelineRow(m, via)) writes, without building the row as
// []any, which for a whole-file export is a large share of the cost.
func messageRow(w format.CellRowWriter, file string, m *Message, via string, scratch *[64]byte) error {
	timelineCells(w.BeginRow(), file, m, via, scratch)
	return w.EndRow()
}

// timelineCells sends what TimelineRow(m, via) holds to s.
func timelineCells(s format.Cells, file string, m *Message, via string, scratch *[64]byte) {
	if file != "" {
		s.Str(file)
	}
	s.Time(m.Time)
	s.Str(m.Host)
	s.Int(m.ID)
	if m.Response {
		s.Str("response")
	} else {
		s.Str("query")
	}
	s.Str(m.Proto)
	addr := func(a netip.AddrPort) {
		if !a.IsValid() {
			s.Null()
			return
		}
		b := a.AppendTo(scratch[:0])
		s.Str(unsafe.String(unsafe.SliceData(b), len(b)))
	}
	pid := func(p *Party) {
		if p == nil || p.Proc == nil {
			s.Null()
			return
		}
		s.Int(p.Proc.PID)
	}
	comm := func(p *Party) {
		if p == nil || p.Proc == nil {
			s.Null()
			return
		}
		s.NStr(p.Proc.Comm)
	}
	addr(m.Src)
	pid(m.Sender)
	comm(m.Sender)
	addr(m.Dst)
	pid(m.Receiver)
	comm(m.Receiver)
	for _, p := range [2]*Party{m.Sender, m.Receiver} {
		if p == nil {
			s.Null()
		} else {
			s.NStr(p.Iface)
		}
	}
	for _, p := range [2]*Party{m.Sender, m.Receiver} {
		if p == nil || p.Proc == nil {
			s.Null()
		} else {
			s.NStr(p.Proc.Container)
		}
	}
	s.NStr(m.QName)
	if m.QName == "" && m.QType == 0 {
		s.Null()
	} else {
		s.Str(dnstext.TypeName(m.QType))
	}
	if m.Response && m.Rcode >= 0 {
		s.Str(dnstext.RcodeName(m.Rcode))
	} else {
		s.Null()
	}
	s.BeginList()
	for _, r := range m.Answers {
		s.Item(dnstext.TypeName(r.Type), " ", dnstext.DisplayData(r.Type, r.Data))
	}
	s.EndList()
	if m.QueryID != 0 {
		s.Int(m.QueryID)
	} else {
		s.Null()
	}
	if m.Latency > 0 {
		s.Millis(m.Latency)
	} else {
		s.Null()
	}
	s.NStr(via)
	if m.Cut || m.ParseErr != "" || m.QRMismatch || m.FromJSON {
		s.NStr(m.Note())
	} else {
		s.Null()
	}
	s.NStr(m.URLHost)
	s.NStr(m.URLPath)
}

// CountRows is w counting the rows written through it in *n. It is a
// format.CellRowWriter when w is one, so that the timeline still renders
// each row straight into w's format.
func CountRows(w format.RowWriter, n *int64) format.RowWriter {
	if cw, ok := w.(format.CellRowWriter); ok {
		return &countingCells{countingRows{cw, n}, cw}
	}
	return &countingRows{w, n}
}

type countingRows struct {
	format.RowWriter
	n *int64
}

func (c *countingRows) Row(cells []any) error {
	*c.n++
	return c.RowWriter.Row(cells)
}

type countingCells struct {
	countingRows
	cw format.CellRowWriter
}

func (c *countingCells) BeginRow() format.Cells { return c.cw.BeginRow() }

func (c *countingCells) EndRow() error {
	*c.n++
	return c.cw.EndRow()
}
