//! `plan` and `apply`: one run now, printed like `terraform plan` / `terraform apply`: the
//! plan, then (for an apply, or a run that failed) the outcome. The exit code says whether
//! there were changes, a guard tripped or actions failed. `plan --out FILE` saves the plan and
//! `apply FILE` sends exactly that plan, or nothing (like Terraform's saved plans). SIGTERM or
//! SIGINT stops a run between batches: recorded `interrupted`, exit code 5.

use super::{fail, load_config, open_history, who};
use crate::exit::Exit;
use crate::render;
use std::path::Path;
use std::sync::Arc;
use studio_role_sync_engine::digest;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::plan::GuardTrip;
use studio_role_sync_engine::reconcile::{
    load_desired, Consent, Engine, RunRequest, SavedPlanConsent, Trigger, VerifyRequest,
};
use studio_role_sync_engine::saved_plan::{self, SavedPlan};
use studio_role_sync_engine::shutdown::CancellationToken;

/// `plan` (dry run) and `apply`: one run now; a full verification when due, or when `full`.
pub async fn run(config_path: &Path, dry_run: bool, full: bool) -> Exit {
    run_saving(config_path, dry_run, full, None, None).await
}

/// `plan [--out FILE]`.
pub async fn plan(config_path: &Path, full: bool, out: Option<&Path>) -> Exit {
    run_saving(config_path, true, full, out, None).await
}

/// `apply [FILE]`.
pub async fn apply(config_path: &Path, full: bool, saved: Option<&Path>) -> Exit {
    run_saving(config_path, false, full, None, saved).await
}

async fn run_saving(
    config_path: &Path,
    dry_run: bool,
    full: bool,
    out: Option<&Path>,
    saved: Option<&Path>,
) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, "warn");
    // SIGTERM/SIGINT stop the run as they stop the daemon's: the batch in flight finishes,
    // nothing more is sent, the run is recorded `interrupted`, and the exit code is 5.
    let shutdown = CancellationToken::new();
    studio_role_sync_engine::shutdown::spawn_signal_handler(shutdown.clone());
    // A --out that can never be written (a symlink, a FIFO, a folder) stops before the run.
    if let Some(Err(e)) = out.map(saved_plan::check_out_path) {
        return fail(e);
    }
    let saved_file = saved.map(|p| p.display().to_string()).unwrap_or_default();
    // A bad saved plan stops here, before anything is recorded.
    let saved = match saved.map(SavedPlan::read).transpose() {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if let Some(s) = &saved {
        let ours = config.studio.base_url.as_str().trim_end_matches('/');
        if s.studio.trim_end_matches('/') != ours {
            return fail(format!(
                "saved plan {saved_file}: it is a plan for Studio {}, and this config is for {ours}",
                s.studio
            ));
        }
    }
    let (history, hold) = match open_history(&config, !dry_run).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    // Bad input stops here, before the run is recorded or anything is sent.
    let desired = match load_desired(&config).await {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let desired_sha256 = saved_plan::desired_fingerprint(&desired, &config.roles.managed);
    let engine = match Engine::new(config.clone(), history.clone(), Metrics::new()).await {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let consent = match &saved {
        Some(s) => Consent::SavedPlan(SavedPlanConsent {
            digest: s.digest.clone(),
            actions: s.actions.clone(),
            file: saved_file.clone(),
            by: who(None).unwrap_or_else(|_| "unknown".into()),
        }),
        None => Consent::Approvals,
    };
    let request = RunRequest {
        dry_run,
        verify: if full {
            VerifyRequest::Now
        } else {
            VerifyRequest::WhenDue
        },
        consent,
        desired: Some(desired),
        ..RunRequest::new(Trigger::Manual)
    };
    let report = match engine.run(request, shutdown).await {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Like `terraform apply`, an apply shows the plan it carried out, then the outcome.
    if let Some(plan) = &report.plan {
        print!(
            "{}",
            render::render_plan(plan, &config.roles.managed, report.guard.as_ref())
        );
        print!("{}", render::render_flapping(&report, &config));
        if dry_run {
            print!("{}", render::render_guard_help(&report, out.is_some()));
        }
    }
    if !dry_run || report.error.is_some() {
        let text = render::render_run(&report);
        println!();
        if report.error.is_some() {
            eprint!("error: {text}");
        } else {
            print!("{text}");
        }
    }
    // A one-shot `apply` notifies like the daemon (the transitions live in the history, so
    // whichever process sees one sends it once); it waits for the delivery before exiting.
    if let Some(notifier) = &engine.notifier {
        if !notifier.flush(notifier.longest_delivery()).await {
            tracing::warn!("notifications still being delivered at exit were abandoned");
        }
    }
    if let (Some(s), Some(GuardTrip::PlanChanged { .. })) = (&saved, &report.guard) {
        let config_text = studio_role_sync_engine::config::read(config_path).unwrap_or_default();
        if saved_plan::config_fingerprint(&config_text) != s.config_sha256 {
            println!("The config file changed since the plan was saved.");
        }
        if desired_sha256 != s.desired_sha256 {
            println!(
                "The desired state changed since the plan was saved (run {} at {}).",
                s.run_id, s.created_at
            );
        }
        println!("Nothing was sent. Review a fresh plan: studio-role-sync plan --out FILE");
    }
    let mut code = Exit::of_run(&report);
    if let (Some(path), Some(plan)) = (out, &report.plan) {
        code = match save(&config, config_path, path, &report, plan, desired_sha256) {
            Ok(()) => code,
            Err(e) => e,
        };
    }
    // A PostgreSQL lease goes back now (before the pool it uses closes): a daemon standing
    // by takes over at once.
    if let Some(hold) = hold {
        hold.release().await;
    }
    history.close().await;
    code
}

/// Writes the plan of a dry run for `apply FILE`. A plan the empty-state guard refuses is not
/// saved: nothing would ever let it through.
fn save(
    config: &studio_role_sync_engine::config::Config,
    config_path: &Path,
    path: &Path,
    report: &studio_role_sync_engine::run_report::RunReport,
    plan: &studio_role_sync_engine::plan::Plan,
    desired_sha256: String,
) -> Result<(), Exit> {
    if report.error.is_some() {
        return Ok(());
    }
    if matches!(report.guard, Some(GuardTrip::EmptyDesired)) {
        eprintln!(
            "error: the plan was not saved to {}: the empty-desired-state refusal is never lifted",
            path.display()
        );
        return Err(Exit::Error);
    }
    let actions = digest::planned_actions(&plan.actions, &config.roles.managed);
    let config_text = studio_role_sync_engine::config::read(config_path).map_err(fail)?;
    let saved = SavedPlan {
        format: saved_plan::FORMAT.into(),
        version: saved_plan::VERSION,
        created_at: studio_role_sync_engine::history::now(),
        run_id: report.record.id,
        studio: config.studio.base_url.as_str().trim_end_matches('/').into(),
        history: config.history.display().to_string(),
        config_sha256: saved_plan::config_fingerprint(&config_text),
        desired_sha256,
        guard: report.guard.as_ref().map(|g| g.kind().to_string()),
        digest: digest::digest(&actions),
        actions,
    };
    saved.write(path).map_err(fail)?;
    println!(
        "\nSaved the plan to {} ({} actions, digest {}).\n\
         `studio-role-sync apply {}` sends exactly these changes if a fresh plan is the same{}.",
        path.display(),
        saved.actions.len(),
        digest::short(&saved.digest),
        path.display(),
        if report.guard.is_some() {
            " (it lifts the removal guard for them)"
        } else {
            ""
        }
    );
    Ok(())
}
