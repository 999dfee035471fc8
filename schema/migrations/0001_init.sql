-- dnsrec schema v1. Applied once, inside a transaction, by schema.Migrate.
-- Times are integers: *_ns columns are nanoseconds since the Unix epoch
-- (wall clock, derived from the kernel boot clock through the session's
-- anchor); boot_ns columns are CLOCK_BOOTTIME nanoseconds as the kernel saw them.

-- One row per `dnsrec record` run.
CREATE TABLE sessions (
    id             INTEGER PRIMARY KEY,
    hostname       TEXT    NOT NULL,
    machine_id     TEXT,
    boot_id        TEXT    NOT NULL,
    kernel         TEXT    NOT NULL,          -- uname -r
    version        TEXT    NOT NULL,          -- dnsrec version
    cmdline        TEXT    NOT NULL,          -- how the recorder was invoked
    hook           TEXT    NOT NULL,          -- hook tier that ran: fentry, kprobe, cgroup
    ports          TEXT    NOT NULL,          -- DNS ports captured, comma-separated
    snaplen        INTEGER NOT NULL,          -- max bytes kept per message
    started_ns     INTEGER NOT NULL,
    stopped_ns     INTEGER,                   -- NULL while recording, or after a crash
    anchor_wall_ns INTEGER NOT NULL,          -- wall clock at anchor_boot_ns
    anchor_boot_ns INTEGER NOT NULL           -- CLOCK_BOOTTIME read together with anchor_wall_ns
);

-- One row per process image: a process (boot_id, pid, start_ticks) that
-- exec()s twice has two rows, told apart by exec_boot_ns.
CREATE TABLE processes (
    id           INTEGER PRIMARY KEY,
    session_id   INTEGER NOT NULL REFERENCES sessions(id),
    boot_id      TEXT    NOT NULL,
    pid          INTEGER NOT NULL,            -- thread-group id, what ps calls PID
    start_ticks  INTEGER NOT NULL,            -- start time in clock ticks since boot, as /proc/PID/stat field 22
    exec_boot_ns INTEGER NOT NULL DEFAULT 0,  -- CLOCK_BOOTTIME of the exec that loaded this image; 0 if not seen
    ppid         INTEGER,                     -- parent pid when first seen
    parent_id    INTEGER REFERENCES processes(id),
    comm         TEXT,
    exe          TEXT,                        -- absolute path of the executable, NULL if unknown
    argv         TEXT,                        -- arguments as a JSON array of strings, e.g. ["dig","evil.com"]
    uid          INTEGER,
    gid          INTEGER,
    cgroup_id    INTEGER,
    source       TEXT    NOT NULL,            -- where exe/argv came from: exec (kernel event), procfs (scan), inherited (fork without exec), chain (ancestor only)
    exit_ns      INTEGER,
    UNIQUE (boot_id, pid, start_ticks, exec_boot_ns)
);
CREATE INDEX processes_pid ON processes(pid);
CREATE INDEX processes_parent ON processes(parent_id);

-- Every DNS message a local process sent or received.
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns       INTEGER NOT NULL,
    boot_ns     INTEGER NOT NULL,
    direction   TEXT    NOT NULL CHECK (direction IN ('send', 'recv')),
    role        TEXT    NOT NULL CHECK (role IN ('client', 'server')),
    proto       TEXT    NOT NULL CHECK (proto IN ('udp', 'tcp')),
    saddr       TEXT    NOT NULL,
    sport       INTEGER NOT NULL,
    daddr       TEXT    NOT NULL,
    dport       INTEGER NOT NULL,
    socket_cookie INTEGER,
    process_id  INTEGER REFERENCES processes(id),   -- NULL when the owner could not be identified
    pid         INTEGER,
    tid         INTEGER,
    uid         INTEGER,
    gid         INTEGER,
    comm        TEXT,                               -- thread comm at the time of the message
    cgroup_id   INTEGER,
    netns       INTEGER,
    mntns       INTEGER,
    pidns       INTEGER,
    dns_id      INTEGER,
    qr          INTEGER,                            -- 0 query, 1 response
    opcode      INTEGER,
    rcode       INTEGER,
    flags       INTEGER,                            -- 16-bit DNS header flags word
    qname       TEXT,                               -- lowercased, no trailing dot ('' for the root)
    qname_rev   TEXT,                               -- labels reversed: www.evil.com -> com.evil.www
    qtype       INTEGER,
    qclass      INTEGER,
    ancount     INTEGER,
    orig_len    INTEGER NOT NULL,                   -- message length on the wire
    truncated   INTEGER NOT NULL DEFAULT 0,         -- 1 when raw holds fewer than orig_len bytes
    raw         BLOB    NOT NULL,
    parse_error TEXT
);
CREATE INDEX messages_qname_rev ON messages(qname_rev);
CREATE INDEX messages_ts ON messages(ts_ns);
CREATE INDEX messages_process ON messages(process_id);
CREATE INDEX messages_pid ON messages(pid);

-- Resource records of response messages (answer, authority and additional sections).
CREATE TABLE answers (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages(id),
    section    TEXT    NOT NULL CHECK (section IN ('answer', 'authority', 'additional')),
    name       TEXT    NOT NULL,                    -- lowercased, no trailing dot
    type       INTEGER NOT NULL,
    class      INTEGER NOT NULL,
    ttl        INTEGER NOT NULL,
    data       TEXT    NOT NULL                     -- address for A/AAAA, target name for CNAME/NS/PTR, rdata text otherwise
);
CREATE INDEX answers_message ON answers(message_id);
CREATE INDEX answers_data ON answers(data);

-- Loss counters, cumulative for the session, written with each batch in which they changed.
CREATE TABLE loss (
    id                  INTEGER PRIMARY KEY,
    session_id          INTEGER NOT NULL REFERENCES sessions(id),
    ts_ns               INTEGER NOT NULL,
    ringbuf_drops       INTEGER NOT NULL,           -- ring buffer reservations that failed in the kernel, all CPUs
    decode_errors       INTEGER NOT NULL,           -- records user space could not decode
    unattributed        INTEGER NOT NULL            -- messages stored without an owning process
);
