//! `roles`: the roles this tool manages (the only ones it ever adds or removes), whether
//! unlisted holders lose them, the protected emails, and groups of mutually exclusive roles.

use super::checker::Checker;
use super::ConfigError;
use crate::input::roles::{ManagedRoles, RoleSet, MAX_MANAGED_ROLES};
use serde::Deserialize;
use std::collections::HashSet;

#[derive(Debug)]
pub struct RolesConfig {
    pub managed: ManagedRoles,
    pub remove_unlisted: bool,
    /// Normalised emails whose roles are never removed.
    pub protected: HashSet<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoles {
    managed: Vec<String>,
    #[serde(default = "yes")]
    remove_unlisted: bool,
    #[serde(default)]
    protected: Vec<String>,
    #[serde(default)]
    exclusive: Vec<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl Checker<'_> {
    pub(super) fn roles(&self, raw: RawRoles) -> Result<RolesConfig, ConfigError> {
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
            let normal = crate::input::email_address::normalize(email);
            if !crate::input::email_address::is_valid(&normal) {
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
}
