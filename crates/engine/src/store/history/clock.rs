//! The time the history writes and the back-off reads: the system clock, or a manual clock.
//!
//! A manual clock exists so that a benchmark can drive a year of runs in minutes with exact
//! `now` values (`crates/bench`, soak scenario); the daemon and the commands always use the
//! system clock. It is one shared cell, so every clone of a `History` sees the same time.

use chrono::{DateTime, SecondsFormat, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Milliseconds since the epoch when manual; `None` for the system clock.
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `at` until [`set`](Self::set) moves it.
    pub fn manual(at: DateTime<Utc>) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(at.timestamp_millis()))),
        }
    }

    /// Moves a manual clock; does nothing to the system clock.
    pub fn set(&self, at: DateTime<Utc>) {
        if let Some(m) = &self.manual {
            m.store(at.timestamp_millis(), Ordering::SeqCst);
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match &self.manual {
            None => Utc::now(),
            Some(m) => {
                DateTime::from_timestamp_millis(m.load(Ordering::SeqCst)).unwrap_or_else(Utc::now)
            }
        }
    }

    /// Now as the history writes times: RFC 3339, UTC, milliseconds (sorts as text).
    pub fn now_text(&self) -> String {
        text(self.now())
    }
}

/// A time as the history writes it.
pub(crate) fn text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}
