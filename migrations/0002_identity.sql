-- Identity safety (issue 11).

-- Which kind of run it was: `incremental` (holders matched through this run's listing) or
-- `full` (every desired email a holder has was also searched). NULL for runs before this
-- migration, and for runs that stopped before reading Studio.
ALTER TABLE runs ADD COLUMN verification TEXT;
CREATE INDEX runs_verification ON runs (verification, started_at);

-- Emails once found on several Studio accounts. Such an email is searched on every run and
-- reported `ambiguous` (never acted on) until a search finds exactly one account; then its row
-- is deleted. State with first/last seen, not a copy per run.
CREATE TABLE ambiguous_emails (
    email      TEXT PRIMARY KEY,
    user_ids   TEXT NOT NULL,                  -- the accounts last seen with it, comma separated
    first_seen TEXT NOT NULL,                  -- RFC 3339 UTC
    last_seen  TEXT NOT NULL
);

-- The email -> user id cache is no longer read or written: a cached id could give a role to an
-- account that no longer has the email. Its rows are stale knowledge; the table is kept empty
-- so that queries written against it do not break.
DELETE FROM user_cache;
