//! The LDAP and CSV sources and several sources at once, end to end: the real binary against
//! the simulator, the directory a real OpenLDAP (`slapd`, see `ldap/slapd.rs`) started by each
//! test on 127.0.0.1 with its own fixture.
//!
//! Without Debian's `slapd` and `ldap-utils` the LDAP tests are reported *ignored*, never
//! passed; with `CI=true` they fail instead (`.ci/run` installs them). That is decided when the
//! test runs, so this binary has its own harness (`libtest-mimic`), as `sql_source.rs` does.

#[path = "ldap/slapd.rs"]
mod slapd;
mod support;

use libtest_mimic::{Completion, Trial};
use slapd::{group, group_dn, person, uid_dn, Slapd, BIND_DN, PASSWORD, SUFFIX};
use std::future::Future;
use support::{user, Opts, Tenant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PASSWORD_ENV: &str = "SRS_TEST_LDAP_PASSWORD";

fn trial<F, Fut>(name: &str, needs_slapd: bool, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name.to_string(), move || {
        if needs_slapd && !slapd::available() {
            let reason =
                "install slapd and ldap-utils (apt-get install slapd ldap-utils) to run against OpenLDAP";
            return support::unavailable(reason);
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(body());
        Ok(Completion::Completed)
    })
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![
        trial(
            "a_group_grants_roles_and_follows_its_members",
            true,
            a_group_grants_roles_and_follows_its_members,
        ),
        trial(
            "a_size_limit_without_paging_fails_with_nothing_sent",
            true,
            a_size_limit_without_paging_fails_with_nothing_sent,
        ),
        trial(
            "the_server_gone_mid_read_fails_with_nothing_sent",
            true,
            the_server_gone_mid_read_fails_with_nothing_sent,
        ),
        trial(
            "a_wrong_password_is_a_clear_error_without_the_password",
            true,
            a_wrong_password_is_a_clear_error_without_the_password,
        ),
        trial(
            "nested_groups_are_followed_when_asked",
            true,
            nested_groups_are_followed_when_asked,
        ),
        trial(
            "a_directory_and_a_roles_file_give_their_union",
            true,
            a_directory_and_a_roles_file_give_their_union,
        ),
        trial(
            "starttls_with_a_private_ca_in_ca_file",
            true,
            starttls_with_a_private_ca_in_ca_file,
        ),
        trial(
            "csv_and_yaml_union_and_a_failing_source_fails_the_run",
            false,
            csv_and_yaml_union_and_a_failing_source_fails_the_run,
        ),
    ];
    libtest_mimic::run(&args, trials).exit_code()
}

/// The `ldap:` block (indented for `source:`) for `url` with `groups` lines and `extra` keys.
fn ldap_block(url: &str, groups: &[&str], extra: &str) -> String {
    let mut s = format!(
        "  ldap:\n    url: {url}\n    bind_dn: {BIND_DN}\n    password_env: {PASSWORD_ENV}\n    base_dn: {SUFFIX}\n    timeout_seconds: 10\n{extra}    groups:\n"
    );
    for g in groups {
        s.push_str(&format!("      - {g}\n"));
    }
    s
}

/// `starttls: true` against a directory whose certificate a private CA signed: trusted
/// through `ca_file`; without it the run fails with a certificate error and nothing is sent;
/// `ca_file` with plain `ldap://` is a config error naming the key.
async fn starttls_with_a_private_ca_in_ca_file() {
    let support::test_ca::TestCa {
        ca_pem: ca,
        cert_pem: cert,
        key_pem: key,
    } = support::test_ca::private_ca("Campus Directory Test CA", "ldap.campus.test");
    let entries = people(1..=2, "1") + &group("media-admins", &[uid_dn("u001"), uid_dn("u002")]);
    let dir = Slapd::start_tls(&entries, &cert, &key);
    let t = Tenant::start(vec![
        user(1, Some("u001@test.edu"), &[]),
        user(2, Some("u002@test.edu"), &[]),
    ])
    .await;
    std::fs::write(t.path("ldap-ca.pem"), ca).unwrap();
    let group_line = format!("{{dn: \"{}\", roles: [Admin]}}", group_dn("media-admins"));
    let url = dir.url();
    t.write_config(&Opts {
        source: ldap_block(&url, &[&group_line], "    starttls: true\n"),
        ..Opts::default()
    });
    let run = apply(&t, PASSWORD).await;
    assert_eq!(run.code, 1, "the private CA is not trusted yet: {run:?}");
    assert!(
        run.stderr.to_lowercase().contains("certificate"),
        "a TLS error: {run:?}"
    );
    assert!(t.holders("Admin").is_empty(), "nothing sent");

    t.write_config(&Opts {
        source: ldap_block(
            &url,
            &[&group_line],
            "    starttls: true\n    ca_file: ldap-ca.pem\n",
        ),
        ..Opts::default()
    });
    let run = apply(&t, PASSWORD).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin"), ["u001@test.edu", "u002@test.edu"]);

    t.write_config(&Opts {
        source: ldap_block(&url, &[&group_line], "    ca_file: ldap-ca.pem\n"),
        ..Opts::default()
    });
    let run = t.cli_env(&["validate"], &[(PASSWORD_ENV, PASSWORD)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("source.ldap.ca_file") && run.stderr.contains("is for TLS"),
        "{run:?}"
    );
    std::fs::write(t.path("ldap-ca.pem"), "not a certificate").unwrap();
    t.write_config(&Opts {
        source: ldap_block(
            &url,
            &[&group_line],
            "    starttls: true\n    ca_file: ldap-ca.pem\n",
        ),
        ..Opts::default()
    });
    let run = t.cli_env(&["validate"], &[(PASSWORD_ENV, PASSWORD)]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("source.ldap.ca_file") && run.stderr.contains("no PEM certificate"),
        "{run:?}"
    );
}

fn people(n: std::ops::RangeInclusive<u32>, department: &str) -> String {
    n.map(|i| {
        person(
            &format!("u{i:03}"),
            Some(&format!("u{i:03}@test.edu")),
            department,
        )
    })
    .collect()
}

async fn apply(t: &Tenant, password: &str) -> support::Run {
    t.cli_env(&["apply"], &[(PASSWORD_ENV, password)]).await
}

async fn a_group_grants_roles_and_follows_its_members() {
    let entries = people(1..=3, "1")
        + &person("nomail", None, "1")
        + &group(
            "media-admins",
            &[uid_dn("u001"), uid_dn("u002"), uid_dn("nomail")],
        );
    let dir = Slapd::start(&entries, None);
    let t = Tenant::start(vec![
        user(1, Some("u001@test.edu"), &[]),
        user(2, Some("u002@test.edu"), &[]),
        user(3, Some("u003@test.edu"), &[]),
        user(4, Some("old@test.edu"), &["Admin"]),
    ])
    .await;
    let group_line = format!("{{dn: \"{}\", roles: [Admin]}}", group_dn("media-admins"));
    t.write_config(&Opts {
        source: ldap_block(&dir.url(), &[&group_line], ""),
        ..Opts::default()
    });
    let v = t.cli_env(&["validate"], &[(PASSWORD_ENV, PASSWORD)]).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(
        v.stdout.contains(&format!(
            "group {}: 3 members, 1 without an email",
            group_dn("media-admins")
        )),
        "{v:?}"
    );
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.holders("Admin"), ["u001@test.edu", "u002@test.edu"]);
    assert!(r.stdout.contains("from ldap"), "{r:?}");
    assert!(
        r.stdout.contains(&uid_dn("nomail")) && r.stdout.contains("no email in directory"),
        "{r:?}"
    );
    let db = t.history().await;
    let reason: String =
        sqlx::query_scalar("SELECT reason FROM run_pending WHERE email LIKE 'uid=nomail%'")
            .fetch_one(&db)
            .await
            .expect("the member without an email is recorded pending");
    assert_eq!(reason, "no_email_in_directory");

    // u003 joins, u001 leaves: the next run follows.
    dir.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n-\ndelete: member\nmember: {}\n",
        group_dn("media-admins"),
        uid_dn("u003"),
        uid_dn("u001")
    ));
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.holders("Admin"), ["u002@test.edu", "u003@test.edu"]);
}

/// Holders before a failed read: nothing may change.
fn tenant_users() -> Vec<studio_sim::SimUser> {
    let mut users: Vec<_> = (1..=20)
        .map(|i| user(i, Some(&format!("u{i:03}@test.edu")), &[]))
        .collect();
    users.push(user(100, Some("keep@test.edu"), &["Admin"]));
    users
}

async fn a_size_limit_without_paging_fails_with_nothing_sent() {
    let dir = Slapd::start(&people(1..=12, "7"), Some(5));
    let t = Tenant::start(tenant_users()).await;
    let filter = "{filter: \"(departmentNumber=7)\", roles: [Admin]}";
    t.write_config(&Opts {
        source: ldap_block(&dir.url(), &[filter], "    page_size: 0\n"),
        ..Opts::default()
    });
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("size limit exceeded"), "{r:?}");
    assert!(r.stderr.contains("nothing was sent to Studio"), "{r:?}");
    assert_eq!(t.holders("Admin"), ["keep@test.edu"], "nothing sent");
}

/// A TCP relay to `port` that passes `cut` bytes of the server's answers, then closes both
/// ends: the server going away in the middle of a read.
async fn cutting_relay(port: u16, cut: usize) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut cr, &mut sw).await;
                });
                let mut passed = 0;
                let mut buf = vec![0u8; 4096];
                while passed < cut {
                    let n = match sr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n.min(cut - passed),
                    };
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    passed += n;
                }
                up.abort();
                let _ = cw.shutdown().await;
            });
        }
    });
    relay_port
}

async fn the_server_gone_mid_read_fails_with_nothing_sent() {
    let dir = Slapd::start(&people(1..=300, "8"), None);
    let t = Tenant::start(tenant_users()).await;
    let relay = cutting_relay(dir.port, 9000).await;
    let filter = "{filter: \"(departmentNumber=8)\", roles: [Admin]}";
    t.write_config(&Opts {
        source: ldap_block(
            &format!("ldap://127.0.0.1:{relay}"),
            &[filter],
            "    page_size: 20\n",
        ),
        ..Opts::default()
    });
    // The client runs in this process's runtime: the binary is a separate process.
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("stopped before its end") || r.stderr.contains("closed the connection"),
        "{r:?}"
    );
    assert_eq!(t.holders("Admin"), ["keep@test.edu"], "nothing sent");
    // The same read through no relay succeeds: the cut, not the data, failed it.
    t.write_config(&Opts {
        source: ldap_block(&dir.url(), &[filter], "    page_size: 20\n"),
        max_removals: 1000,
        ..Opts::default()
    });
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(t.holders("Admin").len(), 20, "the 20 of them in Studio");
}

async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let dir = Slapd::start(&people(1..=2, "1"), None);
    let t = Tenant::start(tenant_users()).await;
    t.write_config(&Opts {
        source: ldap_block(
            &dir.url(),
            &["{filter: \"(departmentNumber=1)\", roles: [Admin]}"],
            "",
        ),
        ..Opts::default()
    });
    let wrong = "Wr0ng-Pa55word-xyz";
    for command in ["validate", "apply"] {
        let r = t.cli_env(&[command], &[(PASSWORD_ENV, wrong)]).await;
        assert_eq!(r.code, 1, "{r:?}");
        assert!(
            r.stderr.contains(&format!(
                "the directory refused the bind as \"{BIND_DN}\": invalid credentials"
            )),
            "{r:?}"
        );
        assert!(
            r.stderr.contains(PASSWORD_ENV) || r.stderr.contains("password_env"),
            "{r:?}"
        );
        assert!(
            !r.stderr.contains(wrong) && !r.stdout.contains(wrong),
            "{r:?}"
        );
    }
    assert_eq!(t.holders("Admin"), ["keep@test.edu"]);
    let db = t.history().await;
    let leaked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM runs WHERE error LIKE ?")
        .bind(format!("%{wrong}%"))
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(leaked, 0);
}

async fn nested_groups_are_followed_when_asked() {
    let entries = people(1..=3, "1")
        + &group("inner", &[uid_dn("u002"), uid_dn("u003")])
        + &group("outer", &[uid_dn("u001"), group_dn("inner")])
        // A loop must end: inner2 and loop hold each other.
        + &group("loop", &[group_dn("outer")]);
    let dir = Slapd::start(&entries, None);
    dir.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: {}\n",
        group_dn("inner"),
        group_dn("loop")
    ));
    let t = Tenant::start(tenant_users()).await;
    let outer = format!("{{dn: \"{}\", roles: [CaptionEditor]}}", group_dn("outer"));
    t.write_config(&Opts {
        source: ldap_block(&dir.url(), &[&outer], ""),
        ..Opts::default()
    });
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.holders("CaptionEditor"),
        ["u001@test.edu"],
        "not followed by default"
    );
    assert!(r.stdout.contains("a group inside the group"), "{r:?}");
    t.write_config(&Opts {
        source: ldap_block(&dir.url(), &[&outer], "    nested: expand\n"),
        ..Opts::default()
    });
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.holders("CaptionEditor"),
        ["u001@test.edu", "u002@test.edu", "u003@test.edu"]
    );
}

async fn a_directory_and_a_roles_file_give_their_union() {
    let entries = people(1..=2, "1") + &group("media-admins", &[uid_dn("u001"), uid_dn("u002")]);
    let dir = Slapd::start(&entries, None);
    let t = Tenant::start(tenant_users()).await;
    t.write_roles("users:\n  u002@test.edu: [Admin]\n  u005@test.edu: [CaptionEditor]\n  keep@test.edu: [Admin]\n");
    let group_line = format!("{{dn: \"{}\", roles: [Admin]}}", group_dn("media-admins"));
    let ldap = ldap_block(&dir.url(), &[&group_line], "").replace("\n    ", "\n      ");
    let sources = format!(
        "  - yaml: roles.yaml\n  - ldap:{}",
        &ldap["  ldap:".len()..]
    );
    let text = t.config_text(&Opts::default()).replace(
        "source:\n  yaml: roles.yaml\n",
        &format!("sources:\n{sources}"),
    );
    std::fs::write(t.config_path(), &text).unwrap();
    let plan = t.cli_env(&["plan"], &[(PASSWORD_ENV, PASSWORD)]).await;
    assert_eq!(plan.code, 2, "{plan:?}");
    let line = |email: &str| {
        plan.stdout
            .lines()
            .find(|l| l.contains(email))
            .unwrap_or_default()
            .to_string()
    };
    assert!(line("u001@test.edu").ends_with("from ldap"), "{plan:?}");
    assert!(
        line("u002@test.edu").ends_with("from roles.yaml, ldap"),
        "{plan:?}"
    );
    assert!(
        line("u005@test.edu").ends_with("from roles.yaml"),
        "{plan:?}"
    );
    let r = apply(&t, PASSWORD).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        t.holders("Admin"),
        ["keep@test.edu", "u001@test.edu", "u002@test.edu"]
    );
    let trail = t.cli(&["history", "--email", "u002@test.edu"]).await;
    assert!(
        trail.stdout.contains("add Admin (from roles.yaml, ldap)"),
        "{trail:?}"
    );
    // The directory failing fails the run: the file alone would revoke the group's people.
    let r = apply(&t, "not-the-password").await;
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(
        t.holders("Admin"),
        ["keep@test.edu", "u001@test.edu", "u002@test.edu"]
    );
}

async fn csv_and_yaml_union_and_a_failing_source_fails_the_run() {
    let t = Tenant::start(tenant_users()).await;
    t.write_roles("users:\n  keep@test.edu: [Admin]\n");
    // As Excel writes it: a BOM, CRLF, a quoted comma.
    std::fs::write(
        t.path("grants.csv"),
        b"\xEF\xBB\xBFemail,role,reason\r\nu001@test.edu,Admin,\"MED101, term 1\"\r\nU002@Test.edu,CaptionEditor,\r\n",
    )
    .unwrap();
    let text = t.config_text(&Opts::default()).replace(
        "source:\n  yaml: roles.yaml\n",
        "sources:\n  - yaml: roles.yaml\n  - csv: grants.csv\n",
    );
    std::fs::write(t.config_path(), &text).unwrap();
    let r = t.cli(&["apply"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("from grants.csv"), "{r:?}");
    assert_eq!(t.holders("Admin"), ["keep@test.edu", "u001@test.edu"]);
    assert_eq!(t.holders("CaptionEditor"), ["u002@test.edu"]);
    let trail = t
        .cli(&["history", "--email", "u001@test.edu", "--format", "json"])
        .await;
    assert!(
        trail.stdout.contains("\"source\": \"grants.csv\""),
        "{trail:?}"
    );

    // A bad row refuses the whole desired state, naming its line; nothing is sent.
    std::fs::write(
        t.path("grants.csv"),
        "email,role\r\nu001@test.edu,Admin\r\nu003@test.edu,Teacher\r\n",
    )
    .unwrap();
    let r = t.cli(&["apply"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("grants.csv:3: u003@test.edu: role \"Teacher\""),
        "{r:?}"
    );
    assert_eq!(
        t.holders("CaptionEditor"),
        ["u002@test.edu"],
        "nothing sent"
    );

    // The CSV file gone: the run fails rather than revoke what it granted.
    std::fs::remove_file(t.path("grants.csv")).unwrap();
    let r = t.cli(&["apply"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("grants.csv"), "{r:?}");
    assert_eq!(t.holders("Admin"), ["keep@test.edu", "u001@test.edu"]);
    assert_eq!(t.holders("CaptionEditor"), ["u002@test.edu"]);
}
