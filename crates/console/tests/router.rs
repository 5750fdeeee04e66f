//! The console over real HTTP: its router served by the engine's bounded accept loop on a
//! listener that is not loopback-only (0.0.0.0), against a real history file written through
//! the engine, and read with a real HTTP client. What a reader (or an attacker) would notice:
//! refused without the token, the security headers on every answer, HTML in an email or a
//! Studio detail shown as text, bounded and validated parameters, no write action.

use reqwest::StatusCode;
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use studio_role_sync_console::{router, ConsoleOptions, Credentials};
use studio_role_sync_engine::change::{ChangeKey, ChangeKind, Outcome};
use studio_role_sync_engine::config::ConsoleAuth;
use studio_role_sync_engine::history::{AccountSeen, ActionRow, History, PendingRow, RunRecord};
use studio_role_sync_engine::http::{serve_router, HttpLimits};
use studio_role_sync_engine::http::{LastRun, Readiness};
use studio_role_sync_engine::plan::GuardKind;
use studio_role_sync_engine::run_status::RunStatus;

const TOKEN: &str = "console-t0ken-for-tests";
const EVIL_EMAIL: &str = "<script>alert(1)</script>@x.edu";
const EVIL_DETAIL: &str = "Studio said <img src=x onerror=alert(2)> & left";

struct Served {
    _dir: tempfile::TempDir,
    base: String,
    client: reqwest::Client,
}

fn action(email: &str, outcome: Outcome, detail: Option<&str>) -> ActionRow {
    ActionRow {
        email: Some(email.into()),
        user_id: 7,
        role: "Admin".into(),
        action: ChangeKind::Remove,
        outcome,
        http_status: Some(422),
        detail: detail.map(str::to_string),
        source: None,
        until: None,
        reason: None,
    }
}

/// A history of `runs` runs (run 2 aborted by a guard, with the hostile email and detail),
/// served with `auth` on 0.0.0.0.
async fn serve(runs: usize, auth: Option<ConsoleAuth>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let h = History::open(&path).await.unwrap();
    for i in 1..=runs {
        let id = h.start_run("schedule", false).await.unwrap();
        let (status, actions, pending) = match i {
            2 => (
                RunStatus::Aborted,
                vec![action(EVIL_EMAIL, Outcome::Skipped, Some(EVIL_DETAIL))],
                vec![PendingRow {
                    email: "newhire@x.edu".into(),
                    reason: "not_in_studio".into(),
                    user_id: None,
                    detail: Some("no Studio user has this email <b>yet</b>".into()),
                }],
            ),
            _ => (RunStatus::Succeeded, vec![], vec![]),
        };
        h.record_plan(
            id,
            &actions,
            &studio_role_sync_engine::history::PendingUpdate {
                rows: &pending,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let record = RunRecord {
            id,
            status,
            removes_planned: actions.len() as i64,
            pending: pending.len() as i64,
            error: (status == RunStatus::Aborted)
                .then(|| "safety guard: 1 removal <b>planned</b>".into()),
            ..Default::default()
        };
        h.finish_run(&record).await.unwrap();
        if status == RunStatus::Aborted {
            h.set_run_plan(id, "digest", Some(GuardKind::MaxRemovalRatio))
                .await
                .unwrap();
            h.set_role_holders(id, &[("Admin".into(), 1)])
                .await
                .unwrap();
        }
    }
    h.close().await;
    serve_file(dir, auth, None).await
}

/// The history `dir/history.db`, served with `auth` on 0.0.0.0, with the daemon's `readiness`
/// when given (as the daemon serves it).
async fn serve_file(
    dir: tempfile::TempDir,
    auth: Option<ConsoleAuth>,
    readiness: Option<Arc<RwLock<Readiness>>>,
) -> Served {
    let path = dir.path().join("history.db");
    let app = router(ConsoleOptions {
        history: History::open_read_only(&path),
        credentials: auth.as_ref().map(Credentials::new),
        // Every 15 minutes in Paris: the console offers times in that zone too.
        schedule: Some(
            studio_role_sync_engine::daemon::Slots::new("0 */15 * * * *", chrono_tz::Europe::Paris)
                .unwrap(),
        ),
        studio_auth: "access token from studio.token_file".into(),
        readiness,
        base_url: "https://myschool.instructuremedia.com".into(),
        config_path: None,
    });
    let listen: SocketAddr = "0.0.0.0:0".parse().unwrap();
    let (bound, _task) = serve_router(
        listen,
        app,
        "(console)",
        HttpLimits::default(),
        std::future::pending::<()>(),
    )
    .await
    .unwrap();
    Served {
        _dir: dir,
        base: format!("http://127.0.0.1:{}", bound.port()),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    }
}

impl Served {
    async fn get(
        &self,
        path: &str,
        bearer: Option<&str>,
    ) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(t) = bearer {
            request = request.bearer_auth(t);
        }
        let answer = request.send().await.unwrap();
        let (status, headers) = (answer.status(), answer.headers().clone());
        (status, headers, answer.text().await.unwrap())
    }

    async fn page(&self, path: &str) -> (StatusCode, String) {
        let (status, _, body) = self.get(path, Some(TOKEN)).await;
        (status, body)
    }
}

/// The body with HTML character references decoded: what a browser shows as text.
fn as_text(body: &str) -> String {
    body.replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// What a reader sees: the text without tags, spaces collapsed, entities decoded.
fn words(body: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for ch in body.chars() {
        match ch {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    as_text(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `text` is in the page as text: escaped in the markup, and there once decoded.
fn shown_as_text(body: &str, text: &str) -> bool {
    !body.contains(text) && as_text(body).contains(text)
}

fn bearer() -> Option<ConsoleAuth> {
    Some(ConsoleAuth::Token(SecretString::from(TOKEN)))
}

#[tokio::test]
async fn refused_without_the_token_and_served_with_it() {
    let s = serve(3, bearer()).await;
    for path in [
        "/console/",
        "/console/runs/2",
        "/console/health",
        "/console/person?email=a@x.edu",
    ] {
        let (status, headers, body) = s.get(path, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            headers["www-authenticate"],
            "Bearer realm=\"studio-role-sync console\""
        );
        assert!(
            !body.contains("Run 2") && !body.contains("newhire"),
            "{body}"
        );
        let (status, _, _) = s.get(path, Some("console-t0ken-for-test")).await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "a prefix of the token: {path}"
        );
        let (status, _, _) = s.get(path, Some(TOKEN)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
    }
    // The style sheet is public: it is in the repository.
    let (status, headers, css) = s.get("/console/style.css", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "text/css; charset=utf-8");
    assert!(css.contains("svg.chart"));
}

#[tokio::test]
async fn basic_auth_for_browsers() {
    let s = serve(
        1,
        Some(ConsoleAuth::Password {
            user: None,
            password: SecretString::from("pw"),
        }),
    )
    .await;
    let (status, headers, _) = s.get("/console/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm="));
    let ok = s
        .client
        .get(format!("{}/console/", s.base))
        .basic_auth("anyone", Some("pw"))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let wrong = s
        .client
        .get(format!("{}/console/", s.base))
        .basic_auth("anyone", Some("pw2"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let s = serve(3, bearer()).await;
    for (path, token, expected) in [
        ("/console/", Some(TOKEN), StatusCode::OK),
        ("/console/runs/2", Some(TOKEN), StatusCode::OK),
        ("/console/pending", Some(TOKEN), StatusCode::OK),
        ("/console/health", Some(TOKEN), StatusCode::OK),
        ("/console/style.css", None, StatusCode::OK),
        ("/console/", None, StatusCode::UNAUTHORIZED),
        ("/console/?page=0", Some(TOKEN), StatusCode::BAD_REQUEST),
        ("/console/runs/99", Some(TOKEN), StatusCode::NOT_FOUND),
        ("/nowhere", Some(TOKEN), StatusCode::NOT_FOUND),
        ("/", Some(TOKEN), StatusCode::SEE_OTHER),
    ] {
        let (status, h, _) = s.get(path, token).await;
        assert_eq!(status, expected, "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'; style-src 'self'; img-src 'self' data:"),
            "{path}: {csp}"
        );
        assert!(
            !csp.contains("script-src") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
    }
}

#[tokio::test]
async fn html_in_an_email_or_a_detail_is_shown_as_text() {
    let s = serve(3, bearer()).await;
    let (status, run) = s.page("/console/runs/2").await;
    assert_eq!(status, StatusCode::OK);
    let (status, person) = s
        .page("/console/person?email=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40x.edu")
        .await;
    assert_eq!(status, StatusCode::OK);
    for body in [&run, &person] {
        assert!(shown_as_text(body, EVIL_EMAIL), "{body}");
        assert!(shown_as_text(body, EVIL_DETAIL), "{body}");
        assert!(
            !body.contains("<script") && !body.contains("<img"),
            "{body}"
        );
    }
    assert!(shown_as_text(
        &run,
        "no Studio user has this email <b>yet</b>"
    ));
    assert!(shown_as_text(
        &run,
        "safety guard: 1 removal <b>planned</b>"
    ));
    // The person link is percent-encoded, so the email cannot break out of the attribute.
    assert!(
        run.contains(
            "href=\"/console/person?email=%3Cscript%3Ealert%281%29%3C%2Fscript%3E%40x%2Eedu\""
        ),
        "{run}"
    );
}

#[tokio::test]
async fn an_aborted_run_shows_the_risk_then_the_approve_command_and_nothing_writes() {
    // Run 2, stopped by a guard, is the newest run: the risk, then the remedies.
    let s = serve(2, bearer()).await;
    let (_, run) = s.page("/console/runs/2").await;
    let text = words(&run);
    assert!(
        text.contains("Admin 1 1 100%"),
        "holders, removals, share: {text}"
    );
    assert!(
        run.contains("<code id=\"approve-command\">studio-role-sync approve 2 --by NAME</code>"),
        "{run}"
    );
    assert!(
        text.find("restore the roles file") < text.find("studio-role-sync approve 2"),
        "the most common remedy first: {text}"
    );
    assert!(text.contains("Since: Nothing has happened since"), "{text}");
    let (_, health) = s.page("/console/health").await;
    assert!(health.contains("tripped in run 2"), "{health}");
    assert!(health.contains("studio-role-sync approve 2 --by NAME"));
    let (_, runs) = s.page("/console/").await;
    assert!(
        runs.contains("data-kind=\"guard\"")
            && words(&runs).contains("A safety guard stopped run 2"),
        "the status strip names the tripped guard: {runs}"
    );

    // Once run 3 succeeded with nothing to do, run 2 is superseded: no command any more.
    let s = serve(3, bearer()).await;
    let (_, run) = s.page("/console/runs/2").await;
    assert!(!run.contains("approve-command"), "{run}");
    assert!(
        words(&run).contains("Superseded by run 3: nothing to do."),
        "{run}"
    );
    let (_, health) = s.page("/console/health").await;
    assert!(health.contains("last tripped in run 2"), "{health}");
    for path in [
        "/console/",
        "/console/runs/2",
        "/console/runs/1",
        "/console/pending",
        "/console/health",
        "/console/person?email=newhire@x.edu",
    ] {
        let (status, body) = s.page(path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !body.to_lowercase().contains("method=\"post\""),
            "{path}: a form that writes"
        );
        assert!(!body.contains("<script"), "{path}: script");
        assert!(!body.contains(TOKEN), "{path}: the token");
    }
    let post = s
        .client
        .post(format!("{}/console/runs/2", s.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn pages_and_parameters_are_bounded() {
    let s = serve(120, bearer()).await;
    // By default only the runs with changes: here the one a guard stopped.
    let (status, changes) = s.page("/console/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        changes.contains("1 run ") && changes.contains("href=\"/console/runs/2\""),
        "{changes}"
    );
    assert!(as_text(&changes).contains("href=\"/console/?view=all&page=1\""));
    let (status, first) = s.page("/console/?view=all").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        first.contains("120 runs") && first.contains("page 1 of 3"),
        "{first}"
    );
    assert_eq!(first.matches("<td><a href=\"/console/runs/").count(), 50);
    assert!(as_text(&first).contains("href=\"/console/?view=all&page=2\""));
    let (_, last) = s.page("/console/?view=all&page=3").await;
    assert_eq!(last.matches("<td><a href=\"/console/runs/").count(), 20);
    assert!(last.contains("href=\"/console/runs/1\"") && !last.contains("rel=\"next\""));
    let (status, beyond) = s.page("/console/?view=all&page=4").await;
    assert_eq!(status, StatusCode::OK);
    assert!(beyond.contains("No run matches."));
    let (_, aborted) = s.page("/console/?status=aborted&trigger=schedule").await;
    assert!(
        aborted.contains("1 run ") && aborted.contains("href=\"/console/runs/2\""),
        "{aborted}"
    );
    for (query, message) in [
        ("page=0", "page must be a whole number from 1 to 100000"),
        (
            "page=100001",
            "page must be a whole number from 1 to 100000",
        ),
        ("page=99999999999999999999", "page must be a whole number"),
        ("status=%3Cb%3E", "status \"<b>\" is not one of"),
        ("sort=id", "unknown parameter \"sort\""),
        ("view=some", "view \"some\" is not one of: changes, all"),
        ("from=2025-13-01", "from: \"2025-13-01\" is not a time"),
    ] {
        let (status, body) = s.page(&format!("/console/?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
        assert!(as_text(&body).contains(message), "{query}: {body}");
        assert!(!body.contains("<b>"), "{query}: {body}");
    }
    let (status, _) = s
        .page(&format!("/console/?status={}", "a".repeat(3000)))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = s.page("/console/runs/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("a run id is a whole number"));
    let (status, _) = s.page("/console/person").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = s.page("/console/pending?x=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, body) = s.page("/console/runs/2?approve=1").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        as_text(&body).contains("unknown parameter \"approve\""),
        "{body}"
    );
}

#[tokio::test]
async fn the_charts_are_inline_svg_with_data() {
    let s = serve(5, bearer()).await;
    let (_, runs) = s.page("/console/").await;
    assert_eq!(runs.matches("<svg ").count(), 3, "{runs}");
    assert!(
        runs.contains("data-points=\"1\""),
        "one day of runs: {runs}"
    );
    assert!(runs.contains(">Changes per day (actions): added, removed, failed</text>"));
    assert!(runs.contains(">seconds</text>") && runs.contains(">emails</text>"));
    // One day: points, and no line to draw between days.
    assert!(runs.contains("<circle class=\"avg\""));
    // The charts follow the table's filter.
    let (_, filtered) = s.page("/console/?view=all&trigger=reload").await;
    assert!(
        filtered.contains("runs that applied, trigger reload"),
        "{filtered}"
    );
    assert_eq!(filtered.matches("No runs in this range.").count(), 3);
}

/// Times are ISO and UTC, said once in the footer; each is a `<time>` whose title gives it in
/// the schedule's time zone, and a run's page shows that local time beside it.
#[tokio::test]
async fn times_are_utc_with_the_schedules_local_time_offered() {
    let s = serve(3, bearer()).await;
    let (_, runs) = s.page("/console/?view=all").await;
    assert!(runs.contains("All times are UTC"), "{runs}");
    assert!(
        runs.contains("<span id=\"tz\">Europe/Paris</span>"),
        "{runs}"
    );
    let time = runs
        .split("<time class=\"when\" datetime=\"")
        .nth(1)
        .expect("a <time> per run");
    let (iso, rest) = time.split_once('"').unwrap();
    assert!(iso.ends_with('Z') && iso.contains('T'), "{iso}");
    let title = rest
        .split("title=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let at = chrono::DateTime::parse_from_rfc3339(iso).unwrap();
    let local = at.with_timezone(&chrono_tz::Europe::Paris);
    assert_eq!(
        title,
        format!("{} (Europe/Paris)", local.format("%Y-%m-%d %H:%M:%S %Z"))
    );
    let (_, run) = s.page("/console/runs/1").await;
    assert!(run.contains("<span class=\"local\">"), "{run}");
    assert!(run.contains("(Europe/Paris)</span>"), "{run}");
    // Who is left alone since when: in the schedule's time zone too.
    let s = serve(2, bearer()).await;
    let (_, pending) = s.page("/console/pending").await;
    let since = pending
        .split("<time datetime=\"")
        .nth(1)
        .expect("a <time> per email left alone");
    assert!(since.contains("(Europe/Paris)\">"), "{pending}");
}

/// A history of its own, in `dir/history.db`, for a test that writes what it needs.
async fn history_in(dir: &tempfile::TempDir) -> History {
    History::open(&dir.path().join("history.db")).await.unwrap()
}

fn account(id: i64, name: &str, email: Option<&str>, held: &str) -> AccountSeen {
    AccountSeen {
        user_id: id,
        full_name: Some(name.into()),
        email: email.map(str::to_string),
        held: held.into(),
    }
}

/// Run `id` ends with `status`, having planned `removes` removals.
async fn finish(h: &History, id: i64, status: RunStatus, removes: i64) {
    let record = RunRecord {
        id,
        status,
        removes_planned: removes,
        error: (status == RunStatus::Aborted)
            .then(|| "safety guard: 3 removals planned, more than safety.max_removals (2)".into()),
        ..Default::default()
    };
    h.finish_run(&record).await.unwrap();
}

/// A run a guard stopped with 3 planned removals: the guard is said once, above; the risk
/// names an account without an email; the planned changes come folded, after the remedies.
#[tokio::test]
async fn an_aborted_run_says_the_guard_once_and_folds_its_planned_changes() {
    let dir = tempfile::tempdir().unwrap();
    let h = history_in(&dir).await;
    let id = h.start_run("schedule", false).await.unwrap();
    h.record_people(
        id,
        &[
            account(9, "Nameless Account", None, "Admin"),
            account(10, "Quiet Account", None, "Admin"),
        ],
        &[],
    )
    .await
    .unwrap();
    let guard = "not sent: safety guard: 3 removals planned, more than safety.max_removals (2)";
    let mut removals = vec![
        action("a@x.edu", Outcome::Skipped, Some(guard)),
        action("b@x.edu", Outcome::Skipped, Some(guard)),
        action("", Outcome::Skipped, Some(guard)),
    ];
    removals[2].email = None;
    removals[2].user_id = 9;
    h.record_plan(
        id,
        &removals,
        &studio_role_sync_engine::history::PendingUpdate {
            rows: &[PendingRow {
                email: "user 10".into(),
                reason: "no_email".into(),
                user_id: Some(10),
                detail: Some("holds a managed role but has no email; never removed".into()),
            }],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    finish(&h, id, RunStatus::Aborted, 3).await;
    h.set_run_plan(id, "digest", Some(GuardKind::MaxRemovals))
        .await
        .unwrap();
    h.set_role_holders(id, &[("Admin".into(), 4)])
        .await
        .unwrap();
    h.close().await;
    let s = serve_file(dir, bearer(), None).await;

    let (status, run) = s.page("/console/runs/1").await;
    assert_eq!(status, StatusCode::OK);
    let text = words(&run);
    assert!(
        !text.contains("not sent: "),
        "no row repeats the guard: {text}"
    );
    assert_eq!(
        text.matches("safety guard: 3 removals planned").count(),
        1,
        "the guard said once: {text}"
    );
    assert!(
        text.contains("Holders when run 1 read Studio") && text.contains("Admin 4 3 75%"),
        "{text}"
    );
    assert!(
        text.contains("Nameless Account (Studio user 9)"),
        "a removal without an email, by name: {text}"
    );
    let risk = run.find("id=\"risk\"").unwrap();
    let remedies = run.find("id=\"remedies\"").unwrap();
    let planned = run
        .find("<details id=\"planned-changes\"><summary>The 3 planned changes, none sent</summary>")
        .expect("the planned changes folded");
    let table = run.find("<table id=\"actions\">").unwrap();
    let folded_end = run[planned..].find("</details>").unwrap() + planned;
    assert!(
        risk < remedies && remedies < planned && planned < table && table < folded_end,
        "the risk, the remedies, then the folded changes: {run}"
    );
    let left_alone = &run[run.find("id=\"left-alone\"").unwrap()..];
    assert!(
        words(left_alone)
            .contains("Quiet Account (Studio user 10) Studio account without an email"),
        "{left_alone}"
    );
    let (_, pending) = s.page("/console/pending").await;
    assert!(
        words(&pending).contains("Quiet Account (Studio user 10)"),
        "{pending}"
    );
}

/// The person page says what someone holds after the latest run's changes, not before them,
/// and names every role that flapped, with when it last did.
#[tokio::test]
async fn a_person_holds_what_the_latest_run_left_and_flapping_says_when() {
    let dir = tempfile::tempdir().unwrap();
    let h = history_in(&dir).await;
    let id = h.start_run("schedule", false).await.unwrap();
    h.record_people(
        id,
        &[
            account(2, "Grace Hopper", Some("grace@x.edu"), "Editor"),
            account(3, "Ada Lovelace", Some("ada@x.edu"), "Admin"),
        ],
        &[],
    )
    .await
    .unwrap();
    let change = |email: &str, user_id, role: &str, kind| ActionRow {
        email: Some(email.into()),
        user_id,
        role: role.into(),
        action: kind,
        outcome: Outcome::Applied,
        http_status: Some(200),
        detail: None,
        source: None,
        until: None,
        reason: None,
    };
    h.record_plan(
        id,
        &[
            change("grace@x.edu", 2, "Admin", ChangeKind::Add),
            change("grace@x.edu", 2, "Editor", ChangeKind::Remove),
            change("ada@x.edu", 3, "Admin", ChangeKind::Remove),
        ],
        &Default::default(),
    )
    .await
    .unwrap();
    h.mark_flapping(
        id,
        &[
            ChangeKey {
                user_id: 2,
                role: "Admin".into(),
                kind: ChangeKind::Add,
            },
            ChangeKey {
                user_id: 2,
                role: "Editor".into(),
                kind: ChangeKind::Remove,
            },
        ],
    )
    .await
    .unwrap();
    finish(&h, id, RunStatus::Succeeded, 2).await;
    h.close().await;
    let s = serve_file(dir, bearer(), None).await;

    let (_, grace) = s.page("/console/person?email=grace@x.edu").await;
    let text = words(&grace);
    assert!(
        text.contains(
            "Grace Hopper (Studio user 2): holds Admin (granted by run 1); Editor removed by run 1"
        ),
        "{text}"
    );
    let flapping = &grace[grace
        .find("id=\"person-flapping\"")
        .expect("a flapping note")..];
    let flapping = words(&flapping[..flapping.find("</p>").unwrap()]);
    assert!(
        flapping.contains("Admin after the tool's add")
            && flapping.contains("Editor after the tool's remove"),
        "each role that flapped: {flapping}"
    );
    assert!(
        flapping.contains("in 1 run(s) (runs 1); last in run 1, ") && flapping.contains(" ago."),
        "when it last flapped: {flapping}"
    );
    let (_, ada) = s.page("/console/person?email=ada@x.edu").await;
    assert!(
        words(&ada).contains(
            "Ada Lovelace (Studio user 3): holds no managed role; Admin removed by run 1"
        ),
        "{ada}"
    );
}

/// The cells of each body row of the table `id`, as a reader sees them.
fn table_rows(body: &str, id: &str) -> Vec<Vec<String>> {
    let table = body
        .split(&format!("<table id=\"{id}\""))
        .nth(1)
        .unwrap_or_else(|| panic!("a table {id}: {body}"));
    let table = table.split("</table>").next().unwrap();
    table
        .split("<tr")
        .skip(1)
        .filter(|row| row.contains("<td"))
        .map(|row| {
            row.split("<td")
                .skip(1)
                .map(|cell| words(&format!("<td{cell}")))
                .collect()
        })
        .collect()
}

/// The text of the element with `id`.
fn text_of(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}: {body}"));
    let start = at + body[at..].find('>').unwrap() + 1;
    let end = start + body[start..].find("</p>").unwrap_or(body.len() - start);
    words(&body[start..end])
}

/// The first whole number in `text`.
fn first_number(text: &str) -> i64 {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|n| !n.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a number in {text:?}"))
}

/// A run that read 22 listed emails, 20 at school.edu, and left four alone: two with no
/// Studio account (both at shcool.edu, one with HTML in it), one shared by two accounts, one
/// protected by a rule.
async fn left_alone_history() -> tempfile::TempDir {
    use studio_role_sync_engine::history::{DesiredSeen, PendingUpdate};
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("history.db")).await.unwrap();
    let id = h.start_run("schedule", false).await.unwrap();
    let mut listed: Vec<DesiredSeen> = (1..=20)
        .map(|n| DesiredSeen {
            email: format!("staff{n}@school.edu"),
            roles: "Admin (roles.yaml)".into(),
        })
        .collect();
    for email in ["user15@shcool.edu", "<i>u16</i>@shcool.edu"] {
        listed.push(DesiredSeen {
            email: email.into(),
            roles: "Admin (roles.yaml)".into(),
        });
    }
    h.record_people(id, &[], &listed).await.unwrap();
    let left = |email: &str, reason: &str| PendingRow {
        email: email.into(),
        reason: reason.into(),
        user_id: None,
        detail: None,
    };
    let rows = [
        left("user15@shcool.edu", "not_in_studio"),
        left("<i>u16</i>@shcool.edu", "not_in_studio"),
        left("staff1@school.edu", "ambiguous"),
        left("staff2@school.edu", "protected"),
    ];
    h.record_plan(
        id,
        &[],
        &PendingUpdate {
            rows: &rows,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    h.finish_run(&RunRecord {
        id,
        status: RunStatus::Succeeded,
        // As the engine counts a run's pending: no account yet, or several.
        pending: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    h.close().await;
    dir
}

#[tokio::test]
async fn a_pending_typo_gets_a_hint_toward_the_domain_most_listed_emails_use() {
    let s = serve_file(left_alone_history().await, bearer(), None).await;
    let (status, pending) = s.page("/console/pending").await;
    assert_eq!(status, StatusCode::OK);
    let rows = table_rows(&pending, "pending");
    let email_cell = |email: &str| {
        rows.iter()
            .find(|r| r[0].starts_with(email))
            .unwrap_or_else(|| panic!("a row of {email}: {rows:?}"))[0]
            .clone()
    };
    // Most *listed* emails use school.edu, though only one pending email does.
    assert_eq!(
        email_cell("user15@shcool.edu"),
        "user15@shcool.edu Typo? Most listed emails use @school.edu: did you mean \
         user15@school.edu?"
    );
    assert!(
        email_cell("<i>u16</i>@shcool.edu").ends_with("did you mean <i>u16</i>@school.edu?"),
        "{rows:?}"
    );
    assert!(
        shown_as_text(&pending, "<i>u16</i>@school.edu?"),
        "{pending}"
    );
    // Only a near miss of the common domain with no Studio account gets a hint.
    assert!(
        !email_cell("staff1@school.edu").contains("Typo"),
        "{rows:?}"
    );
    assert_eq!(pending.matches("class=\"typo\"").count(), 2, "{pending}");
}

#[tokio::test]
async fn the_left_alone_counts_agree_with_the_rows_and_the_runs_list() {
    let s = serve_file(left_alone_history().await, bearer(), None).await;
    let (_, pending) = s.page("/console/pending").await;
    assert!(pending.contains("<title>Left alone now · studio-role-sync</title>"));
    assert!(pending.contains("<a href=\"/console/pending\">Left alone</a>"));
    let rows = table_rows(&pending, "pending");
    let count: i64 = words(
        pending
            .split("id=\"pending-count\">")
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap(),
    )
    .parse()
    .unwrap();
    let summary = text_of(&pending, "pending-summary");
    assert_eq!(
        summary,
        "4: 3 pending (2 no Studio account yet, 1 several Studio accounts share this email), \
         1 by rule (1 protected email (roles.protected))"
    );
    assert_eq!(count, rows.len() as i64, "the h1 counts the rows");
    assert_eq!(first_number(&summary), count, "the summary counts them too");
    let waiting = rows
        .iter()
        .filter(|r| r[2].starts_with("no Studio account yet") || r[2].starts_with("several"))
        .count() as i64;
    let pending_part = first_number(summary.split_once(": ").unwrap().1);
    assert_eq!(pending_part, waiting, "{rows:?}");
    // The runs list's "Pending" column of that run is the summary's pending part.
    let (_, runs) = s.page("/console/?view=all").await;
    let listed = table_rows(&runs, "runs");
    assert_eq!(
        listed[0][6].parse::<i64>().unwrap(),
        pending_part,
        "{listed:?}"
    );
    let (_, run) = s.page("/console/runs/1").await;
    assert!(
        words(&run).contains(&format!("Left alone {summary}")),
        "the run's page says it in the same words: {run}"
    );
}

#[tokio::test]
async fn the_runs_list_counts_the_runs_retention_folded() {
    use studio_role_sync_engine::config::RetentionConfig;
    use studio_role_sync_engine::history::{Clock, PendingUpdate};
    let now = chrono::Utc::now();
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual(now - chrono::Duration::days(5));
    let h = History::open(&dir.path().join("history.db"))
        .await
        .unwrap()
        .with_clock(clock.clone());
    // Twelve runs with nothing to do, six hours apart from five days ago, one with a change,
    // and one now.
    let mut at = now - chrono::Duration::days(5);
    for i in 0..14 {
        clock.set(if i == 13 { now } else { at });
        let id = h.start_run("schedule", false).await.unwrap();
        h.record_plan(id, &[], &PendingUpdate::default())
            .await
            .unwrap();
        h.finish_run(&RunRecord {
            id,
            status: RunStatus::Succeeded,
            adds_planned: i64::from(i == 5),
            adds_applied: i64::from(i == 5),
            ..Default::default()
        })
        .await
        .unwrap();
        at += chrono::Duration::hours(6);
    }
    let pruned = h
        .prune(&RetentionConfig {
            keep_noop_runs: std::time::Duration::from_secs(86_400),
            keep_changes: None,
        })
        .await
        .unwrap();
    assert_eq!(pruned.noop_runs, 12);
    h.close().await;
    let s = serve_file(dir, bearer(), None).await;

    let (_, all) = s.page("/console/?view=all").await;
    assert!(all.contains("<h2>2 runs "), "{all}");
    assert_eq!(table_rows(&all, "runs").len(), 2);
    assert_eq!(
        text_of(&all, "folded"),
        "plus 12 runs that changed nothing, folded into daily totals (history.keep_noop_runs)"
    );
    // The table's runs and the folded ones are the runs the charts count.
    let charted: i64 = all
        .split(" runs)</title>")
        .map(|part| first_number(part.rsplit('(').next().unwrap()))
        .take(all.matches(" runs)</title>").count())
        .sum();
    assert_eq!(charted, 2 + 12, "{all}");

    // A range counts the folded days that start in it.
    let day = |d: i64| {
        (now - chrono::Duration::days(d))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (_, today) = s.page(&format!("/console/?view=all&from={}", day(0))).await;
    assert!(!today.contains("id=\"folded\""), "{today}");
    let (_, older) = s.page(&format!("/console/?view=all&to={}", day(3))).await;
    let folded = text_of(&older, "folded");
    assert!(
        folded.starts_with("plus ") && !folded.starts_with("plus 12 "),
        "{folded}"
    );
    // Folded runs changed nothing: the changes view has none of them.
    let (_, changes) = s.page("/console/").await;
    assert!(!changes.contains("id=\"folded\""), "{changes}");
}

/// Runs written through the engine as the daemon writes them: each `(status, error)` in turn,
/// by the history's clock.
async fn write_runs(h: &History, runs: &[(RunStatus, Option<&str>)]) -> Vec<i64> {
    let mut ids = Vec::new();
    for (status, error) in runs {
        let id = h.start_run("schedule", false).await.unwrap();
        h.finish_run(&RunRecord {
            id,
            status: *status,
            error: error.map(str::to_string),
            ..Default::default()
        })
        .await
        .unwrap();
        ids.push(id);
    }
    ids
}

/// A history file in a new directory, written by `write`.
async fn history_with<F>(write: F) -> tempfile::TempDir
where
    F: AsyncFnOnce(&History),
{
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&dir.path().join("history.db")).await.unwrap();
    write(&h).await;
    h.close().await;
    dir
}

/// The strip's problem of `kind`, as a reader sees it (text, then next step), if any.
fn problem(body: &str, kind: &str) -> Option<String> {
    let start = body.find(&format!("data-kind=\"{kind}\""))?;
    let end = body[start..].find("</li>")? + start;
    Some(words(&format!("<li {}", &body[start..end])))
}

/// `to=DAY` keeps the whole day, and the form says DAY again, not the day before; a time as
/// `to` shows the last day it reaches.
#[tokio::test]
async fn the_to_day_is_included_and_shown_again() {
    let s = serve(3, bearer()).await;
    let today = chrono::Utc::now().date_naive();
    let day = today.format("%Y-%m-%d").to_string();
    let (status, runs) = s.page(&format!("/console/?view=all&to={day}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(runs.contains("3 runs"), "today's runs are in: {runs}");
    assert!(
        runs.contains(&format!("name=\"to\" value=\"{day}\"")),
        "{runs}"
    );
    let end_of_day = format!("{day}T23:59:59Z");
    let (_, runs) = s.page(&format!("/console/?view=all&to={end_of_day}")).await;
    assert!(runs.contains("3 runs"), "{runs}");
    assert!(
        runs.contains(&format!("name=\"to\" value=\"{day}\"")),
        "the day of the time, not the day before: {runs}"
    );
    let yesterday = (today - chrono::Duration::days(1)).format("%Y-%m-%d");
    let (_, runs) = s.page(&format!("/console/?view=all&to={yesterday}")).await;
    assert!(runs.contains("No run matches."), "{runs}");
    assert!(runs.contains(&format!("name=\"to\" value=\"{yesterday}\"")));
    // ISO days whatever the browser's locale: a date input shows mm/dd/yyyy in en-US.
    assert!(!runs.contains("type=\"date\""), "{runs}");
    assert_eq!(
        runs.matches("placeholder=\"YYYY-MM-DD\"").count(),
        2,
        "{runs}"
    );
}

/// The strip's next run follows the schedule the daemon runs now: the one it started with,
/// then the one a config reload put in its readiness.
#[tokio::test]
async fn the_next_run_follows_a_config_reload() {
    let dir = history_with(async |h| {
        write_runs(h, &[(RunStatus::Succeeded, None)]).await;
    })
    .await;
    let readiness = Arc::new(RwLock::new(Readiness::default()));
    let s = serve_file(dir, bearer(), Some(readiness.clone())).await;
    let next_run = |body: &str| {
        let at = body
            .find("id=\"next-run\">")
            .expect("the strip says the next run");
        words(&body[at..at + body[at..].find("</span>").unwrap()])
    };
    let (_, runs) = s.page("/console/").await;
    let before = next_run(&runs);
    // Every 15 minutes, as the daemon started.
    assert!(
        ["00:00Z", "15:00Z", "30:00Z", "45:00Z"]
            .iter()
            .any(|m| before.contains(m)),
        "{before}"
    );
    let daily =
        studio_role_sync_engine::daemon::Slots::new("0 30 4 * * *", chrono_tz::UTC).unwrap();
    let expected = daily.next_after(chrono::Utc::now()).unwrap();
    readiness.write().unwrap().schedule = Some(daily);
    let (_, runs) = s.page("/console/").await;
    let after = next_run(&runs);
    assert!(
        after.contains(&format!("({}Z)", expected.format("%Y-%m-%d %H:%M:%S"))),
        "{after}"
    );
    assert!(after.contains("04:30:00Z"), "{after}");
}

/// Failing, flapping and long-pending each open a problem in the strip, with a next step.
#[tokio::test]
async fn the_strip_names_each_open_problem_with_a_next_step() {
    let now = chrono::Utc::now();
    let dir = history_with(async |h| {
        // Ten days ago, an email with no Studio account; it is still pending.
        let clock =
            studio_role_sync_engine::history::Clock::manual(now - chrono::Duration::days(10));
        let old = h.clone().with_clock(clock);
        let id = old.start_run("schedule", false).await.unwrap();
        old.record_plan(
            id,
            &[],
            &studio_role_sync_engine::history::PendingUpdate {
                rows: &[PendingRow {
                    email: "newhire@x.edu".into(),
                    reason: "not_in_studio".into(),
                    user_id: None,
                    detail: None,
                }],
                ..Default::default()
            },
        )
        .await
        .unwrap();
        old.finish_run(&RunRecord {
            id,
            status: RunStatus::Succeeded,
            pending: 1,
            ..Default::default()
        })
        .await
        .unwrap();
        let ids = write_runs(
            h,
            &[
                (
                    RunStatus::Failed,
                    Some(
                        "reading Studio failed: Studio answered 502 to search_by_role: bad gateway",
                    ),
                ),
                (
                    RunStatus::Failed,
                    Some(
                        "reading Studio failed: Studio answered 502 to search_by_role: bad gateway",
                    ),
                ),
            ],
        )
        .await;
        let key = studio_role_sync_engine::change::ChangeKey {
            user_id: 7,
            role: "Admin".into(),
            kind: ChangeKind::Add,
        };
        h.mark_flapping(ids[1], &[key]).await.unwrap();
    })
    .await;
    let s = serve_file(dir, bearer(), None).await;
    let (_, runs) = s.page("/console/").await;
    let failing = problem(&runs, "failing").expect("failing");
    assert!(
        failing.contains("The last 2 runs are failing: Studio answered with a server error.")
            && failing.contains("Next step: Usually passing: the next run tries again."),
        "{failing}"
    );
    let flapping = problem(&runs, "flapping").expect("flapping");
    assert!(
        flapping.contains("re-applied 1 change(s)")
            && flapping.contains("Next step: Find who or what changes these roles"),
        "{flapping}"
    );
    let pending = problem(&runs, "pending").expect("pending");
    assert!(
        pending.contains("1 email(s) have had no Studio account for more than 7 days.")
            && pending.contains("Next step: Check them for typos"),
        "{pending}"
    );
    assert!(problem(&runs, "auth").is_none(), "{runs}");
    assert!(!runs.contains("No open problem"));

    // Refused credentials: an authentication problem, naming how the daemon signs in.
    let dir = history_with(async |h| {
        write_runs(
            h,
            &[(
                RunStatus::Failed,
                Some(
                    "reading Studio failed: Studio refused the credentials (401 Unauthorized) \
                     for search_by_role: check the token named by studio.token_env or \
                     studio.token_file",
                ),
            )],
        )
        .await;
    })
    .await;
    let s = serve_file(dir, bearer(), None).await;
    let (_, runs) = s.page("/console/").await;
    let auth = problem(&runs, "auth").expect("auth");
    assert!(
        auth.contains("Run 1 is failing: Studio refused the daemon's credentials.")
            && auth.contains("Next step: Renew the Studio token")
            && auth.contains("(access token from studio.token_file)"),
        "{auth}"
    );
    assert!(problem(&runs, "failing").is_none(), "{runs}");
    let (_, health) = s.page("/console/health").await;
    assert!(
        words(&health).contains("failing (access token from studio.token_file)"),
        "{health}"
    );
}

/// A tab in the roles file is a roles-file problem, not refused credentials, though YAML's
/// message says "token".
#[tokio::test]
async fn a_roles_file_error_is_not_called_an_authentication_failure() {
    let error = "/etc/studio-role-sync/roles.yaml: desired roles are invalid (1 problem); \
                 nothing was sent to Studio\n  /etc/studio-role-sync/roles.yaml:2: found \
                 character that cannot start any token (expected `users:` mapping each email \
                 to a list of roles)";
    let dir = history_with(async |h| {
        write_runs(h, &[(RunStatus::Failed, Some(error))]).await;
    })
    .await;
    let s = serve_file(dir, bearer(), None).await;
    let (_, runs) = s.page("/console/").await;
    assert!(problem(&runs, "auth").is_none(), "{runs}");
    let failing = problem(&runs, "failing").expect("failing");
    assert!(
        failing.contains("The desired state could not be read.")
            && failing.contains("Next step: Fix the file or the source at the line named"),
        "{failing}"
    );
    let (_, run) = s.page("/console/runs/1").await;
    assert!(!words(&run).contains("Renew the Studio token"), "{run}");
    let (_, health) = s.page("/console/health").await;
    assert!(
        !words(&health).contains("could not authenticate"),
        "{health}"
    );
}

/// A run that failed before the history had it (the Studio client could not be set up, a
/// panic) has no run page: the strip and the health page say it, with the raw error below.
#[tokio::test]
async fn a_run_that_failed_before_it_was_recorded_is_a_problem() {
    let dir = history_with(async |h| {
        write_runs(h, &[(RunStatus::Succeeded, None)]).await;
    })
    .await;
    let panic = "the run panicked: index out of bounds <b>7</b>";
    let readiness = Arc::new(RwLock::new(Readiness {
        last_run: Some(LastRun {
            id: None,
            status: RunStatus::Failed,
            error: Some(panic.into()),
        }),
        ..Default::default()
    }));
    let s = serve_file(dir, bearer(), Some(readiness.clone())).await;
    let (_, runs) = s.page("/console/").await;
    assert!(!runs.contains("No open problem"), "{runs}");
    let failing = problem(&runs, "failing").expect("failing");
    assert!(
        failing.contains("The last run failed before it could be recorded: The run failed.")
            && failing.contains("Next step: Read the error below and the daemon's log"),
        "{failing}"
    );
    assert!(
        failing.find("Next step") < failing.find(panic),
        "the raw error below the advice: {failing}"
    );
    assert!(shown_as_text(&runs, panic), "{runs}");
    let (_, health) = s.page("/console/health").await;
    let text = words(&health);
    assert!(
        text.contains("Last run attempt bad failed before it could be recorded: The run failed.")
            && text.contains(panic),
        "{text}"
    );
    assert!(shown_as_text(&health, panic));

    // The OAuth client refused at set-up: an authentication problem, on both.
    readiness.write().unwrap().last_run = Some(LastRun {
        id: None,
        status: RunStatus::Failed,
        error: Some(
            "cannot set up the Studio client: Studio refused the OAuth refresh token \
             (invalid_grant). It was revoked or expired"
                .into(),
        ),
    });
    let (_, runs) = s.page("/console/").await;
    let auth = problem(&runs, "auth").expect("auth");
    assert!(
        auth.contains("Studio's token endpoint refused the daemon's OAuth credentials.")
            && auth.contains("Next step: Run `studio-role-sync auth login`"),
        "{auth}"
    );
    let (_, health) = s.page("/console/health").await;
    assert!(
        words(&health).contains("failing (access token from studio.token_file)"),
        "{health}"
    );

    // A later run the history recorded replaces it.
    readiness.write().unwrap().last_run = Some(LastRun {
        id: Some(1),
        status: RunStatus::Succeeded,
        error: None,
    });
    let (_, runs) = s.page("/console/").await;
    assert!(runs.contains("No open problem"), "{runs}");
}

/// Connection refused: the cause in words with the Studio address, the raw error below it.
#[tokio::test]
async fn a_refused_connection_is_explained_on_the_run_page() {
    let error = "reading Studio failed: cannot reach Studio (search_by_role) after 6 \
                 attempt(s): error sending request for url \
                 (https://myschool.instructuremedia.com/api/public/v1/users): client error \
                 (Connect): tcp connect error: Connection refused (os error 111)";
    let dir = history_with(async |h| {
        write_runs(h, &[(RunStatus::Failed, Some(error))]).await;
    })
    .await;
    let s = serve_file(dir, bearer(), None).await;
    let (_, run) = s.page("/console/runs/1").await;
    let text = words(&run);
    let cause = "Studio was not reachable (connection refused) at \
                 https://myschool.instructuremedia.com.";
    assert!(text.contains(cause), "{text}");
    assert!(
        text.contains("Check the network from the daemon's host"),
        "{text}"
    );
    assert!(
        text.find(cause) < text.find("Connection refused (os error 111)"),
        "the raw error below: {text}"
    );
    assert!(run.contains("id=\"raw-error\""), "{run}");
}

/// Unknown parameters on the person and health pages: the documented `400`, naming them.
#[tokio::test]
async fn unknown_parameters_on_person_and_health_are_refused() {
    let s = serve(1, bearer()).await;
    for (path, takes) in [
        (
            "/console/person?email=a@b.c&x=1",
            "this page takes: email, since",
        ),
        ("/console/health?x=1", "this page takes: "),
    ] {
        let (status, body) = s.page(path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        let text = as_text(&body);
        assert!(text.contains("unknown parameter \"x\""), "{path}: {body}");
        assert!(text.contains(takes), "{path}: {body}");
    }
}

/// A long error is cut in the runs list with "…", and is whole on its run page.
#[tokio::test]
async fn a_long_error_is_cut_in_the_list_and_whole_on_its_page() {
    let error = format!(
        "cannot write the history: {}end",
        "disk full again ".repeat(40)
    );
    let dir = history_with(async |h| {
        write_runs(h, &[(RunStatus::Failed, Some(&error))]).await;
    })
    .await;
    let s = serve_file(dir, bearer(), None).await;
    let (_, runs) = s.page("/console/").await;
    let detail = runs
        .split("class=\"detail\">")
        .nth(1)
        .and_then(|d| d.split("</td>").next())
        .expect("the error under the run's row");
    assert!(
        detail.ends_with("again…"),
        "cut at a word, marked: {detail}"
    );
    assert!(detail.chars().count() <= 301, "{detail}");
    let (_, run) = s.page("/console/runs/1").await;
    assert!(run.contains(&error), "whole on the run page");
}

/// The mark of a failed or stopped run is not another red beside the failed actions' bars.
#[tokio::test]
async fn a_bad_run_mark_looks_unlike_a_failed_bar() {
    let s = serve(1, bearer()).await;
    let (_, _, css) = s.get("/console/style.css", None).await;
    let fill = |selector: &str| {
        let rule = css
            .lines()
            .find(|l| l.starts_with(selector))
            .unwrap_or_else(|| panic!("{selector} in the style sheet"));
        let hex = rule.split("fill: #").nth(1).expect("a #rrggbb fill");
        let channel = |i: usize| i64::from_str_radix(&hex[i..i + 2], 16).unwrap();
        (channel(0), channel(2), channel(4))
    };
    let (bad, failed) = (fill("svg.chart rect.badrun"), fill("svg.chart rect.fail"));
    let distance =
        ((bad.0 - failed.0).pow(2) + (bad.1 - failed.1).pow(2) + (bad.2 - failed.2).pow(2)) as f64;
    assert!(
        distance.sqrt() > 120.0,
        "bad-run mark {bad:?} too close to failed bars {failed:?}"
    );
}
