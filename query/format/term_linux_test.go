package format

import (
	"os"
	"testing"
)

func TestDefaultFormatTerminal(t *testing.T) {
	// The master side of a pseudo-terminal answers the termios ioctl like
	// any tty, which is all isTerminal asks.
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal to test with: %v", err)
	}
	defer ptmx.Close()
	if got := DefaultFormat(ptmx); got != FormatTable {
		t.Errorf("DefaultFormat(terminal) = %q, want %q", got, FormatTable)
	}
	if got, err := ParseFormat("", ptmx); err != nil || got != FormatTable {
		t.Errorf("ParseFormat(\"\", terminal) = %q, %v", got, err)
	}
}
