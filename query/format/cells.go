package format

import (
	"fmt"
	"strconv"
	"time"
	"unsafe"
)

// Cells receive one row's cells in column order, and render them as the
// writer's Row renders the same values, without building the row as []any:
// each []any cell is an allocation, and Row's type switches and
// conversions cost as much again, a large share of a long listing.
type Cells interface {
	Null()
	Str(s string)  // a string cell, also when empty
	NStr(s string) // a string cell, null when empty
	Int(v int64)
	Time(t time.Time)
	Millis(d time.Duration) // as milliseconds with microsecond precision
	// A list cell ([]string): BeginList, then Item for each item, whose
	// text is a, b and d put together, then EndList.
	BeginList()
	Item(a, b, d string)
	EndList()
}

// A CellRowWriter is a RowWriter that also takes a row cell by cell:
// BeginRow gives the row's Cells, and EndRow writes the row once every
// column has its cell. The bytes are those Row writes for the same values.
type CellRowWriter interface {
	RowWriter
	BeginRow() Cells
	EndRow() error
}

// csvCells renders cells as text() does, into one buffer: the record's
// fields are views of it, valid until the next row.
type csvCells struct {
	buf   []byte
	ends  []int
	loc   *time.Location
	items int // of the list cell being written
}

func (c *csvCells) end()          { c.ends = append(c.ends, len(c.buf)) }
func (c *csvCells) Null()         { c.end() }
func (c *csvCells) Str(s string)  { c.buf = append(c.buf, s...); c.end() }
func (c *csvCells) NStr(s string) { c.Str(s) }
func (c *csvCells) Int(v int64)   { c.buf = strconv.AppendInt(c.buf, v, 10); c.end() }
func (c *csvCells) Time(t time.Time) {
	c.buf = t.In(c.loc).AppendFormat(c.buf, TimeLayout)
	c.end()
}
func (c *csvCells) Millis(d time.Duration) {
	c.buf = strconv.AppendFloat(c.buf, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	c.end()
}
func (c *csvCells) BeginList() { c.items = 0 }

func (c *csvCells) Item(a, b, d string) {
	if c.items > 0 {
		c.buf = append(c.buf, ListSeparator...)
	}
	c.items++
	c.buf = append(c.buf, a...)
	c.buf = append(c.buf, b...)
	c.buf = append(c.buf, d...)
}

func (c *csvCells) EndList() { c.end() }

// BeginRow starts a row given cell by cell (CellRowWriter).
func (c *csvWriter) BeginRow() Cells {
	cc := &c.cells
	cc.buf, cc.ends, cc.loc = cc.buf[:0], cc.ends[:0], c.loc
	return cc
}

// EndRow writes the row begun.
func (c *csvWriter) EndRow() error {
	cc := &c.cells
	if len(cc.ends) != len(c.rec) {
		return fmt.Errorf("a row of %d cells for %d columns", len(cc.ends), len(c.rec))
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
	j     *jsonWriter
	i     int
	items int // of the list cell being written
	err   error
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

func (c *jsonCells) Null() { c.key(); c.j.bw.WriteString("null") }

func (c *jsonCells) Str(s string) {
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

func (c *jsonCells) NStr(s string) {
	if s == "" {
		c.Null()
		return
	}
	c.Str(s)
}

func (c *jsonCells) Int(v int64) { c.key(); c.raw(strconv.AppendInt(c.j.buf[:0], v, 10)) }

func (c *jsonCells) Time(t time.Time) {
	c.key()
	b := append(c.j.buf[:0], '"')
	b = t.In(c.j.loc).AppendFormat(b, TimeLayout)
	c.raw(append(b, '"'))
}

func (c *jsonCells) Millis(d time.Duration) {
	c.key()
	b := append(c.j.buf[:0], '"')
	b = strconv.AppendFloat(b, float64(d)/float64(time.Millisecond), 'f', 3, 64)
	c.raw(append(b, '"'))
}

func (c *jsonCells) BeginList() {
	c.key()
	c.items = 0
	c.j.bw.WriteByte('[')
}

func (c *jsonCells) Item(a, b, d string) {
	if c.items > 0 {
		c.j.bw.WriteByte(',')
	}
	c.items++
	buf := append(c.j.buf[:0], '"')
	buf = append(buf, a...)
	buf = append(buf, b...)
	buf = append(buf, d...)
	for _, ch := range buf[1:] {
		if ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' {
			c.j.buf = buf
			c.marshal(a + b + d)
			return
		}
	}
	c.raw(append(buf, '"'))
}

func (c *jsonCells) EndList() { c.j.bw.WriteByte(']') }

// BeginRow starts a row given cell by cell (CellRowWriter).
func (j *jsonWriter) BeginRow() Cells {
	j.begin()
	c := &j.cells
	*c = jsonCells{j: j}
	return c
}

// EndRow ends the row begun.
func (j *jsonWriter) EndRow() error {
	c := &j.cells
	if c.i != len(j.cols) {
		return fmt.Errorf("a row of %d cells for %d columns", c.i, len(j.cols))
	}
	j.end()
	return c.err
}
