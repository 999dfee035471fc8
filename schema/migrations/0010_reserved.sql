-- dnsrec schema v10: reserved for a change made on another branch; this
-- placeholder keeps the versions contiguous until the two are merged, when
-- that branch's migration takes its place.
SELECT 1;
