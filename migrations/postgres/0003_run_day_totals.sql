-- Per-day totals for the console's charts (issue 25): the twin of SQLite's migration 0014,
-- which says what the table holds and why. Names are unqualified: migrations run with
-- search_path set to the tenant's schema.
CREATE TABLE run_day_totals (
    day             TEXT             NOT NULL,
    status          TEXT             NOT NULL,
    trigger         TEXT             NOT NULL,  -- '' for runs folded before this table existed
    runs            BIGINT           NOT NULL,
    adds_applied    BIGINT           NOT NULL,
    removes_applied BIGINT           NOT NULL,
    failed          BIGINT           NOT NULL,
    pending_max     BIGINT,
    seconds_total   DOUBLE PRECISION NOT NULL,
    seconds_max     DOUBLE PRECISION,
    PRIMARY KEY (day, status, trigger)
);

INSERT INTO run_day_totals (day, status, trigger, runs, adds_applied, removes_applied, failed,
                            pending_max, seconds_total, seconds_max)
SELECT substr(started_at, 1, 10), status, trigger, COUNT(*), SUM(adds_applied),
       SUM(removes_applied), SUM(failed), MAX(pending),
       SUM(COALESCE(CAST(EXTRACT(EPOCH FROM (CAST(finished_at AS TIMESTAMPTZ)
                                         - CAST(started_at AS TIMESTAMPTZ))) AS DOUBLE PRECISION), 0)),
       MAX(CAST(EXTRACT(EPOCH FROM (CAST(finished_at AS TIMESTAMPTZ)
                                    - CAST(started_at AS TIMESTAMPTZ))) AS DOUBLE PRECISION))
  FROM runs WHERE dry_run = FALSE AND status <> 'running'
 GROUP BY substr(started_at, 1, 10), status, trigger
UNION ALL
SELECT day, 'succeeded', '', runs - dry_runs, 0, 0, 0, pending_max,
       seconds_total * (runs - dry_runs) / runs, seconds_max
  FROM run_days WHERE runs > dry_runs;
