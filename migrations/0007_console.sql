-- Indexes for reading the history by person and by time (the audit trail, `history --email`,
-- and the console's pages). Indexes only: nothing here changes what is recorded.

-- A person's left-alone entries, in run order. `run_pending` is a table until the pending
-- spans of migration 0004 make it a view over them; that migration then drops this index with
-- the table, and the spans carry their own index by email.
CREATE INDEX IF NOT EXISTS run_pending_email ON run_pending (email, run_id);

-- Runs by time: `--since`, the console's date filters and its charts by day.
CREATE INDEX IF NOT EXISTS runs_started_at ON runs (started_at);
