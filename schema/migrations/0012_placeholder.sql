-- Placeholder for schema v12, which another branch adds; this branch (v15)
-- needs the versions to be contiguous to build. Drop this file at merge.
SELECT 1;
