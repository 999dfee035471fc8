-- dnsrec schema v13: the recorder's own life on record.
--
-- One row per thing that happened to the recorder rather than to DNS: it
-- started, it stopped (and, for a stop by signal, who sent the signal), one
-- of its BPF programs was detached or replaced (capture was blind from
-- then), it re-attached it (capture resumed), a signal from another process
-- arrived. Covered by the hash chain like every other table.
CREATE TABLE events (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns      INTEGER NOT NULL,  -- when it happened (or was noticed: see kind)
    kind       TEXT    NOT NULL,  -- start, stop, signal, detached, replaced, reattached, watch-error
    detail     TEXT    NOT NULL   -- one line for a person: what, which program and link, who
);
CREATE INDEX events_ts ON events(ts_ns);
