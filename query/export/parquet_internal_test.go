package export

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// TestParquetDoc: the parquet table of query/EXPORTS.md names ParquetRow's
// columns, in order, with their types: ParquetRow is the schema, the table
// its description.
func TestParquetDoc(t *testing.T) {
	md, err := os.ReadFile("../EXPORTS.md")
	if err != nil {
		t.Fatal(err)
	}
	var want []string // "name type", from the schema
	for _, f := range parquet.SchemaOf(ParquetRow{}).Fields() {
		want = append(want, f.Name()+" "+docType(t, f))
	}
	got := parquetDocColumns(t, string(md))
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("EXPORTS.md's parquet table gives the columns\n%s\nParquetRow has\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// docType is how EXPORTS.md writes a column's type.
func docType(t *testing.T, f parquet.Field) string {
	if lt := f.Type().LogicalType(); lt != nil {
		switch lt.Value.(type) {
		case *format.ListType:
			return "list<" + docType(t, f.Fields()[0].Fields()[0]) + ">"
		case *format.TimestampType:
			return "timestamp(ns, UTC)"
		}
	}
	switch f.Type().Kind() {
	case parquet.Int32:
		return "int32"
	case parquet.Int64:
		return "int64"
	case parquet.ByteArray:
		return "string"
	}
	t.Fatalf("column %s: no documented type for %v", f.Name(), f.Type())
	return ""
}

// parquetDocColumns reads the column table of the "## parquet" section:
// "name type" for each column, in order. A row may name several columns
// ("`client_addr`, `client_port` | string, int32", or one type for all);
// "`server_pid` ... `server_ancestry`" stands for the server_ twins of the
// client_ columns from client_pid to client_ancestry.
func parquetDocColumns(t *testing.T, md string) []string {
	_, sec, ok := strings.Cut(md, "\n## parquet\n")
	if !ok {
		t.Fatal("EXPORTS.md has no parquet section")
	}
	sec, _, _ = strings.Cut(sec, "\n## ")
	name := regexp.MustCompile("`([a-z_0-9]+)`")
	var out []string
	for _, line := range strings.Split(sec, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		var names []string
		for _, m := range name.FindAllStringSubmatch(cells[1], -1) {
			names = append(names, m[1])
		}
		if strings.Contains(cells[1], "...") {
			var twins []string
			in := false
			for _, c := range out {
				n, typ, _ := strings.Cut(c, " ")
				if "server_"+strings.TrimPrefix(n, "client_") == names[0] {
					in = true
				}
				if in {
					twins = append(twins, "server_"+strings.TrimPrefix(n, "client_")+" "+typ)
				}
				if "server_"+strings.TrimPrefix(n, "client_") == names[len(names)-1] {
					break
				}
			}
			out = append(out, twins...)
			continue
		}
		types := []string{strings.TrimSpace(cells[2])}
		if len(names) > 1 {
			types = strings.Split(types[0], ", ")
		}
		for i, n := range names {
			typ := types[0]
			if len(types) == len(names) {
				typ = types[i]
			}
			out = append(out, n+" "+typ)
		}
	}
	return out
}
