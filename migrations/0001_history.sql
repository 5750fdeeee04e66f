-- The run history: what users query. Column names are a contract (see DESIGN.md).
CREATE TABLE runs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at      TEXT    NOT NULL,            -- RFC 3339 UTC
    finished_at     TEXT,
    trigger         TEXT    NOT NULL,            -- manual | schedule | startup | reload
    dry_run         INTEGER NOT NULL DEFAULT 0,
    status          TEXT    NOT NULL,            -- running | succeeded | partial | failed | aborted | interrupted
    desired_users   INTEGER,
    adds_planned    INTEGER NOT NULL DEFAULT 0,
    removes_planned INTEGER NOT NULL DEFAULT 0,
    adds_applied    INTEGER NOT NULL DEFAULT 0,
    removes_applied INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    pending         INTEGER NOT NULL DEFAULT 0,
    api_requests    INTEGER NOT NULL DEFAULT 0,
    error           TEXT,
    -- beyond the contract
    retries         INTEGER NOT NULL DEFAULT 0,
    throttled       INTEGER NOT NULL DEFAULT 0,
    pid             INTEGER
);
CREATE INDEX runs_status ON runs (status);

CREATE TABLE run_actions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id      INTEGER NOT NULL REFERENCES runs (id),
    email       TEXT,
    user_id     INTEGER NOT NULL,
    role        TEXT    NOT NULL,
    action      TEXT    NOT NULL,                -- add | remove
    outcome     TEXT    NOT NULL,                -- applied | failed | skipped | planned
    http_status INTEGER,
    detail      TEXT,
    planned_user_id INTEGER NOT NULL,            -- the user id the plan chose (user_id may be re-resolved)
    updated_at  TEXT
);
CREATE INDEX run_actions_key ON run_actions (run_id, planned_user_id, role, action);
CREATE INDEX run_actions_email ON run_actions (email);

CREATE TABLE run_pending (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id  INTEGER NOT NULL REFERENCES runs (id),
    email   TEXT    NOT NULL,
    reason  TEXT    NOT NULL,                    -- not_in_studio | ambiguous | no_email | protected
    user_id INTEGER,
    detail  TEXT
);
CREATE INDEX run_pending_run ON run_pending (run_id);

-- Email to Studio user id, so a desired user is searched once, not every run.
CREATE TABLE user_cache (
    email   TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL,
    seen_at TEXT NOT NULL
);

-- The newest OAuth tokens (secret: this table is why the file is 0600).
CREATE TABLE oauth_tokens (
    client_id        TEXT PRIMARY KEY,
    refresh_token    TEXT NOT NULL,
    access_token     TEXT,
    expires_at       TEXT,
    seed_fingerprint TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
