-- dnsrec schema v11: encrypted-DNS connections, recorded even where their
-- content cannot be read.
--
-- A connection (connect, or a send naming its address) a local process
-- opened to a DoT port (853 and record's --dot-port, TCP; over UDP it is DNS
-- over QUIC), or to port 443 of a known public DoH/DoT resolver (the
-- recorder's list and --doh-server), seen at the system call in the
-- process's own context. An attempt the server refused is recorded too: the
-- row says where the process tried to go.
CREATE TABLE enc_conns (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns      INTEGER NOT NULL,                 -- wall clock of the system call
    owner      INTEGER REFERENCES owners(id),    -- the calling thread and its process
    kind       TEXT    NOT NULL CHECK (kind IN ('dot', 'doq', 'doh-known')),
    transport  TEXT    NOT NULL CHECK (transport IN ('tcp', 'udp')),
    via        TEXT    NOT NULL,                 -- connect, sendto, sendmsg
    r_addr     TEXT    NOT NULL,                 -- the remote end
    r_port     INTEGER NOT NULL,
    l_addr     TEXT,                             -- the local end, from the socket at its first send; NULL if nothing was sent
    l_port     INTEGER,
    sni        TEXT,                             -- server_name of the TLS ClientHello sent first; NULL if none was read
    resolver   TEXT                              -- which listed resolver the address belongs to (doh-known), e.g. Cloudflare
);
