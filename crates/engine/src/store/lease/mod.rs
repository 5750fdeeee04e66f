//! The leader lease on a PostgreSQL history: which of several daemons sharing one schema
//! talks to Studio.
//!
//! Leadership is one row (`leader_lease`, migration `postgres/0002_leader_lease.sql`) whose
//! expiry comes from the database's `now()`, never from a machine's clock, as in Oban's
//! `oban_peers`, River's `river_leader` and Kubernetes' Lease. Each statement here is one
//! round trip that decides by itself (an upsert guarded by `WHERE`), so two contenders can
//! never both win: PostgreSQL's row lock orders them. The [`Epoch`] grows at each new term;
//! the [`fence`] checks it inside a write transaction, so a deposed leader's writes are
//! refused, not merged.
//!
//! This layer only speaks SQL over a pool whose connections have `search_path` set to the
//! tenant's schema; the timing (renew every lease/3, the conservative local deadline) is
//! `service::leadership`.

mod fence;
mod holder;

pub use fence::{fence, FenceError};
pub use holder::{Holder, LeaderInfo};

use sqlx::{PgPool, Row};
use std::time::Duration;

/// A term of leadership: grows at each takeover, so an older term's writes can be told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Epoch(pub(crate) i64);

impl Epoch {
    /// No term: a process that does not lead (its writes are refused).
    pub const NONE: Epoch = Epoch(0);

    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for Epoch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The lease of one schema, as one process (its [`Holder`]) contends for it.
#[derive(Clone, Debug)]
pub struct Lease {
    pool: PgPool,
    holder: Holder,
    duration: Duration,
}

/// Takes the lease when it is free (no row, or expired) or already ours and live. A new
/// term (a takeover, or ours again after it expired) gets the next epoch and a new
/// `acquired_at`; taking back a live lease of ours is a renewal. `RETURNING` gives nothing
/// when another holder's lease is live.
const ACQUIRE: &str = "
INSERT INTO leader_lease AS l (id, holder, host, pid, epoch, acquired_at, renewed_at, expires_at)
VALUES (1, $1, $2, $3, 1, now(), now(), now() + make_interval(secs => $4))
ON CONFLICT (id) DO UPDATE SET
    holder = EXCLUDED.holder,
    host = EXCLUDED.host,
    pid = EXCLUDED.pid,
    epoch = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                 THEN l.epoch ELSE l.epoch + 1 END,
    acquired_at = CASE WHEN l.holder = EXCLUDED.holder AND l.expires_at > now()
                       THEN l.acquired_at ELSE now() END,
    renewed_at = now(),
    expires_at = EXCLUDED.expires_at
WHERE l.expires_at <= now() OR l.holder = EXCLUDED.holder
RETURNING epoch";

/// Extends the lease only while it is ours, of this term, and not yet expired: a lease that
/// lapsed is taken again with [`ACQUIRE`] (a new term), never silently extended.
const RENEW: &str = "
UPDATE leader_lease SET renewed_at = now(), expires_at = now() + make_interval(secs => $3)
WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > now()
RETURNING epoch";

/// Ends our term at once (a graceful stop), so a standby need not wait for the expiry.
const RELEASE: &str = "
UPDATE leader_lease SET expires_at = now()
WHERE id = 1 AND holder = $1 AND epoch = $2 AND expires_at > now()";

/// The live lease, if any; times as Unix milliseconds (the history's sqlx has no chrono).
const LEADER: &str = "
SELECT holder, host, pid, epoch,
       (extract(epoch FROM acquired_at) * 1000)::bigint AS since_ms
FROM leader_lease WHERE id = 1 AND expires_at > now()";

impl Lease {
    /// The lease of the schema `pool` points at (its `search_path`), contended for by this
    /// process, each term lasting `duration` from the database's `now()` at each renewal.
    pub fn new(pool: PgPool, duration: Duration) -> Lease {
        Lease::with_holder(pool, duration, Holder::this_process())
    }

    /// As [`new`](Self::new) for a given holder (each call of `Holder::this_process` is a
    /// new one, so two `Lease`s in one process contend as two daemons would).
    pub fn with_holder(pool: PgPool, duration: Duration, holder: Holder) -> Lease {
        Lease {
            pool,
            holder,
            duration,
        }
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    pub fn holder(&self) -> &Holder {
        &self.holder
    }

    /// Takes the lease if it is free or ours: the epoch of our term, or `None` while another
    /// holder's lease is live.
    pub async fn acquire(&self) -> Result<Option<Epoch>, sqlx::Error> {
        let row = sqlx::query(ACQUIRE)
            .bind(&self.holder.id)
            .bind(&self.holder.host)
            .bind(self.holder.pid)
            .bind(self.duration.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| Epoch(r.get("epoch"))))
    }

    /// Extends our term `epoch` by the lease's duration; `false` when it is no longer ours
    /// (it expired, or another holder took it): leadership is lost.
    pub async fn renew(&self, epoch: Epoch) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(RENEW)
            .bind(&self.holder.id)
            .bind(epoch.0)
            .bind(self.duration.as_secs_f64())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Hands the lease over at once; nothing happens when term `epoch` already ended.
    pub async fn release(&self, epoch: Epoch) -> Result<(), sqlx::Error> {
        sqlx::query(RELEASE)
            .bind(&self.holder.id)
            .bind(epoch.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Who leads now (host, pid, since), for messages such as "the daemon on HOST (pid N)
    /// leads since T"; `None` when nobody's lease is live.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, sqlx::Error> {
        let row = sqlx::query(LEADER).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| LeaderInfo {
            holder: r.get("holder"),
            host: r.get("host"),
            pid: r.get("pid"),
            epoch: Epoch(r.get("epoch")),
            since: chrono::DateTime::from_timestamp_millis(r.get("since_ms")).unwrap_or_default(),
        }))
    }
}
