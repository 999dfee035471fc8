-- dnsrec schema v15: names as they were sent.
--
-- names holds each name once, lowercased, and matching stays
-- case-insensitive. But the case of a name can be data (a tunnel or
-- malware encoding bytes in it, DNS 0x20 randomizing it), so the spelling
-- a message's question or a libc call carried is kept where it differs
-- from its names row: only then does the row point at a spellings row.
-- The raw bytes of a message hold it too; this makes it a column.
CREATE TABLE spellings (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL                  -- presentation form as sent, no trailing dot; lowercased, it is a names.name
);
-- The question name as sent, when its case differs from names.name; NULL:
-- sent as names.name (lowercase).
ALTER TABLE msgs ADD COLUMN spelling_id INTEGER REFERENCES spellings(id);
-- The name the program passed to libc, when its case differs.
ALTER TABLE resolutions ADD COLUMN spelling_id INTEGER REFERENCES spellings(id);
