//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package format

import "golang.org/x/sys/unix"

// isTerminal reports whether fd is a terminal: only a tty answers the
// termios ioctl. The BSDs, macOS included, call it TIOCGETA.
func isTerminal(fd uintptr) bool {
	_, err := unix.IoctlGetTermios(int(fd), unix.TIOCGETA)
	return err == nil
}
