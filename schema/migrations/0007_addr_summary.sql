-- dnsrec schema v7: resolved-to's answers, summarized at a clean stop (issue 7).

-- One row per address answered (A or AAAA), session, name asked and
-- receiver (the local process that received the answers, or the remote
-- client a local server sent them to): what `query resolved-to` shows for
-- it, computed by the recorder when it stops cleanly (query.SummarizeAddrs),
-- like who_summary (v6), and used under the same conditions: `summaries`
-- (kind 'addr') covers every message and answer, and the question has no
-- filters. The group's first answer, by its message's time, gives what is
-- shown: its message's session, name, receiver and client. It is derived
-- data outside the hash chain: `dnsrec query verify` recomputes it and
-- compares.
CREATE TABLE addr_summary (
    type       INTEGER NOT NULL,                   -- 1 A, 28 AAAA
    data       TEXT    NOT NULL,                   -- the address, as rrs.data
    first_msg  INTEGER NOT NULL,                   -- the first answer: msgs.id
    first_rr   INTEGER NOT NULL,                   --   and rrs.id,
    rr_name_id INTEGER,                            --   and that record's rrs.name_id: when it is the question's, the chain is "name > A address"
    session_id INTEGER NOT NULL,                   -- and of its message: msgs.session_id,
    name_id    INTEGER,                            --   name_id,
    ts_ns      INTEGER NOT NULL,                   --   ts_ns,
    r_dt_ns    INTEGER,                            --   r_dt_ns,
    obs        INTEGER NOT NULL,                   --   obs,
    r_owner    INTEGER,                            --   r_owner
    flow_id    INTEGER,                            --   and flow_id
    last_ns    INTEGER NOT NULL,                   -- the receipt of the group's last answer
    hits       INTEGER NOT NULL,                   -- answers with the address in the group
    PRIMARY KEY (type, data, first_msg, first_rr)
) WITHOUT ROWID;
