//! `demo`: the whole tool on a fresh machine, with no account and no network.
//!
//! Starts the simulator on 127.0.0.1 with a small made-up institution, writes a config and a
//! roles file to a temporary folder, and runs the real commands against it (validate, plan,
//! apply, plan again, history) exactly as an admin would type them, printing each step.

use crate::exit::Exit;
use crate::render::Format;
use std::path::Path;
use studio_sim::{Sim, SimConfig, SimUser};

const TOKEN: &str = "demo-token";

fn population() -> Vec<SimUser> {
    let u = |id: u64, name: &str, email: Option<&str>, roles: &[&str]| SimUser {
        id,
        full_name: name.to_string(),
        email: email.map(str::to_string),
        role_names: roles.iter().map(|r| r.to_string()).collect(),
    };
    let mut users = vec![
        u(1, "Ada Lovelace", Some("ada@demo.edu"), &["Admin"]),
        u(2, "Grace Hopper", Some("Grace@Demo.edu"), &["Admin"]),
        u(
            3,
            "Alan Turing",
            Some("alan@demo.edu"),
            &["Admin", "Teacher"],
        ),
        u(4, "Edsger Dijkstra", Some("edsger@demo.edu"), &["Teacher"]),
        u(
            5,
            "Edsger Dijkstra (alumni)",
            Some("edsger@demo.edu.alumni"),
            &[],
        ),
        u(
            6,
            "Barbara Liskov",
            Some("barbara@demo.edu"),
            &["CaptionEditor"],
        ),
        u(7, "SSO account without email", None, &["Admin"]),
        u(8, "Sam Lee", Some("sam@demo.edu"), &[]),
        u(9, "Sam Lee (second account)", Some("SAM@demo.edu"), &[]),
        u(10, "Break Glass", Some("breakglass@demo.edu"), &["Admin"]),
        u(11, "Linus Torvalds", Some("linus@demo.edu"), &["Admin"]),
        u(
            12,
            "Margaret Hamilton",
            Some("margaret@demo.edu"),
            &["Admin"],
        ),
        u(13, "Donald Knuth", Some("donald@demo.edu"), &["Admin"]),
        u(14, "Ken Thompson", Some("ken@demo.edu"), &["Admin"]),
    ];
    users.extend((15..=60).map(|i| {
        u(
            i,
            &format!("Student {i}"),
            Some(&format!("student{i}@demo.edu")),
            &["Student"],
        )
    }));
    users
}

const ROLES_FILE: &str = "\
# Who should hold the managed Studio roles. Edit, then run `plan` to preview.
users:
  ada@demo.edu: [Admin]
  grace@demo.edu: [Admin, CaptionEditor]   # gains CaptionEditor
  edsger@demo.edu: [Admin]                 # gains Admin (Studio's search also returns edsger@demo.edu.alumni)
  barbara@demo.edu: [CaptionEditor]
  linus@demo.edu: [Admin]
  margaret@demo.edu: [Admin]
  donald@demo.edu: [Admin]
  ken@demo.edu: [Admin]
  newhire@demo.edu: [Admin]                # not in Studio yet: pending until first login
  sam@demo.edu: [Admin]                    # two Studio accounts share this email: ambiguous, skipped
# alan@demo.edu is not listed: his Admin role is removed (his Teacher role is not managed, so it stays).
# breakglass@demo.edu is not listed but protected in the config: never removed.
";

fn config_text(base_url: &str) -> String {
    format!(
        "\
studio:
  base_url: {base_url}      # the simulator; a real tenant is https://<school>.instructuremedia.com
  token_file: token
  requests_per_second: 20
  burst: 10
roles:
  managed: [Admin, CaptionEditor]
  remove_unlisted: true
  protected: [breakglass@demo.edu]
safety:
  max_removals: 25
  max_removal_ratio: 0.25
source:
  yaml: roles.yaml
history: state/history.db
"
    )
}

fn step(config: &Path, command: &str, explain: &str) {
    println!("\n──── {explain}");
    println!(
        "$ studio-role-sync --config {} {command}\n",
        config.display()
    );
}

fn exit_line(code: Exit) {
    println!("(exit code {})", code as i32);
}

pub async fn demo() -> Exit {
    let sim = match Sim::start(
        SimConfig {
            token: Some(TOKEN.into()),
            ..SimConfig::default()
        },
        population(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot start the Studio simulator: {e}");
            return Exit::Error;
        }
    };
    let dir = match tempfile::Builder::new()
        .prefix("studio-role-sync-demo-")
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot create a temporary folder: {e}");
            return Exit::Error;
        }
    };
    let config = dir.path().join("studio-role-sync.yaml");
    let written = std::fs::write(&config, config_text(&sim.base_url()))
        .and_then(|_| std::fs::write(dir.path().join("roles.yaml"), ROLES_FILE))
        .and_then(|_| std::fs::write(dir.path().join("token"), TOKEN));
    if let Err(e) = written {
        eprintln!("error: cannot write the demo files: {e}");
        return Exit::Error;
    }
    println!("studio-role-sync demo");
    println!(
        "A simulated Canvas Studio is listening on {} with {} users.",
        sim.base_url(),
        sim.users().len()
    );
    println!("Config and roles file are in {}:\n", dir.path().display());
    println!("{}", ROLES_FILE);

    step(
        &config,
        "validate",
        "1. Check the config and the roles file (no request to Studio)",
    );
    let code = super::validate(&config, false).await;
    exit_line(code);
    if code != Exit::Success {
        return code;
    }
    step(
        &config,
        "plan",
        "2. Preview: read Studio, show what would change (exit 2 = there are changes)",
    );
    exit_line(super::run(&config, true, false).await);
    step(
        &config,
        "apply",
        "3. Apply: send the changes in batches, record every action",
    );
    let applied = super::run(&config, false, false).await;
    exit_line(applied);
    step(
        &config,
        "plan",
        "4. Plan again: Studio now matches, nothing to do (exit 0)",
    );
    let again = super::run(&config, true, false).await;
    exit_line(again);
    step(
        &config,
        "history",
        "5. The run history (also plain SQLite: sqlite3 state/history.db 'select * from runs')",
    );
    exit_line(super::history(&config, 10, super::HistoryQuery::Runs, Format::Table).await);
    step(
        &config,
        "history --run 2",
        "6. One run in detail: every action and every email left alone",
    );
    exit_line(super::history(&config, 10, super::HistoryQuery::Run(2), Format::Table).await);

    let stats = sim.stats();
    println!(
        "\nThe simulator received {} requests ({} listing pages, {} email searches, {} PUT batches).",
        stats.total, stats.search_by_role, stats.search_by_email, stats.put_roles
    );
    println!("Next: copy config/studio-role-sync.yaml, point it at your tenant, and run `plan`.");
    sim.stop().await;
    if applied == Exit::Success && again == Exit::Success {
        Exit::Success
    } else {
        Exit::Error
    }
}
