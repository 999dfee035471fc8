-- dnsrec schema v6: who-resolved's answers, summarized at a clean stop (issue 7).

-- One row per name, session and client process: what `query who-resolved`
-- shows for it, computed from msgs, rrs and owners by the recorder when it
-- stops cleanly (query.SummarizeWho), after the stop indexes. A busy name's
-- question is then answered from a few rows instead of every message asked
-- for it. Empty while recording and in a file whose recorder was killed;
-- `summaries` says which messages a summary covers, and `dnsrec query` uses
-- it only when it covers every message and answer of the file, and only for
-- questions without filters. It is derived data, outside the hash chain:
-- `dnsrec query verify` recomputes it and compares.
CREATE TABLE who_summary (
    name_id    INTEGER NOT NULL REFERENCES names(id),
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    process_id INTEGER REFERENCES processes(id),   -- NULL: messages of an unidentified process,
    gpid       INTEGER,                            --   grouped by the pid
    gcomm      TEXT,                               --   and comm they carried
    first_ns   INTEGER NOT NULL,                   -- the process's first and last client message for the name
    last_ns    INTEGER NOT NULL,
    queries    INTEGER NOT NULL,                   -- queries it sent
    mpid       INTEGER,                            -- the least pid, comm and uid its messages carried
    mcomm      TEXT,
    muid       INTEGER,
    statuses   TEXT,                               -- each query's outcome in order: the rcode of its response, -1 none, -2 cut at snaplen, -3 unreadable ("0,0,3")
    qtypes     TEXT,                               -- the query types asked, each once, in order ("1,28")
    answers    TEXT NOT NULL,                      -- JSON array of the distinct answers received, typed, in first-seen order
    via        TEXT NOT NULL,                      -- the local resolvers its queries went through ("dnsmasq(812): likely 2")
    relay_only INTEGER NOT NULL                    -- 1: a local resolver that asked only on behalf of its clients
);
CREATE INDEX who_summary_name ON who_summary(name_id);

-- What each summary covers: the largest msgs and rrs ids when it was built.
CREATE TABLE summaries (
    kind     TEXT PRIMARY KEY,                     -- 'who'
    msgs_max INTEGER NOT NULL,
    rrs_max  INTEGER NOT NULL,
    built_ns INTEGER NOT NULL
);
