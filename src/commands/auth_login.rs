//! `auth login`: the one-time OAuth authorization-code bootstrap. Prints the authorize URL,
//! takes the code from a paste (or the loopback listener of [`login`](crate::login)), and has
//! the engine's OAuth client exchange it and store the tokens in the history.

use super::{fail, load_config, open_history};
use crate::exit::Exit;
use std::path::Path;
use std::sync::Arc;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::studio::auth::OAuth;

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
    crate::logging::init(config.log.format, "warn");
    let AuthConfig::OAuth(oauth) = &config.studio.auth else {
        return fail(
            "auth login needs studio.oauth in the config (this config uses a static token)",
        );
    };
    let (history, hold) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let manager = match OAuth::new(oauth, Arc::new(history.clone()), Metrics::new()).await {
        Ok(m) => m,
        Err(e) => return fail(e),
    };
    let http = match studio_role_sync_engine::studio::tls::http_client(&config.studio) {
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
            // A PostgreSQL lease goes back first (before the pool it uses closes).
            if let Some(hold) = hold {
                hold.release().await;
            }
            history.close().await;
            Exit::Success
        }
        Err(e) => fail(e),
    }
}
