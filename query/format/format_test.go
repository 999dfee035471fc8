package format

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestWriteCells(t *testing.T) {
	ts := time.Date(2024, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	tbl := &Table{
		Columns: []string{"s", "n", "t", "list", "null", "empty"},
		Rows: [][]any{
			{"a,b \"c\"", int64(-7), ts, []string{"x", "y"}, nil, []string{}},
			{"<&>", 3, time.Unix(0, 0), []string(nil), nil, ""},
		},
	}
	want := map[Format]string{
		FormatTable: "" +
			"S        N   T                               LIST  NULL  EMPTY\n" +
			"a,b \"c\"  -7  2024-03-01T12:00:00.000000005Z  x;y   -     -\n" +
			"<&>      3   1970-01-01T00:00:00.000000000Z  -     -     \n",
		FormatCSV: "" +
			"s,n,t,list,null,empty\n" +
			"\"a,b \"\"c\"\"\",-7,2024-03-01T12:00:00.000000005Z,x;y,,\n" +
			"<&>,3,1970-01-01T00:00:00.000000000Z,,,\n",
		FormatJSON: "" +
			"[\n" +
			`{"s":"a,b \"c\"","n":-7,"t":"2024-03-01T12:00:00.000000005Z","list":["x","y"],"null":null,"empty":[]},` + "\n" +
			`{"s":"<&>","n":3,"t":"1970-01-01T00:00:00.000000000Z","list":[],"null":null,"empty":""}` + "\n" +
			"]\n",
		FormatJSONL: "" +
			`{"s":"a,b \"c\"","n":-7,"t":"2024-03-01T12:00:00.000000005Z","list":["x","y"],"null":null,"empty":[]}` + "\n" +
			`{"s":"<&>","n":3,"t":"1970-01-01T00:00:00.000000000Z","list":[],"null":null,"empty":""}` + "\n",
	}
	for _, f := range Formats {
		t.Run(string(f), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(&buf, f, tbl); err != nil {
				t.Fatal(err)
			}
			if buf.String() != want[f] {
				t.Errorf("got\n%s\nwant\n%s", buf.String(), want[f])
			}
		})
	}
}

// TestTableSanitizes checks that names chosen by an attacker cannot drive
// the analyst's terminal or break the columns; CSV and JSON keep them exact.
func TestTableSanitizes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"curl", "curl"},
		{"évil 名前", "évil 名前"},
		{"\x1b[2J\x1b]0;pwned\a", `\x1b[2J\x1b]0;pwned\a`},
		{"a\tb\nc\rd", `a\tb\nc\rd`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"zero\u200bwidth", `zero\u200bwidth`},
	}
	for _, tt := range tests {
		if got := sanitize(tt.in); got != tt.want {
			t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	var buf bytes.Buffer
	if err := Write(&buf, FormatTable, &Table{Columns: []string{"comm"}, Rows: [][]any{{"\x1b[31mred"}}}); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsRune(buf.String(), 0x1b) {
		t.Errorf("table output contains an escape: %q", buf.String())
	}
	buf.Reset()
	if err := Write(&buf, FormatCSV, &Table{Columns: []string{"comm"}, Rows: [][]any{{"\x1b[31mred"}}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "\x1b[31mred") {
		t.Errorf("csv output altered the value: %q", buf.String())
	}
}

func TestParseFormat(t *testing.T) {
	pipe, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	defer w.Close()
	tests := []struct {
		in   string
		out  io.Writer
		want Format
		err  bool
	}{
		{"table", w, FormatTable, false},
		{"csv", w, FormatCSV, false},
		{"json", w, FormatJSON, false},
		{"jsonl", w, FormatJSONL, false},
		{"", w, FormatCSV, false},               // a pipe is not a terminal
		{"", &bytes.Buffer{}, FormatCSV, false}, // nor is a buffer
		{"xml", w, "", true},
		{"CSV", w, "", true},
	}
	for _, tt := range tests {
		got, err := ParseFormat(tt.in, tt.out)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseFormat(%q, %T) = %q, %v; want %q, error %v", tt.in, tt.out, got, err, tt.want, tt.err)
		}
	}
}

// TestAppendJSONCell: the fast path writes what marshal writes, and leaves
// to it what needs escaping.
func TestAppendJSONCell(t *testing.T) {
	at := time.Date(2024, 3, 4, 9, 35, 4, 871208669, time.UTC)
	for _, v := range []any{
		nil, "", "c2.evil.test", "a b", `say "hi"`, `back\slash`, "tab\there", "é", "\u2028", "<script>&", "\xff",
		int64(-42), 7, at, []string(nil), []string{}, []string{"A 203.0.113.7", "CNAME x1.evil-edge.test"}, []string{"ok", "no\n"},
		stringer("1.500"), true, 1.5, uint64(3),
	} {
		for _, loc := range []*time.Location{time.UTC, time.FixedZone("X", 2*3600)} {
			want, err := marshal(jsonValue(v, loc))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendJSONCell(nil, v, loc)
			if ok && string(got) != string(want) {
				t.Errorf("%#v: got %s, want %s", v, got, want)
			}
		}
	}
}

// stringer is a cell that renders itself, as query's Millis does.
type stringer string

func (s stringer) String() string { return string(s) }

// TestTableCutsAncestryInTheMiddle: on a terminal a long parent chain keeps
// its nearest parent and its root; other cells keep their start.
func TestTableCutsAncestryInTheMiddle(t *testing.T) {
	chain := "python3(950) > sh(812) > bash(700) > tmux(600) > sshd(640) > systemd(1)"
	var b strings.Builder
	err := WriteWith(&b, FormatTable, &Table{Columns: []string{"argv", "ancestry", "src_ancestry"}, Rows: [][]any{{chain, chain, "sh(1) > init(1)"}}}, WriteOptions{MaxCell: 30})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(b.String(), "\n")[1]
	want := "python3(950) > sh(812) > bash…  python3(950) > … > systemd(1)  sh(1) > init(1)"
	if strings.TrimRight(got, " ") != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Too narrow for whole links: runes from both ends.
	if c := cutMiddle("a-very-long-parent(1) > b(2) > the-root-process(1)", 20); c != "a-very-lon…rocess(1)" || utf8.RuneCountInString(c) > 20 {
		t.Errorf("%q", c)
	}
}
