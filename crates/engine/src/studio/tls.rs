//! Whom the client trusts, and the HTTP client built with that trust.
//!
//! Universities often run a private CA or a TLS-inspecting proxy, so the bundled web PKI roots
//! are not enough. The client trusts, together: the bundled Mozilla roots (`webpki-roots`,
//! so a minimal container works), the operating system's store (`rustls-native-certs`:
//! `/etc/ssl/certs`, or `SSL_CERT_FILE`/`SSL_CERT_DIR`), and `studio.ca_file` when set (read
//! and checked with the config: [`ExtraRoots`](crate::input::config::ExtraRoots)). One client
//! carries this trust to every request, token requests included.

use super::StudioError;
use crate::input::config::StudioConfig;
use std::time::Duration;

/// The HTTP client for Studio (API and token endpoint) with the trust described above.
pub fn http_client(studio: &StudioConfig) -> Result<reqwest::Client, StudioError> {
    let mut builder = reqwest::Client::builder()
        .timeout(studio.timeout)
        .connect_timeout(studio.timeout.min(Duration::from_secs(10)))
        .user_agent(concat!("studio-role-sync/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(studio.concurrency.max(1))
        .tls_built_in_webpki_certs(true)
        .tls_built_in_native_certs(true);
    for c in studio.extra_roots.certificates() {
        builder = builder.add_root_certificate(c.clone());
    }
    builder.build().map_err(|e| StudioError::Unreachable {
        endpoint: "client",
        attempts: 0,
        message: format!("cannot set up the HTTP client: {}", chain(&e)),
    })
}

/// An error with its sources, `outer: inner: ...`: reqwest's own message hides the cause.
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

/// A connection that failed because the server's certificate is not trusted (or not valid):
/// trying again cannot help.
pub(crate) fn is_certificate_error(e: &reqwest::Error) -> bool {
    let text = chain(e).to_ascii_lowercase();
    text.contains("invalid peer certificate") || text.contains("certificate verify")
}

/// Adds what to do to a connection error that is a certificate problem.
pub fn explain(message: String) -> String {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificate") || lower.contains("unknownissuer") {
        format!(
            "{message} (TLS: Studio's certificate is not trusted; if your network uses a private CA or a \
             TLS-inspecting proxy, add its CA certificate with studio.ca_file or to the system's trust store)"
        )
    } else {
        message
    }
}
