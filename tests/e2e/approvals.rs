//! People in the loop, end to end: `approve`, saved plans (`plan --out`, `apply FILE`), and
//! run-now (`trigger`, SIGHUP), with the real binary (as a daemon and one-shot) against the
//! simulator over HTTP and a real history file. Each test checks what an admin would see:
//! roles in Studio, rows in the history, messages and exit codes.

use crate::support::daemon::{wait_for_history, Daemon, YEARLY};
use crate::support::{admins, user, Opts, Tenant};
use sqlx::{Row, SqlitePool};
use std::future::Future;
use std::time::Duration;
use studio_sim::{Faults, SimUser};

/// Deadline for one awaited condition ("within a few seconds", with room for a slow machine).
const WAIT: Duration = Duration::from_secs(20);

impl Daemon {
    async fn stop(mut self) {
        self.signal("-TERM");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("daemon stops")
            .unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log());
    }
}

/// Polls `check` until it gives a value; panics with `what` after [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    crate::support::daemon::wait_for(what, WAIT, check).await
}

/// `(id, trigger, status, removes_applied)` of every finished run, oldest first.
async fn runs(db: &SqlitePool) -> Vec<(i64, String, String, i64)> {
    sqlx::query("SELECT id, trigger, status, removes_applied FROM runs WHERE status != 'running' ORDER BY id")
        .fetch_all(db)
        .await
        .expect("runs query")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

/// Waits for finished run `id` and returns `(trigger, status, removes_applied)`.
async fn wait_run(db: &SqlitePool, id: i64) -> (String, String, i64) {
    wait_for(&format!("run {id} to finish"), || async {
        runs(db)
            .await
            .into_iter()
            .find(|r| r.0 == id)
            .map(|r| (r.1, r.2, r.3))
    })
    .await
}

/// `(status, used_by_run, detail)` of approval `id`.
async fn approval(db: &SqlitePool, id: i64) -> (String, Option<i64>, Option<String>) {
    let r = sqlx::query("SELECT status, used_by_run, detail FROM approvals WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("approval exists");
    (r.get(0), r.get(1), r.get(2))
}

const SIX: [&str; 6] = [
    "a1@school.edu",
    "a2@school.edu",
    "a3@school.edu",
    "a4@school.edu",
    "a5@school.edu",
    "a6@school.edu",
];

/// Six listed Admins, a protected Admin who is not listed, and an Admin without an email;
/// at most 2 removals a run.
async fn guarded_tenant() -> Tenant {
    let mut users: Vec<SimUser> = SIX
        .iter()
        .zip(1..)
        .map(|(e, id)| user(id, Some(e), &["Admin"]))
        .collect();
    users.push(user(7, None, &["Admin"]));
    users.push(user(8, Some("keep@school.edu"), &["Admin"]));
    let t = Tenant::start(users).await;
    t.write_config(&Opts {
        max_removals: 2,
        max_removal_ratio: 1.0,
        protected: "[keep@school.edu]",
        extra: YEARLY.into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&SIX));
    t
}

fn all_admins() -> Vec<String> {
    let mut v: Vec<String> = SIX.iter().map(|s| s.to_string()).collect();
    v.push("keep@school.edu".into());
    v.push("user 7".into());
    v.sort();
    v
}

#[tokio::test]
async fn approve_makes_the_running_daemon_apply_the_aborted_plan() {
    let t = guarded_tenant().await;
    let d = Daemon::start(&t);
    let db = wait_for_history(&t, "approvals", WAIT).await;
    assert_eq!(wait_run(&db, 1).await.1, "succeeded");

    // An end-of-term cleanup: four Admins leave, more than max_removals (2).
    t.write_roles(&admins(&SIX[..2]));
    let (_, status, _) = wait_run(&db, 2).await;
    assert_eq!(status, "aborted");
    assert_eq!(t.holders("Admin"), all_admins(), "nothing sent");

    let ok = t.cli(&["approve", "2", "--by", "alice"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stdout
            .contains("Approved the plan of run 2 as alice: 4 actions"),
        "{ok:?}"
    );
    assert!(ok.stdout.contains("The daemon (pid"), "{ok:?}");

    // Between schedule slots, the daemon sees the approval and sends the plan.
    let mut left: Vec<String> = vec![
        "a1@school.edu".into(),
        "a2@school.edu".into(),
        "keep@school.edu".into(),
        "user 7".into(),
    ];
    left.sort();
    wait_for("the approved removals in Studio", || async {
        (t.holders("Admin") == left).then_some(())
    })
    .await;
    // The protected email and the user without an email kept their role.
    assert_eq!(
        wait_run(&db, 3).await,
        ("manual".into(), "succeeded".into(), 4)
    );
    assert_eq!(approval(&db, 1).await, ("applied".into(), Some(3), None));

    let again = t.cli(&["approve", "2", "--by", "bob"]).await;
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.contains("run 2 is already approved")
            && again.stderr.contains("by alice")
            && again.stderr.contains("applied by run 3"),
        "{again:?}"
    );
    let none = t.cli(&["approve", "99"]).await;
    assert_eq!(none.code, 1, "{none:?}");
    assert!(none.stderr.contains("there is no run 99"), "{none:?}");
    let fine = t.cli(&["approve", "3"]).await;
    assert_eq!(fine.code, 1, "{fine:?}");
    assert!(
        fine.stderr
            .contains("run 3 is succeeded, not aborted by a safety guard"),
        "{fine:?}"
    );

    let list = t.cli(&["history"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    assert!(
        list.stdout.contains("approved by alice: applied in run 3"),
        "{list:?}"
    );
    assert!(
        list.stdout.contains("sent the approval 1 of run 2 (alice)"),
        "{list:?}"
    );
    let detail = t.cli(&["history", "--run", "2"]).await;
    assert!(
        detail.stdout.contains("Approval 1: approve by alice")
            && detail.stdout.contains("4 actions): applied by run 3"),
        "{detail:?}"
    );
    let approvals = t.cli(&["history", "--approvals", "--format", "csv"]).await;
    assert_eq!(approvals.code, 0, "{approvals:?}");
    assert!(
        approvals
            .stdout
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("1,approve,2,alice,") && l.contains(",4,applied,3,")),
        "{approvals:?}"
    );
    d.stop().await;
}

#[tokio::test]
async fn approve_is_refused_when_the_plan_changed_and_says_what_differs() {
    let t = guarded_tenant().await;
    let d = Daemon::start(&t);
    let db = wait_for_history(&t, "approvals", WAIT).await;
    wait_run(&db, 1).await;
    t.write_roles(&admins(&SIX[..2]));
    assert_eq!(wait_run(&db, 2).await.1, "aborted");
    // Someone edits the roles file before the approval: a3 stays, a1 goes instead.
    t.write_roles(&admins(&["a2@school.edu", "a3@school.edu"]));
    assert_eq!(wait_run(&db, 3).await.1, "aborted");

    let ok = t.cli(&["approve", "2", "--by", "alice"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    let (trigger, status, removed) = wait_run(&db, 4).await;
    assert_eq!(
        (trigger.as_str(), status.as_str(), removed),
        ("manual", "aborted", 0)
    );
    assert_eq!(t.holders("Admin"), all_admins(), "nothing sent");
    let error: String = sqlx::query_scalar("SELECT error FROM runs WHERE id = 4")
        .fetch_one(&db)
        .await
        .unwrap();
    assert!(
        error.contains("the plan changed since approval 1 by alice (plan of run 2)")
            && error.contains(
                "1 action only in the approved plan (remove Admin a3@school.edu (user 3))"
            )
            && error
                .contains("1 action only in the new plan (remove Admin a1@school.edu (user 1))")
            && error.contains("without it: role Admin: 4 removals planned"),
        "{error}"
    );
    let (status, used_by, detail) = approval(&db, 1).await;
    assert_eq!((status.as_str(), used_by), ("refused", Some(4)));
    assert!(detail.unwrap().contains("only in the new plan"));

    // The refused run's plan can be approved in turn; that one goes through.
    let ok = t.cli(&["approve", "4", "--by", "alice"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert_eq!(
        wait_run(&db, 5).await,
        ("manual".into(), "succeeded".into(), 4)
    );
    assert!(!t.holders("Admin").contains(&"a1@school.edu".to_string()));
    assert!(t.holders("Admin").contains(&"a3@school.edu".to_string()));
    d.stop().await;
}

#[tokio::test]
async fn without_a_daemon_apply_uses_the_approval_but_never_for_an_empty_desired_state() {
    let t = guarded_tenant().await;
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    t.write_roles(&admins(&SIX[..2]));
    let aborted = t.cli(&["apply"]).await;
    assert_eq!(aborted.code, 3, "{aborted:?}");
    assert!(
        aborted
            .stdout
            .contains("let exactly them through: studio-role-sync approve 2"),
        "{aborted:?}"
    );
    let ok = t.cli(&["approve", "2", "--by", "carol"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.contains("No daemon is running"), "{ok:?}");

    // The source comes back empty (a truncated file): the approval does not lift that.
    t.write_roles("users: {}\n");
    let empty = t.cli(&["apply"]).await;
    assert_eq!(empty.code, 3, "{empty:?}");
    assert!(
        empty.stdout.contains("the desired state grants no role"),
        "{empty:?}"
    );
    assert_eq!(t.holders("Admin"), all_admins(), "nothing sent");
    let db = t.history().await;
    let (status, used_by, detail) = approval(&db, 1).await;
    assert_eq!((status.as_str(), used_by), ("refused", Some(3)));
    assert!(detail.unwrap().contains("never lifts"));
    let no = t.cli(&["approve", "3"]).await;
    assert_eq!(no.code, 1, "{no:?}");
    assert!(
        no.stderr
            .contains("the desired state is empty; an approval never lifts that refusal"),
        "{no:?}"
    );

    // Back to the cleanup: aborted again, approved, and the next apply sends it.
    t.write_roles(&admins(&SIX[..2]));
    assert_eq!(t.cli(&["apply"]).await.code, 3);
    assert_eq!(t.cli(&["approve", "4"]).await.code, 0);
    let applied = t.cli(&["apply"]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("Approved: approval 2 by")
            && applied.stdout.contains("lifted the guard"),
        "{applied:?}"
    );
    assert_eq!(t.holders("Admin").len(), 4, "a1, a2, keep, user 7");
}

#[tokio::test]
async fn saved_plan_is_applied_only_while_it_is_the_same() {
    let t = guarded_tenant().await;
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    t.write_roles(&admins(&SIX[..2]));
    let file = t.path("cleanup.json");
    let file_arg = file.to_str().unwrap();
    let planned = t.cli(&["plan", "--out", file_arg]).await;
    assert_eq!(planned.code, 3, "the guard trips: {planned:?}");
    assert!(
        planned.stdout.contains("Saved the plan to")
            && planned.stdout.contains("(4 actions, digest"),
        "{planned:?}"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Changed since: a3 stays, a1 goes. Refused, with what differs and why.
    t.write_roles(&admins(&["a2@school.edu", "a3@school.edu"]));
    let refused = t.cli(&["apply", file_arg]).await;
    assert_eq!(refused.code, 3, "{refused:?}");
    assert!(
        refused
            .stdout
            .contains("the plan changed since the saved plan")
            && refused
                .stdout
                .contains("1 action only in the approved plan (remove Admin a3@school.edu")
            && refused
                .stdout
                .contains("1 action only in the new plan (remove Admin a1@school.edu")
            && refused
                .stdout
                .contains("The desired state changed since the plan was saved"),
        "{refused:?}"
    );
    assert_eq!(t.holders("Admin"), all_admins(), "nothing sent");

    // The file's plan again: sent, the removal guard lifted for it.
    t.write_roles(&admins(&SIX[..2]));
    let applied = t.cli(&["apply", file_arg]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("Approved: the saved plan") && applied.stdout.contains("4 removed"),
        "{applied:?}"
    );
    assert_eq!(t.holders("Admin").len(), 4);
    let db = t.history().await;
    let kinds: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, status FROM approvals ORDER BY id")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        vec![
            ("saved_plan".into(), "refused".into()),
            ("saved_plan".into(), "applied".into())
        ]
    );

    // Files that are not a saved plan are refused before anything is recorded, named.
    let missing = t.cli(&["apply", "/nonexistent/plan.json"]).await;
    assert_eq!(missing.code, 1, "{missing:?}");
    assert!(
        missing
            .stderr
            .contains("saved plan /nonexistent/plan.json: cannot be read"),
        "{missing:?}"
    );
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("a3@school.edu", "a1@school.edu");
    std::fs::write(&file, text).unwrap();
    let edited = t.cli(&["apply", file_arg]).await;
    assert_eq!(edited.code, 1, "{edited:?}");
    assert!(edited.stderr.contains("the file was edited"), "{edited:?}");
}

#[tokio::test]
async fn sighup_and_trigger_start_a_run_and_a_busy_daemon_queues_one() {
    let t = guarded_tenant().await;
    let none = t.cli(&["apply"]).await;
    assert_eq!(none.code, 0, "{none:?}");
    let alone = t.cli(&["trigger"]).await;
    assert_eq!(alone.code, 1, "{alone:?}");
    assert!(alone.stderr.contains("no daemon is running"), "{alone:?}");

    t.write_config(&Opts {
        max_removals: 2,
        protected: "[keep@school.edu]",
        timeout_seconds: 30.0,
        extra: YEARLY.into(),
        ..Opts::default()
    });
    let d = Daemon::start(&t);
    let db = wait_for_history(&t, "approvals", WAIT).await;
    assert_eq!(wait_run(&db, 2).await.0, "startup");

    d.signal("-HUP");
    assert_eq!(wait_run(&db, 3).await.0, "manual");
    let asked = t.cli(&["trigger", "--by", "bob"]).await;
    assert_eq!(asked.code, 0, "{asked:?}");
    assert!(asked.stdout.contains("took the request"), "{asked:?}");
    assert_eq!(wait_run(&db, 4).await.0, "manual");

    // A slow run (4 s: longer than the 2 s poll): requests while it runs queue exactly one
    // follow-up run.
    t.sim.set_faults(Faults {
        latency: Duration::from_secs(4),
        ..Faults::default()
    });
    d.signal("-HUP");
    wait_for("run 5 to start", || async {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE id = 5")
            .fetch_one(&db)
            .await
            .unwrap();
        (n == 1).then_some(())
    })
    .await;
    d.signal("-HUP");
    d.signal("-HUP");
    assert_eq!(t.cli(&["trigger"]).await.code, 0);
    assert_eq!(wait_run(&db, 5).await.0, "manual");
    assert_eq!(wait_run(&db, 6).await.0, "manual");
    t.sim.set_faults(Faults::default());
    // The next run is the one asked for now: no second follow-up was queued.
    assert_eq!(t.cli(&["trigger"]).await.code, 0);
    wait_run(&db, 7).await;
    let all = runs(&db).await;
    assert_eq!(all.len(), 7, "{all:?}");
    d.stop().await;
}

/// A flapping change left alone beside a cleanup: the approval is of the plan the run made,
/// which leaves that change out, so the next `apply` uses it and sends only the cleanup.
#[tokio::test]
async fn an_approval_beside_a_flapping_change_left_alone_is_used() {
    let t = Tenant::start(vec![
        user(1, Some("a1@school.edu"), &["Admin"]),
        user(2, Some("a2@school.edu"), &["Admin"]),
        user(3, Some("a3@school.edu"), &["Admin"]),
        user(4, Some("canvasadmin@school.edu"), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        max_removals: 1,
        max_removal_ratio: 1.0,
        extra: "flapping:\n  after_runs: 2\n  reapply: false\n".into(),
        ..Opts::default()
    });
    t.write_roles(&admins(&[
        "a1@school.edu",
        "a2@school.edu",
        "a3@school.edu",
    ]));
    assert_eq!(t.cli(&["apply"]).await.code, 0, "run 1 removes canvasadmin");
    // Canvas gives its admin the role back; the cleanup removes two Admins (limit 1).
    t.sim.set_roles(4, vec!["Admin".into()]);
    t.write_roles(&admins(&["a1@school.edu"]));
    let aborted = t.cli(&["apply"]).await;
    assert_eq!(aborted.code, 3, "{aborted:?}");
    assert!(
        aborted
            .stdout
            .contains("left alone: flapping.reapply is false"),
        "{aborted:?}"
    );
    let ok = t.cli(&["approve", "2", "--by", "alice"]).await;
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stdout
            .contains("Approved the plan of run 2 as alice: 2 actions"),
        "the change left alone is not part of the plan: {ok:?}"
    );
    let applied = t.cli(&["apply"]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert!(
        applied.stdout.contains("Approved: approval 1 by alice"),
        "{applied:?}"
    );
    assert_eq!(
        t.holders("Admin"),
        ["a1@school.edu", "canvasadmin@school.edu"],
        "the cleanup was sent, the flapping change still left alone"
    );
    let db = t.history().await;
    assert_eq!(approval(&db, 1).await, ("applied".into(), Some(3), None));
}

/// Two approvals of one plan (of the aborted `apply` and of the `plan` after it): the run
/// uses one, and the other is recorded superseded by it, not refused.
#[tokio::test]
async fn a_second_approval_of_the_same_plan_is_superseded_not_refused() {
    let t = guarded_tenant().await;
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    t.write_roles(&admins(&SIX[..2]));
    assert_eq!(t.cli(&["apply"]).await.code, 3, "run 2 aborted");
    assert_eq!(t.cli(&["plan"]).await.code, 3, "run 3: the same plan");
    assert_eq!(t.cli(&["approve", "2", "--by", "alice"]).await.code, 0);
    assert_eq!(t.cli(&["approve", "3", "--by", "bob"]).await.code, 0);
    let applied = t.cli(&["apply"]).await;
    assert_eq!(applied.code, 0, "{applied:?}");
    assert_eq!(t.holders("Admin").len(), 4, "a1, a2, keep, user 7");
    let db = t.history().await;
    assert_eq!(approval(&db, 1).await, ("applied".into(), Some(4), None));
    assert_eq!(
        approval(&db, 2).await,
        (
            "superseded".into(),
            Some(4),
            Some("superseded by approval 1, used by run 4".into())
        )
    );
    let list = t.cli(&["history", "--approvals"]).await;
    assert_eq!(list.code, 0, "{list:?}");
    let bob = list
        .stdout
        .lines()
        .find(|l| l.contains("bob"))
        .unwrap_or_default();
    assert!(
        bob.contains("superseded") && bob.contains("run 4") && !bob.contains("refused"),
        "{list:?}"
    );
    let runs = t.cli(&["history"]).await;
    assert!(
        runs.stdout.contains("approved by bob: superseded in run 4")
            && runs.stdout.contains("approval 2 of run 3 (bob) superseded"),
        "{runs:?}"
    );
}

/// `plan --out` writes only a regular file (or a new one): a symlink, a FIFO or a folder is
/// refused before the run, by name, without hanging and without touching what it points to.
/// A regular file is replaced by a rename (a full disk would leave the old plan whole).
#[tokio::test]
async fn plan_out_refuses_what_is_not_a_regular_file_and_replaces_by_rename() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let t = guarded_tenant().await;
    assert_eq!(t.cli(&["apply"]).await.code, 0);
    t.write_roles(&admins(&SIX[..5]));

    let victim = t.path("victim.txt");
    std::fs::write(&victim, "precious\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    let link = t.path("link.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let fifo = t.path("fifo.json");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let folder = t.path("folder.json");
    std::fs::create_dir(&folder).unwrap();
    let runs_before = runs(&t.history().await).await.len();
    for (path, what) in [
        (&link, "is a symbolic link"),
        (&fifo, "is a FIFO"),
        (&folder, "is a folder"),
    ] {
        let arg = path.to_str().unwrap();
        let refused = tokio::time::timeout(WAIT, t.cli(&["plan", "--out", arg]))
            .await
            .unwrap_or_else(|_| panic!("plan --out {arg} hangs"));
        assert_eq!(refused.code, 1, "{refused:?}");
        assert!(
            refused.stderr.contains(&format!(
                "saved plan {arg}: {what}; --out must name a regular file"
            )),
            "{refused:?}"
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(
        std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        runs(&t.history().await).await.len(),
        runs_before,
        "refused before any run was recorded"
    );

    // An existing plan is replaced whole: a new inode, 0600, nothing left beside it.
    let file = t.path("plans/cleanup.json");
    std::fs::create_dir(t.path("plans")).unwrap();
    std::fs::write(&file, "old plan\n").unwrap();
    let old_inode = std::fs::metadata(&file).unwrap().ino();
    let planned = t.cli(&["plan", "--out", file.to_str().unwrap()]).await;
    assert_eq!(planned.code, 2, "{planned:?}");
    let meta = std::fs::metadata(&file).unwrap();
    assert_ne!(meta.ino(), old_inode, "written beside, then renamed");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&file)
        .unwrap()
        .contains("studio-role-sync saved plan"));
    let names: Vec<_> = std::fs::read_dir(t.path("plans"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec!["cleanup.json"]);
}
