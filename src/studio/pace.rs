//! The request pace: one limiter shared by every request the client sends.
//!
//! Two layers. A `governor` limiter enforces the configured `requests_per_second` and `burst`:
//! the hard ceiling. Above it sits an adaptive factor (AIMD, as TCP does): a `429` halves the
//! pace of the whole client and pauses it for `Retry-After`, and each success wins a little
//! back, never above the ceiling. So when the server allows less than the config says, the
//! client settles near what the server allows instead of hammering it.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The lowest share of the configured rate the adaptive layer goes down to.
const MIN_FACTOR: f64 = 0.02;
/// What each success adds back to the factor (additive increase).
const RECOVERY_STEP: f64 = 0.01;

pub struct Pace {
    ceiling: DefaultDirectRateLimiter,
    rate: f64,
    adaptive: Mutex<Adaptive>,
}

struct Adaptive {
    /// Share of the configured rate currently allowed, in (0, 1].
    factor: f64,
    /// Earliest start of the next request while the factor is below 1.
    next_slot: Instant,
    /// No request starts before this (a `Retry-After`).
    paused_until: Instant,
}

impl Pace {
    pub fn new(requests_per_second: f64, burst: u32) -> Pace {
        let period = Duration::from_secs_f64(1.0 / requests_per_second);
        let quota = Quota::with_period(period)
            .expect("rate is positive")
            .allow_burst(NonZeroU32::new(burst.max(1)).expect("burst >= 1"));
        let now = Instant::now();
        Pace {
            ceiling: RateLimiter::direct(quota),
            rate: requests_per_second,
            adaptive: Mutex::new(Adaptive {
                factor: 1.0,
                next_slot: now,
                paused_until: now,
            }),
        }
    }

    /// Waits until the next request may start.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                let start = if a.factor < 1.0 {
                    a.next_slot.max(a.paused_until)
                } else {
                    a.paused_until
                };
                if start <= now {
                    if a.factor < 1.0 {
                        let spacing = Duration::from_secs_f64(1.0 / (self.rate * a.factor));
                        a.next_slot = now.max(a.next_slot) + spacing;
                    }
                    None
                } else {
                    Some(start - now)
                }
            };
            match wait {
                Some(d) => tokio::time::sleep(d).await,
                None => break,
            }
        }
        self.ceiling.until_ready().await;
    }

    /// The server said `429`: slow the whole client down and pause it.
    pub fn throttled(&self, retry_after: Option<Duration>) {
        let mut a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        a.factor = (a.factor * 0.5).max(MIN_FACTOR);
        let pause = retry_after
            .unwrap_or(Duration::from_secs(1))
            .min(Duration::from_secs(300));
        a.paused_until = a.paused_until.max(now + pause);
        a.next_slot = a.next_slot.max(a.paused_until);
    }

    /// A request succeeded: recover some pace.
    pub fn succeeded(&self) {
        let mut a = self.adaptive.lock().unwrap_or_else(|e| e.into_inner());
        if a.factor < 1.0 {
            a.factor = (a.factor + RECOVERY_STEP).min(1.0);
        }
    }

    /// The share of the configured rate now allowed (1.0 = full pace).
    pub fn factor(&self) -> f64 {
        self.adaptive
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn halves_on_429_and_recovers() {
        let pace = Pace::new(100.0, 1);
        pace.throttled(Some(Duration::from_secs(2)));
        assert_eq!(pace.factor(), 0.5);
        let t0 = Instant::now();
        pace.acquire().await;
        assert!(
            Instant::now() - t0 >= Duration::from_secs(2),
            "Retry-After honoured"
        );
        for _ in 0..100 {
            pace.succeeded();
        }
        assert_eq!(pace.factor(), 1.0, "never above the ceiling");
    }
}
