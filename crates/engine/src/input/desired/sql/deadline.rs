//! The statement timeout, as this process enforces it. At `statement_timeout_seconds` the
//! query is cancelled on the database server, not merely abandoned: a server keeps running a
//! query whose client went away until it next writes to that client, which a long join or a
//! sort may not do for hours. The read then waits, bounded, for the server to confirm (the
//! query's stream ends with the cancel's error), so "cancelled" in a message means the server
//! stopped it.
//!
//! Each session also gets a server-side limit [`SERVER_GRACE`] later than the deadline, the
//! backstop for when this process dies mid-query or the cancel cannot get through.

use super::{Database, ReadError};
use std::future::Future;
use std::time::{Duration, Instant};

/// How much later than the deadline the server's own statement limit falls.
pub(super) const SERVER_GRACE: Duration = Duration::from_secs(2);

/// Time allowed to deliver the cancel, and then for the server to confirm it.
pub(super) const CANCEL_ALLOWANCE: Duration = Duration::from_secs(5);

/// How the cancel at the deadline went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cancelled {
    /// The server stopped the query; how long after the deadline it confirmed.
    Confirmed(Duration),
    /// The cancel was delivered, but the query's stream had not ended within the allowance.
    Unconfirmed,
    /// The cancel could not be delivered: why.
    Failed(String),
}

/// Runs `read` (session set-up, query, rows) for at most `limit`. Past it, runs `cancel`
/// (which asks the server to stop the query, from a second connection) and waits for `read`
/// to end, each within [`CANCEL_ALLOWANCE`].
pub(super) async fn run<R, C>(
    db: Database,
    limit: Duration,
    read: R,
    cancel: C,
) -> Result<u64, ReadError>
where
    R: Future<Output = Result<u64, ReadError>>,
    C: Future<Output = Result<(), String>>,
{
    tokio::pin!(read);
    if let Ok(done) = tokio::time::timeout(limit, &mut read).await {
        return done;
    }
    let started = Instant::now();
    let outcome = match tokio::time::timeout(CANCEL_ALLOWANCE, cancel).await {
        Err(_) => Cancelled::Failed(format!("no answer within {} s", CANCEL_ALLOWANCE.as_secs())),
        Ok(Err(why)) => Cancelled::Failed(why),
        // Whatever the read ends with (the cancel's error, or rows that were already on their
        // way), the query is no longer running.
        Ok(Ok(())) => match tokio::time::timeout(CANCEL_ALLOWANCE, &mut read).await {
            Ok(_) => Cancelled::Confirmed(started.elapsed()),
            Err(_) => Cancelled::Unconfirmed,
        },
    };
    Err(ReadError::TimedOut(db, outcome))
}
