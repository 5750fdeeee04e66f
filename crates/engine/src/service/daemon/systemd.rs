//! systemd integration: readiness, status and watchdog notifications (`Type=notify`).
//!
//! Each call does nothing unless systemd asked for it (`NOTIFY_SOCKET`, `WATCHDOG_USEC`), so
//! the daemon behaves the same anywhere else.

use crate::service::shutdown::CancellationToken;
use std::time::Duration;

pub(super) fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// Pings the systemd watchdog at half its interval while the daemon's runtime is responsive.
pub(super) fn spawn_watchdog(shutdown: CancellationToken) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(every) => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            }
        }
    });
}
