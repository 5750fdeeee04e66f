//! Graceful shutdown, passed down explicitly (as in mini-redis), with tokio-util's
//! [`CancellationToken`].
//!
//! The daemon creates one token and hands [`spawn_signal_handler`] a clone; everything that
//! must stop cleanly holds a clone and checks it between units of work (a run between
//! batches, the scheduler between runs). Work already sent is never abandoned mid-request:
//! the in-flight batch finishes and is recorded, so the history tells the truth. One-shot
//! commands pass a fresh token that nobody cancels.

pub use tokio_util::sync::CancellationToken;

/// Turns the first SIGTERM or SIGINT into `shutdown.cancel()`; later ones are logged and
/// ignored.
pub fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal as unix_signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            unix_signal(SignalKind::terminate()),
            unix_signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        shutdown.cancel();
        // Keep the handlers installed: a second signal must not kill the process mid-batch.
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("already shutting down");
        }
    });
}
