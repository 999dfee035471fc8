package query

import (
	"testing"

	"github.com/parquet-go/parquet-go"
)

// The export writes parquetOut and documents (and reads back) ParquetRow:
// their schemas must be the same, column by column, with the same
// optionality, types and encodings.
func TestParquetOutSchema(t *testing.T) {
	want, got := parquet.SchemaOf(ParquetRow{}).String(), parquetSchema.String()
	if got != want {
		t.Errorf("the export's schema\n%s\ndiffers from ParquetRow's\n%s", got, want)
	}
}
