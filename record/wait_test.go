//go:build linux && (amd64 || arm64)

package record_test

import (
	"database/sql"
	"testing"
	"time"
)

// waitUntil polls cond until it holds, and fails the test if it does not
// within timeout: what a test must see happen before it goes on (a row
// committed, a line logged) is waited for, not slept for.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
	}
}

// countAtLeast is a waitUntil condition: the first column of query's row,
// read from the file at path as committed now, is at least n. The file is
// closed after each look: a reader left open would slow the recorder's
// clean stop.
func countAtLeast(path string, n int64, query string, args ...any) func() bool {
	return func() bool {
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			return false
		}
		defer db.Close()
		var got int64
		return db.QueryRow(query, args...).Scan(&got) == nil && got >= n
	}
}
