// Package rawsqlite reads SQLite statements through the C API of
// modernc.org/sqlite/lib directly, for the long streams of the reading side
// (exports, unbounded timelines, the summaries' scans).
//
// The database/sql driver opens every connection in serialized mode
// (SQLITE_OPEN_FULLMUTEX), so each sqlite3_column_* call takes and releases
// the connection's recursive mutex, and it boxes every value of every row
// in a driver.Value: on a long stream, a large part of the CPU. A Conn
// here is opened with SQLITE_OPEN_NOMUTEX and read-only, is used by one
// goroutine, and hands out column values without boxing or copying until
// asked to.
//
// Only what the streams need is here: the read-only URI of a file, open
// read-only, prepare with arguments, step, read columns, close.
package rawsqlite
