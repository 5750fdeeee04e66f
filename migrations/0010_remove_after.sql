-- A grace period before a removal (issue 22, `safety.remove_after`).

-- The held grants found missing from the sources and not removed yet: when a run (not a dry
-- run) first saw each one missing. A grant that comes back, or is removed, loses its row at
-- the next run. The runs that saw it missing are counted from `runs` (id > first_run_id), so
-- nothing here changes per run: the table grows with grants waiting, not with runs.
CREATE TABLE missing_grants (
    user_id      INTEGER NOT NULL,               -- the Studio user holding the grant
    role         TEXT    NOT NULL,
    email        TEXT,
    since        TEXT    NOT NULL,               -- RFC 3339 UTC: first seen missing
    first_run_id INTEGER NOT NULL,               -- the run that first saw it missing
    PRIMARY KEY (user_id, role)
);
