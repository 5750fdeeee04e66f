//! Several sources at once (`sources:`): each is read, and the desired state is their union
//! per email. A source that fails fails the whole load: using the others alone would revoke
//! the failed source's people. Each grant keeps its source, so `plan` and `history --email`
//! tell which one gave it; a role two sources give is two grants.

use super::{Calendar, DesiredError, DesiredState, Origin, Problem, SourceName};
use crate::config::SourceConfig;
use crate::roles::ManagedRoles;

/// What reading one source saw, for `validate`.
#[derive(Debug, Clone)]
pub struct SourceRead {
    pub name: SourceName,
    /// The file, or the SQL or LDAP source as described in messages.
    pub place: String,
    /// Rows a SQL query returned.
    pub rows: Option<u64>,
    /// Per LDAP group: members read, and those without an email.
    pub groups: Vec<GroupCount>,
    pub users: usize,
    pub grants: usize,
}

/// One LDAP group as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub group: String,
    pub members: usize,
    pub without_email: usize,
}

/// Reads every source (one after another: a failure stops before the next is asked) and
/// returns their union, with what each read. Grants whose `until` is before `calendar`'s
/// today are then no longer desired ([`DesiredState::expire`], on the union: a role another
/// source grants without an end, or later, stays).
pub async fn load_all(
    sources: &[SourceConfig],
    managed: &ManagedRoles,
    calendar: &Calendar,
) -> Result<(DesiredState, Vec<SourceRead>), DesiredError> {
    let mut parts = Vec::with_capacity(sources.len());
    let mut reads = Vec::with_capacity(sources.len());
    for source in sources {
        let (state, read) = load_one(source, managed, calendar).await?;
        reads.push(read);
        parts.push(state);
    }
    let mut all = union(parts, managed)?;
    all.expire(calendar);
    Ok((all, reads))
}

async fn load_one(
    source: &SourceConfig,
    managed: &ManagedRoles,
    calendar: &Calendar,
) -> Result<(DesiredState, SourceRead), DesiredError> {
    let (state, place, rows, groups) = match source {
        SourceConfig::Yaml(y) => (
            super::yaml::load(y, managed, calendar)?,
            format!("roles file {}", y.path.display()),
            None,
            Vec::new(),
        ),
        SourceConfig::Csv(c) => (
            super::csv::load(c, managed, calendar)?,
            format!("CSV file {}", c.path.display()),
            None,
            Vec::new(),
        ),
        SourceConfig::Sql(s) => {
            let (d, stats) = super::sql::load(s, managed).await?;
            (d, super::sql::describe(s), Some(stats.rows), Vec::new())
        }
        SourceConfig::Ldap(l) => {
            let (d, groups) = super::ldap::load(l, managed).await?;
            (d, super::ldap::describe(l), None, groups)
        }
    };
    let read = SourceRead {
        name: source.name(),
        place,
        rows,
        groups,
        users: state.users.len(),
        grants: state.grants(),
    };
    Ok((state, read))
}

/// The union per email of several desired states. Two roles of one exclusive group given by
/// different sources are refused, naming both sources.
pub fn union(
    mut parts: Vec<DesiredState>,
    managed: &ManagedRoles,
) -> Result<DesiredState, DesiredError> {
    if parts.len() == 1 {
        return Ok(parts.pop().expect("one part"));
    }
    let mut out = DesiredState::default();
    for part in parts {
        for (email, roles) in part.users {
            *out.users.entry(email).or_default() = out
                .users
                .get(&email)
                .copied()
                .unwrap_or_default()
                .union(roles);
        }
        for (email, grants) in part.grants {
            out.grants.entry(email).or_default().extend(grants);
        }
        out.unmatched.extend(part.unmatched);
    }
    let mut problems: Vec<Problem> = Vec::new();
    for (email, roles) in &out.users {
        if let Some((a, b)) = managed.conflict(*roles) {
            let from = |r: usize| {
                out.sources_of(email, r)
                    .map(SourceName::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            problems.push(Problem {
                origin: Origin::Unknown,
                message: format!(
                    "{email}: {} (from {}) and {} (from {}) are mutually exclusive \
                     (roles.exclusive): Studio lets a user hold only one of them",
                    managed.name(a),
                    from(a),
                    managed.name(b),
                    from(b)
                ),
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by(|a, b| a.message.cmp(&b.message));
        Err(DesiredError::Invalid(super::InvalidDesired {
            source: "sources".into(),
            problems,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{DesiredBuilder, Grant};
    use crate::roles::RoleSet;

    fn part(managed: &ManagedRoles, name: &str, grants: &[(&str, usize)]) -> DesiredState {
        let mut b = DesiredBuilder::new(managed, SourceName::new(name));
        for (email, role) in grants {
            b.grant(Origin::Unknown, email.to_string(), *role);
        }
        b.finish(name).unwrap()
    }

    #[test]
    fn the_union_keeps_every_grant_with_its_source() {
        let m = ManagedRoles::new(vec!["Admin".into(), "Cap".into()]);
        let d = union(
            vec![
                part(&m, "roles.yaml", &[("a@x.edu", 0), ("b@x.edu", 1)]),
                part(&m, "ldap", &[("a@x.edu", 0), ("a@x.edu", 1)]),
            ],
            &m,
        )
        .unwrap();
        assert_eq!(d.users["a@x.edu"], m.all());
        assert_eq!(d.users["b@x.edu"], RoleSet::single(1));
        let from: Vec<_> = d.sources_of("a@x.edu", 0).map(|s| s.as_str()).collect();
        assert_eq!(from, ["roles.yaml", "ldap"]);
        assert_eq!(
            d.grants_of("a@x.edu")[2],
            Grant::new(1, SourceName::new("ldap"))
        );
    }

    #[test]
    fn exclusive_roles_from_two_sources_name_both() {
        let m = ManagedRoles::new(vec!["Admin".into(), "Sub".into()])
            .with_exclusive(vec![RoleSet::single(0).union(RoleSet::single(1))]);
        let Err(DesiredError::Invalid(e)) = union(
            vec![
                part(&m, "roles.yaml", &[("a@x.edu", 0)]),
                part(&m, "grants.csv", &[("a@x.edu", 1)]),
            ],
            &m,
        ) else {
            panic!("refused")
        };
        assert!(e.problems[0]
            .message
            .contains("Admin (from roles.yaml) and Sub (from grants.csv)"));
    }
}
