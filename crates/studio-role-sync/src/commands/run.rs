//! `plan` and `apply`: one run now, printed like `terraform plan` / `terraform apply`: the
//! plan, then (for an apply, or a run that failed) the outcome. The exit code says whether
//! there were changes, a guard tripped or actions failed.

use super::{fail, load_config, open_history};
use crate::exit::Exit;
use crate::render;
use std::path::Path;
use std::sync::Arc;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::{load_desired, Engine, Trigger, VerifyRequest};
use studio_role_sync_engine::shutdown::CancellationToken;

/// `plan` (dry run) and `apply`: one run now; a full verification when due, or when `full`.
pub async fn run(config_path: &Path, dry_run: bool, full: bool) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, "warn");
    let (history, _lock) = match open_history(&config, !dry_run).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    // Bad input stops here, before the run is recorded or anything is sent.
    let desired = match load_desired(&config).await {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    let engine = match Engine::new(config.clone(), history.clone(), Metrics::new()).await {
        Ok(e) => e,
        Err(e) => return fail(e),
    };
    let report = match engine
        .run_verifying(
            Trigger::Manual,
            dry_run,
            Some(desired),
            CancellationToken::new(),
            if full {
                VerifyRequest::Now
            } else {
                VerifyRequest::WhenDue
            },
        )
        .await
    {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    // Like `terraform apply`, an apply shows the plan it carried out, then the outcome.
    if let Some(plan) = &report.plan {
        print!(
            "{}",
            render::render_plan(plan, &config.roles.managed, report.guard.as_ref())
        );
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
    history.close().await;
    Exit::of_run(&report)
}
