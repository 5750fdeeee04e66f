//! `source.ldap`: a directory whose groups grant roles. The bind password is a secret (read
//! from `password_env` or `password_file`, never shown); plain `ldap://` is refused unless the
//! server is on this machine or `starttls: true` upgrades it, so the password never crosses a
//! network in clear. Every group's roles are checked against `roles.managed` here, once.

use super::checker::Checker;
use super::source::strs;
use super::ConfigError;
use crate::roles::RoleSet;
use secrecy::SecretString;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug)]
pub struct LdapSourceConfig {
    pub url: url::Url,
    pub starttls: bool,
    pub bind_dn: String,
    /// The bind password: `Debug` shows it redacted.
    pub password: SecretString,
    /// Where the password came from (`sources[2].ldap.password_env`), for messages.
    pub password_origin: String,
    pub base_dn: String,
    pub email_attribute: String,
    pub groups: Vec<LdapGroup>,
    pub nested: LdapNested,
    /// Entries per page of the paged-results control; 0 turns paging off.
    pub page_size: u32,
    /// The whole read (bind, searches, member lookups) must finish within this.
    pub timeout: Duration,
    /// `ca_file`: a private CA trusted, on top of the system's store, for `ldaps://` and
    /// `starttls`.
    pub extra_roots: Box<super::ca_file::ExtraRoots>,
}

/// One `groups` entry: whose members get `roles`.
#[derive(Debug, Clone)]
pub struct LdapGroup {
    pub members: LdapMembers,
    pub roles: RoleSet,
}

impl LdapGroup {
    /// The group as written (`cn=media-admins,...` or `(departmentNumber=4411)`).
    pub fn shown(&self) -> &str {
        match &self.members {
            LdapMembers::Dn(d) | LdapMembers::Filter(d) => d,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapMembers {
    /// The members (`member`, `uniqueMember`, `memberUid`) of the group entry at this DN.
    Dn(String),
    /// Every entry under `base_dn` that matches this filter.
    Filter(String),
}

/// `nested`: how a group inside a group is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LdapNested {
    /// A member that is a group is reported, not followed.
    Off,
    /// Groups among the members are read in turn (any server), each once.
    Expand,
    /// Active Directory: the server follows the chain (matching rule
    /// 1.2.840.113556.1.4.1941), one search per group.
    InChain,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLdap {
    url: String,
    #[serde(default)]
    starttls: bool,
    bind_dn: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    base_dn: String,
    #[serde(default = "default_email_attribute")]
    email_attribute: String,
    groups: Vec<RawGroup>,
    #[serde(default = "default_nested")]
    nested: LdapNested,
    #[serde(default = "default_page_size")]
    page_size: u32,
    #[serde(default = "default_timeout")]
    timeout_seconds: f64,
    ca_file: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    dn: Option<String>,
    filter: Option<String>,
    roles: Vec<String>,
}

fn default_email_attribute() -> String {
    "mail".into()
}
fn default_nested() -> LdapNested {
    LdapNested::Off
}
fn default_page_size() -> u32 {
    500
}
fn default_timeout() -> f64 {
    60.0
}

/// The most groups one LDAP source may list.
const MAX_GROUPS: usize = 64;

impl Checker<'_> {
    pub(super) fn ldap(
        &self,
        raw: RawLdap,
        at: &[String],
        resolve: &dyn Fn(&Path) -> PathBuf,
        managed: &crate::roles::ManagedRoles,
    ) -> Result<LdapSourceConfig, ConfigError> {
        let k = |key: &str| -> Vec<String> {
            let mut v = at.to_vec();
            v.push(key.to_string());
            v
        };
        let url = url::Url::parse(raw.url.trim())
            .map_err(|e| self.error_at(&k("url"), format!("not a URL ({e})")))?;
        if url.username() != "" || url.password().is_some() {
            return Err(self.error_at(
                &k("url"),
                "must not hold credentials: set bind_dn and password_env or password_file",
            ));
        }
        match url.scheme() {
            "ldaps" if raw.starttls => {
                return Err(self.error_at(
                    &k("starttls"),
                    "ldaps:// is TLS already: starttls is for ldap:// only",
                ))
            }
            "ldaps" => {}
            "ldap" if raw.starttls || is_loopback(&url) => {}
            "ldap" => {
                return Err(self.error_at(
                    &k("url"),
                    "plain ldap:// would send the bind password in clear: use ldaps://, or \
                     starttls: true (ldap:// without it only on a loopback address)",
                ))
            }
            other => {
                return Err(self.error_at(
                    &k("url"),
                    format!("scheme {other:?} is not ldaps:// or ldap://"),
                ))
            }
        }
        if url.host().is_none() {
            return Err(self.error_at(&k("url"), "names no server"));
        }
        let origin = |key: &str| k(key).join(".").replace(".[", "[");
        let (password, password_origin) = match (raw.password_env, raw.password_file) {
            (Some(var), None) => (
                self.secret_env(&strs(&k("password_env")), &var)?,
                origin("password_env"),
            ),
            (None, Some(file)) => (
                self.secret_file(&strs(&k("password_file")), &resolve(&file))?,
                origin("password_file"),
            ),
            _ => return Err(self.error_at(at, "set exactly one of password_env or password_file")),
        };
        for (key, value) in [("bind_dn", &raw.bind_dn), ("base_dn", &raw.base_dn)] {
            if value.trim().is_empty() {
                return Err(self.error_at(&k(key), "must not be empty"));
            }
        }
        let attribute = raw.email_attribute.trim();
        if attribute.is_empty()
            || !attribute
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
        {
            return Err(self.error_at(
                &k("email_attribute"),
                "must be an attribute name (letters, digits, -)",
            ));
        }
        if raw.groups.is_empty() || raw.groups.len() > MAX_GROUPS {
            return Err(self.error_at(
                &k("groups"),
                format!("list between 1 and {MAX_GROUPS} groups"),
            ));
        }
        let mut groups = Vec::with_capacity(raw.groups.len());
        for (i, g) in raw.groups.into_iter().enumerate() {
            let gk = {
                let mut v = k("groups");
                v.push(format!("[{}]", i + 1));
                v
            };
            let members = match (g.dn, g.filter) {
                (Some(dn), None) if !dn.trim().is_empty() => LdapMembers::Dn(dn.trim().into()),
                (None, Some(f)) => {
                    let f = f.trim().to_string();
                    if ldap3::parse_filter(&f).is_err() {
                        return Err(self.error_at(
                            &gk,
                            format!(
                                "filter {} is not an LDAP filter (RFC 4515, in parentheses)",
                                crate::email_address::shown(&f)
                            ),
                        ));
                    }
                    LdapMembers::Filter(f)
                }
                _ => return Err(self.error_at(&gk, "set exactly one of dn or filter")),
            };
            let mut roles = RoleSet::EMPTY;
            for role in &g.roles {
                match managed.index(role) {
                    Some(r) => roles.insert(r),
                    None => {
                        return Err(self.error_at(
                            &gk,
                            format!("role {role:?} is not in roles.managed {managed}"),
                        ))
                    }
                }
            }
            if roles.is_empty() {
                return Err(self.error_at(&gk, "roles: list at least one managed role"));
            }
            if let Some((a, b)) = managed.conflict(roles) {
                return Err(self.error_at(
                    &gk,
                    format!(
                        "{} and {} are mutually exclusive (roles.exclusive)",
                        managed.name(a),
                        managed.name(b)
                    ),
                ));
            }
            groups.push(LdapGroup { members, roles });
        }
        if !(raw.timeout_seconds > 0.0 && raw.timeout_seconds <= 3600.0) {
            return Err(self.error_at(
                &k("timeout_seconds"),
                format!(
                    "must be more than 0 and at most 3600 (got {})",
                    raw.timeout_seconds
                ),
            ));
        }
        if raw.page_size > 100_000 {
            return Err(self.error_at(
                &k("page_size"),
                "must be at most 100000 (0 turns paging off)",
            ));
        }
        let extra_roots =
            match raw.ca_file {
                Some(_) if url.scheme() == "ldap" && !raw.starttls => return Err(self.error_at(
                    &k("ca_file"),
                    "is for TLS: use ldaps:// or starttls: true (plain ldap:// has no certificate)",
                )),
                Some(file) if self.reads_secrets() => super::ca_file::read_ca_file(&resolve(&file))
                    .map_err(|m| self.error_at(&k("ca_file"), m))?,
                _ => Default::default(),
            };
        Ok(LdapSourceConfig {
            extra_roots: Box::new(extra_roots),
            url,
            starttls: raw.starttls,
            bind_dn: raw.bind_dn.trim().into(),
            password,
            password_origin,
            base_dn: raw.base_dn.trim().into(),
            email_attribute: attribute.into(),
            groups,
            nested: raw.nested,
            page_size: raw.page_size,
            timeout: Duration::from_secs_f64(raw.timeout_seconds),
        })
    }
}

/// Whether the URL's server is this machine. An `ldap:` URL's host is opaque to the URL
/// parser (not a special scheme), so an address is recognised here.
fn is_loopback(url: &url::Url) -> bool {
    match url.host_str() {
        Some(h) if h.eq_ignore_ascii_case("localhost") => true,
        Some(h) => h
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}
