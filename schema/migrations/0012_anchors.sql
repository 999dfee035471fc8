-- dnsrec schema v12: signed checkpoints sent off the host (docs/anchoring.md).
--
-- recording_id is random, the same in every file of a rotated recording;
-- sign_key is the verifier key (golang.org/x/mod/sumdb/note) of this
-- file's first checkpoint. Both NULL when the recording had no --anchor.
ALTER TABLE sessions ADD COLUMN recording_id TEXT;
ALTER TABLE sessions ADD COLUMN sign_key TEXT;

-- Each anchor's counts, cumulative, as of ts_ns: checkpoints handed to it
-- (made), written to it (sent), dropped (queue full, or still queued at
-- the stop), waiting (queued), and its last error.
CREATE TABLE anchors (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns      INTEGER NOT NULL,
    dest       TEXT    NOT NULL,
    made       INTEGER NOT NULL,
    sent       INTEGER NOT NULL,
    dropped    INTEGER NOT NULL,
    queued     INTEGER NOT NULL,
    error      TEXT
);
