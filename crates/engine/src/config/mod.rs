//! The config file: its types, loading, validation and secret resolution.
//!
//! Parsing happens in two layers. `Raw*` structs mirror the file one to one and reject
//! unknown keys (serde gives the line). [`Config`] is what the rest of the program uses:
//! paths resolved against the config file's folder, secrets read into `secrecy` types, and
//! every cross-field rule checked, with the line of the offending key in the message.

mod ca_file;
mod console;

pub use ca_file::ExtraRoots;
pub use console::{ConsoleAuth, ConsoleConfig};

use crate::roles::{ManagedRoles, RoleSet, MAX_MANAGED_ROLES};
use crate::safety::{RoleLimits, SafetyLimits};
use crate::yaml_lines::key_line;
use secrecy::SecretString;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use url::Url;

/// Where the config file is looked for when neither `--config` nor the environment says.
pub const DEFAULT_CONFIG_PATH: &str = "config/studio-role-sync.yaml";

/// A config problem, with the file and (where known) the line it is on.
#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Debug)]
pub struct Config {
    /// The config file itself and the folder relative paths are resolved from.
    pub path: PathBuf,
    pub dir: PathBuf,
    pub studio: StudioConfig,
    pub roles: RolesConfig,
    /// `safety:`, the limits of the planner's whole-run guards.
    pub safety: SafetyLimits,
    pub source: SourceConfig,
    pub verify: VerifyConfig,
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    pub history: PathBuf,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// `console:`, the read-only history console; `None`: off.
    pub console: Option<ConsoleConfig>,
}

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

#[derive(Debug)]
pub struct RolesConfig {
    pub managed: ManagedRoles,
    pub remove_unlisted: bool,
    /// Normalised emails whose roles are never removed.
    pub protected: HashSet<String>,
}

/// `verify`: how often a run is a full verification.
#[derive(Debug, Clone, Copy)]
pub struct VerifyConfig {
    /// A run is a full verification when the last one started at least this long ago.
    pub full_every: Duration,
}

#[derive(Debug)]
pub enum SourceConfig {
    Yaml(YamlSourceConfig),
    Sql(SqlSourceConfig),
}

#[derive(Debug)]
pub struct YamlSourceConfig {
    pub path: PathBuf,
    /// A larger roles file is refused unread (`source.max_bytes`).
    pub max_bytes: u64,
}

#[derive(Debug)]
pub struct SqlSourceConfig {
    /// The connection URL, a secret: it usually holds a password.
    pub url: SecretString,
    /// Where the URL came from (`env STUDIO_DB_URL`, `file /run/...`), for messages.
    pub url_origin: String,
    pub query: String,
    pub statement_timeout: Duration,
}

#[derive(Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

// ---- the file as written -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    studio: RawStudio,
    roles: RawRoles,
    #[serde(default)]
    safety: RawSafety,
    source: RawSource,
    #[serde(default)]
    verify: RawVerify,
    #[serde(default = "default_schedule")]
    schedule: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default = "default_history")]
    history: PathBuf,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: RawLog,
    #[serde(default)]
    console: Option<console::RawConsole>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStudio {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    client_id: String,
    client_secret_env: Option<String>,
    client_secret_file: Option<PathBuf>,
    refresh_token_env: Option<String>,
    refresh_token_file: Option<PathBuf>,
    token_url: Option<String>,
    authorize_url: Option<String>,
    redirect_uri: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoles {
    managed: Vec<String>,
    #[serde(default = "yes")]
    remove_unlisted: bool,
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    exclusive: Vec<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSafety {
    #[serde(default = "default_max_removals")]
    max_removals: usize,
    #[serde(default = "default_max_ratio")]
    max_removal_ratio: f64,
    #[serde(default)]
    roles: BTreeMap<String, RawRoleLimits>,
}

impl Default for RawSafety {
    fn default() -> Self {
        RawSafety {
            max_removals: default_max_removals(),
            max_removal_ratio: default_max_ratio(),
            roles: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoleLimits {
    max_removals: Option<usize>,
    max_removal_ratio: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVerify {
    #[serde(default = "default_full_every")]
    full_every: String,
}

impl Default for RawVerify {
    fn default() -> Self {
        RawVerify {
            full_every: default_full_every(),
        }
    }
}

fn default_full_every() -> String {
    "24h".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    yaml: Option<PathBuf>,
    sql: Option<RawSql>,
    /// Bytes, or a size such as `64 MiB`; checked in `Checker::max_bytes`.
    max_bytes: Option<serde_yaml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSql {
    url_env: Option<String>,
    url_file: Option<PathBuf>,
    query: String,
    #[serde(default = "default_statement_timeout")]
    statement_timeout_seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default = "default_listen")]
    listen: String,
}

impl Default for RawHttp {
    fn default() -> Self {
        RawHttp {
            listen: default_listen(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    #[serde(default = "default_log_format")]
    format: LogFormat,
    #[serde(default = "default_log_level")]
    level: String,
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog {
            format: default_log_format(),
            level: default_log_level(),
        }
    }
}

fn default_schedule() -> String {
    "0 */15 * * * *".into()
}
fn default_history() -> PathBuf {
    "state/history.db".into()
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
fn yes() -> bool {
    true
}
fn default_max_removals() -> usize {
    25
}
fn default_max_ratio() -> f64 {
    0.25
}
fn default_statement_timeout() -> f64 {
    60.0
}
fn default_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_log_format() -> LogFormat {
    LogFormat::Pretty
}
fn default_log_level() -> String {
    "info".into()
}

// ---- loading -------------------------------------------------------------------------

impl Config {
    /// Reads, parses and checks the config file at `path`, resolving secrets.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::from_text(path, &read(path)?)
    }

    /// As [`load`](Self::load), also returning the text read (the daemon compares it to tell
    /// whether the file really changed).
    pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigError> {
        let text = read(path)?;
        Ok((Config::from_text(path, &text)?, text))
    }

    /// As [`load`](Self::load), but without reading any secret: for commands that only read
    /// the history, so an admin can run them without access to the token.
    pub fn load_without_secrets(path: &Path) -> Result<Config, ConfigError> {
        Config::parse(path, &read(path)?, false)
    }

    /// Parses config text as if read from `path` (relative paths resolve from its folder).
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse(path, text, true)
    }

    fn parse(path: &Path, text: &str, secrets: bool) -> Result<Config, ConfigError> {
        crate::yaml_guard::check(text).map_err(|r| ConfigError {
            file: path.to_path_buf(),
            line: Some(r.line),
            message: r.message,
        })?;
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: crate::yaml_lines::error_line(&e, text),
            message: strip_location(&e.to_string()),
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        let checker = Checker {
            path,
            text,
            secrets,
        };
        checker.build(raw, dir)
    }

    /// The roles file, when the source is YAML.
    pub fn roles_file(&self) -> Option<&Path> {
        match &self.source {
            SourceConfig::Yaml(y) => Some(&y.path),
            SourceConfig::Sql(_) => None,
        }
    }
}

/// serde_yaml appends " at line L column C"; the line is shown in front instead.
fn strip_location(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// The config file's text, or an error naming it. Read like every input file: a regular
/// file only, at most [`CONFIG_MAX_BYTES`](crate::input_file::CONFIG_MAX_BYTES).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    crate::input_file::read_text(path, crate::input_file::CONFIG_MAX_BYTES).map_err(|e| {
        ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("the config file {e}"),
        }
    })
}

struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
    /// False: secrets are not read (an empty placeholder stands in).
    secrets: bool,
}

impl Checker<'_> {
    fn error(&self, key: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.to_path_buf(),
            line: key_line(self.text, key),
            message: format!("{}: {}", key.join("."), message.into()),
        }
    }

    fn build(&self, raw: RawConfig, dir: PathBuf) -> Result<Config, ConfigError> {
        let resolve = |p: &Path| {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                dir.join(p)
            }
        };
        let studio = self.studio(raw.studio, &resolve)?;
        let roles = self.roles(raw.roles)?;
        let safety = self.safety(raw.safety, &roles.managed)?;
        let verify = self.verify(raw.verify)?;
        let source = self.source(raw.source, &resolve)?;
        if let SourceConfig::Sql(sql) = &source {
            // One query that only reads, in the dialect the URL names (desired/sql/statement.rs).
            use secrecy::ExposeSecret;
            crate::sql_query::check_query(sql.url.expose_secret(), &sql.query)
                .map_err(|m| self.error(&["source", "sql", "query"], m))?;
        }
        check_schedule(&raw.schedule).map_err(|m| self.error(&["schedule"], m))?;
        let timezone = match raw.timezone.as_deref() {
            None => chrono_tz::UTC,
            Some(name) => chrono_tz::Tz::from_str(name).map_err(|_| {
                self.error(
                    &["timezone"],
                    format!("unknown time zone {name:?} (use an IANA name such as Europe/Paris)"),
                )
            })?,
        };
        let listen = raw.http.listen.parse().map_err(|_| {
            self.error(
                &["http", "listen"],
                format!("{:?} is not an address:port", raw.http.listen),
            )
        })?;
        check_log_level(&raw.log.level).map_err(|m| self.error(&["log", "level"], m))?;
        let console = raw
            .console
            .map(|c| self.console(c, listen, &resolve))
            .transpose()?;
        Ok(Config {
            path: self.path.to_path_buf(),
            history: resolve(&raw.history),
            dir,
            studio,
            roles,
            safety,
            source,
            verify,
            schedule: raw.schedule,
            timezone,
            http: HttpConfig { listen },
            log: LogConfig {
                format: raw.log.format,
                level: raw.log.level,
            },
            console,
        })
    }

    fn studio(
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
        in_range(
            self,
            &key("requests_per_second"),
            raw.requests_per_second,
            0.01,
            10_000.0,
        )?;
        in_range(self, &key("burst"), raw.burst, 1, 10_000)?;
        in_range(self, &key("concurrency"), raw.concurrency, 1, 256)?;
        in_range(self, &key("batch_size"), raw.batch_size, 1, 1000)?;
        in_range(
            self,
            &key("timeout_seconds"),
            raw.timeout_seconds,
            0.1,
            3600.0,
        )?;
        in_range(self, &key("max_retries"), raw.max_retries, 0, 20)?;
        let extra_roots = match raw.ca_file {
            Some(file) if self.secrets => ca_file::read_ca_file(&resolve(&file))
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

    fn oauth(
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

    fn https_url(&self, key: &[&str], given: &str) -> Result<Url, ConfigError> {
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

    /// The value of the environment variable that `key` names. Messages name the key, never
    /// what is written there: an admin may have pasted the secret itself instead of a name.
    fn secret_env(&self, key: &[&str], var: &str) -> Result<SecretString, ConfigError> {
        self.optional_secret_env(var).ok_or_else(|| {
            self.error(
                key,
                "the environment variable named here is not set or is empty \
                 (write the variable's name here, never the secret itself)",
            )
        })
    }

    fn optional_secret_env(&self, var: &str) -> Option<SecretString> {
        if !self.secrets {
            return Some(SecretString::from(String::new()));
        }
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    /// The secret in the file that `key` names, read with the bounded reader. Messages name
    /// the key, never the path: an admin may have pasted the secret itself there.
    fn secret_file(&self, key: &[&str], file: &Path) -> Result<SecretString, ConfigError> {
        if !self.secrets {
            return Ok(SecretString::from(String::new()));
        }
        let value = crate::input_file::read_text(file, crate::input_file::SECRET_MAX_BYTES)
            .map_err(|e| {
                let hint = if e.is_not_found() {
                    " (a relative path is resolved from the config file's folder)"
                } else {
                    ""
                };
                self.error(key, format!("the file named here {e}{hint}"))
            })?;
        let value = value.trim();
        if value.is_empty() {
            return Err(self.error(key, "the file named here is empty"));
        }
        Ok(SecretString::from(value.to_string()))
    }

    fn roles(&self, raw: RawRoles) -> Result<RolesConfig, ConfigError> {
        let key = ["roles", "managed"];
        if raw.managed.is_empty() {
            return Err(self.error(&key, "must list at least one role"));
        }
        if raw.managed.len() > MAX_MANAGED_ROLES {
            return Err(self.error(&key, format!("at most {MAX_MANAGED_ROLES} roles")));
        }
        let mut seen = HashSet::new();
        for role in &raw.managed {
            if role.trim().is_empty() || role.trim() != role {
                return Err(self.error(&key, format!("{role:?} is not a role name")));
            }
            if !seen.insert(role) {
                return Err(self.error(&key, format!("{role:?} is listed twice")));
            }
        }
        let mut protected = HashSet::new();
        for email in &raw.protected {
            let normal = crate::email::normalize(email);
            if !crate::email::is_valid(&normal) {
                return Err(self.error(
                    &["roles", "protected"],
                    format!("{email:?} is not an email"),
                ));
            }
            protected.insert(normal);
        }
        let managed = ManagedRoles::new(raw.managed);
        let exclusive = self.exclusive(&raw.exclusive, &managed)?;
        Ok(RolesConfig {
            managed: managed.with_exclusive(exclusive),
            remove_unlisted: raw.remove_unlisted,
            protected,
        })
    }

    /// `roles.exclusive`: groups of at least two managed roles, each listed once per group.
    fn exclusive(
        &self,
        raw: &[Vec<String>],
        managed: &ManagedRoles,
    ) -> Result<Vec<RoleSet>, ConfigError> {
        let key = ["roles", "exclusive"];
        let mut groups = Vec::with_capacity(raw.len());
        for group in raw {
            let mut set = RoleSet::EMPTY;
            for role in group {
                let Some(i) = managed.index(role) else {
                    return Err(self.error(
                        &key,
                        format!(
                            "{role:?} is not in roles.managed {managed}: only managed roles can \
                             be declared exclusive"
                        ),
                    ));
                };
                if set.contains(i) {
                    return Err(self.error(&key, format!("{role:?} is listed twice in a group")));
                }
                set.insert(i);
            }
            if set.len() < 2 {
                return Err(self.error(
                    &key,
                    format!("{group:?}: a group of exclusive roles needs at least two roles"),
                ));
            }
            groups.push(set);
        }
        Ok(groups)
    }

    fn safety(&self, raw: RawSafety, managed: &ManagedRoles) -> Result<SafetyLimits, ConfigError> {
        let ratio = |key: &[&str], r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(r)
            } else {
                Err(self.error(key, "must be between 0 and 1 (a share of current holders)"))
            }
        };
        in_range(
            self,
            &["safety", "max_removals"],
            raw.max_removals,
            0,
            1_000_000_000,
        )?;
        ratio(&["safety", "max_removal_ratio"], raw.max_removal_ratio)?;
        let mut roles = BTreeMap::new();
        for (name, limits) in raw.roles {
            let Some(index) = managed.index(&name) else {
                return Err(self.error(
                    &["safety", "roles", &name],
                    format!("{name:?} is not in roles.managed {managed}"),
                ));
            };
            if let Some(r) = limits.max_removal_ratio {
                ratio(&["safety", "roles", &name, "max_removal_ratio"], r)?;
            }
            roles.insert(
                index,
                RoleLimits {
                    max_removals: limits.max_removals,
                    max_removal_ratio: limits.max_removal_ratio,
                },
            );
        }
        Ok(SafetyLimits {
            max_removals: raw.max_removals,
            max_removal_ratio: raw.max_removal_ratio,
            roles,
        })
    }

    /// `source.max_bytes`: bytes, or a size with a unit; at most
    /// [`ROLES_FILE_MAX_MAX_BYTES`](crate::input_file::ROLES_FILE_MAX_MAX_BYTES).
    fn max_bytes(&self, raw: Option<serde_yaml::Value>) -> Result<u64, ConfigError> {
        use crate::input_file::{human_bytes, parse_size, ROLES_FILE_MAX_MAX_BYTES as MAX};
        let Some(raw) = raw else {
            return Ok(crate::input_file::ROLES_FILE_DEFAULT_MAX_BYTES);
        };
        let bytes = match &raw {
            serde_yaml::Value::Number(n) => n.as_u64(),
            serde_yaml::Value::String(s) => parse_size(s),
            _ => None,
        };
        match bytes {
            Some(b) if (1024..=MAX).contains(&b) => Ok(b),
            _ => Err(self.error(
                &["source", "max_bytes"],
                format!(
                    "must be a size between 1 KiB and {}, in bytes or with a unit \
                     (e.g. 64 MiB, 200 MB)",
                    human_bytes(MAX)
                ),
            )),
        }
    }

    fn verify(&self, raw: RawVerify) -> Result<VerifyConfig, ConfigError> {
        const MAX: Duration = Duration::from_secs(366 * 24 * 3600);
        let key = ["verify", "full_every"];
        let full_every = humantime::parse_duration(raw.full_every.trim()).map_err(|e| {
            self.error(
                &key,
                format!(
                    "{:?} is not a duration such as 24h, 12h or 7d: {e}",
                    raw.full_every
                ),
            )
        })?;
        if full_every < Duration::from_secs(1) || full_every > MAX {
            return Err(self.error(&key, "must be between 1s and 366d"));
        }
        Ok(VerifyConfig { full_every })
    }

    fn source(
        &self,
        raw: RawSource,
        resolve: &dyn Fn(&Path) -> PathBuf,
    ) -> Result<SourceConfig, ConfigError> {
        if raw.max_bytes.is_some() && raw.yaml.is_none() {
            return Err(self.error(
                &["source", "max_bytes"],
                "limits the size of the roles file: only for a `yaml` source",
            ));
        }
        match (raw.yaml, raw.sql) {
            (Some(file), None) => Ok(SourceConfig::Yaml(YamlSourceConfig {
                path: resolve(&file),
                max_bytes: self.max_bytes(raw.max_bytes)?,
            })),
            (None, Some(sql)) => {
                let k = |key: &'static str| ["source", "sql", key];
                let (url, url_origin) = match (sql.url_env, sql.url_file) {
                    // Named by key, not by value: see `secret_env`.
                    (Some(var), None) => (
                        self.secret_env(&k("url_env"), &var)?,
                        "source.sql.url_env".to_string(),
                    ),
                    (None, Some(file)) => (
                        self.secret_file(&k("url_file"), &resolve(&file))?,
                        "source.sql.url_file".to_string(),
                    ),
                    _ => {
                        return Err(self
                            .error(&["source", "sql"], "set exactly one of url_env or url_file"))
                    }
                };
                if sql.query.trim().is_empty() {
                    return Err(self.error(&k("query"), "must not be empty"));
                }
                if !(sql.statement_timeout_seconds > 0.0 && sql.statement_timeout_seconds <= 3600.0)
                {
                    return Err(self.error(
                        &k("statement_timeout_seconds"),
                        format!(
                            "must be more than 0 and at most 3600 (got {})",
                            sql.statement_timeout_seconds
                        ),
                    ));
                }
                Ok(SourceConfig::Sql(SqlSourceConfig {
                    url: resolve_sqlite_path(url, resolve),
                    url_origin,
                    query: sql.query,
                    statement_timeout: Duration::from_secs_f64(sql.statement_timeout_seconds),
                }))
            }
            _ => Err(self.error(&["source"], "set exactly one of yaml or sql")),
        }
    }
}

/// Checks that a config number lies in `min..=max` (NaN and infinities never do), naming the
/// key and its line otherwise.
fn in_range<T>(
    checker: &Checker<'_>,
    key: &[&str],
    value: T,
    min: T,
    max: T,
) -> Result<(), ConfigError>
where
    T: PartialOrd + std::fmt::Display + Copy,
{
    if value >= min && value <= max {
        Ok(())
    } else {
        Err(checker.error(
            key,
            format!("must be between {min} and {max} (got {value})"),
        ))
    }
}

/// A relative SQLite file in the URL (`sqlite://roles.db`, `sqlite:roles.db`) is, like every
/// other path in the config, relative to the config file's folder, not to the working folder.
fn resolve_sqlite_path(url: SecretString, resolve: &dyn Fn(&Path) -> PathBuf) -> SecretString {
    use secrecy::ExposeSecret;
    let text = url.expose_secret();
    let Some(rest) = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
    else {
        return url;
    };
    let (file, query) = rest
        .split_once('?')
        .map_or((rest, None), |(f, q)| (f, Some(q)));
    if file.is_empty() || file.starts_with('/') || file.starts_with(":memory:") {
        return url;
    }
    let absolute = resolve(Path::new(file));
    let query = query.map(|q| format!("?{q}")).unwrap_or_default();
    SecretString::from(format!("sqlite://{}{query}", absolute.display()))
}

/// `given` with any `user:password@` removed from its authority, for messages: the URL as
/// written may not even parse, and must still not be echoed with its credentials.
fn without_userinfo(given: &str) -> String {
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

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Checks `log.level`: a level, or `EnvFilter` directives (`info,studio_role_sync=debug`)
/// whose every level is a real one. `EnvFilter` alone reads a bare word such as `warning` as
/// the name of a *target*, which silences everything else: so every bare word must be a level.
pub fn check_log_level(level: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];
    let usage = "use one of error, warn, info, debug, trace, off, \
                 or directives such as \"info,studio_role_sync=debug\"";
    if level.trim().is_empty() {
        return Err(format!("must not be empty; {usage}"));
    }
    for directive in level.split(',').map(str::trim) {
        let word = directive
            .rsplit_once('=')
            .map_or(directive, |(_, l)| l)
            .trim()
            .to_ascii_lowercase();
        if LEVELS.contains(&word.as_str()) {
            continue;
        }
        let hint = LEVELS
            .iter()
            .find(|l| !word.is_empty() && (l.starts_with(&word) || word.starts_with(*l)))
            .map(|l| format!(" (did you mean {l:?}?)"))
            .unwrap_or_default();
        return Err(if directive == level.trim() {
            format!("{level:?} is not a log level{hint}; {usage}")
        } else {
            format!("{directive:?} in {level:?} is not a log level directive{hint}; {usage}")
        });
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(|_| ())
        .map_err(|e| format!("{level:?} is not a valid filter: {e}; {usage}"))
}

/// Checks a cron expression with seconds (6 or 7 fields), as the scheduler reads it.
pub fn check_schedule(expr: &str) -> Result<(), String> {
    let cron = parse_schedule(expr)?;
    match cron.find_next_occurrence(&chrono::Utc::now(), false) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "{expr:?} never fires (no matching time within a year), e.g. a day that no month has"
        )),
    }
}

/// Parses a cron expression with seconds (6 fields, or 7 with a year).
pub fn parse_schedule(expr: &str) -> Result<croner::Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err(format!(
            "{expr:?} has {fields} fields; write cron with seconds, e.g. \"0 */15 * * * *\""
        ));
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Required)
        .year(croner::parser::Year::Optional)
        .build()
        .parse(expr)
        .map_err(|e| format!("{expr:?} is not a valid cron expression: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        std::env::set_var("CONFIG_TEST_TOKEN", "t0ken");
        Config::from_text(Path::new("/etc/srs/config.yaml"), text)
    }

    const GOOD: &str = "studio:\n  base_url: https://school.instructuremedia.com\n  token_env: CONFIG_TEST_TOKEN\nroles:\n  managed: [Admin]\nsource:\n  yaml: roles.yaml\n";

    #[test]
    fn good_config_resolves_paths_and_defaults() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.roles_file(), Some(Path::new("/etc/srs/roles.yaml")));
        assert_eq!(c.history, Path::new("/etc/srs/state/history.db"));
        assert_eq!(c.studio.batch_size, 50);
        assert_eq!(c.timezone, chrono_tz::UTC);
        assert!(
            !format!("{c:?}").contains("t0ken"),
            "Debug must not show secrets"
        );
    }

    #[test]
    fn unknown_key_names_its_line() {
        let e = load(&GOOD.replace("  managed:", "  manged: [X]\n  managed:")).unwrap_err();
        assert_eq!(e.line, Some(5));
        assert!(e.to_string().contains("unknown field `manged`"), "{e}");
        assert!(e.to_string().starts_with("/etc/srs/config.yaml:5:"), "{e}");
    }

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
    fn bad_values_name_key_and_line() {
        let e = load(&GOOD.replace("[Admin]", "[]")).unwrap_err();
        assert_eq!(
            (e.line, e.message.contains("roles.managed")),
            (Some(5), true),
            "{e}"
        );
        let e = load(&format!("{GOOD}schedule: \"every day\"\n")).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
        let e = load(&GOOD.replace("CONFIG_TEST_TOKEN", "CONFIG_TEST_UNSET_VAR")).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert!(
            e.message
                .starts_with("studio.token_env: the environment variable named here is not set"),
            "{e}"
        );
        let e = load(&format!("{GOOD}safety:\n  max_removal_ratio: 2\n")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
    }

    #[test]
    fn identity_settings_are_checked_with_their_line() {
        let c = load(GOOD).unwrap();
        assert_eq!(c.verify.full_every, Duration::from_secs(24 * 3600));
        let text = GOOD.replace("[Admin]\n", "[Admin, Sub, Cap]\n  exclusive: [[Admin, Sub]]\n")
            + "safety:\n  roles:\n    Admin: {max_removals: 2}\n    Cap:\n      max_removal_ratio: 0.5\nverify:\n  full_every: 12h\n";
        let c = load(&text).unwrap();
        assert_eq!(
            c.roles.managed.conflict(c.roles.managed.all()),
            Some((0, 1))
        );
        assert_eq!(c.safety.roles[&0].max_removals, Some(2));
        assert_eq!(c.safety.roles[&2].max_removal_ratio, Some(0.5));
        assert_eq!(c.verify.full_every, Duration::from_secs(12 * 3600));
        for (from, to, line, message) in [
            (
                "[[Admin, Sub]]",
                "[[Admin, Teacher]]",
                6,
                "\"Teacher\" is not in roles.managed",
            ),
            ("[[Admin, Sub]]", "[[Admin]]", 6, "at least two roles"),
            (
                "    Admin: {",
                "    Admn: {",
                11,
                "\"Admn\" is not in roles.managed",
            ),
            (
                "{max_removals: 2}",
                "{max_removal: 2}",
                11,
                "unknown field `max_removal`",
            ),
            ("0.5", "1.5", 13, "must be between 0 and 1"),
            ("12h", "soon", 15, "not a duration"),
            ("12h", "0s", 15, "between 1s and 366d"),
        ] {
            let e = load(&text.replace(from, to)).unwrap_err();
            assert_eq!(e.line, Some(line), "{to}: {e}");
            assert!(e.to_string().contains(message), "{to}: {e}");
        }
    }

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
        for ratio in [".nan", ".inf", "-0.1"] {
            let e = load(&format!("{GOOD}safety:\n  max_removal_ratio: {ratio}\n")).unwrap_err();
            assert_eq!(e.line, Some(9), "{ratio}: {e}");
        }
        let e = load(&format!("{GOOD}safety:\n  max_removals: 9999999999999\n")).unwrap_err();
        assert!(e.message.contains("safety.max_removals"), "{e}");
        let sql = |timeout: &str| {
            GOOD.replace(
                "  yaml: roles.yaml\n",
                &format!("  sql:\n    url_env: CONFIG_TEST_TOKEN\n    query: SELECT email, role FROM g\n    statement_timeout_seconds: {timeout}\n"),
            )
        };
        for timeout in [".inf", ".nan", "0", "1e9"] {
            let e = load(&sql(timeout)).unwrap_err();
            assert_eq!(e.line, Some(10), "{timeout}: {e}");
            assert!(e.message.contains("statement_timeout_seconds"), "{e}");
        }
        assert!(load(&studio("requests_per_second: 0.5")).is_ok());
    }

    #[test]
    fn redirect_uris_keep_the_code_off_plain_http() {
        let oauth = |redirect: &str| {
            std::env::set_var("CONFIG_TEST_SECRET", "s");
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

    #[test]
    fn relative_sqlite_files_resolve_from_the_config_folder() {
        use secrecy::ExposeSecret;
        let text = GOOD.replace(
            "  yaml: roles.yaml\n",
            "  sql:\n    url_env: CONFIG_TEST_SQL_URL\n    query: SELECT email, role FROM g\n",
        );
        for (given, expected) in [
            (
                "sqlite://hr/roles.db?mode=ro",
                "sqlite:///etc/srs/hr/roles.db?mode=ro",
            ),
            ("sqlite:roles.db", "sqlite:///etc/srs/roles.db"),
            ("sqlite:///abs/roles.db", "sqlite:///abs/roles.db"),
            ("postgres://db/hr", "postgres://db/hr"),
        ] {
            std::env::set_var("CONFIG_TEST_SQL_URL", given);
            let c = load(&text).unwrap();
            let SourceConfig::Sql(sql) = &c.source else {
                panic!("sql source")
            };
            assert_eq!(sql.url.expose_secret(), expected);
        }
    }

    #[test]
    fn secrets_written_in_the_wrong_place_are_never_echoed() {
        // The token itself pasted where a variable name or a path belongs.
        let pasted = "sk_live_9f8e7d6c5b4a";
        for auth in [
            format!("  token_env: {pasted}\n"),
            format!("  token_file: {pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_env: {pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_file: /{pasted}\n"),
            format!("  oauth:\n    client_id: c\n    client_secret_env: CONFIG_TEST_TOKEN\n    refresh_token_file: {pasted}\n"),
        ] {
            let text = GOOD.replace("  token_env: CONFIG_TEST_TOKEN\n", &auth);
            let e = load(&text).unwrap_err();
            assert!(!e.to_string().contains(pasted), "{e}");
            assert!(e.line.is_some() && e.message.contains("named here"), "{e}");
        }
        let sql = GOOD.replace(
            "  yaml: roles.yaml\n",
            &format!("  sql:\n    url_file: {pasted}\n    query: SELECT 1\n"),
        );
        let e = load(&sql).unwrap_err();
        assert!(!e.to_string().contains(pasted), "{e}");
        assert_eq!(e.line, Some(8), "{e}");
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

    #[test]
    fn log_levels_are_checked() {
        for good in [
            "info",
            "WARN",
            "off",
            "info,studio_role_sync=debug",
            "warn,sqlx=error",
        ] {
            assert_eq!(check_log_level(good), Ok(()), "{good}");
        }
        let e = check_log_level("warning").unwrap_err();
        assert!(
            e.starts_with("\"warning\" is not a log level (did you mean \"warn\"?)"),
            "{e}"
        );
        for bad in ["", "verbose", "info,studio_role_sync", "info,x=loud", "x=="] {
            assert!(check_log_level(bad).is_err(), "{bad}");
        }
        let e = load(&format!("{GOOD}log:\n  level: warning\n")).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert!(e.message.starts_with("log.level: \"warning\""), "{e}");
    }

    #[test]
    fn roles_file_size_limit() {
        let c = load(GOOD).unwrap();
        let SourceConfig::Yaml(y) = &c.source else {
            panic!("yaml source")
        };
        assert_eq!(y.max_bytes, 64 << 20);
        for (given, bytes) in [("200 MB", 200_000_000), ("1048576", 1 << 20), ("2 GiB", 0)] {
            let text = GOOD.replace(
                "roles.yaml\n",
                &format!("roles.yaml\n  max_bytes: {given}\n"),
            );
            match load(&text) {
                Ok(c) => {
                    let SourceConfig::Yaml(y) = &c.source else {
                        panic!("yaml source")
                    };
                    assert_eq!(y.max_bytes, bytes, "{given}");
                }
                Err(e) => {
                    assert_eq!(bytes, 0, "{given}: {e}");
                    assert_eq!(e.line, Some(8), "{e}");
                    assert!(e.message.contains("between 1 KiB and 1 GiB"), "{e}");
                }
            }
        }
    }

    #[test]
    fn yaml_bombs_in_the_config_are_refused_with_their_line() {
        let e = load(&GOOD.replace("[Admin]", "&r [Admin]\n  protected: *r")).unwrap_err();
        assert_eq!(e.line, Some(5), "{e}");
        assert!(e.message.contains("YAML anchor"), "{e}");
        let deep = format!(
            "{GOOD}timezone: {}{}\n",
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        let e = load(&deep).unwrap_err();
        assert_eq!(e.line, Some(8), "{e}");
    }

    #[test]
    fn schedules() {
        assert!(check_schedule("0 */15 * * * *").is_ok());
        assert!(check_schedule("*/15 * * * *").is_err());
        assert!(check_schedule("0 61 * * * *").is_err());
        let never = check_schedule("0 0 0 30 2 *").unwrap_err();
        assert!(never.contains("never fires"), "{never}");
    }
}
