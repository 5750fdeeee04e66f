-- Per-day totals for the console's charts (issue 25): the runs that were not dry runs,
-- summed by the day they started (UTC), their end and their trigger. The charts read a few
-- rows a day instead of every run: a year is about 1,500 rows, whatever the schedule. The
-- totals outlive retention: a run folded into `run_days` or deleted by `keep_changes` is
-- still counted on its day.
--
-- The engine recounts a day from `runs` (and `run_days`) in the transaction that ends one of
-- its runs, so the totals never drift from the runs they sum. Runs still `running` are not
-- counted.
CREATE TABLE run_day_totals (
    day             TEXT    NOT NULL,  -- YYYY-MM-DD (UTC, from started_at), as run_days
    status          TEXT    NOT NULL,  -- succeeded, partial, failed, aborted, interrupted
    -- The runs' trigger; '' for runs folded into run_days before this table existed (the
    -- fold did not keep their trigger: a filter by trigger leaves them out).
    trigger         TEXT    NOT NULL,
    runs            INTEGER NOT NULL,
    adds_applied    INTEGER NOT NULL,
    removes_applied INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    pending_max     INTEGER,           -- the most emails one of these runs left alone
    seconds_total   REAL    NOT NULL,  -- their durations, summed
    seconds_max     REAL,
    PRIMARY KEY (day, status, trigger)
) WITHOUT ROWID;

-- The days so far: the runs kept, and the no-op runs already folded. A folded day knows its
-- dry runs' count but not their durations: those are shared out evenly.
INSERT INTO run_day_totals (day, status, trigger, runs, adds_applied, removes_applied, failed,
                            pending_max, seconds_total, seconds_max)
SELECT substr(started_at, 1, 10), status, trigger, COUNT(*), SUM(adds_applied),
       SUM(removes_applied), SUM(failed), MAX(pending),
       SUM(COALESCE((julianday(finished_at) - julianday(started_at)) * 86400.0, 0)),
       MAX((julianday(finished_at) - julianday(started_at)) * 86400.0)
  FROM runs WHERE dry_run = FALSE AND status <> 'running'
 GROUP BY substr(started_at, 1, 10), status, trigger
UNION ALL
SELECT day, 'succeeded', '', runs - dry_runs, 0, 0, 0, pending_max,
       seconds_total * (runs - dry_runs) / runs, seconds_max
  FROM run_days WHERE runs > dry_runs;
