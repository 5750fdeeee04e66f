//! `studio`: the tenant's address, how the client authenticates, and how hard it may push
//! (rate, burst, concurrency, batch size, timeout, retries, extra CA).

use super::ca_file::{self, ExtraRoots};
use super::checker::Checker;
use super::oauth::{OAuthConfig, RawOAuth};
use super::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

#[derive(Debug)]
pub struct StudioConfig {
    /// `https://<institution>.instructuremedia.com`, without a trailing slash.
    pub base_url: Url,
    pub auth: AuthConfig,
    pub requests_per_second: f64,
    pub burst: u32,
    pub concurrency: usize,
    pub batch_size: usize,
    pub timeout: Duration,
    pub max_retries: u32,
    /// `ca_file`: a private CA trusted on top of the OS store and the bundled roots.
    pub extra_roots: ExtraRoots,
}

/// How the client authenticates. Secrets are `SecretString`: their `Debug` is redacted.
#[derive(Debug)]
pub enum AuthConfig {
    /// A long-lived access token from `token_env`, or from `token_file` (kept to re-read it
    /// when Studio refuses the token: a rotated secret is picked up without a restart).
    Token {
        token: SecretString,
        file: Option<PathBuf>,
    },
    OAuth(Box<OAuthConfig>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStudio {
    base_url: String,
    token_env: Option<String>,
    token_file: Option<PathBuf>,
    oauth: Option<RawOAuth>,
    #[serde(default = "default_rps")]
    requests_per_second: f64,
    #[serde(default = "default_burst")]
    burst: u32,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
    #[serde(default = "default_batch_size")]
    batch_size: usize,
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
    #[serde(default = "default_retries")]
    max_retries: u32,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

fn default_rps() -> f64 {
    5.0
}
fn default_burst() -> u32 {
    5
}
fn default_concurrency() -> usize {
    4
}
fn default_batch_size() -> usize {
    50
}
fn default_timeout() -> f64 {
    30.0
}
fn default_retries() -> u32 {
    5
}

impl Checker<'_> {
    pub(super) fn studio(
        &self,
        raw: RawStudio,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<StudioConfig, ConfigError> {
        let base_url = self.https_url(&["studio", "base_url"], &raw.base_url)?;
        if base_url.query().is_some() || base_url.fragment().is_some() {
            return Err(self.error(
                &["studio", "base_url"],
                "must be the tenant's address, without `?query` or `#fragment` \
                 (e.g. https://myschool.instructuremedia.com)",
            ));
        }
        let auth = match (raw.token_env, raw.token_file, raw.oauth) {
            (Some(var), None, None) => AuthConfig::Token {
                token: self.secret_env(&["studio", "token_env"], &var)?,
                file: None,
            },
            (None, Some(file), None) => {
                let file = resolve(&file);
                AuthConfig::Token {
                    token: self.secret_file(&["studio", "token_file"], &file)?,
                    file: Some(file),
                }
            }
            (None, None, Some(oauth)) => {
                AuthConfig::OAuth(Box::new(self.oauth(oauth, &base_url, resolve)?))
            }
            _ => {
                return Err(self.error(
                    &["studio"],
                    "set exactly one of token_env, token_file or oauth",
                ))
            }
        };
        let key = |k: &'static str| ["studio", k];
        self.in_range(
            &key("requests_per_second"),
            raw.requests_per_second,
            0.01,
            10_000.0,
        )?;
        self.in_range(&key("burst"), raw.burst, 1, 10_000)?;
        self.in_range(&key("concurrency"), raw.concurrency, 1, 256)?;
        self.in_range(&key("batch_size"), raw.batch_size, 1, 1000)?;
        self.in_range(&key("timeout_seconds"), raw.timeout_seconds, 0.1, 3600.0)?;
        self.in_range(&key("max_retries"), raw.max_retries, 0, 20)?;
        let extra_roots = match raw.ca_file {
            Some(file) if self.reads_secrets() => ca_file::read_ca_file(&resolve(&file))
                .map_err(|m| self.error(&key("ca_file"), m))?,
            _ => Default::default(),
        };
        Ok(StudioConfig {
            base_url,
            auth,
            requests_per_second: raw.requests_per_second,
            burst: raw.burst,
            concurrency: raw.concurrency,
            batch_size: raw.batch_size,
            timeout: Duration::from_secs_f64(raw.timeout_seconds),
            max_retries: raw.max_retries,
            extra_roots,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};

    #[test]
    fn numbers_out_of_range_name_key_and_line_and_never_panic() {
        let studio = |line: &str| {
            GOOD.replace(
                "  token_env: CONFIG_TEST_TOKEN\n",
                &format!("  token_env: CONFIG_TEST_TOKEN\n  {line}\n"),
            )
        };
        for line in [
            "requests_per_second: 1e10",
            "requests_per_second: .inf",
            "requests_per_second: .nan",
            "requests_per_second: 0",
            "requests_per_second: -1",
            "requests_per_second: 1e-300",
            "burst: 0",
            "burst: 99999999",
            "concurrency: 0",
            "batch_size: 5000",
            "timeout_seconds: .inf",
            "timeout_seconds: 0",
            "timeout_seconds: .nan",
            "max_retries: 1000",
        ] {
            let e = load(&studio(line)).unwrap_err();
            let key = line.split(':').next().unwrap();
            assert_eq!(e.line, Some(4), "{line}: {e}");
            assert!(e.message.contains(&format!("studio.{key}")), "{line}: {e}");
        }
        // Too large for the type at all: serde names the line.
        let e = load(&studio("concurrency: 99999999999999999999999")).unwrap_err();
        assert_eq!(e.line, Some(4), "{e}");
        assert!(load(&studio("requests_per_second: 0.5")).is_ok());
    }
}
