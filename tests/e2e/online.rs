//! `validate --online`: reachability, TLS and the token through `GET /api/public/v1/ping`,
//! and `roles.managed` checked against the role values the tenant's API schema lists (or,
//! without a usable schema, against a listing of each role). Plain `validate` sends nothing.

use crate::support::{assert_secret_absent, user, Opts, Tenant};
use serde_json::json;

async fn tenant() -> Tenant {
    let t = Tenant::start(vec![user(1, Some("a@school.edu"), &["Admin"])]).await;
    t.write_roles("users:\n  a@school.edu: [Admin]\n");
    t
}

fn managed(roles: &'static str) -> Opts {
    Opts {
        managed: roles,
        ..Opts::default()
    }
}

#[tokio::test]
async fn plain_validate_sends_nothing_and_online_checks_ping_token_and_roles() {
    let t = tenant().await;
    let run = t.cli(&["validate"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.sim.stats().total, 0, "no request to Studio");
    let run = t.cli(&["validate", "--online"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("Studio {}: ok", t.sim.base_url()))
            && run.stdout.contains("token accepted"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("roles.managed [Admin, CaptionEditor]: ok (all among the 5 role values"),
        "{run:?}"
    );
    let s = t.sim.stats();
    assert_eq!((s.ping, s.apidocs, s.total), (1, 1, 2), "{s:?}");
}

#[tokio::test]
async fn a_role_the_tenant_does_not_have_is_named_with_the_config_line() {
    let t = tenant().await;
    t.write_config(&managed("[Admin, Captioneditor, Librarian]"));
    let run = t.cli(&["validate", "--online"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    let line = format!("{}:11: roles.managed", t.config_path().display());
    assert!(run.stderr.contains(&line), "{run:?}");
    assert!(
        run.stderr.contains(
            "\"Captioneditor\" does not exist in this tenant (role names are case-sensitive: did you mean \"CaptionEditor\"?)"
        ) && run.stderr.contains("\"Librarian\" does not exist"),
        "{run:?}"
    );
    assert!(!run.stderr.contains("\"Admin\" does not"), "{run:?}");
}

#[tokio::test]
async fn without_a_usable_schema_each_role_is_tried_and_that_is_a_note() {
    let t = tenant().await;
    for doc in [
        None,
        Some(json!("not a schema")),
        Some(
            json!({"swagger": "2.0", "paths": {"/users/search": {"get": {"parameters": [{"name": "role", "type": "string"}]}}}}),
        ),
    ] {
        t.sim.set_apidocs(doc.clone());
        t.write_config(&managed("[Admin, CaptionEditor]"));
        let run = t.cli(&["validate", "--online"]).await;
        assert_eq!(run.code, 0, "{doc:?}: {run:?}");
        assert!(
            run.stdout.contains("note: the tenant's API schema"),
            "{run:?}"
        );
        t.write_config(&managed("[Admin, Librarian]"));
        let run = t.cli(&["validate", "--online"]).await;
        assert_eq!(run.code, 1, "{doc:?}: {run:?}");
        assert!(
            run.stderr
                .contains("\"Librarian\" does not exist in this tenant (Studio answered 422"),
            "{run:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_token_or_an_unreachable_tenant_fails_with_exit_1() {
    let t = tenant().await;
    std::fs::write(t.path("token"), "not-the-token").unwrap();
    let run = t.cli(&["validate", "--online"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("401 Unauthorized") && run.stderr.contains("ping"),
        "{run:?}"
    );
    assert_secret_absent(&run.stderr, "not-the-token", "a refused token");
    // Nothing listens on port 1.
    std::fs::write(t.path("token"), crate::support::TOKEN).unwrap();
    let text = t
        .config_text(&Opts::default())
        .replace(&t.sim.base_url(), "http://127.0.0.1:1");
    std::fs::write(t.config_path(), text).unwrap();
    let run = t.cli(&["validate", "--online"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("Studio http://127.0.0.1:1: cannot reach Studio (ping)"),
        "{run:?}"
    );
}
