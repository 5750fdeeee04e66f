//! `studio.oauth`: the OAuth client (id, secret, seeded refresh token), its endpoints, and
//! the redirect URI of `auth login`, which must keep the code off plain http.

use super::checker::Checker;
use super::urls::{is_loopback, without_userinfo};
use super::ConfigError;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use url::Url;

#[derive(Clone, Debug)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// The refresh token an admin seeded; once rotated, the newest lives in the history database.
    pub seed_refresh_token: Option<SecretString>,
    pub token_url: Url,
    pub authorize_url: Url,
    /// Where Studio sends the browser after `auth login`; a loopback URL is listened on.
    pub redirect_uri: Option<Url>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    client_id: String,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    refresh_token_env: Option<String>,
    refresh_token_file: Option<PathBuf>,
    token_url: Option<String>,
    authorize_url: Option<String>,
    redirect_uri: Option<String>,
}

impl Checker<'_> {
    pub(super) fn oauth(
        &self,
        raw: RawOAuth,
        base_url: &Url,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<OAuthConfig, ConfigError> {
        let k = |key: &'static str| ["studio", "oauth", key];
        if raw.client_id.trim().is_empty() {
            return Err(self.error(&k("client_id"), "must not be empty"));
        }
        let client_secret = match (raw.client_secret_env, raw.client_secret_file) {
            (Some(var), None) => self.secret_env(&k("client_secret_env"), &var)?,
            (None, Some(file)) => self.secret_file(&k("client_secret_file"), &resolve(&file))?,
            _ => {
                return Err(self.error(
                    &["studio", "oauth"],
                    "set exactly one of client_secret_env or client_secret_file",
                ))
            }
        };
        let seed_refresh_token = match (raw.refresh_token_env, raw.refresh_token_file) {
            (Some(var), None) => self.optional_secret_env(&var),
            (None, Some(file)) => {
                Some(self.secret_file(&k("refresh_token_file"), &resolve(&file))?)
            }
            (None, None) => None,
            _ => {
                return Err(self.error(
                    &["studio", "oauth"],
                    "set at most one of refresh_token_env or refresh_token_file",
                ))
            }
        };
        let endpoint = |key: &'static str, given: Option<String>, default: &str| match given {
            Some(u) => self.https_url(&k(key), &u),
            None => Ok(base_url.join(default).expect("static path joins")),
        };
        let token_url = endpoint("token_url", raw.token_url, "/api/public/oauth/token")?;
        let authorize_url = endpoint(
            "authorize_url",
            raw.authorize_url,
            "/api/public/oauth/authorize",
        )?;
        let redirect_uri = raw
            .redirect_uri
            .map(|u| self.redirect_uri(&k("redirect_uri"), &u))
            .transpose()?;
        Ok(OAuthConfig {
            client_id: raw.client_id,
            client_secret,
            seed_refresh_token,
            token_url,
            authorize_url,
            redirect_uri,
        })
    }

    /// Where Studio sends the browser after `auth login`: an https page the admin copies the
    /// code from, a loopback listener (`http://127.0.0.1:PORT/...`), or the out-of-band URN.
    fn redirect_uri(&self, key: &[&str], given: &str) -> Result<Url, ConfigError> {
        // Messages show the URL without any user name or password written in it.
        let written = given.trim();
        let shown = without_userinfo(written);
        let given = shown.as_str();
        let url = Url::parse(written)
            .map_err(|e| self.error(key, format!("{given:?} is not a URL: {e}")))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(self.error(
                key,
                format!("{given:?}: a user name or password in the redirect URI is refused"),
            ));
        }
        match url.scheme() {
            "https" => Ok(url),
            "http" if is_loopback(&url) => Ok(url),
            "urn" if url.as_str() == "urn:ietf:wg:oauth:2.0:oob" => Ok(url),
            _ => Err(self.error(
                key,
                format!(
                    "{given:?}: use an https:// page (you copy the code from the address bar), or a loopback \
                     http://127.0.0.1:PORT/ address for the built-in listener (the code must not travel over plain http)"
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{load, GOOD};

    #[test]
    fn redirect_uris_keep_the_code_off_plain_http() {
        let oauth = |redirect: &str| {
            GOOD.replace(
                "  token_env: CONFIG_TEST_TOKEN\n",
                &format!("  oauth:\n    client_id: c\n    client_secret_env: CONFIG_TEST_SECRET\n    redirect_uri: {redirect}\n"),
            )
        };
        for ok in [
            "https://www.school.edu/srs",
            "http://127.0.0.1:8765/callback",
            "urn:ietf:wg:oauth:2.0:oob",
        ] {
            assert!(load(&oauth(ok)).is_ok(), "{ok}");
        }
        let e = load(&oauth("http://www.school.edu/cb")).unwrap_err();
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("studio.oauth.redirect_uri"), "{e}");
    }
}
