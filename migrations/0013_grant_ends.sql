-- Grants that end (issue 22): a grant may carry an end date (`until`, the last day it is
-- desired, YYYY-MM-DD in the schedule's time zone) and a reason ("MED101 TA, ticket 4411").

-- On an `add`, the end and reason of the grant it carries out (the latest end of its
-- sources; NULL when one of them has none); on a `remove` of a grant that ended, that
-- grant's end and reason. `history --email` and the console's person page show them.
ALTER TABLE run_actions ADD COLUMN until TEXT;
ALTER TABLE run_actions ADD COLUMN reason TEXT;

-- The `grant_expiring` reminders sent: one per grant (email, role, end), so a restart or a
-- one-shot `apply` never sends it twice. A grant whose end moves later is a new grant, and
-- is reminded again when its new end comes near. Rows of ended grants are dropped by the
-- run that sends reminders.
CREATE TABLE grant_reminders (
    email   TEXT    NOT NULL,
    role    TEXT    NOT NULL,
    until   TEXT    NOT NULL,
    run_id  INTEGER,
    sent_at TEXT    NOT NULL,
    PRIMARY KEY (email, role, until)
) WITHOUT ROWID;
