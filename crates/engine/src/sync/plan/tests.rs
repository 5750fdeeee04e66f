//! Planner tests: examples for each safety rule, and properties over random tenants.

use super::*;
use crate::input::desired::DesiredState;
use crate::studio::StudioUser;
use crate::sync::identity::{emails_to_search, SearchInputs, Verification};
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
        resting: &HashSet::new(),
        verification,
    });
    for email in &searched {
        {
            let found: Vec<StudioUser> = studio
                .iter()
                .filter(|u| {
                    u.email
                        .as_deref()
                        .map(crate::input::email_address::normalize)
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
            ChangeKind::Add => {
                if !u.role_names.contains(&role) {
                    u.role_names.push(role)
                }
            }
            ChangeKind::Remove => u.role_names.retain(|r| *r != role),
        }
    }
}

fn desired(managed: &ManagedRoles, entries: &[(&str, &[&str])]) -> DesiredState {
    DesiredState {
        users: entries
            .iter()
            .map(|(e, roles)| (e.to_string(), managed.set_of(roles.iter().copied())))
            .collect(),
        ..Default::default()
    }
}

fn policy_for(m: &ManagedRoles, remove_unlisted: bool, protected: &[&str]) -> Policy {
    Policy {
        remove_unlisted,
        protected: protected.iter().map(|s| s.to_string()).collect(),
        managed: m.clone(),
    }
}

const SAFETY: SafetyLimits = SafetyLimits {
    max_removals: 25,
    max_removal_ratio: 0.25,
    roles: std::collections::BTreeMap::new(),
    remove_after: None,
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
            (4, "Admin", ChangeKind::Add),
            (2, "Admin", ChangeKind::Remove),
            (1, "CaptionEditor", ChangeKind::Add),
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
    let tight = SafetyLimits {
        max_removals: 1,
        max_removal_ratio: 1.0,
        roles: Default::default(),
        remove_after: None,
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
    u.email
        .as_deref()
        .map(crate::input::email_address::normalize)
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
            prop_assert_eq!(held, a.kind == ChangeKind::Remove, "action that changes nothing");
        }
    }
}

#[test]
fn each_role_has_its_own_guard() {
    // 8 Admins and 60 CaptionEditors; the file lists only the CaptionEditors.
    let m = managed(2);
    let mut studio: Vec<_> = (1..=8)
        .map(|i| user(i, Some(&format!("admin{i}@x.edu")), &["Admin"]))
        .collect();
    studio.extend((100..160).map(|i| user(i, Some(&format!("cap{i}@x.edu")), &["CaptionEditor"])));
    let emails: Vec<String> = (100..160).map(|i| format!("cap{i}@x.edu")).collect();
    let entries: Vec<(&str, &[&str])> = emails
        .iter()
        .map(|e| (e.as_str(), &["CaptionEditor"][..]))
        .collect();
    let d = desired(&m, &entries);
    let pol = policy_for(&m, true, &[]);
    let p = plan(&d, &read(&m, &studio, &d), &pol);
    assert_eq!((p.removes(), p.current_grants), (8, 68));
    let trip = check_guards(&p, &d, &pol, &SAFETY).unwrap_err();
    assert!(
        matches!(&trip, GuardTrip::RoleRatio { role, planned: 8, current: 8, .. } if role == "Admin"),
        "{trip:?}"
    );
    assert!(
        trip.to_string()
            .starts_with("role Admin: 8 of its 8 holders"),
        "{trip}"
    );
    // An override for the role: its own limits, named in the message.
    let mut safety = SAFETY.clone();
    safety.roles.insert(
        0,
        crate::input::safety_limits::RoleLimits {
            max_removals: Some(3),
            max_removal_ratio: Some(1.0),
        },
    );
    let trip = check_guards(&p, &d, &pol, &safety).unwrap_err();
    assert!(
        trip.to_string()
            .contains("safety.roles.Admin.max_removals (3)"),
        "{trip}"
    );
    safety.roles.get_mut(&0).unwrap().max_removals = Some(8);
    assert_eq!(check_guards(&p, &d, &pol, &safety), Ok(()));
}

fn exclusive_managed() -> ManagedRoles {
    // Admin and SubAccountAdmin exclude each other.
    managed(3).with_exclusive(vec![RoleSet::single(0).union(RoleSet::single(2))])
}

#[test]
fn a_move_between_exclusive_roles_removes_first_in_its_own_phase() {
    let m = exclusive_managed();
    let studio = vec![
        user(1, Some("mover@x.edu"), &["Admin"]),
        user(2, Some("stay@x.edu"), &["Admin"]),
        user(3, Some("new@x.edu"), &[]),
    ];
    let d = desired(
        &m,
        &[
            ("mover@x.edu", &["SubAccountAdmin"]),
            ("stay@x.edu", &["Admin", "CaptionEditor"]),
            ("new@x.edu", &["Admin"]),
        ],
    );
    let pol = policy_for(&m, true, &[]);
    let p = plan(&d, &read(&m, &studio, &d), &pol);
    let phases = p.phases(&m);
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert_eq!(
        phases[0],
        vec![Change {
            user_id: 1,
            email: Some("mover@x.edu".into()),
            role: 0,
            kind: ChangeKind::Remove
        }]
    );
    assert_eq!(phases[1].len(), 3);
    // Without a move, one phase: no PUT more than the batches need.
    let d2 = desired(&m, &[("stay@x.edu", &["Admin"]), ("new@x.edu", &["Admin"])]);
    let p2 = plan(&d2, &read(&m, &studio, &d2), &pol);
    assert_eq!(p2.phases(&m).len(), 1);
}

#[test]
fn an_add_that_a_kept_exclusive_role_forbids_is_not_sent() {
    let m = exclusive_managed();
    let studio = vec![user(1, Some("boss@x.edu"), &["Admin"])];
    let d = desired(&m, &[("boss@x.edu", &["SubAccountAdmin"])]);
    for pol in [
        policy_for(&m, true, &["boss@x.edu"]),
        policy_for(&m, false, &[]),
    ] {
        let p = plan(&d, &read(&m, &studio, &d), &pol);
        assert!(p.actions.is_empty(), "{:?}", p.actions);
        let x = p
            .pending
            .iter()
            .find(|x| x.reason == PendingReason::Exclusive)
            .expect("reported");
        assert!(
            x.detail
                .contains("SubAccountAdmin not added: the user holds Admin"),
            "{}",
            x.detail
        );
    }
}

// ---- the identity model ------------------------------------------------------------------

/// What Studio reports in one run, computed from the tenant itself (not from `CurrentState`
/// or the planner): the holders' listing, and a search of each email docs/contracts.md ("Requests per run") says a run
/// searches. Identity is decided from this alone.
struct Seen<'a> {
    studio: &'a [StudioUser],
    m: &'a ManagedRoles,
    d: &'a DesiredState,
    remembered: &'a HashSet<String>,
    full: bool,
}

impl Seen<'_> {
    fn holds_managed(&self, u: &StudioUser) -> bool {
        !self
            .m
            .set_of(u.role_names.iter().map(String::as_str))
            .is_empty()
    }

    fn with_email(&self, email: &str) -> Vec<u64> {
        self.studio
            .iter()
            .filter(|u| email_of(u).as_deref() == Some(email))
            .map(|u| u.id)
            .collect()
    }

    /// The accounts this run reports with `email`.
    fn accounts(&self, email: &str) -> HashSet<u64> {
        let listed: HashSet<u64> = self
            .studio
            .iter()
            .filter(|u| self.holds_managed(u) && email_of(u).as_deref() == Some(email))
            .map(|u| u.id)
            .collect();
        let searched = self.d.users.get(email).is_some_and(|want| {
            self.remembered.contains(email)
                || (listed.is_empty() && !want.is_empty())
                || (!listed.is_empty() && self.full)
        });
        if searched {
            self.with_email(email).into_iter().collect()
        } else {
            listed
        }
    }
}

#[derive(Debug, Clone)]
struct IdentityCase {
    tenant: Tenant,
    remembered: Vec<usize>,
    full: bool,
}

fn identity_case() -> impl Strategy<Value = IdentityCase> {
    (
        tenant(),
        prop::collection::vec(0..POOL.len(), 0..3),
        any::<bool>(),
    )
        .prop_map(|(tenant, remembered, full)| IdentityCase {
            tenant,
            remembered,
            full,
        })
}

/// Applies phases the way a strict Studio does: an add of a role that excludes one the user
/// holds is refused. Returns the refusals.
fn apply_strict(m: &ManagedRoles, studio: &mut [StudioUser], phases: &[Vec<Change>]) -> usize {
    let mut refused = 0;
    for phase in phases {
        for a in phase {
            let u = studio.iter_mut().find(|u| u.id == a.user_id).unwrap();
            let role = m.name(a.role).to_string();
            let held = m.set_of(u.role_names.iter().map(String::as_str));
            match a.kind {
                ChangeKind::Add if held.iter().any(|h| m.excludes(h, a.role)) => refused += 1,
                ChangeKind::Add => {
                    if !u.role_names.contains(&role) {
                        u.role_names.push(role)
                    }
                }
                ChangeKind::Remove => u.role_names.retain(|r| *r != role),
            }
        }
    }
    refused
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The planner, fed by the real read decision, against a model that decides identity only
    /// from what Studio reports in the run.
    #[test]
    fn roles_go_only_to_the_account_the_run_saw_with_the_email(c in identity_case()) {
        let t = &c.tenant;
        let m = managed(t.managed);
        let d = t.desired(&m);
        let pol = t.policy(&m);
        let remembered: HashSet<String> = c.remembered.iter().map(|i| POOL[*i].to_string()).collect();
        let verification = if c.full { Verification::Full } else { Verification::Incremental };
        let current = read_with(&m, &t.studio, &d, &remembered, verification);
        let p = plan(&d, &current, &pol);
        let seen = Seen { studio: &t.studio, m: &m, d: &d, remembered: &remembered, full: c.full };
        let email_by_id: HashMap<u64, Option<String>> =
            t.studio.iter().map(|u| (u.id, email_of(u))).collect();

        for a in &p.actions {
            let email = email_by_id[&a.user_id].clone();
            prop_assert_eq!(&a.email, &email, "the action names the account's email");
            let email = email.expect("never an account without email");
            if let Some(want) = d.users.get(&email) {
                // A desired email's accounts are touched only when the run saw exactly one.
                let accounts = seen.accounts(&email);
                prop_assert_eq!(accounts.len(), 1, "{} touched while the run saw {:?}", email, accounts);
                prop_assert!(accounts.contains(&a.user_id));
                if a.kind == ChangeKind::Add {
                    prop_assert!(want.contains(a.role), "added a role the email should not hold");
                }
            } else {
                prop_assert_eq!(a.kind, ChangeKind::Remove, "role added to an unlisted email");
            }
        }
        // An email the run saw on several accounts (a holder and a twin, a remembered or a
        // fully verified one) is reported, whatever it should hold.
        for email in d.users.keys() {
            if seen.accounts(email).len() > 1 {
                prop_assert!(
                    p.pending.iter().any(|x| &x.email == email && x.reason == PendingReason::Ambiguous),
                    "{} not reported ambiguous", email
                );
            }
        }

        // Convergence, per the model: an email the run saw on one account gets its roles.
        let mut after = t.studio.clone();
        prop_assert_eq!(apply_strict(&m, &mut after, &p.phases(&m)), 0);
        for (email, want) in &d.users {
            let accounts = seen.accounts(email);
            if accounts.len() != 1 {
                continue;
            }
            let id = *accounts.iter().next().unwrap();
            let u = after.iter().find(|u| u.id == id).unwrap();
            let has = m.set_of(u.role_names.iter().map(String::as_str));
            prop_assert!(want.minus(has).is_empty(), "{} lacks a desired role", email);
            if pol.remove_unlisted && !pol.protected.contains(email) {
                prop_assert_eq!(has, *want);
            }
        }
    }

    /// With exclusive groups, a strict Studio refuses nothing the phased plan sends, as long
    /// as no user already held two roles of a group.
    #[test]
    fn phased_moves_are_never_refused(t in tenant()) {
        let m = managed(t.managed).with_exclusive(vec![RoleSet::single(0).union(RoleSet::single(2))]);
        let mut studio = t.studio.clone();
        for u in &mut studio {
            if u.role_names.iter().any(|r| r == "Admin") {
                u.role_names.retain(|r| r != "SubAccountAdmin");
            }
        }
        let mut d = t.desired(&m);
        for roles in d.users.values_mut() {
            if m.conflict(*roles).is_some() {
                roles.remove(2);
            }
        }
        let pol = t.policy(&m);
        let p = plan(&d, &read(&m, &studio, &d), &pol);
        let phases = p.phases(&m);
        prop_assert!(phases.len() <= 2);
        prop_assert_eq!(phases.iter().map(Vec::len).sum::<usize>(), p.actions.len());
        let mut after = studio.clone();
        prop_assert_eq!(apply_strict(&m, &mut after, &phases), 0, "{:?}", phases);
        let again = plan(&d, &read(&m, &after, &d), &pol);
        prop_assert!(again.actions.is_empty(), "not converged in one run: {:?}", again.actions);
    }
}

/// `missing`: (user index, role, runs that saw it missing) for a tenant's Studio users.
fn missing_facts(
    t: &Tenant,
    seen: &[(usize, usize, u32)],
    now: chrono::DateTime<chrono::Utc>,
) -> HashMap<(u64, usize), crate::sync::grace::MissingSince> {
    seen.iter()
        .filter_map(|&(u, role, runs)| {
            let user = t.studio.get(u)?;
            let at = now - chrono::Duration::hours(i64::from(runs));
            Some((
                (user.id, role),
                crate::sync::grace::MissingSince { at, runs },
            ))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The grace period only splits the removals into those sent and those that wait: it
    /// adds nothing, sends only what is due, and the guards count only what is sent.
    #[test]
    fn grace_only_holds_back_removals_not_due(
        t in tenant(),
        seen in prop::collection::vec((0..14usize, 0..3usize, 0..4u32), 0..12),
        n in 1..4u32,
        by_time in any::<bool>(),
    ) {
        use crate::sync::grace::{Grace, Left};
        use crate::input::safety_limits::RemoveAfter;
        let m = managed(t.managed);
        let d = t.desired(&m);
        let pol = t.policy(&m);
        let c = read(&m, &t.studio, &d);
        let now = chrono::Utc::now();
        let missing = missing_facts(&t, &seen, now);
        let remove_after = if by_time {
            RemoveAfter::Time(std::time::Duration::from_secs(3600 * u64::from(n)))
        } else {
            RemoveAfter::Runs(n)
        };
        let grace = Grace { remove_after, now, missing: &missing };
        let plain = plan(&d, &c, &pol);
        let held = plan_with_grace(&d, &c, &pol, Some(&grace));

        let removals = |p: &Plan| p.actions.iter().filter(|a| a.kind == ChangeKind::Remove).cloned().collect::<HashSet<_>>();
        let adds = |p: &Plan| p.actions.iter().filter(|a| a.kind == ChangeKind::Add).cloned().collect::<Vec<_>>();
        let waiting: HashSet<Change> = held.waiting.iter().map(|w| w.action.clone()).collect();
        prop_assert_eq!(waiting.len(), held.waiting.len());
        prop_assert!(removals(&held).is_disjoint(&waiting));
        prop_assert_eq!(removals(&held).union(&waiting).cloned().collect::<HashSet<_>>(), removals(&plain));
        // No exclusive groups here: every add goes out as it would without a grace period.
        prop_assert_eq!(adds(&held), adds(&plain));
        for a in removals(&held) {
            let seen = missing.get(&(a.user_id, a.role));
            prop_assert!(seen.is_some_and(|s| s.runs >= n), "removed before its time: {:?}", a);
        }
        for w in &held.waiting {
            let runs = missing.get(&(w.action.user_id, w.action.role)).map_or(0, |s| s.runs);
            prop_assert!(runs < n);
            let left = if by_time {
                Left::Time(std::time::Duration::from_secs(3600 * u64::from(n - runs)))
            } else {
                Left::Runs(n - runs)
            };
            prop_assert_eq!(w.left, left);
        }
        prop_assert_eq!(held.removes(), plain.removes() - held.waiting.len());
        // Everything missing long enough: the plan is the plan without a grace period.
        let all: HashMap<_, _> = plain.actions.iter().map(|a| ((a.user_id, a.role), crate::sync::grace::MissingSince { at: now - chrono::Duration::days(9), runs: n })).collect();
        let long = Grace { remove_after, now, missing: &all };
        prop_assert_eq!(plan_with_grace(&d, &c, &pol, Some(&long)), plain.clone());
        prop_assert_eq!(plan_with_grace(&d, &c, &pol, None), plain);
    }
}

#[test]
fn a_move_between_exclusive_roles_waits_for_the_removal() {
    use crate::input::safety_limits::RemoveAfter;
    use crate::sync::grace::{Grace, Left};
    let m = managed(2).with_exclusive(vec![RoleSet::single(0).union(RoleSet::single(1))]);
    let studio = vec![user(1, Some("a@x.edu"), &["Admin"])];
    let mut d = DesiredState::default();
    d.users.insert("a@x.edu".into(), RoleSet::single(1));
    let pol = policy_for(&m, true, &[]);
    let missing = HashMap::new();
    let grace = Grace {
        remove_after: RemoveAfter::Runs(2),
        now: chrono::Utc::now(),
        missing: &missing,
    };
    let p = plan_with_grace(&d, &read(&m, &studio, &d), &pol, Some(&grace));
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert_eq!(p.waiting.len(), 1);
    assert_eq!(p.waiting[0].left, Left::Runs(2));
    assert_eq!(p.waiting[0].left.to_string(), "removal in 2 runs");
    assert_eq!(p.pending[0].reason, PendingReason::Exclusive);
    assert!(
        p.pending[0].detail.contains("until its removal in 2 runs"),
        "{}",
        p.pending[0].detail
    );
    assert_eq!(
        Left::Time(std::time::Duration::from_secs(5 * 3600 + 1)).to_string(),
        "removal in 6h"
    );
}
