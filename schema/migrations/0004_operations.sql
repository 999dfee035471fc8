-- dnsrec schema v4: recorder operations (issue 10).

-- A rotated recording (`record --rotate`) is a series of files, each with
-- its own session row: part is this file's number in the series (1, 2,
-- ...), NULL for a recording that was not rotated.
ALTER TABLE sessions ADD COLUMN part INTEGER;
-- Record-time filters (`record --domain`, --exclude-domain, --pid,
-- --comm) as a JSON object, e.g. {"domain":["evil.test"]}. NULL: nothing
-- was filtered out. A filtered recording is not a full one: `query info`
-- shows this column.
ALTER TABLE sessions ADD COLUMN filters TEXT;
-- Messages the filters left out (observations), counted as they were
-- dropped: the latest value for the session, like the loss counters.
ALTER TABLE loss ADD COLUMN filtered INTEGER;
-- Hook calls the kernel skipped: the programs' recursion_misses, summed
-- (Linux 5.12+). The kernel runs each fentry/fexit program at most once at
-- a time per CPU, so a task that preempts one mid-run and reaches the same
-- hook on that CPU is not traced; kernels that preempt kernel code (the
-- lazy and full preemption models) do that under load. Each one is a lost
-- observation, like a ring buffer drop. NULL where it could not be read.
ALTER TABLE loss ADD COLUMN hook_misses INTEGER;

-- The network interfaces messages crossed, one row per (netns, ifindex) as
-- first seen: an index is only unique within a network namespace.
CREATE TABLE interfaces (
    id      INTEGER PRIMARY KEY,
    netns   INTEGER,                           -- network namespace inode of the process that owned the socket; NULL if unknown
    ifindex INTEGER NOT NULL,
    name    TEXT                               -- e.g. eth0, lo; NULL if it could not be looked up (the device was gone, or its namespace could not be entered)
);

-- The interface of each observation: the send side's outgoing device and
-- the receive side's incoming one. NULL where the hook tier does not know
-- it (fentry and kprobe: the socket calls they hook run before routing
-- picks a device, or after the device is forgotten).
ALTER TABLE msgs ADD COLUMN s_iface INTEGER REFERENCES interfaces(id);
ALTER TABLE msgs ADD COLUMN r_iface INTEGER REFERENCES interfaces(id);

-- Container identity (issue 9): the process's cgroup v2 path, relative to
-- the cgroup2 root ("/system.slice/docker-<id>.scope"), as it was when the
-- process was first written, and the container id parsed from it (or, on
-- a hybrid cgroup host, from the process's v1 paths): docker, containerd
-- (CRI), CRI-O and podman ids in full, a systemd-nspawn machine's name.
-- NULL when unknown or not in a container. The pid inside the process's
-- own pid namespace and the namespace ids are in owners (nspid, pidns,
-- mntns, netns), per message.
ALTER TABLE processes ADD COLUMN cgroup TEXT;
ALTER TABLE processes ADD COLUMN container TEXT;
