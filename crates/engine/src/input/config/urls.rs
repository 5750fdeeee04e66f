//! URLs in the config (`studio.base_url`, the OAuth endpoints): https, or plain http only to
//! a loopback host, and never with credentials in them, which messages never echo either.

use super::checker::Checker;
use super::ConfigError;
use url::Url;

impl Checker<'_> {
    /// An https URL (or http to a loopback host) with a host and no user name or password.
    pub(super) fn https_url(&self, key: &[&str], given: &str) -> Result<Url, ConfigError> {
        // Messages show the URL without any user name or password written in it.
        let written = given.trim();
        let shown = without_userinfo(written);
        let given = shown.as_str();
        let url = Url::parse(written)
            .map_err(|e| self.error(key, format!("{given:?} is not a URL: {e}")))?;
        if shown != written || !url.username().is_empty() || url.password().is_some() {
            return Err(self.error(
                key,
                format!(
                    "{given:?} holds a user name or password (not shown here); a URL in the \
                     config must not hold credentials: Studio is reached with token_env, \
                     token_file or oauth"
                ),
            ));
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => {
                return Err(self.error(
                    key,
                    format!(
                        "plain http is only allowed for loopback hosts; use https:// ({given})"
                    ),
                ))
            }
            other => {
                return Err(self.error(key, format!("unsupported scheme {other:?}; use https://")))
            }
        }
        if url.host_str().is_none() {
            return Err(self.error(key, format!("{given:?} has no host")));
        }
        Ok(url)
    }
}

/// `given` with any `user:password@` removed from its authority, for messages: the URL as
/// written may not even parse, and must still not be echoed with its credentials.
pub(super) fn without_userinfo(given: &str) -> String {
    let Some(colon) = given.find(':') else {
        return given.to_string();
    };
    let rest = &given[colon + 1..];
    let authority_start = colon + 1 + (rest.len() - rest.trim_start_matches('/').len());
    let authority = &given[authority_start..];
    let end = authority.find(['/', '?', '#']).unwrap_or(authority.len());
    match authority[..end].rfind('@') {
        Some(at) => format!(
            "{}{}",
            &given[..authority_start],
            &given[authority_start + at + 1..]
        ),
        None => given.to_string(),
    }
}

pub(super) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};
    use super::without_userinfo;

    #[test]
    fn plain_http_only_for_loopback() {
        let e = load(&GOOD.replace("https://school", "http://school")).unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("loopback"), "{e}");
        assert!(
            load(&GOOD.replace("https://school.instructuremedia.com", "http://127.0.0.1:9"))
                .is_ok()
        );
    }

    #[test]
    fn credentials_in_urls_are_refused_without_echo() {
        for url in [
            "https://admin:hunter2@school.instructuremedia.com",
            "https://hunter2@school.instructuremedia.com",
            "https:admin:hunter2@school.instructuremedia.com",
            "https://admin:hunter2@school instructuremedia.com",
            "ftp://admin:hunter2@school.instructuremedia.com",
            "http://admin:hunter2@school.instructuremedia.com",
        ] {
            let e = load(&GOOD.replace("https://school.instructuremedia.com", url)).unwrap_err();
            assert_eq!(e.line, Some(2), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{url}: {e}");
        }
        let e = load(&GOOD.replace(
            "https://school.instructuremedia.com",
            "https://admin:hunter2@school.instructuremedia.com",
        ))
        .unwrap_err();
        assert!(e.message.contains("user name or password"), "{e}");
        let e = load(&GOOD.replace(".com", ".com/?token=x")).unwrap_err();
        assert!(e.message.contains("without `?query`"), "{e}");
        assert_eq!(
            without_userinfo("https://u:p@h.edu/a@b?c@d"),
            "https://h.edu/a@b?c@d"
        );
    }
}
