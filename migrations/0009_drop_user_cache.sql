-- `user_cache` has been unused since an account is only ever acted on when this run saw it
-- with the email (identity comes from what Studio reports during the run, never from a
-- cache). Nothing reads or writes it; drop it so the history holds no stale emails.
DROP TABLE IF EXISTS user_cache;
