//! The config file: the top-level [`Config`], loading, and the order sections are checked in.
//!
//! Parsing happens in two layers. `Raw*` structs mirror the file one to one and reject
//! unknown keys (serde gives the line). [`Config`] is what the rest of the program uses:
//! paths resolved against the config file's folder, secrets read into `secrecy` types, and
//! every cross-field rule checked, with the line of the offending key in the message.
//!
//! Each section lives in its own file with its types, defaults and checks (`studio.rs`,
//! `roles.rs`, `source.rs`, ...). A new section adds its file, one field to [`Config`] and
//! `RawConfig`, and one call in [`Checker::build`]; nothing else here changes.

pub(crate) mod ca_file;
mod checker;
mod console;
mod flapping;
mod ha;
mod history;
mod history_postgres;
mod ldap;
mod log;
mod notify;
mod oauth;
mod pending;
mod roles;
mod safety;
mod schedule;
mod secrets;
mod source;
mod sqlite_url;
mod studio;
mod urls;
mod verify;

#[cfg(test)]
mod tests;

pub use ca_file::ExtraRoots;
pub use console::{ConsoleAuth, ConsoleConfig};
pub use flapping::FlappingConfig;
pub use ha::{HaConfig, DEFAULT_LEASE};
pub use history::RetentionConfig;
pub use history_postgres::{PostgresHistory, DEFAULT_SCHEMA as DEFAULT_HISTORY_SCHEMA};
pub use log::{check_log_level, LogConfig, LogFormat};
pub use notify::{EmailConfig, NotifyConfig, WebhookConfig, WebhookFormat};
pub use oauth::OAuthConfig;
pub use pending::PendingConfig;
pub use roles::RolesConfig;
pub use schedule::{check_schedule, parse_schedule};
pub use secrets::{process_env, read_secret_file, Env};
pub use source::{
    CsvSourceConfig, LdapGroup, LdapMembers, LdapNested, LdapSourceConfig, SourceConfig,
    SqlSourceConfig, YamlSourceConfig,
};
pub use studio::{AuthConfig, StudioConfig};
pub use verify::VerifyConfig;

use crate::input::safety_limits::SafetyLimits;
use checker::Checker;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

impl ConfigError {
    /// An error at `key` (`["studio", "burst"]`) of the config file `file` whose text is
    /// `text`, on that key's line: how every config problem is worded, at load or later (a
    /// schedule the daemon cannot build).
    pub(crate) fn at_key(
        file: &Path,
        text: &str,
        key: &[&str],
        message: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: file.to_path_buf(),
            line: crate::input::yaml_lines::key_line(text, key),
            message: format!("{}: {}", key.join(".").replace(".[", "["), message.into()),
        }
    }
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
    /// `source:` (one) or `sources:` (several, whose union is the desired state); never empty.
    pub sources: Vec<SourceConfig>,
    pub verify: VerifyConfig,
    pub schedule: String,
    pub timezone: chrono_tz::Tz,
    /// The SQLite history's file (its default when PostgreSQL holds the history).
    pub history: PathBuf,
    /// `history.url_env` / `url_file` / `url` and `schema`: the history on PostgreSQL;
    /// `None`: SQLite at `history`.
    pub history_postgres: Option<PostgresHistory>,
    /// `history.keep_*`: how long runs are kept (`history` written as a mapping).
    pub retention: RetentionConfig,
    /// `pending`: the back-off of emails Studio does not know yet.
    pub pending: PendingConfig,
    pub http: HttpConfig,
    pub log: LogConfig,
    /// `notify:` where messages about the daemon's health go (`notify.rs`).
    pub notify: NotifyConfig,
    /// `flapping:` when a repeated change is reported as a fight (`flapping.rs`).
    pub flapping: FlappingConfig,
    /// `console:`, the read-only history console; `None`: off.
    pub console: Option<ConsoleConfig>,
    /// `ha:`, the lease of several daemons on one PostgreSQL history (its default when
    /// `None`: a PostgreSQL history always has a lease).
    pub ha: Option<HaConfig>,
}

/// `http`: where the metrics and health endpoints listen.
#[derive(Debug)]
pub struct HttpConfig {
    pub listen: SocketAddr,
}

/// The file as written: one field per top-level key, unknown keys refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    studio: studio::RawStudio,
    roles: roles::RawRoles,
    #[serde(default)]
    safety: safety::RawSafety,
    source: Option<source::RawSource>,
    sources: Option<Vec<source::RawSource>>,
    #[serde(default)]
    verify: verify::RawVerify,
    #[serde(default = "schedule::default_schedule")]
    schedule: String,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    history: history::RawHistory,
    #[serde(default)]
    pending: pending::RawPending,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    log: log::RawLog,
    #[serde(default)]
    notify: Option<notify::RawNotify>,
    #[serde(default)]
    flapping: flapping::RawFlapping,
    console: Option<console::RawConsole>,
    ha: Option<ha::RawHa>,
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

fn default_listen() -> String {
    "127.0.0.1:9464".into()
}

impl Config {
    /// Where the history is: the PostgreSQL schema `history` names, or else its file.
    pub fn history_place(&self) -> crate::model::history_place::HistoryPlace {
        use crate::model::history_place::HistoryPlace;
        match &self.history_postgres {
            Some(pg) => HistoryPlace::Postgres {
                url: pg.url.clone(),
                schema: pg.schema.clone(),
            },
            None => HistoryPlace::File(self.history.clone()),
        }
    }

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
        Config::parse(path, &read(path)?, None)
    }

    /// Parses config text as if read from `path` (relative paths resolve from its folder);
    /// `*_env` keys are read from the process environment.
    pub fn from_text(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::from_text_with_env(path, text, &process_env)
    }

    /// As [`from_text`](Self::from_text), reading `*_env` keys from `env` instead of the
    /// process environment (tests pass a map: they run in parallel and must not `set_var`).
    pub fn from_text_with_env(
        path: &Path,
        text: &str,
        env: Env<'_>,
    ) -> Result<Config, ConfigError> {
        Config::parse(path, text, Some(env))
    }

    /// `env`: where secrets are read from; `None`, secrets are not read at all.
    fn parse(path: &Path, text: &str, env: Option<Env<'_>>) -> Result<Config, ConfigError> {
        crate::input::yaml_guard::check(text).map_err(|r| ConfigError {
            file: path.to_path_buf(),
            line: Some(r.line),
            message: r.message,
        })?;
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: crate::input::yaml_lines::error_line(&e, text),
            message: strip_location(&e.to_string()),
        })?;
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        Checker { path, text, env }.build(raw, dir)
    }

    /// The roles file, when the first source is YAML.
    pub fn roles_file(&self) -> Option<&Path> {
        match self.sources.first() {
            Some(SourceConfig::Yaml(y)) => Some(&y.path),
            _ => None,
        }
    }

    /// The files the sources read (roles files, CSV files): the daemon watches them.
    pub fn source_files(&self) -> Vec<&Path> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                SourceConfig::Yaml(y) => Some(y.path.as_path()),
                SourceConfig::Csv(c) => Some(c.path.as_path()),
                SourceConfig::Sql(_) | SourceConfig::Ldap(_) => None,
            })
            .collect()
    }
}

impl Checker<'_> {
    /// Checks every section in file order, so the first problem reported is the topmost.
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
        let sources = self.sources(raw.source, raw.sources, &resolve, &roles.managed)?;
        self.schedule(&raw.schedule)?;
        let timezone = self.timezone(raw.timezone.as_deref())?;
        let listen = raw.http.listen.parse().map_err(|_| {
            self.error(
                &["http", "listen"],
                format!("{:?} is not an address:port", raw.http.listen),
            )
        })?;
        let log = self.log(raw.log)?;
        let notify = self.notify(raw.notify, &resolve)?;
        let flapping = self.flapping(raw.flapping)?;
        let (history, retention, history_postgres) = self.history(raw.history, &resolve)?;
        let pending = self.pending(raw.pending)?;
        let console = raw
            .console
            .map(|c| self.console(c, listen, &resolve))
            .transpose()?;
        let ha = raw.ha.map(|h| self.ha(h)).transpose()?;
        if ha.is_some() && history_postgres.is_none() {
            return Err(self.error(
                &["ha"],
                "applies to a PostgreSQL history only (history: url_env, url_file or url): a \
                 history file has one daemon, by its lock",
            ));
        }
        Ok(Config {
            ha,
            path: self.path.to_path_buf(),
            history: resolve(&history),
            history_postgres,
            retention,
            pending,
            dir,
            studio,
            roles,
            safety,
            sources,
            verify,
            schedule: raw.schedule,
            timezone,
            http: HttpConfig { listen },
            log,
            notify,
            flapping,
            console,
        })
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
/// file only, at most [`CONFIG_MAX_BYTES`](crate::input::input_file::CONFIG_MAX_BYTES).
pub fn read(path: &Path) -> Result<String, ConfigError> {
    crate::input::input_file::read_text(path, crate::input::input_file::CONFIG_MAX_BYTES).map_err(
        |e| ConfigError {
            file: path.to_path_buf(),
            line: None,
            message: format!("the config file {e}"),
        },
    )
}
