//go:build unix

package store

import "syscall"

// oNoFollow makes Create refuse a symlink planted at the path.
const oNoFollow = syscall.O_NOFOLLOW
