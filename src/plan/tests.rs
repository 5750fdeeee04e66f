//! Planner tests: examples for each safety rule, and properties over random tenants.

use super::*;
use crate::current::StudioUser;
use crate::desired::DesiredState;
use crate::identity::{emails_to_search, SearchInputs, Verification};
use proptest::prelude::*;

const ROLES: [&str; 4] = ["Admin", "CaptionEditor", "SubAccountAdmin", "Teacher"];

fn managed(n: usize) -> ManagedRoles {
    ManagedRoles::new(ROLES[..n].iter().map(|s| s.to_string()).collect())
}

fn user(id: u64, email: Option<&str>, roles: &[&str]) -> StudioUser {
    StudioUser {
        id,
        full_name: None,
        email: email.map(str::to_string),
        role_names: roles.iter().map(|s| s.to_string()).collect(),
    }
}

/// Reads a tenant the way the client does, in an incremental run with nothing remembered.
fn read(managed: &ManagedRoles, studio: &[StudioUser], desired: &DesiredState) -> CurrentState {
    read_with(
        managed,
        studio,
        desired,
        &HashSet::new(),
        Verification::Incremental,
    )
}

/// Reads a tenant the way `studio::read` does: holders by role, then a search of each email
/// `identity::emails_to_search` picks, keeping exact matches only.
fn read_with(
    managed: &ManagedRoles,
    studio: &[StudioUser],
    desired: &DesiredState,
    ambiguous: &HashSet<String>,
    verification: Verification,
) -> CurrentState {
    let mut c = CurrentState::default();
    for u in studio {
        if !managed
            .set_of(u.role_names.iter().map(String::as_str))
            .is_empty()
        {
            c.add_user(managed, u);
        }
    }
    let searched = emails_to_search(&SearchInputs {
        desired,
        listed: &c,
        ambiguous,
        verification,
    });
    for email in &searched {
        {
            let found: Vec<StudioUser> = studio
                .iter()
                .filter(|u| {
                    u.email
                        .as_deref()
                        .map(crate::desired::normalize_email)
                        .as_deref()
                        == Some(email.as_str())
                })
                .cloned()
                .collect();
            c.add_search(managed, email, &found);
        }
    }
    c
}

fn apply(managed: &ManagedRoles, studio: &mut [StudioUser], plan: &Plan) {
    for a in &plan.actions {
        let u = studio
            .iter_mut()
            .find(|u| u.id == a.user_id)
            .expect("action for a known user");
        let role = managed.name(a.role).to_string();
        match a.kind {
            ActionKind::Add => {
                if !u.role_names.contains(&role) {
                    u.role_names.push(role)
                }
            }
            ActionKind::Remove => u.role_names.retain(|r| *r != role),
        }
    }
}

fn desired(managed: &ManagedRoles, entries: &[(&str, &[&str])]) -> DesiredState {
    DesiredState {
        users: entries
            .iter()
            .map(|(e, roles)| (e.to_string(), managed.set_of(roles.iter().copied())))
            .collect(),
    }
}

fn policy_for(m: &ManagedRoles, remove_unlisted: bool, protected: &[&str]) -> Policy {
    Policy {
        remove_unlisted,
        protected: protected.iter().map(|s| s.to_string()).collect(),
        managed: m.clone(),
    }
}

const SAFETY: SafetyConfig = SafetyConfig {
    max_removals: 25,
    max_removal_ratio: 0.25,
    roles: std::collections::BTreeMap::new(),
};

#[test]
fn adds_removes_and_reports() {
    let m = managed(2);
    let studio = vec![
        user(1, Some("alice@x.edu"), &["Admin"]),
        user(2, Some("old@x.edu"), &["Admin", "Teacher"]),
        user(3, None, &["Admin"]),
        user(4, Some("bob@x.edu"), &["Teacher"]),
        user(5, Some("twin@x.edu"), &[]),
        user(6, Some("TWIN@x.edu"), &[]),
        user(7, Some("boss@x.edu"), &["Admin"]),
    ];
    let d = desired(
        &m,
        &[
            ("alice@x.edu", &["Admin", "CaptionEditor"]),
            ("bob@x.edu", &["Admin"]),
            ("new@x.edu", &["Admin"]),
            ("twin@x.edu", &["Admin"]),
        ],
    );
    let c = read(&m, &studio, &d);
    let p = plan(&d, &c, &policy_for(&m, true, &["boss@x.edu"]));
    let acts: Vec<_> = p
        .actions
        .iter()
        .map(|a| (a.user_id, m.name(a.role), a.kind))
        .collect();
    assert_eq!(
        acts,
        vec![
            (4, "Admin", ActionKind::Add),
            (2, "Admin", ActionKind::Remove),
            (1, "CaptionEditor", ActionKind::Add),
        ]
    );
    let pend: Vec<_> = p
        .pending
        .iter()
        .map(|x| (x.email.as_str(), x.reason))
        .collect();
    assert_eq!(
        pend,
        vec![
            ("new@x.edu", PendingReason::NotInStudio),
            ("twin@x.edu", PendingReason::Ambiguous),
            ("user 3", PendingReason::NoEmail),
            ("boss@x.edu", PendingReason::Protected),
        ]
    );
    assert_eq!(p.current_grants, 4);
}

#[test]
fn add_only_never_removes() {
    let m = managed(1);
    let studio = vec![
        user(1, Some("a@x.edu"), &["Admin"]),
        user(2, Some("b@x.edu"), &["Admin"]),
    ];
    let d = desired(&m, &[("c@x.edu", &["Admin"])]);
    let p = plan(&d, &read(&m, &studio, &d), &policy_for(&m, false, &[]));
    assert_eq!(p.removes(), 0);
    assert!(p.pending.iter().any(|x| x.email == "c@x.edu"));
}

#[test]
fn guards() {
    let m = managed(1);
    let studio: Vec<_> = (1..=8)
        .map(|i| user(i, Some(&format!("u{i}@x.edu")), &["Admin"]))
        .collect();
    let keep: Vec<(String, &[&str])> = (1..=6)
        .map(|i| (format!("u{i}@x.edu"), &["Admin"][..]))
        .collect();
    let entries: Vec<(&str, &[&str])> = keep.iter().map(|(e, r)| (e.as_str(), *r)).collect();
    let d = desired(&m, &entries);
    let pol = policy_for(&m, true, &[]);
    let p = plan(&d, &read(&m, &studio, &d), &pol);
    assert_eq!(p.removes(), 2);
    assert_eq!(
        check_guards(&p, &d, &pol, &SAFETY),
        Ok(()),
        "2 of 8 is 25%: allowed"
    );
    let d5 = desired(&m, &entries[..5]);
    let p5 = plan(&d5, &read(&m, &studio, &d5), &pol);
    assert!(matches!(
        check_guards(&p5, &d5, &pol, &SAFETY),
        Err(GuardTrip::RoleRatio {
            planned: 3,
            current: 8,
            ..
        })
    ));
    let tight = SafetyConfig {
        max_removals: 1,
        max_removal_ratio: 1.0,
        roles: Default::default(),
    };
    assert!(matches!(
        check_guards(&p, &d, &pol, &tight),
        Err(GuardTrip::RoleRemovals {
            planned: 2,
            max: 1,
            ..
        })
    ));
    let empty = DesiredState::default();
    let pe = plan(&empty, &read(&m, &studio, &empty), &pol);
    assert_eq!(
        check_guards(&pe, &empty, &pol, &tight),
        Err(GuardTrip::EmptyDesired)
    );
    let listed_without_roles = desired(&m, &[("u1@x.edu", &[])]);
    assert_eq!(
        check_guards(&pe, &listed_without_roles, &pol, &tight),
        Err(GuardTrip::EmptyDesired)
    );
    let add_only = policy_for(&m, false, &[]);
    let pa = plan(&empty, &read(&m, &studio, &empty), &add_only);
    assert_eq!(
        check_guards(&pa, &empty, &add_only, &tight),
        Ok(()),
        "add-only may be empty"
    );
}

// ---- properties ------------------------------------------------------------------------

const POOL: [&str; 8] = [
    "a@x.edu", "b@x.edu", "c@x.edu", "d@x.edu", "e@x.edu", "f@x.edu", "g@x.edu", "h@x.edu",
];

#[derive(Debug, Clone)]
struct Tenant {
    managed: usize,
    studio: Vec<StudioUser>,
    desired: Vec<(usize, Vec<usize>)>,
    protected: Vec<usize>,
    remove_unlisted: bool,
}

fn tenant() -> impl Strategy<Value = Tenant> {
    let studio_user = (
        prop::option::weighted(0.85, 0..POOL.len()),
        any::<bool>(),
        prop::collection::vec(0..ROLES.len(), 0..4),
    );
    (
        1..=3usize,
        prop::collection::vec(studio_user, 0..14),
        prop::collection::vec(
            (0..POOL.len(), prop::collection::vec(0..3usize, 0..3)),
            0..8,
        ),
        prop::collection::vec(0..POOL.len(), 0..3),
        any::<bool>(),
    )
        .prop_map(
            |(managed, users, desired, protected, remove_unlisted)| Tenant {
                managed,
                studio: users
                    .into_iter()
                    .enumerate()
                    .map(|(i, (email, upper, roles))| StudioUser {
                        id: 100 + i as u64,
                        full_name: None,
                        email: email.map(|e| {
                            if upper {
                                POOL[e].to_uppercase()
                            } else {
                                POOL[e].to_string()
                            }
                        }),
                        role_names: roles.into_iter().map(|r| ROLES[r].to_string()).collect(),
                    })
                    .collect(),
                desired,
                protected,
                remove_unlisted,
            },
        )
}

impl Tenant {
    fn desired(&self, m: &ManagedRoles) -> DesiredState {
        let mut d = DesiredState::default();
        for (e, roles) in &self.desired {
            let set = d.users.entry(POOL[*e].to_string()).or_default();
            for r in roles.iter().filter(|r| **r < m.len()) {
                set.insert(*r);
            }
        }
        d
    }
    fn policy(&self, m: &ManagedRoles) -> Policy {
        Policy {
            managed: m.clone(),
            remove_unlisted: self.remove_unlisted,
            protected: self
                .protected
                .iter()
                .map(|e| POOL[*e].to_string())
                .collect(),
        }
    }
}

fn email_of(u: &StudioUser) -> Option<String> {
    u.email.as_deref().map(crate::desired::normalize_email)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn applying_the_plan_converges(t in tenant()) {
        let m = managed(t.managed);
        let d = t.desired(&m);
        let pol = t.policy(&m);
        let before = t.studio.clone();
        let p = plan(&d, &read(&m, &before, &d), &pol);
        let mut after = before.clone();
        apply(&m, &mut after, &p);

        // The account an email resolves to, as the reader can know it: the one holder of a
        // managed role with that email (the account already trusted with a managed role), or,
        // when no holder has it, the one account with it (the search result); else none.
        let the_match = |email: &str| {
            let with: Vec<&StudioUser> = before.iter().filter(|u| email_of(u).as_deref() == Some(email)).collect();
            let holders: Vec<&&StudioUser> = with.iter().filter(|u| !m.set_of(u.role_names.iter().map(String::as_str)).is_empty()).collect();
            match (holders.as_slice(), with.as_slice()) {
                ([one], _) => Some(one.id),
                ([], [one]) => Some(one.id),
                _ => None,
            }
        };
        for (b, a) in before.iter().zip(&after) {
            // Unmanaged roles are never touched.
            let unmanaged = |u: &StudioUser| u.role_names.iter().filter(|r| m.index(r).is_none()).cloned().collect::<Vec<_>>();
            prop_assert_eq!(unmanaged(b), unmanaged(a));
            let had = m.set_of(b.role_names.iter().map(String::as_str));
            let has = m.set_of(a.role_names.iter().map(String::as_str));
            let email = email_of(b);
            let lost = !had.minus(has).is_empty();
            // No removal from protected emails or users without email.
            if lost {
                prop_assert!(email.is_some(), "removed from a user without email");
                prop_assert!(!pol.protected.contains(email.as_ref().unwrap()), "removed from protected");
                prop_assert!(pol.remove_unlisted, "removed while add-only");
            }
            let Some(email) = email else {
                prop_assert_eq!(had, has, "a user without email changed");
                continue;
            };
            match d.users.get(&email) {
                // An unambiguous desired email holds exactly its desired managed roles
                // (or a superset when removal is off or it is protected).
                Some(want) if the_match(&email) == Some(b.id) => {
                    prop_assert!(want.minus(has).is_empty(), "missing desired role");
                    if pol.remove_unlisted && !pol.protected.contains(&email) {
                        prop_assert_eq!(has, *want);
                    }
                }
                // Another account with a desired email (or an ambiguous one) gets nothing
                // added, and never loses a role the email should hold.
                Some(want) => {
                    prop_assert!(has.minus(had).is_empty(), "role added to an ambiguous email");
                    prop_assert!(had.minus(has).iter().all(|r| !want.contains(r)), "desired role removed");
                }
                None => {
                    prop_assert!(has.minus(had).is_empty(), "role added to an unlisted user");
                    if pol.remove_unlisted && !pol.protected.contains(&email) {
                        prop_assert!(has.is_empty(), "unlisted user kept a managed role");
                    }
                }
            }
        }
        // Level-triggered: a second plan on the converged state has nothing to do.
        let again = plan(&d, &read(&m, &after, &d), &pol);
        prop_assert!(again.actions.is_empty(), "second plan not empty: {:?}", again.actions);
    }

    #[test]
    fn actions_are_unique_and_effective(t in tenant()) {
        let m = managed(t.managed);
        let d = t.desired(&m);
        let c = read(&m, &t.studio, &d);
        let p = plan(&d, &c, &t.policy(&m));
        let unique: HashSet<_> = p.actions.iter().map(|a| (a.user_id, a.role)).collect();
        prop_assert_eq!(unique.len(), p.actions.len(), "two actions for one (user, role)");
        for a in &p.actions {
            let held = c.users[&a.user_id].roles.contains(a.role);
            prop_assert_eq!(held, a.kind == ActionKind::Remove, "action that changes nothing");
        }
    }
}
