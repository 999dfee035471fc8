-- dnsrec schema v5: libc resolver calls (issue 9, part 2).

-- A name resolved through the C library (getaddrinfo, gethostbyname*),
-- seen by uprobes on libc as the call returned, whatever answered it: DNS,
-- /etc/hosts, nscd, nss-resolve. It covers what never crosses port 53 with
-- a process attached. A call that did go to DNS is also in msgs, as the
-- messages it caused (from the process itself, or from a local resolver).
CREATE TABLE resolutions (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns      INTEGER NOT NULL,                 -- wall clock when the call returned
    dur_ns     INTEGER NOT NULL,                 -- how long the call took
    owner      INTEGER REFERENCES owners(id),    -- the calling thread and its process
    func       TEXT    NOT NULL,                 -- getaddrinfo, gethostbyname_r (gethostbyname too), gethostbyname2_r (gethostbyname2 too)
    name_id    INTEGER REFERENCES names(id),     -- the name asked for, normalized as msgs' names; NULL when the call had none
    rc         INTEGER NOT NULL,                 -- 0: an answer; else getaddrinfo's EAI_* code (glibc: -2 EAI_NONAME, -3 EAI_AGAIN, -5 EAI_NODATA ...), or gethostbyname*_r's error, -1 when it found nothing
    flags      INTEGER NOT NULL                  -- 1: the name was longer than the 255 bytes kept; 2: more addresses than the 16 kept
);

-- The addresses a call returned, in its order, each once.
CREATE TABLE resolution_addrs (
    id            INTEGER PRIMARY KEY,
    resolution_id INTEGER NOT NULL REFERENCES resolutions(id),
    addr          TEXT    NOT NULL               -- as answers' data: 192.0.2.7, 2001:db8::7
);
