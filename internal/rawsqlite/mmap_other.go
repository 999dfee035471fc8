//go:build !(linux && (amd64 || arm64))

package rawsqlite

// mapFile leaves the file read with read(2) here: trim, which keeps the
// resident pages of a map bounded, reads the unix VFS's file structure,
// which is checked only on 64-bit Linux.
func (c *Conn) mapFile() bool { return false }

func (c *Conn) trim() {}

func (c *Conn) inMap(uintptr) bool { return false }
