//! The conversation with the directory: connect (TLS, or StartTLS), bind, and searches whose
//! every end is checked. A search counts only when the server said it finished with success:
//! a size limit, a time limit, a referral, a page that failed or a connection that closed
//! is an error, so a cut-short list of members can never become the desired state. Every
//! operation has the source's timeout; no message carries the bind password.

use crate::config::LdapSourceConfig;
use ldap3::adapters::{Adapter, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use secrecy::ExposeSecret;
use std::time::Duration;

/// An open, bound connection.
pub(super) struct Directory {
    ldap: Ldap,
    timeout: Duration,
    page_size: u32,
}

/// What a base-scope read of one entry found.
pub(super) enum Lookup {
    Found(SearchEntry),
    Missing,
}

/// The TLS client for `ca_file`: the system's trust store (as ldap3 reads it by default)
/// and the file's certificates.
fn tls_with(
    extra: &crate::input::config::ca_file::ExtraRoots,
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for der in extra.der() {
        // Each was checked when the config loaded.
        let _ = roots.add(rustls::pki_types::CertificateDer::from(der.clone()));
    }
    std::sync::Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The longest any one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Directory {
    /// Connects and binds as `bind_dn`.
    pub(super) async fn open(config: &LdapSourceConfig) -> Result<Directory, String> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(config.timeout.min(CONNECT_TIMEOUT))
            .set_starttls(config.starttls);
        if !config.extra_roots.is_empty() {
            settings = settings.set_config(tls_with(&config.extra_roots));
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, config.url.as_str())
            .await
            .map_err(|e| format!("cannot connect: {}", explain(&e)))?;
        ldap3::drive!(conn);
        let bound = ldap
            .with_timeout(config.timeout)
            .simple_bind(&config.bind_dn, config.password.expose_secret())
            .await
            .map_err(|e| format!("the bind did not finish: {}", explain(&e)))?;
        if bound.rc != 0 {
            let why = if bound.rc == 49 {
                format!(
                    "invalid credentials: check bind_dn and the password in {}",
                    config.password_origin
                )
            } else {
                result_text(bound.rc, &bound.text)
            };
            return Err(format!(
                "the directory refused the bind as {}: {why}",
                crate::email_address::shown(&config.bind_dn)
            ));
        }
        Ok(Directory {
            ldap,
            timeout: config.timeout,
            page_size: config.page_size,
        })
    }

    /// Every entry under `base` matching `filter`, read with the paged-results control
    /// (unless `page_size` is 0); `each` sees them as they arrive.
    pub(super) async fn search(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        mut each: impl FnMut(SearchEntry),
    ) -> Result<(), String> {
        let adapters: Vec<Box<dyn Adapter<_, _>>> = if self.page_size > 0 {
            vec![Box::new(PagedResults::new(self.page_size as i32))]
        } else {
            Vec::new()
        };
        let mut ldap = self.ldap.clone();
        let mut stream = ldap
            .with_timeout(self.timeout)
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| format!("the search {} failed: {}", shown(filter), explain(&e)))?;
        loop {
            match stream.next().await {
                Ok(Some(entry)) if entry.is_ref() => {
                    return Err(format!(
                        "the search {} returned a referral to another server; the read is \
                         incomplete (point base_dn at the server that holds the entries)",
                        shown(filter)
                    ))
                }
                Ok(Some(entry)) if entry.is_intermediate() => {}
                Ok(Some(entry)) => each(SearchEntry::construct(entry)),
                Ok(None) => break,
                Err(e) => {
                    return Err(format!(
                        "the search {} stopped before its end: {}",
                        shown(filter),
                        explain(&e)
                    ))
                }
            }
        }
        let done = stream.finish().await;
        if done.rc != 0 {
            return Err(format!(
                "the search {} did not finish: {}",
                shown(filter),
                result_text(done.rc, &done.text)
            ));
        }
        Ok(())
    }

    /// The entry at `dn` with `attrs`, or `Missing` when there is none.
    pub(super) async fn lookup(&self, dn: &str, attrs: &[&str]) -> Result<Lookup, String> {
        let mut ldap = self.ldap.clone();
        let result = ldap
            .with_timeout(self.timeout)
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .map_err(|e| format!("reading {} failed: {}", shown(dn), explain(&e)))?;
        let (entries, done) = (result.0, result.1);
        match done.rc {
            0 => {}
            32 => return Ok(Lookup::Missing), // noSuchObject
            rc => {
                return Err(format!(
                    "reading {} did not finish: {}",
                    shown(dn),
                    result_text(rc, &done.text)
                ))
            }
        }
        let mut found = None;
        for entry in entries {
            if entry.is_ref() {
                return Err(format!(
                    "reading {} returned a referral to another server",
                    shown(dn)
                ));
            }
            found = Some(SearchEntry::construct(entry));
        }
        Ok(found.map_or(Lookup::Missing, Lookup::Found))
    }

    /// Says goodbye; errors do not matter any more.
    pub(super) async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ldap.unbind()).await;
    }
}

/// An LDAP result code in words: the server's name for it, and its text.
fn result_text(rc: u32, text: &str) -> String {
    let name = match rc {
        3 => "time limit exceeded",
        4 => "size limit exceeded (use paging: page_size, or raise the server's limit)",
        10 => "referral to another server",
        11 => "administrative limit exceeded",
        32 => "no such object",
        34 => "invalid DN syntax",
        49 => "invalid credentials",
        50 => "insufficient access rights",
        51 => "server busy",
        52 => "server unavailable",
        53 => "server unwilling to perform",
        80 => "other error (the connection may have closed)",
        _ => "error",
    };
    if text.trim().is_empty() {
        format!("{name} (LDAP result {rc})")
    } else {
        format!("{name} (LDAP result {rc}: {})", shown(text.trim()))
    }
}

/// An error of the client library in words. Its texts hold no request data (so no password).
fn explain(e: &LdapError) -> String {
    match e {
        LdapError::LdapResult { result } => result_text(result.rc, &result.text),
        LdapError::EndOfStream => "the server closed the connection".into(),
        LdapError::Timeout { .. } => "no answer within timeout_seconds".into(),
        other => shown(&other.to_string()),
    }
}

/// Text from the directory or the config, escaped for a terminal and quoted.
fn shown(text: &str) -> String {
    crate::email_address::shown(text)
}
