-- Who a person is, as the latest run that planned saw them: the console's person page and
-- its names beside ids. Rows are rewritten only when something in them changes, so these
-- tables grow with people, not with runs × people.

-- Every Studio account a run read (holders of managed roles, and accounts found by an email
-- search): its name as Studio gave it, its email, and the managed roles it held before that
-- run changed anything. An account no later run read holds no managed role (every run lists
-- all holders): `held` is emptied then, the name kept.
CREATE TABLE studio_accounts (
    user_id         INTEGER PRIMARY KEY,
    full_name       TEXT,
    email           TEXT,
    held            TEXT NOT NULL DEFAULT '',   -- managed role names, comma-separated
    changed_run_id  INTEGER NOT NULL            -- the run that last changed this row
);
CREATE INDEX studio_accounts_email ON studio_accounts (email);

-- The desired state of the latest run that planned: one row per listed email, with its roles
-- and the sources that gave them (`Admin (roles.yaml, ldap); Teacher (sql)`). An email no
-- longer listed loses its row. `listed_since_run_id` is the run that first saw it listed
-- (NULL when it was listed already when this table was first filled).
CREATE TABLE desired_people (
    email               TEXT PRIMARY KEY,
    roles               TEXT NOT NULL,
    listed_since_run_id INTEGER,
    changed_run_id      INTEGER NOT NULL
);

-- The latest run that filled the two tables above, so pages can say "as of run N".
CREATE TABLE people_seen (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    run_id  INTEGER NOT NULL
);
