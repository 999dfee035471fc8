-- dnsrec schema v2: a compact, append-only layout, so that recording costs a
-- few microseconds per message and the file stays smaller than a pcap.
--
-- What changed from v1, and why (measured in issue 6, see README.md):
--   * A message seen on both sides of one host (loopback: the client's send
--     and the server's receive carry the same bytes) is ONE row in msgs with
--     two observations, instead of two rows with the bytes twice.
--   * What repeats lives in small dictionaries with ids assigned in order of
--     first sight: names (qname and its reversed form, once), flows
--     (transport 5-tuples), owners (the identity a message carried).
--   * msgs and rrs are append-only while recording: no secondary index is
--     maintained on them then. The indexes that make queries fast are built
--     at a clean stop (schema.StopIndexes); a file whose recorder was killed
--     lacks them and answers every query anyway, by scanning.
--   * The v1 tables `messages` and `answers` are now views with the same
--     columns, one row per observation, so that old queries keep working.
--
-- v1 recordings are never upgraded in place (dnsrec never writes to an
-- existing file); this migration only runs on a new, empty file.
DROP TABLE answers;
DROP TABLE messages;

-- Every name seen as a question or a record owner: lowercased, no trailing
-- dot. rev has the labels reversed (www.evil.com -> com.evil.www) so that
-- "this name and its subdomains" is an index range scan.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    rev  TEXT NOT NULL
);
CREATE UNIQUE INDEX names_rev ON names(rev);

-- Transport conversations: one row per (proto, address:port, address:port).
-- The a side is whichever sent the first message seen on the flow.
CREATE TABLE flows (
    id     INTEGER PRIMARY KEY,
    proto  TEXT    NOT NULL CHECK (proto IN ('udp', 'tcp')),
    a_addr TEXT    NOT NULL,
    a_port INTEGER NOT NULL,
    b_addr TEXT    NOT NULL,
    b_port INTEGER NOT NULL
);

-- The identity a message carried, as the kernel read it in the owning
-- process's context. Many messages share one row.
CREATE TABLE owners (
    id         INTEGER PRIMARY KEY,
    process_id INTEGER REFERENCES processes(id),  -- NULL if no process row could be made
    pid        INTEGER NOT NULL,
    tid        INTEGER,
    uid        INTEGER,
    gid        INTEGER,
    comm       TEXT,                              -- thread comm
    cgroup_id  INTEGER,
    netns      INTEGER,
    mntns      INTEGER,
    pidns      INTEGER
);
CREATE INDEX owners_process ON owners(process_id);
CREATE INDEX owners_pid ON owners(pid);

-- One row per distinct DNS message: its bytes once, and the one or two
-- local observations of it (the sending side, the receiving side).
CREATE TABLE msgs (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns       INTEGER NOT NULL,                 -- the send observation, or the receive if only that was seen
    flow_id     INTEGER NOT NULL REFERENCES flows(id),
    obs         INTEGER NOT NULL,                 -- bits, see schema/README.md: 1 sent, 2 received, 4 sender is server, 8 receiver is server, 16 travels b->a, 32 QR bit contradicts the roles
    s_owner     INTEGER REFERENCES owners(id),    -- sending process; NULL if not seen or not identified
    s_socket    INTEGER,                          -- socket cookie (cgroup tier) or socket inode (fentry, kprobe): sessions.hook says which
    r_owner     INTEGER REFERENCES owners(id),    -- receiving process
    r_socket    INTEGER,
    r_dt_ns     INTEGER,                          -- receive time minus ts_ns
    dns_id      INTEGER,
    flags       INTEGER,                          -- header's second 16-bit word
    rcode       INTEGER,                          -- with the EDNS extended bits
    name_id     INTEGER REFERENCES names(id),     -- first question
    qtype       INTEGER,
    qclass      INTEGER,
    ancount     INTEGER,
    orig_len    INTEGER,                          -- length on the wire when raw holds fewer bytes; NULL when raw is whole
    raw         BLOB    NOT NULL,
    parse_error TEXT
);

-- Answer-section records of every parsed message (authority and additional
-- records stay in msgs.raw).
CREATE TABLE rrs (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES msgs(id),
    name_id    INTEGER NOT NULL REFERENCES names(id),
    type       INTEGER NOT NULL,
    class      INTEGER NOT NULL,
    ttl        INTEGER NOT NULL,
    data       TEXT    NOT NULL                   -- address for A/AAAA, target name for CNAME/NS/PTR/DNAME, rdata text otherwise
);

-- v1's messages table, one row per observation. id is the msgs row, so the
-- two observations of one message share it.
CREATE VIEW messages AS
SELECT m.id, m.session_id, m.ts_ns, m.ts_ns - s.anchor_wall_ns + s.anchor_boot_ns AS boot_ns,
       'send' AS direction, CASE WHEN m.obs & 4 THEN 'server' ELSE 'client' END AS role, f.proto,
       CASE WHEN m.obs & 16 THEN f.b_addr ELSE f.a_addr END AS saddr,
       CASE WHEN m.obs & 16 THEN f.b_port ELSE f.a_port END AS sport,
       CASE WHEN m.obs & 16 THEN f.a_addr ELSE f.b_addr END AS daddr,
       CASE WHEN m.obs & 16 THEN f.a_port ELSE f.b_port END AS dport,
       m.s_socket AS socket_cookie, CASE WHEN s.hook = 'cgroup' THEN 'cookie' ELSE 'inode' END AS socket_kind, o.process_id, o.pid, o.tid, o.uid, o.gid, o.comm, o.cgroup_id, o.netns, o.mntns, o.pidns,
       m.dns_id, m.flags >> 15 AS qr, (m.flags >> 11) & 15 AS opcode, m.rcode, m.flags,
       n.name AS qname, n.rev AS qname_rev, m.qtype, m.qclass, m.ancount,
       coalesce(m.orig_len, length(m.raw)) AS orig_len, m.orig_len IS NOT NULL AS truncated, m.raw, m.parse_error,
       (m.obs & 32) != 0 AS qr_mismatch
FROM msgs m
JOIN flows f ON f.id = m.flow_id
JOIN sessions s ON s.id = m.session_id
LEFT JOIN owners o ON o.id = m.s_owner
LEFT JOIN names n ON n.id = m.name_id
WHERE m.obs & 1
UNION ALL
SELECT m.id, m.session_id, m.ts_ns + coalesce(m.r_dt_ns, 0), m.ts_ns + coalesce(m.r_dt_ns, 0) - s.anchor_wall_ns + s.anchor_boot_ns,
       'recv', CASE WHEN m.obs & 8 THEN 'server' ELSE 'client' END, f.proto,
       CASE WHEN m.obs & 16 THEN f.b_addr ELSE f.a_addr END,
       CASE WHEN m.obs & 16 THEN f.b_port ELSE f.a_port END,
       CASE WHEN m.obs & 16 THEN f.a_addr ELSE f.b_addr END,
       CASE WHEN m.obs & 16 THEN f.a_port ELSE f.b_port END,
       m.r_socket, CASE WHEN s.hook = 'cgroup' THEN 'cookie' ELSE 'inode' END, o.process_id, o.pid, o.tid, o.uid, o.gid, o.comm, o.cgroup_id, o.netns, o.mntns, o.pidns,
       m.dns_id, m.flags >> 15, (m.flags >> 11) & 15, m.rcode, m.flags,
       n.name, n.rev, m.qtype, m.qclass, m.ancount,
       coalesce(m.orig_len, length(m.raw)), m.orig_len IS NOT NULL, m.raw, m.parse_error,
       (m.obs & 32) != 0
FROM msgs m
JOIN flows f ON f.id = m.flow_id
JOIN sessions s ON s.id = m.session_id
LEFT JOIN owners o ON o.id = m.r_owner
LEFT JOIN names n ON n.id = m.name_id
WHERE m.obs & 2;

-- v1's answers table: the answer section only.
CREATE VIEW answers AS
SELECT r.id, r.message_id, 'answer' AS section, n.name, r.type, r.class, r.ttl, r.data
FROM rrs r JOIN names n ON n.id = r.name_id;
