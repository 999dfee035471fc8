package main

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"2GiB": 2 << 30, "2gib": 2 << 30, "2G": 2 << 30, "500MB": 500e6, "1.5 MiB": 3 << 19,
		"1048576": 1 << 20, "10k": 10 << 10, "1TB": 1e12, "64b": 64,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1G", "0", "2 parsecs", "1e30G", "0x10"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}
