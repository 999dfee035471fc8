-- dnsrec schema v3: the hash chain over committed batches (schema/chain.go).
-- One row per batch the recorder committed, written in the same
-- transaction as the batch; `dnsrec query verify` recomputes it.
CREATE TABLE chain (
    seq        INTEGER PRIMARY KEY,              -- 1, 2, 3, ... in commit order
    ts_ns      INTEGER NOT NULL,                 -- when the batch was committed
    prev       TEXT    NOT NULL,                 -- hash of the previous link, '' for the first
    tables     TEXT    NOT NULL,                 -- JSON: table -> {First, Last, Digest}: the id range written and the SHA-256 of those rows
    exits      TEXT    NOT NULL,                 -- JSON: [[process id, exit_ns], ...] set by this batch
    stopped_ns INTEGER,                          -- the session's stop time, in the last link of a clean stop
    hash       TEXT    NOT NULL                  -- SHA-256 over all of the above
);
