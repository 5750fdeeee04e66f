-- Indexes for reading the history by time (`history --email --since`, the console's date
-- filters and its charts by day). Indexes only: nothing here changes what is recorded.
--
-- A person's trail reads `run_actions` through `run_actions_email` (migration 0001) and
-- `run_pending` by email: migration 0004 makes `run_pending` a view over pending spans, which
-- carry their own index by email, so no index on it belongs here (a view cannot have one).
CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at);
