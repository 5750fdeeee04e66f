//! The history console as an admin meets it: the real daemon, run against the simulator with
//! `console:` on a listener that is not loopback-only (0.0.0.0, behind a "TLS proxy", with a
//! basic-auth password), opened in a real headless Chromium through WebDriver (`fantoccini`
//! and `chromedriver`).
//!
//! The browser test needs `chromedriver` (Debian: `apt-get install chromium chromium-driver`;
//! `.ci/run` installs them). Without it the test is reported *ignored*, with the reason, never
//! passed; with `CI=true` it fails instead. That is decided when the test runs, so this binary
//! has its own harness (`libtest-mimic`). The other test needs no browser and always runs.
//!
//! `CONSOLE_SCREENSHOTS=1 cargo test -p studio-role-sync --test console` also writes the
//! screenshots of the pages it visits to `target/console-screens/*.png` (to look at what a
//! test saw). The screenshots in docs/console come from a realistic two-week history instead:
//! `cargo run -p bench --bin console_screens`.

mod support;

use fantoccini::{Client, ClientBuilder, Locator};
use libtest_mimic::{Completion, Trial};
use std::future::Future;
use std::process::Stdio;
use std::time::Duration;
use support::daemon::Daemon;
use support::{assert_secret_absent, user, Opts, Tenant};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "console-pa55word";
const EVIL_EMAIL: &str = "<script>alert(1)</script>@x.edu";
const CHROMEDRIVER: &str = "chromedriver";

impl Daemon {
    /// The port of the `listening on ADDR (...)` line whose tail contains `what`.
    async fn port(&self, what: &str) -> u16 {
        wait_for(&format!("the `listening on` line of {what}"), || async {
            self.log().lines().find_map(|l| {
                let rest = l.split("listening on ").nth(1)?;
                rest.contains(what).then_some(())?;
                let addr = rest.split_whitespace().next()?;
                addr.rsplit(':').next()?.parse().ok()
            })
        })
        .await
    }
}

/// Polls `check` until it gives a value; panics with `what` after [`WAIT`].
async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    support::daemon::wait_for(what, WAIT, check).await
}

/// A Studio user with a name and no role.
fn named(id: u64, name: &str, email: &str) -> studio_sim::SimUser {
    studio_sim::SimUser {
        full_name: name.into(),
        ..user(id, Some(email), &[])
    }
}

/// A tenant whose first run adds, removes (a holder whose Studio email is HTML) and leaves a
/// new hire alone, served by a daemon with the console on 0.0.0.0 behind basic auth.
async fn tenant_with_console() -> (Tenant, Daemon, u16) {
    let t = Tenant::start(vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        named(2, "Grace Hopper", "grace@school.edu"),
        user(3, Some(EVIL_EMAIL), &["Admin"]),
        user(4, Some("alan@school.edu"), &["Admin"]),
        named(5, "Twin One", "twin@school.edu"),
        named(6, "Twin Two", "twin@school.edu"),
    ])
    .await;
    std::fs::write(t.path("console-password"), PASSWORD).unwrap();
    t.write_config(&Opts {
        managed: "[Admin]",
        extra: "schedule: \"0 0 0 1 1 *\"\n\
                console:\n  listen: 0.0.0.0:0\n  password_file: console-password\n  behind_tls_proxy: true\n"
            .into(),
        ..Opts::default()
    });
    t.write_roles(
        "users:\n  ada@school.edu: [Admin]\n  grace@school.edu: [Admin]\n  newhire@school.edu: [Admin]\n  twin@school.edu: [Admin]\n",
    );
    let d = Daemon::start(&t);
    let port = d.port("(console /console/)").await;
    // The startup run has finished: its row is no longer `running`.
    wait_for("the startup run", || async {
        if !t.history_path().exists() {
            return None;
        }
        let db = t.history().await;
        let n = support::count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").await;
        db.close().await;
        (n >= 1).then_some(())
    })
    .await;
    (t, d, port)
}

/// No browser: the daemon serves the console on its own non-loopback listener, refuses it
/// without the password, serves it with it, and keeps it off `http.listen`.
async fn the_daemon_serves_the_console_only_with_the_password() {
    let (_t, d, port) = tenant_with_console().await;
    let http_port = d.port("/healthz").await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/console/");
    let refused = client.get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert!(refused.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic"));
    assert_eq!(refused.headers()["x-frame-options"], "DENY");
    let page = client
        .get(&url)
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let body = page.text().await.unwrap();
    assert!(body.contains("href=\"/console/runs/1\""), "{body}");
    let elsewhere = client
        .get(format!("http://127.0.0.1:{http_port}/console/"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 404, "the console has its own listener");
    assert_secret_absent(&d.log(), PASSWORD, "the console password");
}

/// A rotated console password: within seconds the new one works and the old one is
/// refused, without a restart or a reload.
async fn a_rotated_console_password_takes_over_without_a_restart() {
    let (t, _d, port) = tenant_with_console().await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/console/");
    let status = |password: &'static str| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .get(&url)
                .basic_auth("admin", Some(password))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(status(PASSWORD).await, 200);
    const ROTATED: &str = "rotated-pa55word-2";
    // As a secret manager rotates it: a new file renamed over the old one.
    std::fs::write(t.path("console-password.new"), format!("{ROTATED}\n")).unwrap();
    std::fs::rename(t.path("console-password.new"), t.path("console-password")).unwrap();
    wait_for("the rotated password to work", || async {
        (status(ROTATED).await == 200).then_some(())
    })
    .await;
    assert_eq!(
        status(PASSWORD).await,
        401,
        "the old password no longer works"
    );
}

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    _child: tokio::process::Child,
    url: String,
}

async fn start_chromedriver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = tokio::process::Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let url = format!("http://127.0.0.1:{port}");
    let status = format!("{url}/status");
    wait_for("chromedriver", || async {
        reqwest::get(&status)
            .await
            .ok()
            .filter(|r| r.status().is_success())
    })
    .await;
    Driver { _child: child, url }
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

/// Saves a screenshot of the page to `target/console-screens/NAME.png` when
/// `CONSOLE_SCREENSHOTS=1`.
async fn screenshot(c: &Client, name: &str) {
    if std::env::var("CONSOLE_SCREENSHOTS").as_deref() != Ok("1") {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-screens");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// In a real browser: the runs page with its charts, a run's actions (the hostile email as
/// text, no script run), a person's trail, the pending and health pages; and the console
/// refused without the password.
async fn a_browser_follows_a_run_and_a_person() {
    let (t, _d, port) = tenant_with_console().await;
    let driver = start_chromedriver().await;
    let c = browser(&driver).await;
    let result = browse(&c, &t, port).await;
    let _ = c.close().await;
    result.unwrap();
}

async fn browse(c: &Client, t: &Tenant, port: u16) -> Result<(), fantoccini::error::CmdError> {
    // Without the password: refused (a fresh browser, no credentials cached yet).
    let plain = reqwest::get(format!("http://127.0.0.1:{port}/console/"))
        .await
        .unwrap();
    assert_eq!(
        plain.status(),
        401,
        "refused without the password off loopback"
    );

    c.goto(&format!(
        "http://admin:{PASSWORD}@127.0.0.1:{port}/console/"
    ))
    .await?;
    let runs = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#runs"))
        .await?;
    assert!(
        runs.text().await?.contains("startup"),
        "{}",
        runs.text().await?
    );
    // The charts: inline SVG, drawn from the run's data, no script anywhere.
    let charts = c.find_all(Locator::Css("svg.chart")).await?;
    assert_eq!(charts.len(), 3);
    assert_eq!(charts[0].attr("data-points").await?.as_deref(), Some("1"));
    assert_eq!(
        c.find_all(Locator::Css("svg.chart g rect.add"))
            .await?
            .len(),
        1
    );
    assert_eq!(
        c.find_all(Locator::Css("svg.chart g rect.remove"))
            .await?
            .len(),
        1
    );
    assert!(c.find_all(Locator::Css("script")).await?.is_empty());
    // The style sheet loaded (the CSP allows it as a file).
    let header = c.find(Locator::Css("header")).await?;
    assert_eq!(
        header.css_value("background-color").await?,
        "rgba(29, 36, 48, 1)"
    );
    screenshot(c, "runs").await;

    // Follow the run to its actions.
    c.find(Locator::Css("table#runs a[href='/console/runs/1']"))
        .await?
        .click()
        .await?;
    let actions = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#actions"))
        .await?;
    let text = actions.text().await?;
    assert!(text.contains(EVIL_EMAIL), "the email shown as text: {text}");
    assert!(
        text.contains("grace@school.edu") && text.contains("applied"),
        "{text}"
    );
    assert!(
        text.contains("Grace Hopper (2)"),
        "names beside ids: {text}"
    );
    let count = c
        .find(Locator::Css("#left-alone-count"))
        .await?
        .text()
        .await?;
    assert_eq!(
        count,
        "2 pending (1 several Studio accounts share this email, 1 no Studio account yet)"
    );
    let twins = c
        .find(Locator::Css("table#left-alone ul.twins"))
        .await?
        .text()
        .await?;
    assert!(
        twins.contains("Twin One (Studio user 5)") && twins.contains("Twin Two (Studio user 6)"),
        "{twins}"
    );
    assert!(
        c.find_all(Locator::Css("script")).await?.is_empty(),
        "no script element"
    );
    assert!(c.get_alert_text().await.is_err(), "no alert opened");
    let left = c
        .find(Locator::Css("table#left-alone"))
        .await?
        .text()
        .await?;
    assert!(
        left.contains("newhire@school.edu") && left.contains("no Studio account yet"),
        "{left}"
    );
    screenshot(c, "run").await;

    // Follow the hostile email to its trail: the heading shows it as text.
    c.find(Locator::Css("table#actions a.person"))
        .await?
        .click()
        .await?;
    let person = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#person"))
        .await?;
    let shown = person.text().await?;
    if shown != EVIL_EMAIL {
        // The first person link may be another action's; go by the table instead.
        assert!(shown.contains('@'), "{shown}");
    }
    c.goto(&format!(
        "http://127.0.0.1:{port}/console/person?email=%3Cscript%3Ealert(1)%3C%2Fscript%3E%40x.edu"
    ))
    .await?;
    let person = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#person"))
        .await?;
    assert_eq!(person.text().await?, EVIL_EMAIL);
    let trail = c.find(Locator::Css("table#trail")).await?.text().await?;
    assert!(
        trail.contains("remove Admin") && trail.contains("applied"),
        "{trail}"
    );

    // A person left alone: their trail says why.
    c.goto(&format!("http://127.0.0.1:{port}/console/runs/1"))
        .await?;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#left-alone"))
        .await?;
    c.find(Locator::Css("table#left-alone a.person[href*='newhire']"))
        .await?
        .click()
        .await?;
    let trail = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#trail"))
        .await?;
    assert!(trail
        .text()
        .await?
        .contains("left alone: no Studio account yet"));
    screenshot(c, "person").await;
    // Who grace is: her name, her desired roles and source, what Studio held.
    c.goto(&format!(
        "http://127.0.0.1:{port}/console/person?email=grace%40school.edu"
    ))
    .await?;
    let who = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#who"))
        .await?;
    assert_eq!(
        c.find(Locator::Css("#person-name")).await?.text().await?,
        "Grace Hopper"
    );
    let text = who.text().await?;
    assert!(text.contains("As of run 1"), "{text}");
    assert_eq!(
        c.find(Locator::Css("#desired")).await?.text().await?,
        "yes: Admin (roles.yaml)"
    );
    assert!(
        text.contains("Grace Hopper (Studio user 2): holds Admin (granted by run 1)"),
        "with the run's changes: {text}"
    );
    let trail = c.find(Locator::Css("table#trail")).await?.text().await?;
    assert!(
        trail.contains("add Admin (from roles.yaml)")
            && trail.contains("listed in roles.yaml, not held in Studio"),
        "{trail}"
    );
    c.goto(&format!(
        "http://127.0.0.1:{port}/console/person?email=newhire%40school.edu"
    ))
    .await?;
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#trail"))
        .await?;
    // One rendering: each row of the page reads as the line `history --email` prints.
    let mut page_rows = Vec::new();
    for row in c.find_all(Locator::Css("table#trail tbody tr")).await? {
        let mut cells = Vec::new();
        for cell in row.find_all(Locator::Css("td")).await? {
            cells.push(cell.text().await?);
        }
        page_rows.push(words(&cells.join(" ")));
    }
    let cli = t.cli(&["history", "--email", "newhire@school.edu"]).await;
    assert_eq!(cli.code, 0, "{cli:?}");
    let cli_rows: Vec<String> = cli
        .stdout
        .lines()
        .skip(1)
        .take(page_rows.len())
        .map(words)
        .collect();
    assert!(!page_rows.is_empty());
    assert_eq!(page_rows, cli_rows, "the page and the CLI say the same");

    c.find(Locator::LinkText("Left alone"))
        .await?
        .click()
        .await?;
    let pending = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#pending"))
        .await?;
    let text = pending.text().await?;
    assert!(text.contains("newhire@school.edu"));
    assert!(
        words(&text).contains("newhire@school.edu Admin (roles.yaml) no Studio account yet"),
        "the role it waits for, and why in words: {text}"
    );
    assert!(text.contains("Twin Two (Studio user 6)"), "{text}");
    assert_eq!(c.title().await?, "Left alone now · studio-role-sync");
    screenshot(c, "pending").await;

    c.find(Locator::LinkText("Health")).await?.click().await?;
    let health = c
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("table#health"))
        .await?;
    let text = health.text().await?;
    assert!(
        text.contains("Last run") && text.contains("run 1 succeeded"),
        "{text}"
    );
    assert!(text.contains("Next scheduled run"), "{text}");
    assert!(!c.source().await?.contains(PASSWORD), "no secret on a page");
    screenshot(c, "health").await;
    Ok(())
}

/// `text` with every run of whitespace as one space.
fn words(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The roles file of the "what to do next" tenant: ada, grace and `staff` of staff3..staff8.
fn staff_roles(staff: std::ops::RangeInclusive<u64>) -> String {
    let mut text = "users:\n  ada@school.edu: [Admin]\n  grace@school.edu: [Admin]\n".to_string();
    for n in staff {
        text.push_str(&format!("  staff{n}@school.edu: [Admin]\n"));
    }
    text
}

/// Waits until `n` runs have finished (none `running`), returns the newest one's status.
async fn finished_runs(t: &Tenant, n: i64) -> String {
    wait_for(&format!("{n} finished runs"), || async {
        let db = t.history().await;
        let done = support::count(&db, "SELECT COUNT(*) FROM runs WHERE status <> 'running'").await;
        let running =
            support::count(&db, "SELECT COUNT(*) FROM runs WHERE status = 'running'").await;
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM runs ORDER BY id DESC LIMIT 1")
                .fetch_optional(&db)
                .await
                .unwrap();
        db.close().await;
        (done >= n && running == 0).then(|| status.unwrap_or_default())
    })
    .await
}

/// What an admin needs next, in a real browser on the real daemon: flapping on a run and a
/// person, a guard tripped now in the status strip with the risk before the remedy, a stopped
/// run superseded by a later one, another approved and applied (and the run that sent it
/// saying so), an invalid roles file in the strip, and the key columns at 400 px.
async fn a_browser_shows_what_to_do_next() {
    let mut users = vec![
        user(1, Some("ada@school.edu"), &["Admin"]),
        user(2, Some("grace@school.edu"), &[]),
    ];
    for n in 3..=8 {
        users.push(user(n, Some(&format!("staff{n}@school.edu")), &["Admin"]));
    }
    let t = Tenant::start(users).await;
    std::fs::write(t.path("console-password"), PASSWORD).unwrap();
    t.write_config(&Opts {
        managed: "[Admin]",
        max_removals: 2,
        extra: "schedule: \"0 0 0 1 1 *\"\n\
                console:\n  listen: 0.0.0.0:0\n  password_file: console-password\n  behind_tls_proxy: true\n"
            .into(),
        ..Opts::default()
    });
    t.write_roles(&staff_roles(3..=8));
    let d = Daemon::start(&t);
    let port = d.port("(console /console/)").await;
    assert_eq!(finished_runs(&t, 1).await, "succeeded");
    // Something in Studio takes grace's role back after each run: run 3 finds it flapping.
    for n in 2..=3 {
        t.sim.set_roles(2, vec![]);
        d.signal("-HUP");
        assert_eq!(finished_runs(&t, n).await, "succeeded");
    }
    // Five of the six staff dropped from the file: more removals than max_removals (2).
    t.write_roles(&staff_roles(8..=8));
    assert_eq!(finished_runs(&t, 4).await, "aborted");

    let driver = start_chromedriver().await;
    let c = browser(&driver).await;
    let result = next_steps(&c, &t, &d, port).await;
    let _ = c.close().await;
    result.unwrap();
}

async fn next_steps(
    c: &Client,
    t: &Tenant,
    _d: &Daemon,
    port: u16,
) -> Result<(), fantoccini::error::CmdError> {
    let base = format!("http://admin:{PASSWORD}@127.0.0.1:{port}");
    let text_of = |css: &'static str| async move {
        c.wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await?
            .text()
            .await
    };

    // Flapping, on the run and on the person.
    c.goto(&format!("{base}/console/runs/3")).await?;
    let flapping = text_of("#flapping").await?;
    assert!(
        flapping.contains("1 change(s)") && flapping.contains("docs/operations.md §15"),
        "{flapping}"
    );
    assert!(!c
        .find_all(Locator::Css("#actions tr.flapping"))
        .await?
        .is_empty());
    c.goto(&format!("{base}/console/person?email=grace%40school.edu"))
        .await?;
    let person = text_of("#person-flapping").await?;
    assert!(
        person.contains("Flapping") && person.contains("run(s)"),
        "{person}"
    );

    // A guard tripped now: the strip says so on every page, and the run shows the risk first.
    c.goto(&format!("{base}/console/pending")).await?;
    let guard = text_of("#status li[data-kind='guard']").await?;
    assert!(guard.contains("A safety guard stopped run 4"), "{guard}");
    assert!(guard.contains("Next step:"), "{guard}");
    c.goto(&format!("{base}/console/runs/4")).await?;
    let risk = text_of("#risk table.risk").await?;
    let risk = risk.split_whitespace().collect::<Vec<_>>().join(" ");
    // ada, grace and six staff hold Admin; five would lose it.
    assert!(
        risk.contains("Admin 8 5 62%"),
        "holders, removals, share: {risk}"
    );
    let config = t.config_path().display().to_string();
    let command = text_of("#approve-command").await?;
    assert_eq!(
        command,
        format!("studio-role-sync --config {config} approve 4 --by NAME")
    );
    let remedies = text_of("#remedies").await?;
    assert!(
        remedies.find("restore the roles file") < remedies.find("approve 4"),
        "the common remedy first: {remedies}"
    );
    screenshot(c, "run-aborted").await;

    // The file restored: run 5 has nothing to do, and run 4 is superseded (no command).
    t.write_roles(&staff_roles(3..=8));
    assert_eq!(finished_runs(t, 5).await, "succeeded");
    c.goto(&format!("{base}/console/runs/4")).await?;
    let since = text_of("#afterwards").await?;
    assert!(
        since.contains("Superseded by run 5: nothing to do."),
        "{since}"
    );
    assert!(c
        .find_all(Locator::Css("#approve-command"))
        .await?
        .is_empty());

    // Stopped again (run 6), approved with a name and a ticket, applied by run 7.
    t.write_roles(&staff_roles(8..=8));
    assert_eq!(finished_runs(t, 6).await, "aborted");
    let approved = t
        .cli(&["approve", "6", "--by", "alice (ticket 4711)"])
        .await;
    assert_eq!(approved.code, 0, "{approved:?}");
    assert_eq!(finished_runs(t, 7).await, "succeeded");
    c.goto(&format!("{base}/console/runs/6")).await?;
    let since = text_of("#afterwards").await?;
    assert!(
        since.contains("approved by alice (ticket 4711)") && since.contains("applied in run 7"),
        "{since}"
    );
    c.goto(&format!("{base}/console/runs/7")).await?;
    let used = text_of("#used-approval").await?;
    assert!(
        used.contains("sent an approved plan: run 6's plan"),
        "{used}"
    );

    // An invalid roles file: the strip names it (no run is recorded for it).
    t.write_roles("users:\n  not-an-email: [Admin]\n  also-not-one: [Admin]\n");
    let inputs = wait_for("the invalid roles file in the strip", || async {
        c.goto(&format!("{base}/console/")).await.ok()?;
        let li = c
            .find(Locator::Css("#status li[data-kind='inputs']"))
            .await
            .ok()?;
        li.text().await.ok()
    })
    .await;
    assert!(
        inputs.contains("roles file") && inputs.contains("line"),
        "{inputs}"
    );
    // One problem a line, as the error has them.
    let problem_lines: Vec<&str> = inputs
        .lines()
        .filter(|l| l.contains("is not an email address"))
        .collect();
    assert_eq!(problem_lines.len(), 2, "{inputs}");

    // At 400 px the key columns stay, the others fold away.
    c.set_window_size(400, 900).await?;
    c.goto(&format!("{base}/console/?view=all")).await?;
    let head: Vec<_> = c.find_all(Locator::Css("table#runs thead th")).await?;
    let mut shown = Vec::new();
    for th in head {
        if th.is_displayed().await? {
            shown.push(th.text().await?);
        }
    }
    assert_eq!(shown, ["Status", "Run", "When", "Changes"]);
    let width: f64 = c
        .execute("return document.documentElement.scrollWidth", vec![])
        .await?
        .as_f64()
        .unwrap_or(0.0);
    assert!(width <= 420.0, "no sideways scrolling at 400 px: {width}");
    screenshot(c, "phone").await;
    Ok(())
}

fn on_runtime<Fut: Future<Output = ()>>(body: impl FnOnce() -> Fut) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(body());
}

fn chromedriver_present() -> bool {
    std::process::Command::new(CHROMEDRIVER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A trial that needs chromedriver: ignored without it, failed without it under `CI=true`.
fn browser_trial(name: &'static str, body: fn()) -> Trial {
    Trial::ignorable_test(name, move || {
        if !chromedriver_present() {
            let reason = "chromedriver is not installed (apt-get install chromium chromium-driver)";
            return support::unavailable(reason);
        }
        body();
        Ok(Completion::Completed)
    })
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![
        Trial::test(
            "the_daemon_serves_the_console_only_with_the_password",
            || {
                on_runtime(the_daemon_serves_the_console_only_with_the_password);
                Ok(())
            },
        ),
        Trial::test(
            "a_rotated_console_password_takes_over_without_a_restart",
            || {
                on_runtime(a_rotated_console_password_takes_over_without_a_restart);
                Ok(())
            },
        ),
        Trial::ignorable_test("a_browser_follows_a_run_and_a_person", || {
            if !chromedriver_present() {
                let reason =
                    "chromedriver is not installed (apt-get install chromium chromium-driver)";
                return support::unavailable(reason);
            }
            on_runtime(a_browser_follows_a_run_and_a_person);
            Ok(Completion::Completed)
        }),
        browser_trial("a_browser_shows_what_to_do_next", || {
            on_runtime(a_browser_shows_what_to_do_next)
        }),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}
