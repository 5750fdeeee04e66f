//! Prometheus metrics: what the daemon exposes on `/metrics`.
//!
//! One [`Metrics`] value is created per process and shared (it is cheap to clone), so the
//! client, the apply loop and the run recorder count into the same registry whether or not an
//! HTTP endpoint is serving it. Label values are fixed vocabularies (endpoint names, statuses,
//! outcomes): never an email, a URL or a token.

use crate::model::run_status::RunStatus;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabel {
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RequestLabels {
    pub endpoint: String,
    /// HTTP status, or `error` when no response came back.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NotificationLabels {
    /// `webhook` or `email`.
    pub channel: String,
    /// `guard_tripped`, `run_failed`, ..., `recovered`.
    pub event: String,
    /// `sent`, `failed` (after every retry) or `dropped` (too many messages in flight).
    pub outcome: String,
}

#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Mutex<Registry>,
    runs: Family<StatusLabel, Counter>,
    actions: Family<ActionLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    run_duration: Histogram,
    pending_users: Gauge,
    since_success: Gauge<f64, AtomicU64>,
    config_valid: Gauge,
    flapping_actions: Gauge,
    notifications: Family<NotificationLabels, Counter>,
    /// `leader`: 1 while this process holds the leader lease (a contract: the exact name).
    leader: Gauge,
    leader_changes: Counter,
    /// Unix time of the last successful run, read at scrape time into `since_success`.
    last_success: AtomicU64,
    started: std::time::Instant,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("studio_role_sync");
        let runs = Family::<StatusLabel, Counter>::default();
        registry.register("runs", "Runs finished, by status", runs.clone());
        let actions = Family::<ActionLabels, Counter>::default();
        registry.register(
            "actions",
            "Role actions, by action and outcome",
            actions.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "api_requests",
            "Requests sent to Studio, by endpoint and HTTP status",
            requests.clone(),
        );
        let run_duration = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        registry.register(
            "run_duration_seconds",
            "Wall time of runs",
            run_duration.clone(),
        );
        let pending_users = Gauge::default();
        registry.register(
            "pending_users",
            "Desired emails not acted on in the last run (not in Studio, ambiguous)",
            pending_users.clone(),
        );
        let since_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "seconds_since_last_success",
            "Seconds since the last run that succeeded (since start when none has)",
            since_success.clone(),
        );
        let config_valid = Gauge::default();
        registry.register(
            "config_valid",
            "1 when the config and desired state last loaded are valid",
            config_valid.clone(),
        );
        let flapping_actions = Gauge::default();
        registry.register(
            "flapping_actions",
            "Changes of the last run that were applied in several consecutive runs (something in Studio undoes them)",
            flapping_actions.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications, by channel, event and outcome (sent, failed after every retry, dropped)",
            notifications.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this daemon holds the leader lease and talks to Studio, 0 on a standby",
            leader.clone(),
        );
        let leader_changes = Counter::default();
        registry.register(
            "leader_changes",
            "Times this daemon became leader or stopped being leader",
            leader_changes.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                leader,
                leader_changes,
                flapping_actions,
                notifications,
                registry: Mutex::new(registry),
                runs,
                actions,
                requests,
                run_duration,
                pending_users,
                since_success,
                config_valid,
                last_success: AtomicU64::new(0),
                started: std::time::Instant::now(),
            }),
        }
    }

    pub fn request(&self, endpoint: &str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        self.inner
            .requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_string(),
                status,
            })
            .inc();
    }

    pub fn action(&self, action: &str, outcome: &str, n: u64) {
        self.inner
            .actions
            .get_or_create(&ActionLabels {
                action: action.to_string(),
                outcome: outcome.to_string(),
            })
            .inc_by(n);
    }

    pub fn run_finished(&self, status: RunStatus, seconds: f64, pending: usize) {
        self.inner
            .runs
            .get_or_create(&StatusLabel {
                status: status.to_string(),
            })
            .inc();
        self.inner.run_duration.observe(seconds);
        self.inner.pending_users.set(pending as i64);
        if status == RunStatus::Succeeded {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            self.inner.last_success.store(now, Ordering::Relaxed);
        }
    }

    /// The flapping changes found by the last run that could send changes.
    pub fn set_flapping(&self, n: usize) {
        self.inner.flapping_actions.set(n as i64);
    }

    pub fn notification(&self, channel: &str, event: &str, outcome: &str) {
        self.inner
            .notifications
            .get_or_create(&NotificationLabels {
                channel: channel.to_string(),
                event: event.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Whether this process leads now; a change of it is counted.
    pub fn set_leader(&self, leader: bool) {
        if self.inner.leader.set(leader as i64) != leader as i64 {
            self.inner.leader_changes.inc();
        }
    }

    pub fn set_config_valid(&self, valid: bool) {
        self.inner.config_valid.set(valid as i64);
    }

    /// The text exposition format, for `/metrics`.
    pub fn render(&self) -> String {
        let last = self.inner.last_success.load(Ordering::Relaxed);
        let since = if last == 0 {
            self.inner.started.elapsed().as_secs_f64()
        } else {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            (now - last as f64).max(0.0)
        };
        self.inner.since_success.set(since);
        let mut out = String::new();
        let registry = self
            .inner
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::new();
        m.request("search_by_role", Some(200));
        m.action("add", "applied", 3);
        m.run_finished(RunStatus::Succeeded, 1.5, 2);
        let text = m.render();
        assert!(
            text.contains(
                "studio_role_sync_api_requests_total{endpoint=\"search_by_role\",status=\"200\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("studio_role_sync_actions_total{action=\"add\",outcome=\"applied\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("studio_role_sync_runs_total{status=\"succeeded\"} 1"),
            "{text}"
        );
        assert!(text.contains("studio_role_sync_pending_users 2"), "{text}");
    }

    #[test]
    fn leadership_is_a_gauge_and_its_changes_are_counted() {
        let m = Metrics::new();
        m.set_leader(false);
        let text = m.render();
        assert!(text.contains("\nstudio_role_sync_leader 0\n"), "{text}");
        assert!(
            text.contains("studio_role_sync_leader_changes_total 0"),
            "{text}"
        );
        m.set_leader(true);
        m.set_leader(true);
        m.set_leader(false);
        let text = m.render();
        assert!(text.contains("\nstudio_role_sync_leader 0\n"), "{text}");
        assert!(
            text.contains("studio_role_sync_leader_changes_total 2"),
            "{text}"
        );
    }
}
