-- A long life (issue 12): pending emails are state that changes, not rows copied into every
-- run; no-op runs are summarised per day once old.

-- Whether the run got as far as recording its plan (its actions and what it left pending).
-- `run_pending` answers only for such runs, as the old table had rows only for them.
ALTER TABLE runs ADD COLUMN plan_recorded INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET plan_recorded = 1
 WHERE status IN ('succeeded', 'partial', 'aborted')
    OR EXISTS (SELECT 1 FROM run_actions a WHERE a.run_id = runs.id)
    OR EXISTS (SELECT 1 FROM run_pending p WHERE p.run_id = runs.id);

-- One row per stretch of consecutive runs (among runs that recorded a plan) during which an
-- email was left alone for the same reason, user and detail. A span is open while
-- `ended_run_id` is NULL; the first run that no longer reports it closes it.
CREATE TABLE pending_spans (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL,
    reason          TEXT    NOT NULL,           -- not_in_studio | ambiguous | no_email | protected | exclusive
    user_id         INTEGER,
    detail          TEXT,
    first_run_id    INTEGER NOT NULL,           -- the first run that reported it
    first_seen_at   TEXT    NOT NULL,           -- RFC 3339 UTC
    last_run_id     INTEGER,                    -- the last run that reported it (set when it ends)
    last_seen_at    TEXT,
    last_checked_at TEXT,                       -- the last email search for it (not_in_studio)
    next_check_at   TEXT,                       -- when a scheduled run searches it again
    checks          INTEGER NOT NULL DEFAULT 0, -- searches that did not find it, this span
    ended_run_id    INTEGER,                    -- the first run that no longer reported it
    ended_at        TEXT
);
CREATE INDEX pending_spans_email ON pending_spans (email, first_run_id);
CREATE INDEX pending_spans_open ON pending_spans (ended_run_id, first_run_id);

-- The old rows, turned into spans: consecutive runs (among those that recorded a plan) with
-- the same (email, reason, user_id, detail) form one span (gaps and islands).
CREATE TEMP TABLE planned_runs AS
SELECT id, started_at, finished_at, ROW_NUMBER() OVER (ORDER BY id) AS seq
  FROM runs WHERE plan_recorded = 1;
CREATE TEMP TABLE old_pending AS
SELECT p.email, p.reason, p.user_id, p.detail, p.run_id, r.seq,
       r.seq - ROW_NUMBER() OVER (PARTITION BY p.email, p.reason, p.user_id, p.detail
                                  ORDER BY r.seq) AS island
  FROM (SELECT DISTINCT run_id, email, reason, user_id, detail FROM run_pending) p
  JOIN planned_runs r ON r.id = p.run_id;
INSERT INTO pending_spans (email, reason, user_id, detail, first_run_id, first_seen_at,
                           last_run_id, last_seen_at, ended_run_id, ended_at)
SELECT g.email, g.reason, g.user_id, g.detail, g.first_run, f.started_at,
       CASE WHEN e.id IS NULL THEN NULL ELSE g.last_run END,
       CASE WHEN e.id IS NULL THEN NULL ELSE COALESCE(l.finished_at, l.started_at) END,
       e.id, e.started_at
  FROM (SELECT email, reason, user_id, detail, MIN(run_id) AS first_run, MAX(run_id) AS last_run,
               MAX(seq) AS last_seq
          FROM old_pending GROUP BY email, reason, user_id, detail, island) g
  JOIN planned_runs f ON f.id = g.first_run
  JOIN planned_runs l ON l.id = g.last_run
  LEFT JOIN planned_runs e ON e.seq = g.last_seq + 1
 ORDER BY g.first_run, g.email;
DROP TABLE old_pending;
DROP TABLE planned_runs;
DROP TABLE run_pending;

-- `run_pending` as it always read: one row per run and email left alone. `id` is the span's
-- id (the same for every run the span covers). Two halves so that each uses an index: open
-- spans, and spans that ended after the run.
CREATE VIEW run_pending (id, run_id, email, reason, user_id, detail) AS
SELECT s.id, r.id, s.email, s.reason, s.user_id, s.detail
  FROM pending_spans s JOIN runs r
    ON r.id >= s.first_run_id AND r.plan_recorded = 1
 WHERE s.ended_run_id IS NULL
UNION ALL
SELECT s.id, r.id, s.email, s.reason, s.user_id, s.detail
  FROM pending_spans s JOIN runs r
    ON r.id >= s.first_run_id AND r.id < s.ended_run_id AND r.plan_recorded = 1
 WHERE s.ended_run_id IS NOT NULL;

-- No-op runs older than `history.keep_noop_runs`, summarised per UTC day before deletion.
CREATE TABLE run_days (
    day              TEXT    PRIMARY KEY,       -- YYYY-MM-DD (UTC, from started_at)
    runs             INTEGER NOT NULL,
    succeeded        INTEGER NOT NULL,
    dry_runs         INTEGER NOT NULL,
    api_requests     INTEGER NOT NULL,
    retries          INTEGER NOT NULL,
    throttled        INTEGER NOT NULL,
    pending_max      INTEGER NOT NULL,
    seconds_total    REAL    NOT NULL,
    seconds_max      REAL    NOT NULL,
    first_run_id     INTEGER NOT NULL,
    last_run_id      INTEGER NOT NULL
);
