-- The console tells an admin how things stand (issue 25). Columns beyond the contract only.

-- Holders of each managed role when a safety guard stopped the run, so the run page can show
-- the risk ("121 of 152 Admins") per role before the remedy. `role=holders` pairs joined by
-- newlines, written only for runs a guard stopped (the history grows with changes, not runs).
ALTER TABLE runs ADD COLUMN role_holders TEXT;

-- Who asked for a manual run: `trigger --by NAME`, `SIGHUP`, or `approval N by NAME`.
-- NULL for scheduled, startup and reload runs, and for runs recorded before this column.
ALTER TABLE runs ADD COLUMN requested_by TEXT;

-- The console's default "changes only" list: runs that planned or failed something, or did
-- not succeed. A partial index on exactly that condition keeps a page of them one index walk
-- however many no-op runs lie between.
CREATE INDEX runs_changes ON runs (id)
 WHERE adds_planned + removes_planned + failed > 0 OR status <> 'succeeded';
