//! The request pace: one limiter shared by every request the client sends.
//!
//! Two layers. A `governor` limiter enforces the configured `requests_per_second` and `burst`:
//! the hard ceiling. Above it sits an adaptive factor (AIMD, as TCP does):
//!
//! * a `429` pauses the whole client for `Retry-After` (1 s when absent, at most 5 min) and
//!   halves its pace, once per congestion event: the `429`s of requests that were already on
//!   their way when the pace was last lowered say nothing new, so they pause but do not halve
//!   again (without this, four requests in flight turn one event into a division by 16);
//! * while below the ceiling, requests are spaced evenly at the lowered rate (no burst after a
//!   pause), and each success wins a little back: the factor grows by [`RECOVERY_PER_SECOND`]
//!   of the ceiling per second of successful traffic, never above 1.
//!
//! So when the server allows less than the config says, the client settles near what the
//! server allows instead of hammering it: a few `429`s while it finds the level, then one
//! every few seconds as it probes upward.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The lowest share of the configured rate the adaptive layer goes down to.
const MIN_FACTOR: f64 = 0.02;
/// What a congestion event multiplies the factor by (multiplicative decrease).
const DECREASE: f64 = 0.5;
/// Share of the configured rate won back per second of successful requests (additive
/// increase): from half to full pace in about 17 s at most.
pub(crate) const RECOVERY_PER_SECOND: f64 = 0.03;
/// Pause after a `429` without a usable `Retry-After`.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// The longest `Retry-After` honoured.
const MAX_PAUSE: Duration = Duration::from_secs(300);

pub struct Pace {
    ceiling: DefaultDirectRateLimiter,
    rate: f64,
    adaptive: Mutex<Adaptive>,
}

struct Adaptive {
    /// Share of the configured rate currently allowed, in [MIN_FACTOR, 1].
    factor: f64,
    /// Earliest start of the next request while the factor is below 1.
    next_slot: Instant,
    /// No request starts before this (a `Retry-After`).
    paused_until: Instant,
    /// When the factor was last lowered: a `429` to a request sent before is the same event.
    last_decrease: Option<Instant>,
    /// Congestion events (decreases) so far.
    decreases: u64,
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
                last_decrease: None,
                decreases: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Adaptive> {
        self.adaptive.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the next request may start.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                let mut a = self.lock();
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

    /// The server said `429` to a request sent at `sent_at`: pause the whole client for
    /// `retry_after`, and slow it down unless this event was already counted.
    pub fn throttled(&self, retry_after: Option<Duration>, sent_at: Instant) {
        let mut a = self.lock();
        let now = Instant::now();
        let pause = retry_after.unwrap_or(DEFAULT_PAUSE).min(MAX_PAUSE);
        a.paused_until = a.paused_until.max(now + pause);
        if a.last_decrease.is_none_or(|d| sent_at >= d) {
            a.factor = (a.factor * DECREASE).max(MIN_FACTOR);
            a.last_decrease = Some(now);
            a.decreases += 1;
        }
        a.next_slot = a.next_slot.max(a.paused_until);
    }

    /// A request succeeded: recover some pace, [`RECOVERY_PER_SECOND`] of the ceiling per
    /// second of requests at the current pace.
    pub fn succeeded(&self) {
        let mut a = self.lock();
        if a.factor < 1.0 {
            let step = RECOVERY_PER_SECOND / (self.rate * a.factor);
            a.factor = (a.factor + step.min(RECOVERY_PER_SECOND)).min(1.0);
        }
    }

    /// The share of the configured rate now allowed (1.0 = full pace); read by the tests.
    #[cfg(test)]
    pub fn factor(&self) -> f64 {
        self.lock().factor
    }

    /// Congestion events (pace decreases) so far; read by the tests.
    #[cfg(test)]
    pub fn decreases(&self) -> u64 {
        self.lock().decreases
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn halves_on_429_and_recovers() {
        let pace = Pace::new(100.0, 1);
        pace.throttled(Some(Duration::from_secs(2)), Instant::now());
        assert_eq!(pace.factor(), 0.5);
        let t0 = Instant::now();
        pace.acquire().await;
        assert!(
            Instant::now() - t0 >= Duration::from_secs(2),
            "Retry-After honoured"
        );
        for _ in 0..10_000 {
            pace.succeeded();
        }
        assert_eq!(pace.factor(), 1.0, "never above the ceiling");
    }

    #[tokio::test(start_paused = true)]
    async fn one_event_halves_once() {
        let pace = Pace::new(100.0, 1);
        let sent = Instant::now();
        tokio::time::advance(Duration::from_millis(10)).await;
        // Four requests in flight all answered 429: one event.
        for _ in 0..4 {
            pace.throttled(Some(Duration::from_secs(1)), sent);
        }
        assert_eq!(pace.factor(), 0.5);
        assert_eq!(pace.decreases(), 1);
        // A request sent after the decrease that is still refused is a new event.
        tokio::time::advance(Duration::from_secs(1)).await;
        pace.throttled(None, Instant::now());
        assert_eq!(pace.factor(), 0.25);
    }

    #[tokio::test(start_paused = true)]
    async fn recovery_is_gradual() {
        let pace = Pace::new(100.0, 1);
        pace.throttled(None, Instant::now());
        // 50 successes is about one second at 50 requests per second.
        for _ in 0..50 {
            pace.succeeded();
        }
        let f = pace.factor();
        assert!(f > 0.5 && f < 0.55, "{f}");
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_at_the_lowered_rate() {
        let pace = Pace::new(100.0, 10);
        pace.throttled(Some(Duration::ZERO), Instant::now());
        pace.throttled(Some(Duration::ZERO), Instant::now());
        // 25 requests per second: 10 requests take at least 9 spacings of 40 ms.
        let t0 = Instant::now();
        for _ in 0..10 {
            pace.acquire().await;
        }
        assert!(Instant::now() - t0 >= Duration::from_millis(350));
    }
}
