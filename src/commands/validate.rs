//! `validate`: the config and the desired state, checked without a request to Studio (a SQL
//! source is queried); with `--online`, then the tenant itself: reachability, TLS and the
//! token (`ping`), and `roles.managed` against the roles the tenant knows.

use super::{fail, load_config, open_history};
use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::desired;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::make_client;

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
    let calendar = desired::Calendar::now(config.timezone);
    let (d, reads) =
        match desired::load_all(&config.sources, &config.roles.managed, &calendar).await {
            Ok(loaded) => loaded,
            Err(e) => return fail(e),
        };
    for read in &reads {
        let rows = read.rows.map(|r| format!("{r} rows, ")).unwrap_or_default();
        println!(
            "{}: ok ({rows}{} users, {} grants)",
            read.place, read.users, read.grants
        );
        // An LDAP source: what each group held, so a wrong DN or filter shows as a 0.
        for g in &read.groups {
            println!(
                "  group {}: {} members, {} without an email",
                g.group.escape_debug(),
                g.members,
                g.without_email
            );
        }
    }
    if reads.len() > 1 {
        println!(
            "sources: ok (union: {} users, {} grants)",
            d.users.len(),
            d.grants()
        );
    }
    let ended: usize = d.ended.values().map(Vec::len).sum();
    if ended > 0 {
        println!(
            "{ended} grant(s) have ended (their until has passed): no longer desired, removed \
             by the next run where still held"
        );
    }
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

/// `validate --online`: ping the tenant and check `roles.managed` against it.
async fn validate_online(config: &Config) -> Exit {
    use studio_role_sync_engine::studio::online::{self, RoleCheck};
    crate::logging::init(config.log.format, "warn");
    let (history, hold) = match open_history(config, false).await {
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
    // A PostgreSQL lease goes back first (before the pool it uses closes).
    if let Some(hold) = hold {
        hold.release().await;
    }
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
