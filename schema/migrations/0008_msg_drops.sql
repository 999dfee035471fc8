-- dnsrec schema v8: lost DNS messages counted on their own.

-- Of ringbuf_drops, which counts ring buffer records of every kind (process
-- exec and exit, socket owners, libc resolutions, messages), the DNS message
-- records the kernel could not queue: the messages lost because the ring was
-- full. Cumulative like the other counters. NULL in rows written before v8.
ALTER TABLE loss ADD COLUMN msg_drops INTEGER;
