//! Text from outside, shown to people: Studio emails with terminal escapes or a newline in
//! them, through the real binary against the simulator. What a person reads before approving
//! (`plan`, `apply`, `history --run`) keeps every line visible and draws none of its own.

use crate::support::{user, Opts, Tenant};

const HIDE: &str = "hide@school.edu\u{1b}[8m";
const FAKE: &str = "nl@school.edu\n    + fake@school.edu";

/// Every line of `out` that looks like a plan line: `- x` / `+ x` under a role.
fn plan_lines(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.starts_with("    - ") || l.starts_with("    + "))
        .collect()
}

#[tokio::test]
async fn escapes_and_newlines_in_studio_emails_neither_hide_nor_draw_plan_lines() {
    let t = Tenant::start(vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some(HIDE), &["Admin"]),
        user(3, Some(FAKE), &["Admin"]),
    ])
    .await;
    t.write_config(&Opts {
        max_removals: 1,
        ..Opts::default()
    });
    t.write_roles("users:\n  alice@school.edu: [Admin]\n");

    for args in [
        &["plan"][..],
        &["apply"][..],
        &["history", "--run", "2"][..],
    ] {
        let out = t.cli(args).await;
        let all = format!("{}{}", out.stdout, out.stderr);
        // The log colours its own fields; no ESC of Studio's reaches a terminal.
        assert!(
            !out.stdout.contains('\u{1b}'),
            "{args:?}: a raw ESC: {out:?}"
        );
        assert!(
            !all.contains("\u{1b}[8m"),
            "{args:?}: Studio's ESC: {out:?}"
        );
        assert!(
            !all.contains("\n    + fake"),
            "{args:?}: a drawn line: {out:?}"
        );
        assert!(
            all.contains("hide@school.edu\\u{1b}[8m")
                && all.contains("nl@school.edu\\n    + fake@school.edu"),
            "{args:?}: both shown, escaped: {out:?}"
        );
        if args[0] == "history" {
            assert_eq!(out.code, 0, "{out:?}");
            continue;
        }
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        if args[0] == "plan" {
            assert_eq!(plan_lines(&out.stdout).len(), 2, "{out:?}");
            assert!(
                out.stdout.contains("Plan: 0 to add, 2 to remove")
                    && out.stdout.contains("Safety guard:"),
                "{out:?}"
            );
        } else {
            assert!(out.stdout.contains("aborted by a safety guard"), "{out:?}");
        }
    }
    assert_eq!(t.holders("Admin").len(), 3, "nothing sent");
}
