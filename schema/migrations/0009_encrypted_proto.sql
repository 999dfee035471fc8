-- dnsrec schema v9: DNS over TLS (and, later, DNS over HTTPS) messages,
-- recorded in clear from the TLS libraries, are flows of their own.
--
-- flows.proto allows 'dot' and 'doh' besides 'udp' and 'tcp'. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with its ids
-- (msgs.flow_id points at them). legacy_alter_table keeps the rename from
-- checking the views (messages, answers), which name flows and find the new
-- table under that name again.
PRAGMA legacy_alter_table = ON;
CREATE TABLE flows_v9 (
    id     INTEGER PRIMARY KEY,
    proto  TEXT    NOT NULL CHECK (proto IN ('udp', 'tcp', 'dot', 'doh')),
    a_addr TEXT    NOT NULL,
    a_port INTEGER NOT NULL,
    b_addr TEXT    NOT NULL,
    b_port INTEGER NOT NULL
);
INSERT INTO flows_v9 (id, proto, a_addr, a_port, b_addr, b_port)
    SELECT id, proto, a_addr, a_port, b_addr, b_port FROM flows;
DROP TABLE flows;
ALTER TABLE flows_v9 RENAME TO flows;
PRAGMA legacy_alter_table = OFF;
