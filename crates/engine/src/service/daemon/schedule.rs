//! The schedule: when the next slot is, and a tokio-cron-scheduler job that asks the run loop
//! for a run at each slot.
//!
//! When the slot is, is decided here, by [`Slots`], from the cron expression and the IANA time
//! zone, with the daylight-saving rules of that zone applied at every slot (croner's rules: a
//! slot in the hour skipped in spring runs when the clocks have jumped; a slot in the hour
//! repeated in autumn runs once). tokio-cron-scheduler's own cron jobs fix the UTC offset when
//! the job is created (an open upstream bug), so a daemon started in winter would run an hour
//! off all summer. So each slot is a one-shot job of that crate at the instant [`Slots`]
//! computed, and when it fires it adds the job for the slot after it: the offset is looked up
//! anew for every slot, and a schedule stays right across any number of transitions.
//!
//! A slot only *asks*: one that comes while a run is in progress (or one is already queued) is
//! skipped and logged, so runs never overlap and never pile up.
//!
//! A [`Schedule`] stops one way only: its token, a child of the daemon's, is cancelled. The
//! daemon's shutdown cancels it with everything else; a new schedule cancels the old one's
//! alone. A schedule that cannot be built is a config error at the `schedule` key, worded and
//! placed like any other.

use crate::input::config::{Config, ConfigError};
use crate::service::shutdown::CancellationToken;
use crate::sync::reconcile::Trigger;
use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};

/// The wall-clock slots of a cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct Slots {
    cron: Cron,
    timezone: Tz,
}

impl Slots {
    /// Parses a cron expression with seconds (6 or 7 fields), as the config check does.
    pub fn new(expr: &str, timezone: Tz) -> Result<Slots, String> {
        Ok(Slots {
            cron: crate::input::config::parse_schedule(expr)?,
            timezone,
        })
    }

    /// The time zone the slots are read in (`timezone:`), the institution's own.
    pub fn timezone(&self) -> Tz {
        self.timezone
    }

    /// The first slot strictly after `after`, or `None` when the expression never matches
    /// again (croner gives up after searching a bounded span).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.transition_near(after) {
            let local = after.with_timezone(&self.timezone);
            return self
                .cron
                .find_next_occurrence(&local, false)
                .ok()
                .map(|t| t.with_timezone(&Utc))
                .filter(|t| *t > after);
        }
        // Near a transition, croner's single search resolves an hour that happens twice to
        // its first pass only. Its iterator yields both passes, in wall-clock order, which is
        // not time order: take the earliest slot after `after` among those around it.
        let from = (after - DST_MARGIN).with_timezone(&self.timezone);
        let mut best: Option<DateTime<Utc>> = None;
        for t in self.cron.iter_after(from).take(MAX_CANDIDATES) {
            let t = t.with_timezone(&Utc);
            if best.is_some_and(|b| t > b + DST_MARGIN) {
                break;
            }
            if t > after && best.is_none_or(|b| t < b) {
                best = Some(t);
            }
        }
        best
    }

    /// Whether the zone's UTC offset changes within [`DST_MARGIN`] of `t`.
    fn transition_near(&self, t: DateTime<Utc>) -> bool {
        let offset =
            |t: DateTime<Utc>| self.timezone.offset_from_utc_datetime(&t.naive_utc()).fix();
        offset(t - DST_MARGIN) != offset(t + DST_MARGIN)
    }
}

/// Wider than any daylight-saving shift (at most two hours anywhere).
const DST_MARGIN: chrono::Duration = chrono::Duration::hours(3);
/// Slots looked at around a transition: a per-second schedule has 21,600 in the margin.
const MAX_CANDIDATES: usize = 50_000;

/// How long a stop waits for the scheduler to shut down.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// What every slot's job needs: where to ask for a run, how to find the next slot, and
/// whether the schedule has stopped.
struct Chain {
    slots: Slots,
    tx: mpsc::Sender<Trigger>,
    busy: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// A running schedule: the scheduler asking for a run at each slot until its token is cancelled.
pub(crate) struct Schedule {
    stop: CancellationToken,
    /// The task that shuts the scheduler down once the token is cancelled.
    stopped: JoinHandle<()>,
}

impl Schedule {
    /// Starts the schedule of `config` (`schedule` in `timezone`), which stops when `shutdown`
    /// is cancelled or [`stop`](Self::stop) is called. `config_text` is the config file's text,
    /// for the line an error names.
    pub(crate) async fn start(
        config: &Config,
        config_text: &str,
        tx: mpsc::Sender<Trigger>,
        busy: Arc<AtomicBool>,
        shutdown: &CancellationToken,
    ) -> Result<Schedule, ConfigError> {
        let error = |message: String| {
            ConfigError::at_key(&config.path, config_text, &["schedule"], message)
        };
        let slots = Slots::new(&config.schedule, config.timezone).map_err(error)?;
        let stop = shutdown.child_token();
        let chain = Arc::new(Chain {
            slots,
            tx,
            busy,
            stop: stop.clone(),
        });
        let mut scheduler = start_scheduler(chain).await.map_err(|e| {
            error(format!(
                "cannot build the schedule {:?}: {e}",
                config.schedule
            ))
        })?;
        let stopped = tokio::spawn({
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                if let Err(e) = scheduler.shutdown().await {
                    tracing::warn!(error = %e, "the scheduler did not stop cleanly");
                }
                tracing::debug!("schedule stopped");
            }
        });
        Ok(Schedule { stop, stopped })
    }

    /// Cancels this schedule's token (a no-op once the daemon's is) and waits until its
    /// scheduler has shut down, for at most [`STOP_GRACE`]: a stop is never held up by it.
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(STOP_GRACE, self.stopped)
            .await
            .is_err()
        {
            tracing::warn!(
                "the scheduler did not stop within {} s",
                STOP_GRACE.as_secs()
            );
        }
    }
}

/// A started scheduler with the job of the first slot from now.
async fn start_scheduler(chain: Arc<Chain>) -> Result<JobScheduler, JobSchedulerError> {
    let mut scheduler = JobScheduler::new().await?;
    let started = async {
        add_next_slot(&scheduler, chain, Utc::now()).await?;
        scheduler.start().await
    }
    .await;
    match started {
        Ok(()) => Ok(scheduler),
        Err(e) => {
            let _ = scheduler.shutdown().await;
            Err(e)
        }
    }
}

/// Adds the one-shot job of the first slot after `after`, if the schedule has one.
async fn add_next_slot(
    scheduler: &JobScheduler,
    chain: Arc<Chain>,
    after: DateTime<Utc>,
) -> Result<(), JobSchedulerError> {
    let Some(at) = chain.slots.next_after(after) else {
        tracing::warn!(
            "the schedule has no further slot; only startup, edits and triggers start runs"
        );
        return Ok(());
    };
    tracing::debug!(next_run = %at.to_rfc3339(), "next scheduled run");
    scheduler.add(slot_job(chain, at)?).await?;
    Ok(())
}

/// The one-shot job of the slot at `at`: it asks for a run, then adds the next slot's job.
fn slot_job(chain: Arc<Chain>, at: DateTime<Utc>) -> Result<Job, JobSchedulerError> {
    // The crate keeps a one-shot's time in whole seconds, truncated: round the wait up (and
    // keep half a second of slack) so that the job never fires before its slot.
    let wait = (at - Utc::now()).to_std().unwrap_or(Duration::ZERO);
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let instant = std::time::Instant::now() + Duration::from_millis(seconds * 1000 + 500);
    Job::new_one_shot_at_instant_async(instant, move |_id, scheduler| {
        let chain = chain.clone();
        Box::pin(async move {
            if chain.stop.is_cancelled() {
                return;
            }
            if chain.busy.load(Ordering::SeqCst) {
                tracing::warn!("scheduled slot skipped: a run is still in progress");
            } else if chain.tx.try_send(Trigger::Schedule).is_err() {
                tracing::warn!("scheduled slot skipped: another run is already queued");
            }
            // The next slot is computed from this one, not only from the clock, so a job
            // that fires a little early cannot fire twice for the same slot.
            let after = at.max(Utc::now());
            let Some(next) = chain.slots.next_after(after) else {
                tracing::warn!(
                    "the schedule has no further slot; only startup, edits and triggers start runs"
                );
                return;
            };
            tracing::debug!(next_run = %next.to_rfc3339(), "next scheduled run");
            let added = match slot_job(chain, next) {
                Ok(job) => scheduler.add(job).await.map(|_| ()),
                Err(e) => Err(e),
            };
            if let Err(e) = added {
                tracing::error!(error = %e, "cannot schedule the next run");
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The slots after `from`, as local wall-clock times with their offsets.
    fn local_slots(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        let slots = Slots::new(expr, tz).unwrap();
        let mut t = utc(from);
        (0..n)
            .map(|_| {
                t = slots.next_after(t).unwrap();
                t.with_timezone(&tz).to_rfc3339()
            })
            .collect()
    }

    #[test]
    fn berlin_0230_across_both_transitions_of_2026() {
        // Europe/Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
        let tz = chrono_tz::Europe::Berlin;
        assert_eq!(
            local_slots("0 30 2 * * *", tz, "2026-03-27T12:00:00Z", 4),
            [
                "2026-03-28T02:30:00+01:00",
                // 02:30 does not exist that night: the slot runs when the clocks have jumped.
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ]
        );
        assert_eq!(
            local_slots("0 30 2 * * *", tz, "2026-10-23T12:00:00Z", 4),
            [
                "2026-10-24T02:30:00+02:00",
                // 02:30 happens twice that night: the slot runs once, at the first.
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00",
            ]
        );
    }

    #[test]
    fn a_daemon_started_in_winter_keeps_local_time_all_summer() {
        // The upstream bug: an offset fixed at creation (CET, +01:00) would put the summer
        // slots at 03:30 CEST. Every slot is computed with its own offset.
        let tz = chrono_tz::Europe::Berlin;
        let slots = Slots::new("0 30 2 * * *", tz).unwrap();
        let mut t = utc("2026-01-15T00:00:00Z");
        for _ in 0..365 {
            t = slots.next_after(t).unwrap();
            let local = t.with_timezone(&tz);
            let hm = local.format("%H:%M").to_string();
            let spring_gap = local.format("%m-%d").to_string() == "03-29";
            assert!(
                hm == "02:30" || (spring_gap && hm == "03:00"),
                "slot at {local}"
            );
        }
    }

    #[test]
    fn every_15_minutes_keeps_real_intervals_across_transitions() {
        // A quarter-hourly schedule is 15 real minutes apart across both transitions: no
        // slot repeated, none lost but those of the skipped hour.
        for (tz, from) in [
            (chrono_tz::Europe::Berlin, "2026-03-29T00:00:00Z"),
            (chrono_tz::Europe::Berlin, "2026-10-25T00:00:00Z"),
            (chrono_tz::America::New_York, "2026-11-01T05:00:00Z"),
            (chrono_tz::Australia::Lord_Howe, "2026-04-04T14:00:00Z"),
        ] {
            let slots = Slots::new("0 */15 * * * *", tz).unwrap();
            let mut t = utc(from);
            for _ in 0..16 {
                let next = slots.next_after(t).unwrap();
                assert!(next > t, "{tz}: {next} after {t}");
                assert!(
                    next - t <= chrono::Duration::minutes(15),
                    "{tz}: gap from {t} to {next}"
                );
                t = next;
            }
        }
    }

    #[test]
    fn utc_schedule_is_plain() {
        let slots = Slots::new("0 0 */6 * * *", chrono_tz::UTC).unwrap();
        let t = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        assert_eq!(
            slots.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 6, 0, 0).unwrap()
        );
    }
}
