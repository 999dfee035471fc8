//go:build !(linux && (amd64 || arm64))

package main

import (
	"runtime"

	"github.com/urfave/cli/v2"
)

// canRecord: this build has no BPF programs to load. See
// record_linux.go.
const canRecord = false

// recordAction refuses, with flags parsed and help available as everywhere.
func recordAction(*cli.Context) error {
	return recordUnsupported(runtime.GOOS, runtime.GOARCH)
}
