-- Notifications and flapping (issue 14).

-- An action applied in several consecutive runs (something in Studio keeps undoing it):
-- 1 on the row of each run that found it flapping. Such a row is `applied` as usual
-- (`flapping.reapply: true`, the default) or `skipped` with a detail (`reapply: false`).
-- Finding it reads the actions of the last few runs through `run_actions_key` (run_id first):
-- no new index is needed.
ALTER TABLE run_actions ADD COLUMN flapping INTEGER NOT NULL DEFAULT 0;
-- Runs that found flapping actions, for `history` and for alerting queries.
ALTER TABLE runs ADD COLUMN flapping INTEGER NOT NULL DEFAULT 0;

-- The conditions notified and not yet over (guard_tripped, run_failed, run_partial,
-- auth_failing, flapping): a message goes out when a condition starts, at most one reminder a
-- day while it lasts, and one `recovered` when the last one ends. Kept here, not in memory,
-- so a restart (or a one-shot `apply` between daemon runs) never notifies the same thing twice.
CREATE TABLE notify_conditions (
    condition    TEXT PRIMARY KEY,
    since        TEXT    NOT NULL,               -- RFC 3339 UTC: first run with it
    since_run_id INTEGER,
    last_sent    TEXT    NOT NULL,               -- the message or the last reminder
    last_run_id  INTEGER
);
