-- dnsrec schema v10: DNS over HTTPS, and what TLS plaintext could not be read.
--
-- doh: the URL a DNS-over-HTTPS message was carried in, one row per msgs row
-- of proto 'doh' (the request's, for its response too): the host as the
-- client named it (:authority in HTTP/2, Host in HTTP/1.1) and the path with
-- its query. json is 1 when the message was not read as DNS wire format but
-- synthesised from the JSON API (application/dns-json): its raw bytes are
-- then dnsrec's encoding of the JSON request or answer.
CREATE TABLE doh (
    id         INTEGER PRIMARY KEY,
    message_id INTEGER NOT NULL,
    host       TEXT    NOT NULL,
    path       TEXT    NOT NULL,
    json       INTEGER NOT NULL
);
CREATE INDEX doh_message ON doh(message_id);

-- Cumulative counts of TLS plaintext that did not become messages, NULL in
-- rows written before v10:
--   tls_cut       calls on a DoT or DoH connection that moved more than the
--                 kernel copies (16 KiB): the stream they were part of is lost
--   tls_unbound   calls whose plaintext was dropped because their TLS object
--                 was never tied to a socket in time (a memory BIO)
--   doh_unparsed  HTTP of a DoH connection that could not be parsed: frames,
--                 requests or answers given up
ALTER TABLE loss ADD COLUMN tls_cut INTEGER;
ALTER TABLE loss ADD COLUMN tls_unbound INTEGER;
ALTER TABLE loss ADD COLUMN doh_unparsed INTEGER;
