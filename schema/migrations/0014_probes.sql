-- dnsrec schema v14: which files the recorder probed, so that a reader can
-- tell a program that was not resolving from one that was not watched.
--
-- One row per library or executable file a set of uprobes was attached to,
-- written when it was attached (a rotated recording's next file gets the
-- rows again): the C libraries' resolver calls (kind libc), the TLS
-- libraries' read and write calls (tls: OpenSSL, GnuTLS) and Go programs'
-- crypto/tls (go). Covered by the hash chain like every other table.
CREATE TABLE probes (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns      INTEGER NOT NULL,  -- when the probes were attached (wall clock)
    kind       TEXT    NOT NULL CHECK (kind IN ('libc', 'tls', 'go')),
    path       TEXT    NOT NULL,  -- as the processes of its mount namespace see it
    pid        INTEGER,           -- a process found mapping or running it; NULL: a standard location
    mntns      INTEGER,           -- that process's mount namespace (inode)
    dev        INTEGER NOT NULL,  -- the file as the kernel maps it (unix.Mkdev encoding)
    inode      INTEGER NOT NULL,
    go_version TEXT,              -- kind go: the Go release that built it, when it says
    symbols    TEXT    NOT NULL   -- the functions probed, space-separated
);
