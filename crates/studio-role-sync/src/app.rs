//! The commands, as a library: each takes plain arguments, prints for a person, and returns
//! the contract's exit code. `main.rs` only maps the command line onto these.

use crate::report::{self, Format};
use std::path::Path;
use std::sync::Arc;
use studio_role_sync_engine::config::{Config, SourceConfig};
use studio_role_sync_engine::desired;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::lock::{InstanceLock, LockError};
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::{
    load_desired, make_client, Engine, Exit, Trigger, VerifyRequest,
};
use studio_role_sync_engine::shutdown::Shutdown;
use studio_role_sync_engine::studio::auth::OAuthSettings;

/// Loads the config, printing the error (with file and line) when it is bad.
pub fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Error
    })
}

fn fail(message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    Exit::Error
}

/// `validate`: config and desired state, without a request to Studio; with `online`, then
/// the tenant itself (reachability, TLS, token, managed roles).
pub async fn validate(config_path: &Path, online: bool) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!(
        "config {}: ok (managed roles {})",
        config.path.display(),
        config.roles.managed
    );
    let loaded = match &config.source {
        SourceConfig::Yaml(yaml) => desired::yaml::load(yaml, &config.roles.managed)
            .map(|d| (d, format!("roles file {}", yaml.path.display()), None)),
        SourceConfig::Sql(sql) => desired::sql::load(sql, &config.roles.managed)
            .await
            .map(|(d, stats)| (d, desired::sql::describe(sql), Some(stats.rows))),
    };
    match loaded {
        Ok((d, source, rows)) => {
            let rows = rows.map(|r| format!("{r} rows, ")).unwrap_or_default();
            println!(
                "{source}: ok ({rows}{} users, {} grants)",
                d.users.len(),
                d.grants()
            );
            if d.is_empty() && config.roles.remove_unlisted {
                println!(
                    "warning: the desired state grants no role and roles.remove_unlisted is true: \
                     every run will be refused by the safety guard (exit 3)"
                );
            }
            if online {
                validate_online(&config).await
            } else {
                Exit::Success
            }
        }
        Err(e) => fail(e),
    }
}

/// `validate --online`: ping the tenant and check `roles.managed` against it.
async fn validate_online(config: &Config) -> Exit {
    use studio_role_sync_engine::studio::online::{self, RoleCheck};
    studio_role_sync_engine::logging::init(config.log.format, "warn");
    let (history, _lock) = match open_history(config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let client = match make_client(config, &history, &Metrics::new()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let base = config.studio.base_url.as_str().trim_end_matches('/');
    let report = match online::check(&client, &config.roles.managed).await {
        Ok(r) => r,
        Err(e) => return fail(format!("Studio {base}: {e}")),
    };
    history.close().await;
    println!(
        "Studio {base}: ok (reachable, {}token accepted; ping {} ms)",
        if config.studio.base_url.scheme() == "https" {
            "TLS verified, "
        } else {
            ""
        },
        report.ping.as_millis()
    );
    let managed = config.roles.managed.names().join(", ");
    let unknown = report.roles.unknown();
    match &report.roles {
        RoleCheck::Listed { values, .. } if unknown.is_empty() => println!(
            "roles.managed [{managed}]: ok (all among the {} role values the tenant's API schema lists)",
            values.len()
        ),
        RoleCheck::Probed { note, .. } if unknown.is_empty() => println!(
            "note: {note}; each managed role was tried with one listing instead\nroles.managed [{managed}]: ok (Studio accepted each)"
        ),
        _ => {}
    }
    if unknown.is_empty() {
        return Exit::Success;
    }
    let line = studio_role_sync_engine::config::read(&config.path)
        .ok()
        .and_then(|text| {
            studio_role_sync_engine::yaml_lines::key_line(&text, &["roles", "managed"])
        })
        .map(|l| format!(":{l}"))
        .unwrap_or_default();
    let mut problems = Vec::new();
    match &report.roles {
        RoleCheck::Listed { values, unknown } => {
            for (role, near) in unknown {
                let hint = near
                    .as_ref()
                    .map(|n| format!(" (role names are case-sensitive: did you mean {n:?}?)"))
                    .unwrap_or_default();
                problems.push(format!("{role:?} does not exist in this tenant{hint}"));
            }
            let listed: Vec<&str> = values.iter().map(String::as_str).take(50).collect();
            problems.push(format!("the tenant's roles are: {}", listed.join(", ")));
        }
        RoleCheck::Probed { note, unknown } => {
            println!("note: {note}; each managed role was tried with one listing instead");
            for role in unknown {
                problems.push(format!(
                    "{role:?} does not exist in this tenant (Studio answered 422 to a listing of it)"
                ));
            }
        }
    }
    fail(format!(
        "{}{line}: roles.managed: {}",
        config.path.display(),
        problems.join("; ")
    ))
}

/// Opens the history; takes the instance lock when `exclusive`, else takes it only if free.
async fn open_history(
    config: &Config,
    exclusive: bool,
) -> Result<(History, Option<InstanceLock>), Exit> {
    let lock = match InstanceLock::acquire(&config.history) {
        Ok(l) => Some(l),
        Err(e @ LockError::Held { .. }) if exclusive => return Err(fail(e)),
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(fail(e)),
    };
    let history = History::open(&config.history).await.map_err(fail)?;
    if lock.is_some() {
        let n = history.mark_interrupted().await.map_err(fail)?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "marked runs left running by a process that died as interrupted"
            );
        }
    }
    Ok((history, lock))
}

/// `plan` (dry run) and `apply`: one run now; a full verification when due, or when `full`.
pub async fn run(config_path: &Path, dry_run: bool, full: bool) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    studio_role_sync_engine::logging::init(config.log.format, "warn");
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
            Shutdown::never(),
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
            report::render_plan(plan, &config.roles.managed, report.guard.as_ref())
        );
    }
    if !dry_run || report.error.is_some() {
        let text = report::render_run(&report);
        println!();
        if report.error.is_some() {
            eprint!("error: {text}");
        } else {
            print!("{text}");
        }
    }
    history.close().await;
    report.exit()
}

/// `history`: the runs, or one run's actions and pending emails.
pub async fn history(config_path: &Path, limit: u32, run: Option<i64>, format: Format) -> Exit {
    let config = match Config::load_without_secrets(config_path) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    studio_role_sync_engine::logging::init(config.log.format, "warn");
    if !config.history.exists() {
        return fail(format!(
            "no history yet at {} (no run has been recorded)",
            config.history.display()
        ));
    }
    let history = match History::open(&config.history).await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let text = match run {
        None => history
            .runs(limit)
            .await
            .map(|runs| report::render_runs(&runs, format)),
        Some(id) => match history.run(id).await {
            Ok(None) => return fail(format!("no run {id} in {}", config.history.display())),
            Ok(Some(r)) => match (history.actions(id).await, history.pending(id).await) {
                (Ok(a), Ok(p)) => Ok(report::render_run_detail(&r, &a, &p, format)),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    history.close().await;
    match text {
        Ok(t) => {
            print!("{t}");
            Exit::Success
        }
        Err(e) => fail(e),
    }
}

/// `export`: the current holders of the managed roles, as a roles file.
pub async fn export(config_path: &Path) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    studio_role_sync_engine::logging::init(config.log.format, "warn");
    let (history, _lock) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let client = match make_client(&config, &history, &Metrics::new()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match studio_role_sync_engine::studio::read::list_holders(
        &client,
        &config.roles.managed,
        config.studio.concurrency,
    )
    .await
    {
        Ok(holders) => {
            print!(
                "{}",
                report::render_export(
                    &holders,
                    &config.roles.managed,
                    config.studio.base_url.as_str()
                )
            );
            Exit::Success
        }
        Err(e) => fail(format!("reading Studio failed: {e}")),
    }
}

/// How long `auth login` waits for the code.
const LOGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// `auth login`: the one-time OAuth authorization-code bootstrap.
///
/// Prints the authorize URL; the code comes back as the address (or code) the person pastes,
/// or, with a loopback `redirect_uri`, to the listener, whichever comes first.
pub async fn auth_login(config_path: &Path) -> Exit {
    use crate::login::{self, Redirect};
    use studio_role_sync_engine::config::AuthConfig;
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    studio_role_sync_engine::logging::init(config.log.format, "warn");
    let AuthConfig::OAuth(oauth) = &config.studio.auth else {
        return fail(
            "auth login needs studio.oauth in the config (this config uses a static token)",
        );
    };
    let (history, _lock) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let manager = match studio_role_sync_engine::studio::auth::OAuth::new(
        OAuthSettings::from(&**oauth),
        Arc::new(history.clone()),
        Metrics::new(),
    )
    .await
    {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let http = match studio_role_sync_engine::studio::tls::http_client(
        &studio_role_sync_engine::reconcile::client_settings(&config),
    ) {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let redirect = oauth
        .redirect_uri
        .clone()
        .unwrap_or_else(|| url::Url::parse(login::OUT_OF_BAND).expect("static"));
    let state = login::new_state();
    let authorize = login::authorize_url(&oauth.authorize_url, &oauth.client_id, &redirect, &state);
    println!("Open this URL in a browser, signed in to Studio as an admin, and approve access:\n\n  {authorize}\n");
    let pasted = {
        let state = state.clone();
        async move {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt};
            // Bounded: a paste is one short line.
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin().take(1024 * 1024));
            loop {
                let mut line = String::new();
                let read = match stdin.read_line(&mut line).await {
                    Ok(0) | Err(_) => None,
                    Ok(_) => Some(line),
                };
                match read {
                    // No terminal (or input closed): only the listener can answer.
                    None => std::future::pending::<()>().await,
                    Some(line) if line.trim().is_empty() => continue,
                    Some(line) => match login::code_from_paste(&line, &state) {
                        Ok(code) => return Ok(code),
                        Err(e) => {
                            eprintln!("{e}; paste again:");
                            continue;
                        }
                    },
                }
            }
        }
    };
    let wait = async {
        match login::redirect_kind(&redirect) {
            Redirect::Loopback { addr, path } => {
                println!(
                "Waiting for Studio to redirect to {redirect} ...\n(If the browser runs on another machine, paste the address it ends on here and press Enter.)"
            );
                tokio::select! {
                    r = login::listen(addr, &path, state.clone()) => r,
                    r = pasted => r,
                }
            }
            Redirect::Paste => {
                println!(
                "After you approve, Studio sends the browser to {redirect}.\n\
                 Copy the whole address from the browser's address bar (or just the value of code=), paste it here and press Enter:"
            );
                pasted.await
            }
        }
    };
    // Authorization codes live minutes; a login left open does not wait forever.
    let code = match tokio::time::timeout(LOGIN_WAIT, wait).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return fail(e),
        Err(_) => {
            return fail(format!(
                "no authorization code within {} minutes; run `auth login` again",
                LOGIN_WAIT.as_secs() / 60
            ))
        }
    };
    match manager.exchange_code(&http, &code, redirect.as_str()).await {
        Ok(()) => {
            println!(
                "Tokens stored in {} (table oauth_tokens). Every process using this history refreshes them \
                 from now on; keep that file private and backed up.",
                config.history.display()
            );
            history.close().await;
            Exit::Success
        }
        Err(e) => fail(e),
    }
}
