//! The user store and its indexes.
//!
//! Benchmarks run with 200,000 users, so nothing on a request path scans all users:
//! users by id in a `HashMap`, ids by role in a `BTreeSet` per role (a role listing page is a
//! skip/take over that set), ids by lower-cased trimmed email in a `BTreeMap` (a prefix search is
//! a range scan).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::SimUser;

pub(crate) struct Store {
    users: HashMap<u64, SimUser>,
    by_role: BTreeMap<String, BTreeSet<u64>>,
    by_email: BTreeMap<String, Vec<u64>>,
    next_id: u64,
}

/// The index key of an email: trimmed and lower-cased; empty means "no email".
pub(crate) fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

/// One page of a search.
pub(crate) struct Page {
    pub users: Vec<SimUser>,
    pub total: u64,
}

impl Store {
    pub(crate) fn new(users: Vec<SimUser>) -> Store {
        let mut store = Store {
            users: HashMap::with_capacity(users.len()),
            by_role: BTreeMap::new(),
            by_email: BTreeMap::new(),
            next_id: 1,
        };
        for user in users {
            store.insert(user);
        }
        store
    }

    pub(crate) fn get(&self, id: u64) -> Option<&SimUser> {
        self.users.get(&id)
    }

    pub(crate) fn contains(&self, id: u64) -> bool {
        self.users.contains_key(&id)
    }

    pub(crate) fn all(&self) -> Vec<SimUser> {
        let mut all: Vec<SimUser> = self.users.values().cloned().collect();
        all.sort_by_key(|u| u.id);
        all
    }

    pub(crate) fn holders(&self, role: &str) -> Vec<SimUser> {
        self.by_role
            .get(role)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| self.users.get(id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(crate) fn with_email(&self, email: &str) -> Vec<SimUser> {
        let key = email_key(email);
        if key.is_empty() {
            return Vec::new();
        }
        let mut ids = self.by_email.get(&key).cloned().unwrap_or_default();
        ids.sort_unstable();
        ids.iter()
            .filter_map(|id| self.users.get(id))
            .cloned()
            .collect()
    }

    /// Inserts `user`, replacing any user with the same id. Duplicate role names are dropped.
    pub(crate) fn insert(&mut self, mut user: SimUser) {
        self.remove(user.id);
        let mut seen = BTreeSet::new();
        user.role_names.retain(|r| seen.insert(r.clone()));
        for role in &user.role_names {
            self.by_role
                .entry(role.clone())
                .or_default()
                .insert(user.id);
        }
        if let Some(email) = &user.email {
            let key = email_key(email);
            if !key.is_empty() {
                self.by_email.entry(key).or_default().push(user.id);
            }
        }
        self.next_id = self.next_id.max(user.id.saturating_add(1));
        self.users.insert(user.id, user);
    }

    fn remove(&mut self, id: u64) -> Option<SimUser> {
        let user = self.users.remove(&id)?;
        for role in &user.role_names {
            if let Some(ids) = self.by_role.get_mut(role) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_role.remove(role);
                }
            }
        }
        if let Some(email) = &user.email {
            let key = email_key(email);
            if let Some(ids) = self.by_email.get_mut(&key) {
                ids.retain(|&i| i != id);
                if ids.is_empty() {
                    self.by_email.remove(&key);
                }
            }
        }
        Some(user)
    }

    /// Returns false when the user does not exist.
    pub(crate) fn set_roles(&mut self, id: u64, roles: Vec<String>) -> bool {
        let Some(mut user) = self.users.get(&id).cloned() else {
            return false;
        };
        user.role_names = roles;
        self.insert(user);
        true
    }

    /// Replaces user `id` by a copy with a fresh id; `None` when the user does not exist.
    pub(crate) fn recreate(&mut self, id: u64) -> Option<u64> {
        let mut user = self.remove(id)?;
        user.id = self.next_id;
        let new_id = user.id;
        self.insert(user);
        Some(new_id)
    }

    /// Adds `role` to user `id` (idempotent). The user must exist.
    pub(crate) fn add_role(&mut self, id: u64, role: &str) {
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        if !user.role_names.iter().any(|r| r == role) {
            user.role_names.push(role.to_string());
            self.by_role.entry(role.to_string()).or_default().insert(id);
        }
    }

    /// Removes `role` from user `id` (no-op when not held). The user must exist.
    pub(crate) fn remove_role(&mut self, id: u64, role: &str) {
        let Some(user) = self.users.get_mut(&id) else {
            return;
        };
        let before = user.role_names.len();
        user.role_names.retain(|r| r != role);
        if user.role_names.len() != before {
            if let Some(ids) = self.by_role.get_mut(role) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_role.remove(role);
                }
            }
        }
    }

    /// Searches by role and/or email prefix (both already validated; at least one is set, the
    /// email is an index key: trimmed, lower-cased, non-empty). Results are sorted by id.
    pub(crate) fn search(
        &self,
        role: Option<&str>,
        email_prefix: Option<&str>,
        page: u64,
        per_page: u64,
    ) -> Page {
        let offset =
            usize::try_from(page.saturating_sub(1).saturating_mul(per_page)).unwrap_or(usize::MAX);
        // One page of `ids` (sorted, distinct), without touching the users of other pages.
        let page_of = |ids: &mut dyn ExactSizeIterator<Item = &u64>| Page {
            total: ids.len() as u64,
            users: ids
                .skip(offset)
                .take(per_page as usize)
                .filter_map(|id| self.users.get(id))
                .cloned()
                .collect(),
        };
        match (role, email_prefix) {
            (Some(role), None) => match self.by_role.get(role) {
                Some(ids) => page_of(&mut ids.iter()),
                None => page_of(&mut [].iter()),
            },
            (role, Some(prefix)) => {
                let mut ids: Vec<u64> = self
                    .by_email
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .flat_map(|(_, ids)| ids.iter().copied())
                    .collect();
                if let Some(role) = role {
                    let holders = self.by_role.get(role);
                    ids.retain(|id| holders.is_some_and(|h| h.contains(id)));
                }
                ids.sort_unstable();
                ids.dedup();
                page_of(&mut ids.iter())
            }
            (None, None) => Page {
                users: Vec::new(),
                total: 0,
            },
        }
    }
}
