//go:build linux

package format

import "golang.org/x/sys/unix"

// isTerminal reports whether fd is a terminal: only a tty answers the
// termios ioctl. TCGETS is Linux's name for it.
func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TCGETS)
	return err == nil
}
