//! Request counts of small runs against the lower bound of docs/contracts.md, exactly: one listing page per
//! 50 holders of each managed role (at least one), one email search per desired email that
//! needs a role added and is no holder's email (nothing is cached: an account is only ever
//! acted on when this run saw it with the email), per email remembered as ambiguous, and, in a
//! full verification (the first run, then every `verify.full_every`, or `--full`), per desired
//! email a holder has; one PUT per `batch_size` actions. Not timed: the benchmark
//! (`cargo run -p bench --release --bin bench`) measures time.

use crate::support::{count, run_row, user, Opts, Tenant};
use studio_sim::{SimStats, SimUser};

/// Listing pages for `holders` holders of one role.
fn pages(holders: usize) -> u64 {
    holders.div_ceil(50).max(1) as u64
}

fn email(id: u64) -> String {
    format!("u{id}@x.edu")
}

/// `users:` text granting `roles` to each id's email.
fn roles_file(grants: &[(u64, &str)]) -> String {
    let mut text = String::from("users:\n");
    for (id, roles) in grants {
        text.push_str(&format!("  {}: [{roles}]\n", email(*id)));
    }
    text
}

/// (listing, searches, PUTs) the server received.
fn counts(s: &SimStats) -> (u64, u64, u64) {
    (s.search_by_role, s.search_by_email, s.put_roles)
}

async fn apply(t: &Tenant) -> SimStats {
    apply_args(t, &["apply"]).await
}

async fn apply_args(t: &Tenant, args: &[&str]) -> SimStats {
    t.sim.reset_stats();
    let run = t.cli(args).await;
    assert_eq!(run.code, 0, "{run:?}");
    let stats = t.sim.stats();
    assert_eq!(
        stats.total,
        stats.search_by_role + stats.search_by_email + stats.put_roles,
        "no other request: {stats:?}"
    );
    assert!(
        stats.max_in_flight <= Opts::default().concurrency as u64,
        "concurrency is bounded: {stats:?}"
    );
    stats
}

/// 120 Admin holders (1..=120, the first 30 also CaptionEditor) and 10 users with no role
/// (200..=209).
fn tenant_users() -> Vec<SimUser> {
    let mut users: Vec<SimUser> = (1..=120)
        .map(|i| {
            let roles: &[&str] = if i <= 30 {
                &["Admin", "CaptionEditor", "Teacher"]
            } else {
                &["Admin"]
            };
            user(i, Some(&email(i)), roles)
        })
        .collect();
    users.extend((200..210).map(|i| user(i, Some(&email(i)), &["Student"])));
    users
}

/// Desired: Admin for 1..=110 (CaptionEditor too for 1..=30), Admin for 200..=204.
fn desired() -> Vec<(u64, &'static str)> {
    let mut grants: Vec<(u64, &str)> = (1..=110)
        .map(|i| {
            (
                i,
                if i <= 30 {
                    "Admin, CaptionEditor"
                } else {
                    "Admin"
                },
            )
        })
        .collect();
    grants.extend((200..=204).map(|i| (i, "Admin")));
    grants
}

#[tokio::test]
async fn first_run_costs_the_lower_bound_and_the_second_only_the_listing() {
    let t = Tenant::start(tenant_users()).await;
    t.write_roles(&roles_file(&desired()));

    // First run, a full verification: Admin has 120 holders (3 pages), CaptionEditor 30 (1
    // page); the 5 desired non-holders are searched, and so are the 110 desired holders;
    // 10 removes + 5 adds fit one PUT.
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(120) + pages(30), 5 + 110, 1), "{s:?}");
    assert_eq!(s.put_actions, 15);
    let db = t.history().await;
    let (status, adds, removes, failed, pending, api_requests) = run_row(&db, 1).await;
    assert_eq!(
        (status.as_str(), adds, removes, failed, pending),
        ("succeeded", 5, 10, 0, 0)
    );
    assert_eq!(api_requests as u64, s.total, "the run records what it sent");

    // Second run, incremental, nothing to change: exactly the listing pages (115 Admin
    // holders, 30).
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 0, 0), "{s:?}");
    assert_eq!(run_row(&db, 2).await.5 as u64, s.total);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT verification FROM runs ORDER BY id")
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(kinds, ["full", "incremental"]);

    // An admin removes a role behind the daemon's back from a user who then holds no managed
    // role: the user is no holder any more, so the email needs an add and is searched: which
    // account has it is only known from this run.
    t.sim.set_roles(200, vec!["Student".into()]);
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(114) + pages(30), 1, 1), "{s:?}");
    assert_eq!(t.sim.user(200).unwrap().role_names, ["Student", "Admin"]);

    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 0, 0), "{s:?}");

    // A full verification on demand: the listing plus every desired holder's email (115).
    let s = apply_args(&t, &["apply", "--full"]).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 115, 0), "{s:?}");
}

#[tokio::test]
async fn pagination_follows_the_holder_count() {
    // 100 Admin holders: exactly 2 pages; no CaptionEditor holder: still 1 request.
    let users: Vec<SimUser> = (1..=100)
        .map(|i| user(i, Some(&email(i)), &["Admin"]))
        .chain((101..=151).map(|i| user(i, Some(&email(i)), &[])))
        .collect();
    let t = Tenant::start(users).await;
    let mut grants: Vec<(u64, &str)> = (1..=100).map(|i| (i, "Admin")).collect();
    t.write_roles(&roles_file(&grants));

    // Nothing to change, and every desired email is a holder's: the first run is the listing
    // and, as a full verification, a search of those 100 emails; the next one is the listing.
    let s = apply(&t).await;
    assert_eq!(counts(&s), (2 + 1, 100, 0), "{s:?}");
    let s = apply(&t).await;
    assert_eq!(counts(&s), (2 + 1, 0, 0), "{s:?}");

    // 51 CaptionEditor grants for users never seen: 51 searches, 2 PUTs (50 + 1 actions).
    grants.extend((101..=151).map(|i| (i, "CaptionEditor")));
    t.write_roles(&roles_file(&grants));
    let s = apply(&t).await;
    assert_eq!(counts(&s), (2 + 1, 51, 2), "{s:?}");

    // Now 51 CaptionEditor holders: 2 pages.
    let s = apply(&t).await;
    assert_eq!(counts(&s), (2 + 2, 0, 0), "{s:?}");
}

#[tokio::test]
async fn a_pending_email_is_searched_every_run() {
    let t = Tenant::start(tenant_users()).await;
    let mut text = roles_file(&desired());
    text.push_str("  nobody@x.edu: [Admin]\n  Nobody.Else@X.edu: [CaptionEditor]\n");
    t.write_roles(&text);

    let s = apply(&t).await;
    assert_eq!(
        counts(&s),
        (pages(120) + pages(30), 5 + 2 + 110, 1),
        "{s:?}"
    );
    let db = t.history().await;
    assert_eq!(run_row(&db, 1).await.4, 2, "two pending emails");

    // Not in Studio yet: searched again, and only they are.
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 2, 0), "{s:?}");
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM run_pending WHERE run_id = 2 AND reason = 'not_in_studio'"
        )
        .await,
        2
    );

    // Once the user exists, it is found, given its role, and then known.
    t.sim.add_user(user(300, Some("nobody@x.edu"), &[]));
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 2, 1), "{s:?}");
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(116) + pages(30), 1, 0), "{s:?}");
}

#[tokio::test]
async fn a_recreated_account_is_found_by_its_email_and_nothing_goes_to_the_old_id() {
    let t = Tenant::start(tenant_users()).await;
    t.write_roles(&roles_file(&desired()));
    apply(&t).await;

    // User 201 loses its role behind the daemon's back and its account is recreated under a
    // new id: the email is searched (it needs an add), the new account gets the role, and no
    // request names the old id.
    t.sim.set_roles(201, vec![]);
    let new_id = t.sim.recreate_user(201);
    t.sim.clear_requests();
    let s = apply(&t).await;
    assert_eq!(counts(&s), (pages(114) + pages(30), 1, 1), "{s:?}");
    assert!(t
        .sim
        .user(new_id)
        .unwrap()
        .role_names
        .contains(&"Admin".to_string()));
    assert!(t
        .sim
        .requests()
        .iter()
        .flat_map(|r| &r.actions)
        .all(|a| a.user_id != 201));

    // An email remembered as shared is searched on every run, even after it resolves to one
    // account: until then it is reported ambiguous and left alone.
    t.sim.add_user(user(300, Some("u202@x.edu"), &[]));
    let s = apply_args(&t, &["apply", "--full"]).await;
    assert_eq!(counts(&s), (pages(115) + pages(30), 115, 0), "{s:?}");
    let s = apply(&t).await;
    assert_eq!(
        counts(&s),
        (pages(115) + pages(30), 1, 0),
        "the twin is searched: {s:?}"
    );
    t.sim.set_email(300, Some("someone.else@x.edu"));
    let s = apply(&t).await;
    assert_eq!(
        counts(&s),
        (pages(115) + pages(30), 1, 0),
        "resolved by this search: {s:?}"
    );
    let s = apply(&t).await;
    assert_eq!(
        counts(&s),
        (pages(115) + pages(30), 0, 0),
        "forgotten: {s:?}"
    );
}
