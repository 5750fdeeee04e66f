//! Back-off for emails Studio does not know yet (`not_in_studio`).
//!
//! Students are listed in the source weeks before their first login, so hundreds of emails can
//! be pending for months. Searching each of them on every run costs a request per email per
//! run against a rate-limited service and tells nothing new; so after each search that does
//! not find it, an email waits longer before the next one: `pending.recheck_min`, doubling,
//! up to `pending.recheck_max`. A little jitter (at most a tenth, always downwards) spreads
//! emails that became pending together over several runs. An email new in the source has no
//! back-off: it is searched at once. The bound users rely on: a person who appears in Studio is
//! searched at most `recheck_max` after the last search, and gets their role at the next run.
//!
//! Pure: the history stores when each email is due (`pending_spans.next_check_at`).

use std::time::Duration;

/// `pending` in the config: the shortest and the longest wait between two searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_secs(15 * 60),
            max: Duration::from_secs(24 * 3600),
        }
    }
}

impl Backoff {
    /// How long to wait after the `checks`-th search that did not find `email` (1 = first).
    pub fn interval(&self, checks: u32, email: &str) -> Duration {
        let doublings = checks.saturating_sub(1).min(40);
        let grown = self
            .min
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.max);
        let base = grown.min(self.max).max(self.min.min(self.max));
        // 90 % to 100 % of the interval, fixed per (email, checks): never beyond `max`.
        let spread = (fnv(email.as_bytes(), checks) % 1000) as f64 / 10_000.0;
        base.mul_f64(1.0 - spread)
    }
}

/// FNV-1a: a stable hash (the same on every build), unlike std's hasher.
fn fnv(bytes: &[u8], salt: u32) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes.iter().chain(salt.to_le_bytes().iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_from_min_to_max_and_never_beyond() {
        let b = Backoff {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
        };
        let waits: Vec<Duration> = (1..=12).map(|n| b.interval(n, "a@x.edu")).collect();
        assert!(waits[0] >= Duration::from_secs(54) && waits[0] <= Duration::from_secs(60));
        assert!(waits[1] > waits[0] && waits[2] > waits[1]);
        assert!(waits.iter().all(|w| *w <= b.max));
        assert!(
            waits[11] >= Duration::from_secs(3240),
            "capped: {:?}",
            waits[11]
        );
        assert!(b.interval(u32::MAX, "a@x.edu") <= b.max);
    }

    #[test]
    fn spreads_emails_that_became_pending_together() {
        let b = Backoff::default();
        let mut waits: Vec<Duration> = (0..50)
            .map(|i| b.interval(3, &format!("s{i}@x.edu")))
            .collect();
        waits.sort();
        waits.dedup();
        assert!(waits.len() > 10);
    }
}
