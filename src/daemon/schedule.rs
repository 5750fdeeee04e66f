//! The schedule: a tokio-cron-scheduler job that asks the run loop for a run at each slot.
//!
//! It only asks: a slot that comes while a run is in progress (or one is already queued) is
//! skipped and logged, so runs never overlap and never pile up.

use crate::config::Config;
use crate::reconcile::Trigger;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

/// Starts a scheduler for `config.schedule` in `config.timezone`.
pub async fn start_scheduler(
    config: &Config,
    tx: mpsc::Sender<Trigger>,
    busy: Arc<AtomicBool>,
) -> Result<JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async_tz(
        config.schedule.as_str(),
        config.timezone,
        move |_id, _lock| {
            let tx = tx.clone();
            let busy = busy.clone();
            Box::pin(async move {
                if busy.load(Ordering::SeqCst) {
                    tracing::warn!("scheduled slot skipped: a run is still in progress");
                } else if tx.try_send(Trigger::Schedule).is_err() {
                    tracing::warn!("scheduled slot skipped: another run is already queued");
                }
            })
        },
    )?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}
