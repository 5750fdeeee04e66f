//! Graceful shutdown, passed down explicitly (as in mini-redis).
//!
//! The daemon owns a [`ShutdownSignal`]; everything that must stop cleanly holds a
//! [`Shutdown`] and checks it between units of work (a run between batches, the scheduler
//! between runs). Work already sent is never abandoned mid-request: the in-flight batch
//! finishes and is recorded, so the history tells the truth.

use tokio::sync::watch;

/// The sending side: call [`trigger`](Self::trigger) once to ask everything to stop.
#[derive(Debug)]
pub struct ShutdownSignal {
    tx: watch::Sender<bool>,
}

/// The receiving side, cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownSignal {
    pub fn new() -> (ShutdownSignal, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownSignal { tx }, Shutdown { rx })
    }

    pub fn trigger(&self) {
        let _ = self.tx.send(true);
    }
}

impl Shutdown {
    /// A shutdown that never comes, for one-shot commands.
    pub fn never() -> Shutdown {
        let (tx, rx) = watch::channel(false);
        std::mem::forget(tx);
        Shutdown { rx }
    }

    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves when shutdown has been asked for.
    pub async fn recv(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}

/// Turns the first SIGTERM or SIGINT into a shutdown; later ones are logged and ignored.
pub fn spawn_signal_handler(signal: ShutdownSignal) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal as unix_signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            unix_signal(SignalKind::terminate()),
            unix_signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            // Keep `signal` alive: dropping it would read as a shutdown.
            std::future::pending::<()>().await;
            drop(signal);
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        signal.trigger();
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
