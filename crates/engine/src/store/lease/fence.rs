//! The fence: a write transaction proves, in the transaction itself, that its term still
//! leads.
//!
//! [`fence`] reads the lease row `FOR SHARE` where the epoch is ours and the lease unexpired.
//! The share lock stays until the transaction ends, and a takeover (an `UPDATE` of that row)
//! waits for it: so between the check and the commit no other term can begin, and a write
//! that passed the fence is one the leader made. A write whose fence fails is refused
//! ([`FenceError::LeadershipLost`]) and its transaction must be rolled back: never merged.
//!
//! The OAuth token rotation is the same rule as a compare-and-set: `fence(&mut tx, epoch)`,
//! then `UPDATE ... WHERE` the old token, in one transaction.

use super::Epoch;
use sqlx::PgConnection;

/// Why a fenced write may not go on.
#[derive(Debug, thiserror::Error)]
pub enum FenceError {
    /// Our term ended (expired, released or taken over): the write is refused.
    #[error("leadership lost: the lease of term {0} expired or another daemon took it over")]
    LeadershipLost(Epoch),
    #[error("cannot check the leader lease: {0}")]
    Database(#[from] sqlx::Error),
}

/// The check, at the time it runs: `clock_timestamp()`, not `now()`, which is frozen at the
/// start of the transaction (an earlier statement of it may have been long ago).
const FENCE: &str = "
SELECT epoch FROM leader_lease
WHERE id = 1 AND epoch = $1 AND expires_at > clock_timestamp()
FOR SHARE";

/// Inside a write transaction (`&mut *tx`), before its writes: fails with
/// [`FenceError::LeadershipLost`] unless term `epoch` still leads, and keeps the lease row
/// share-locked until the transaction ends, so no takeover commits in between.
pub async fn fence(conn: &mut PgConnection, epoch: Epoch) -> Result<(), FenceError> {
    let row = sqlx::query(FENCE)
        .bind(epoch.0)
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        Some(_) => Ok(()),
        None => Err(FenceError::LeadershipLost(epoch)),
    }
}
