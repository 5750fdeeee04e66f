//! The pieces of `auth login` (the one-time OAuth authorization-code bootstrap), without any
//! printing: the authorize URL, the code taken from what the person pastes, and the optional
//! loopback listener.
//!
//! Studio's authorize step refuses `http` and `localhost` redirect URIs and does not echo
//! `state`, so the flow that works against a real tenant is: the redirect goes to an https
//! page the admin names (any page: it only has to show the address), and the person pastes
//! the address the browser ends on, or just its code. A loopback listener
//! (`http://127.0.0.1:PORT/...`) stays available for tenants and proxies that allow it; the
//! person can paste even then. `state` is sent, and checked when it comes back, but its absence
//! is not an error.

use axum::extract::{Query, State};
use axum::response::Html;
use axum::Router;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::sync::mpsc;
use url::Url;

/// The redirect used when the config names none: Studio then shows the code to copy (if it
/// supports the out-of-band URN; otherwise configure `studio.oauth.redirect_uri`).
pub const OUT_OF_BAND: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Longest authorization code accepted from a paste or a redirect.
const MAX_CODE_LENGTH: usize = 2048;

/// Where the code comes back.
#[derive(Debug, PartialEq, Eq)]
pub enum Redirect {
    /// A loopback `http` address: the listener can catch the redirect (and a paste works too).
    Loopback { addr: SocketAddr, path: String },
    /// Anything else: the person pastes the address or the code.
    Paste,
}

/// Which way the code of `redirect` comes back.
pub fn redirect_kind(redirect: &Url) -> Redirect {
    if redirect.scheme() != "http" {
        return Redirect::Paste;
    }
    let ip = match redirect.host() {
        Some(url::Host::Ipv4(ip)) if ip.is_loopback() => IpAddr::V4(ip),
        Some(url::Host::Ipv6(ip)) if ip.is_loopback() => IpAddr::V6(ip),
        Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        _ => return Redirect::Paste,
    };
    Redirect::Loopback {
        addr: SocketAddr::new(ip, redirect.port_or_known_default().unwrap_or(80)),
        path: redirect.path().to_string(),
    }
}

/// A random `state` for one login.
pub fn new_state() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(24)
        .map(char::from)
        .collect()
}

/// The authorize URL the person opens.
pub fn authorize_url(authorize: &Url, client_id: &str, redirect: &Url, state: &str) -> Url {
    let mut url = authorize.clone();
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect.as_str())
        .append_pair("state", state);
    url
}

/// The code from what the person pasted: the whole address the browser ended on, its query
/// part, or the bare code. A `state` in it must be ours; an `error` in it is Studio's refusal.
pub fn code_from_paste(input: &str, state: &str) -> Result<String, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("nothing was pasted".into());
    }
    let query = if let Ok(url) = Url::parse(input) {
        let mut q = url.query().unwrap_or("").to_string();
        if let Some(f) = url.fragment() {
            q.push('&');
            q.push_str(f);
        }
        Some(q)
    } else if input.contains("code=") || input.contains("error=") {
        Some(input.trim_start_matches(['?', '#']).to_string())
    } else {
        None
    };
    match query {
        Some(q) => {
            let params: HashMap<String, String> = url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            code_from_params(&params, state)
        }
        None => check_code(input),
    }
}

/// The code from the parameters of a redirect.
pub fn code_from_params(params: &HashMap<String, String>, state: &str) -> Result<String, String> {
    if let Some(error) = params.get("error") {
        let description = params
            .get("error_description")
            .map(|d| format!(": {}", d.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(format!(
            "Studio refused the authorization (error={}{description})",
            error.chars().take(100).collect::<String>()
        ));
    }
    if params.get("state").is_some_and(|s| s != state) {
        return Err(
            "the state in this address is not this login's: it comes from another `auth login`; \
                    open the URL printed above and paste the address it ends on"
                .into(),
        );
    }
    match params.get("code") {
        Some(code) => check_code(code),
        None => Err("the address has no code=... parameter".into()),
    }
}

fn check_code(code: &str) -> Result<String, String> {
    let ok = !code.is_empty()
        && code.len() <= MAX_CODE_LENGTH
        && code.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(code.to_string())
    } else {
        Err("that does not look like an authorization code (paste the whole address from the browser, or the value of code=)".into())
    }
}

/// The loopback listener: serves the redirect at `path` on `addr` (with axum) until one
/// arrives with a code for this login or with an error, and returns it.
pub async fn listen(addr: SocketAddr, path: &str, state: String) -> Result<String, String> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<Result<String, String>>(1);
    let app = Router::new()
        .route(
            if path.is_empty() { "/" } else { path },
            axum::routing::get(callback),
        )
        .with_state((tx, state));
    // The server runs until the first result; a graceful shutdown then lets the browser's
    // page be sent before the listener closes.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stopped.await;
    });
    let serve = tokio::spawn(async move { server.await });
    let result = rx
        .recv()
        .await
        .unwrap_or_else(|| Err("the listener stopped".into()));
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), serve).await;
    result
}

type Callback = (mpsc::Sender<Result<String, String>>, String);

async fn callback(
    State((tx, state)): State<Callback>,
    Query(params): Query<HashMap<String, String>>,
) -> Html<&'static str> {
    if !params.contains_key("code") && !params.contains_key("error") {
        return Html("Waiting for the authorization code.");
    }
    let result = code_from_params(&params, &state);
    let page = match &result {
        Ok(_) => "studio-role-sync is authorized. You can close this window.",
        Err(_) => {
            "studio-role-sync was not authorized; see the terminal. You can close this window."
        }
    };
    // A wrong state is someone else's redirect: say so in the page, keep waiting.
    if params.get("state").is_some_and(|s| s != &state) {
        return Html("This redirect belongs to another login attempt: ignored.");
    }
    let _ = tx.try_send(result);
    Html(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasted_addresses_and_codes() {
        let s = "st4te";
        assert_eq!(code_from_paste("abc123", s), Ok("abc123".into()));
        assert_eq!(code_from_paste("  abc123\n", s), Ok("abc123".into()));
        assert_eq!(
            code_from_paste("https://www.myschool.edu/srs?code=c0de&state=st4te", s),
            Ok("c0de".into())
        );
        // Studio does not echo state: its absence is fine.
        assert_eq!(
            code_from_paste("https://www.myschool.edu/?code=c%2Bde", s),
            Ok("c+de".into())
        );
        assert_eq!(code_from_paste("?code=xyz", s), Ok("xyz".into()));
        assert_eq!(code_from_paste("code=xyz&foo=1", s), Ok("xyz".into()));
        assert!(code_from_paste("https://x.edu/?code=c&state=other", s)
            .unwrap_err()
            .contains("another"));
        assert!(code_from_paste("https://x.edu/?error=access_denied", s)
            .unwrap_err()
            .contains("access_denied"));
        assert!(code_from_paste("https://x.edu/", s)
            .unwrap_err()
            .contains("no code"));
        assert!(code_from_paste("two words", s).is_err());
        assert!(code_from_paste("", s).is_err());
        assert!(code_from_paste(&"x".repeat(5000), s).is_err());
    }

    #[test]
    fn loopback_or_paste() {
        let kind = |u: &str| redirect_kind(&Url::parse(u).unwrap());
        assert_eq!(
            kind("http://127.0.0.1:8765/callback"),
            Redirect::Loopback {
                addr: "127.0.0.1:8765".parse().unwrap(),
                path: "/callback".into()
            }
        );
        assert!(matches!(kind("http://[::1]:9/"), Redirect::Loopback { .. }));
        assert!(matches!(
            kind("http://localhost/"),
            Redirect::Loopback { .. }
        ));
        assert_eq!(kind("https://www.myschool.edu/srs"), Redirect::Paste);
        assert_eq!(kind(OUT_OF_BAND), Redirect::Paste);
    }
}
