-- One OAuth refresh at a time across every process sharing this history (the daemon, an
-- admin's `plan` or `export`): a process refreshes only while it holds this lease, so no two
-- processes spend the same single-use refresh token. A lease lapses at `expires_at`, so a
-- holder that crashed blocks the others for at most one lease period.
CREATE TABLE oauth_refresh_lease (
    client_id  TEXT PRIMARY KEY,
    owner      TEXT    NOT NULL,               -- "pid <pid> <random>" of the holder
    expires_at INTEGER NOT NULL                -- unix time in milliseconds
);
