//go:build !(linux && (amd64 || arm64))

package main

import (
	"fmt"
	"runtime"

	"github.com/urfave/cli/v2"
)

// devGen: the generator writes through the recorder's writer, which builds
// for linux/amd64 and linux/arm64 only (see record_other.go).
func devGen(*cli.Context, string, int64, uint64) error {
	return fmt.Errorf("dev-gen: writes through the recorder's writer, which this %s/%s build does not have", runtime.GOOS, runtime.GOARCH)
}
