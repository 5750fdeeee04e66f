-- People in the loop (issue 14): approvals of an aborted run's plan, saved plans applied with
-- `apply FILE`, and requests for a run now (`trigger`) that the daemon picks up.

-- What a run planned, so that a person can approve exactly that: the SHA-256 of its canonical
-- action list (`approval.rs`), and the guard that stopped it (NULL when none did):
-- empty_desired | max_removals | max_removal_ratio | role_max_removals | role_max_removal_ratio
-- | plan_changed. For a run refused because an approved plan changed, the removal guard that
-- still trips is recorded, so that the new plan can be approved in turn.
ALTER TABLE runs ADD COLUMN plan_digest TEXT;
ALTER TABLE runs ADD COLUMN guard TEXT;

-- An approval lifts the removal guards (never the empty-state guard) for one run whose plan
-- has exactly this digest. `approve RUN_ID` writes kind `approve` (at most one per run);
-- `apply FILE` writes kind `saved_plan` as it uses the file. The run that uses or refuses an
-- approval consumes it (`used_by_run`, status applied | refused).
CREATE TABLE approvals (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,                -- approve | saved_plan
    run_id      INTEGER REFERENCES runs (id),    -- the aborted run approved (NULL: saved plan)
    approved_by TEXT    NOT NULL,                -- --by, or the OS user
    approved_at TEXT    NOT NULL,                -- RFC 3339 UTC
    digest      TEXT    NOT NULL,                -- sha256 of the approved plan's actions
    actions     INTEGER NOT NULL,                -- how many actions that plan has
    status      TEXT    NOT NULL,                -- pending | applied | refused
    used_by_run INTEGER REFERENCES runs (id),
    used_at     TEXT,
    detail      TEXT,                            -- why refused; the plan file of a saved plan
    plan_file   TEXT
);
CREATE UNIQUE INDEX approvals_one_per_run ON approvals (run_id) WHERE kind = 'approve';
CREATE INDEX approvals_pending ON approvals (status) WHERE status = 'pending';
CREATE INDEX approvals_used_by ON approvals (used_by_run);

-- `trigger`: a run now, asked through the history so that it works without signals (another
-- container, another user). The daemon's poller takes waiting requests every 2 s.
CREATE TABLE run_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    requested_at TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    taken_at     TEXT                            -- NULL while waiting
);
CREATE INDEX run_requests_waiting ON run_requests (id) WHERE taken_at IS NULL;
