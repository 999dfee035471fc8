package main

import (
	"fmt"
	"strconv"
	"strings"
)

// sizeUnits are the suffixes parseSize takes, case-insensitively: binary
// (KiB, MiB, GiB, TiB; K, M, G, T mean the same) and decimal (KB, MB, GB, TB).
var sizeUnits = []struct {
	suffix string
	mult   float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12},
	{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"t", 1 << 40},
	{"b", 1},
}

// parseSize reads a byte count such as 2GiB, 500MB, 1.5G or 1048576.
func parseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	mult := 1.0
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v <= 0 || v*mult >= 1<<62 {
		return 0, fmt.Errorf("%q is not a size: want a positive number of bytes, with an optional unit (KiB, MiB, GiB, TiB, or KB, MB, GB, TB), e.g. 2GiB", s)
	}
	return int64(v * mult), nil
}
