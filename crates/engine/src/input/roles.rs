//! Role names as the planner sees them.
//!
//! Only roles listed in `roles.managed` are ever added or removed, and there are few of them,
//! so a user's managed roles are a bit set over that list ([`RoleSet`]) rather than a set of
//! strings: a million desired grants then cost a few bytes each, and comparing a user's desired
//! and current roles is one integer operation.

use std::fmt;

/// The most managed roles one config may list: the width of [`RoleSet`].
pub(crate) const MAX_MANAGED_ROLES: usize = 64;

/// The roles listed in `roles.managed`, in config order. Role names are opaque and
/// case-sensitive (Studio does not document its role enum).
///
/// It also carries `roles.exclusive`: groups of managed roles a Studio user can hold only one
/// of (Studio's admin levels, caption roles only on non-admins). That is part of the role
/// model, so every reader of roles (the roles file, SQL rows, the planner) sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagedRoles {
    names: Vec<String>,
    exclusive: Vec<RoleSet>,
}

impl ManagedRoles {
    /// Builds the list; the caller has checked that names are unique, non-empty and at most
    /// [`MAX_MANAGED_ROLES`].
    pub fn new(names: Vec<String>) -> Self {
        assert!(names.len() <= MAX_MANAGED_ROLES, "too many managed roles");
        ManagedRoles {
            names,
            exclusive: Vec::new(),
        }
    }

    /// The same roles with groups of mutually exclusive roles (each of at least two roles).
    pub fn with_exclusive(mut self, groups: Vec<RoleSet>) -> Self {
        self.exclusive = groups;
        self
    }

    /// The groups of `roles.exclusive`.
    pub fn exclusive_groups(&self) -> &[RoleSet] {
        &self.exclusive
    }

    /// Two roles of `set` that one exclusive group forbids together, lowest first.
    pub fn conflict(&self, set: RoleSet) -> Option<(usize, usize)> {
        self.exclusive.iter().find_map(|g| {
            let mut both = g.intersection(set).iter();
            Some((both.next()?, both.next()?))
        })
    }

    /// Whether roles `a` and `b` share an exclusive group.
    pub fn excludes(&self, a: usize, b: usize) -> bool {
        a != b
            && self
                .exclusive
                .iter()
                .any(|g| g.contains(a) && g.contains(b))
    }

    /// The index of a managed role, or `None` for a role this config does not manage.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    pub fn name(&self, index: usize) -> &str {
        &self.names[index]
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The managed roles among a Studio user's `role_names`; other roles are invisible.
    pub fn set_of<'a>(&self, role_names: impl IntoIterator<Item = &'a str>) -> RoleSet {
        let mut set = RoleSet::EMPTY;
        for name in role_names {
            if let Some(i) = self.index(name) {
                set.insert(i);
            }
        }
        set
    }

    /// Every managed role.
    pub fn all(&self) -> RoleSet {
        let mut set = RoleSet::EMPTY;
        for i in 0..self.names.len() {
            set.insert(i);
        }
        set
    }
}

impl fmt::Display for ManagedRoles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}]", self.names.join(", "))
    }
}

/// A set of managed roles, by index into [`ManagedRoles`].
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoleSet(u64);

impl RoleSet {
    pub const EMPTY: RoleSet = RoleSet(0);

    pub fn single(index: usize) -> Self {
        RoleSet(1 << index)
    }

    pub fn insert(&mut self, index: usize) {
        self.0 |= 1 << index;
    }

    pub fn remove(&mut self, index: usize) {
        self.0 &= !(1 << index);
    }

    pub fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Roles in `self` that are not in `other`.
    pub fn minus(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 & !other.0)
    }

    pub fn union(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 | other.0)
    }

    pub fn intersection(self, other: RoleSet) -> RoleSet {
        RoleSet(self.0 & other.0)
    }

    /// Indexes of the roles in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        let bits = self.0;
        (0..MAX_MANAGED_ROLES).filter(move |i| bits & (1 << i) != 0)
    }
}

impl fmt::Debug for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
        let s = managed.set_of(["Teacher", "CaptionEditor"]);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(managed.all().minus(s), RoleSet::single(0));
        assert_eq!(
            managed.index("admin"),
            None,
            "role names are case-sensitive"
        );
    }
}
