-- The leader lease (issue 20): several daemons share one PostgreSQL history, and exactly one
-- of them, the holder of this row, talks to Studio. One row per schema (the tenant), so
-- tenants never block each other. Names are unqualified: migrations run with search_path set
-- to the tenant's schema.
--
-- Every time here comes from the database's clock (now()), never from a daemon's, so two
-- machines whose clocks disagree still agree on who leads. `epoch` grows at each new term
-- (a takeover, or a holder taking back a lease it let expire); every write a leader makes
-- checks it in the same transaction (the fence), so a deposed leader's writes are refused.
CREATE TABLE leader_lease (
    -- Always 1: the table holds at most one row, the lease of this schema.
    id          SMALLINT    PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    -- Unique per process: host, pid and a random part (a restarted process is a new holder).
    holder      TEXT        NOT NULL,
    host        TEXT        NOT NULL,
    pid         BIGINT      NOT NULL,
    epoch       BIGINT      NOT NULL,
    -- When this term began (kept across renewals), for "leads since T".
    acquired_at TIMESTAMPTZ NOT NULL,
    renewed_at  TIMESTAMPTZ NOT NULL,
    -- The lease is free once the database's now() reaches it; a graceful stop sets it to now().
    expires_at  TIMESTAMPTZ NOT NULL
);
