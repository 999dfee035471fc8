-- Placeholder in branch h-gotls only: schema versions 10 to 13 are other
-- branches' (the numbers must be contiguous for the build to run). At the
-- merge this file is dropped in favour of theirs.
SELECT 1;
