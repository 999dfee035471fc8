//go:build linux && (amd64 || arm64)

package rawsqlite

import (
	"bytes"
	"strconv"
	"syscall"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// mapSize is how much of the file a connection maps (PRAGMA mmap_size).
// SQLite caps it at SQLITE_MAX_MMAP_SIZE (0x7fff0000 on 64-bit Linux); pages
// past the map are read with read(2), as without one.
const mapSize = 1 << 40

// mapFile has SQLite read the connection's file through a memory map, and
// reports whether it does. It does only on SQLite's unix VFS, where
// /proc/self/statm can be read, and only when the VFS's file structure,
// which trim reads, is laid out as this package was built against: its
// path and map limit are the ones just set. Pages read through the map
// skip SQLite's page cache, its lock, the read(2) and the copy.
func (c *Conn) mapFile() bool {
	// trim bounds the map's resident pages by /proc/self/statm: without
	// it (no /proc), the file is read as without a map.
	base := sharedPages()
	if c.vfsName() != "unix" || base == 0 {
		return false
	}
	if err := c.Exec("PRAGMA mmap_size = " + strconv.FormatInt(mapSize, 10)); err != nil {
		return false
	}
	if c.file = c.checkedFile(); c.file == 0 {
		c.Exec("PRAGMA mmap_size = 0")
		return false
	}
	c.mapBase = base
	return true
}

// checkedFile is the unix VFS's structure of the connection's file, once
// mapFile set the map's size; 0 unless its path and that size are where
// this package expects them.
func (c *Conn) checkedFile() uintptr {
	p := c.fileControl(sqlite3.SQLITE_FCNTL_FILE_POINTER)
	if p == 0 {
		return 0
	}
	f := (*sqlite3.TunixFile)(cPtr(p))
	path := libc.GoString(sqlite3.Xsqlite3_db_filename(c.tls, c.db, 0)) // 0: the main database
	if f.FzPath == 0 || path == "" || libc.GoString(f.FzPath) != path || f.FmmapSizeMax <= 0 || f.FmmapSizeMax > mapSize {
		return 0
	}
	return p
}

// inMap tells whether addr is inside the connection's map of its file.
func (c *Conn) inMap(addr uintptr) bool {
	if c.file == 0 {
		return false
	}
	f := (*sqlite3.TunixFile)(cPtr(c.file))
	return f.FpMapRegion != 0 && addr >= f.FpMapRegion && addr-f.FpMapRegion < uintptr(f.FmmapSizeActual)
}

// trim drops the pages the connection has mapped of the file
// (MADV_DONTNEED) when the process's mapped file pages have grown by more
// than mapBudget since the connection mapped its file (what else maps
// files, the program's own text, does not grow by much). Mapped pages
// count in the process's resident set until they are unmapped, and the
// kernel maps up to 16 pages around each one read (fault-around), so a
// stream's random lookups (names, flows) would soon hold hundreds of MB of
// the file. The file is mapped shared and read-only: a dropped page is
// mapped again, from the kernel's page cache and unchanged, when SQLite
// next reads it. trim runs between two steps of the connection's
// statement, on its goroutine.
func (c *Conn) trim() {
	if c.file == 0 {
		return
	}
	f := (*sqlite3.TunixFile)(cPtr(c.file))
	if f.FpMapRegion == 0 || f.FmmapSize <= 0 || f.FmmapSize > f.FmmapSizeMax {
		return
	}
	shared := sharedPages()
	if shared < c.mapBase { // another stream dropped pages
		c.mapBase = shared
	}
	if (shared-c.mapBase)*int64(syscall.Getpagesize()) < mapBudget {
		return
	}
	syscall.Madvise(unsafe.Slice((*byte)(cPtr(f.FpMapRegion)), f.FmmapSize), syscall.MADV_DONTNEED)
	c.mapBase = sharedPages()
}

// mapBudget is how far a stream lets the process's mapped file pages grow
// before trim drops its map's.
const mapBudget = 64 << 20

// sharedPages is the process's resident pages that are shared: file
// pages mapped, mostly (the third field of /proc/self/statm); 0 when
// unknown.
func sharedPages() int64 {
	var buf [128]byte
	fd, err := syscall.Open("/proc/self/statm", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	n, _ := syscall.Read(fd, buf[:])
	syscall.Close(fd)
	fields := bytes.Fields(buf[:max(n, 0)])
	if len(fields) < 3 {
		return 0
	}
	v, _ := strconv.ParseInt(string(fields[2]), 10, 64)
	return v
}

// vfsName is the name of the VFS (or stack of them) the connection's file
// is on.
func (c *Conn) vfsName() string {
	p := c.fileControl(sqlite3.SQLITE_FCNTL_VFSNAME)
	if p == 0 {
		return ""
	}
	defer sqlite3.Xsqlite3_free(c.tls, p)
	return libc.GoString(p)
}

// fileControl is sqlite3_file_control of op on the main database (a NULL
// name), for the ops that return a pointer; 0 when it fails.
func (c *Conn) fileControl(op int32) uintptr {
	out := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	*(*uintptr)(cPtr(out)) = 0
	if sqlite3.Xsqlite3_file_control(c.tls, c.db, 0, op, out) != sqlite3.SQLITE_OK {
		return 0
	}
	return *(*uintptr)(cPtr(out))
}
