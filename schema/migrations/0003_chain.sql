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

-- Fields the kernel captured that v2 did not keep (issue 8, point 7).
ALTER TABLE processes ADD COLUMN exe_truncated INTEGER;   -- 1: the exe path captured at exec was cut; NULL when not from exec
ALTER TABLE processes ADD COLUMN argv_truncated INTEGER;  -- 1: the arguments were cut (at 2048 bytes)
ALTER TABLE owners ADD COLUMN nspid INTEGER;              -- the pid inside the process's own pid namespace (a container's "pid 1")

-- Queries paired with their responses (issue 8, point 4): a response row
-- names the query it answers (same transport ends, DNS id and question; a
-- retransmitted query is replaced in the wait, so a response is linked to
-- one query). A query no response names was not answered within 10 s.
ALTER TABLE msgs ADD COLUMN query_id INTEGER REFERENCES msgs(id);
ALTER TABLE msgs ADD COLUMN latency_ns INTEGER;  -- the client's wait: its receipt of the response minus its send of the query, where both were seen
