//go:build ignore

// extract-btf copies the kernel BTF (.BTF, the blob the kernel serves as
// /sys/kernel/btf/vmlinux) out of an uncompressed kernel image such as
// Debian's arm64 vmlinuz (an arm64 "Image", no ELF sections to read it from),
// so that bpftool can dump it as a vmlinux.h. Used by `make vmlinux-arm64`:
//
//	go run bpf/headers/extract-btf.go IMAGE OUT
//
// It looks for the BTF header (magic 0xeb9f, version 1, 24-byte header, type
// section first and string section right after it) and takes the largest
// match: the kernel's own BTF, not a stray copy of the magic.
package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: go run extract-btf.go IMAGE OUT")
		os.Exit(2)
	}
	img, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if len(img) > 2 && img[0] == 0x1f && img[1] == 0x8b {
		fmt.Fprintln(os.Stderr, "extract-btf: the image is gzip-compressed; gunzip it first")
		os.Exit(1)
	}
	magic := []byte{0x9f, 0xeb, 0x01, 0x00}
	le := binary.LittleEndian
	var best []byte
	for off := 0; ; off++ {
		i := bytes.Index(img[off:], magic)
		if i < 0 {
			break
		}
		off += i
		if off+24 > len(img) {
			break
		}
		h := img[off+4:]
		hdrLen, typeOff, typeLen, strOff, strLen := le.Uint32(h), le.Uint32(h[4:]), le.Uint32(h[8:]), le.Uint32(h[12:]), le.Uint32(h[16:])
		if hdrLen != 24 || typeOff != 0 || strOff != typeLen || typeLen == 0 || strLen == 0 {
			continue
		}
		end := off + 24 + int(typeLen) + int(strLen)
		if end > len(img) || end-off <= len(best) {
			continue
		}
		best = img[off:end]
	}
	if best == nil {
		fmt.Fprintln(os.Stderr, "extract-btf: no BTF found (was the kernel built with CONFIG_DEBUG_INFO_BTF?)")
		os.Exit(1)
	}
	if err := os.WriteFile(os.Args[2], best, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "extract-btf: %d bytes of BTF\n", len(best))
}
