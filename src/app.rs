//! The commands, as a library: each takes plain arguments, prints for a person, and returns
//! the contract's exit code. `main.rs` only maps the command line onto these.

use crate::config::{Config, SourceConfig};
use crate::desired;
use crate::history::History;
use crate::lock::{InstanceLock, LockError};
use crate::metrics::Metrics;
use crate::reconcile::{load_desired, make_client, Engine, Exit, Trigger, VerifyRequest};
use crate::report::{self, Format};
use crate::shutdown::Shutdown;
use crate::studio::auth::OAuthSettings;
use std::path::Path;
use std::sync::Arc;

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

/// `validate`: config and desired state, without a request to Studio.
pub async fn validate(config_path: &Path) -> Exit {
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
            Exit::Success
        }
        Err(e) => fail(e),
    }
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
    crate::logging::init(config.log.format, "warn");
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
    crate::logging::init(config.log.format, "warn");
    let (history, _lock) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let client = match make_client(&config, &history, &Metrics::new()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    match crate::studio::read::list_holders(
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

/// `auth login`: the one-time OAuth authorization-code bootstrap.
///
/// Prints the authorize URL; the code comes back to a listener on a loopback `redirect_uri`,
/// or is pasted on standard input when the redirect URI is not loopback.
pub async fn auth_login(config_path: &Path) -> Exit {
    use crate::config::AuthConfig;
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, "warn");
    let AuthConfig::OAuth(oauth) = &config.studio.auth else {
        return fail(
            "auth login needs studio.oauth in the config (this config uses a static token)",
        );
    };
    let (history, _lock) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let manager = match crate::studio::auth::OAuth::new(
        OAuthSettings::from(&**oauth),
        history.clone(),
        Metrics::new(),
    )
    .await
    {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let redirect = oauth
        .redirect_uri
        .clone()
        .unwrap_or_else(|| url::Url::parse("urn:ietf:wg:oauth:2.0:oob").expect("static"));
    let state: String = {
        use rand::Rng;
        rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(24)
            .map(char::from)
            .collect()
    };
    let mut authorize = oauth.authorize_url.clone();
    authorize
        .query_pairs_mut()
        .append_pair("client_id", &oauth.client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("state", &state);
    let loopback = redirect.scheme() == "http"
        && matches!(
            redirect.host_str(),
            Some("127.0.0.1" | "localhost" | "[::1]")
        );
    println!("Open this URL in a browser, signed in to Studio as an admin, and approve access:\n\n  {authorize}\n");
    let code = if loopback {
        let port = redirect.port_or_known_default().unwrap_or(80);
        let host = if redirect.host_str() == Some("[::1]") {
            "[::1]"
        } else {
            "127.0.0.1"
        };
        println!("Waiting for Studio to redirect to {redirect} ...");
        match catch_redirect(&format!("{host}:{port}"), &state).await {
            Ok(code) => code,
            Err(e) => return fail(e),
        }
    } else {
        println!("Then paste the code Studio shows (or the `code` parameter of the page it redirects to):");
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line).is_err() || line.trim().is_empty() {
            return fail("no code given");
        }
        line.trim().to_string()
    };
    let http = reqwest::Client::new();
    match manager.exchange_code(&http, &code, redirect.as_str()).await {
        Ok(()) => {
            println!(
                "Tokens stored in {} (table oauth_tokens). The daemon refreshes them from now on; \
                 keep that file private and backed up.",
                config.history.display()
            );
            history.close().await;
            Exit::Success
        }
        Err(e) => fail(e),
    }
}

/// Serves one request on the loopback redirect URI and returns its `code`.
async fn catch_redirect(addr: &str, state: &str) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let wait = async {
        loop {
            let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.map_err(|e| e.to_string())?;
            let request = String::from_utf8_lossy(&buf[..n]).to_string();
            let target = request.split_whitespace().nth(1).unwrap_or("/").to_string();
            let url =
                url::Url::parse(&format!("http://localhost{target}")).map_err(|e| e.to_string())?;
            let param = |k: &str| {
                url.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            let (body, result) = match (param("code"), param("state"), param("error")) {
                (_, _, Some(err)) => (
                    "Studio refused the authorization. You can close this window.",
                    Err(format!("Studio answered error={err}")),
                ),
                (Some(code), Some(s), None) if s == state => (
                    "studio-role-sync is authorized. You can close this window.",
                    Ok(code),
                ),
                (Some(_), _, None) => ("State mismatch: ignored.", Err(String::new())),
                _ => ("Waiting for the authorization code.", Err(String::new())),
            };
            let response = format!("HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            let _ = socket.write_all(response.as_bytes()).await;
            match result {
                Ok(code) => return Ok(code),
                Err(e) if !e.is_empty() => return Err(e),
                Err(_) => continue,
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(600), wait)
        .await
        .map_err(|_| "no redirect within 10 minutes".to_string())?
}
