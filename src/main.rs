//! The `studio-role-sync` command line: parse, then run the command.
//!
//! The engine (`studio-role-sync-engine`) does the work and knows no command line; this
//! binary owns what a person or a shell meets: the commands ([`commands`]), what they print
//! ([`render`]), logging ([`logging`]) and the exit codes ([`exit`]). `demo` and its
//! simulator are compiled in only with the default `demo` feature.

use clap::{CommandFactory, Parser, Subcommand};
use exit::Exit;
use render::Format;
use std::path::PathBuf;
use studio_role_sync_engine::config::DEFAULT_CONFIG_PATH;

mod commands;
mod exit;
mod logging;
mod login;
mod render;

/// Keeps the roles of Canvas Studio users equal to what your institution declares.
#[derive(Parser)]
#[command(name = "studio-role-sync", version, about, long_about = None)]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "STUDIO_ROLE_SYNC_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check the config and the desired state (a SQL source is queried); no request to Studio
    /// unless --online.
    Validate {
        /// Also check the tenant: reachability, TLS, the token (GET /api/public/v1/ping), and
        /// that every role in roles.managed exists there.
        #[arg(long)]
        online: bool,
    },
    /// Read Studio and print the changes a run would make; changes nothing (exit 2: changes).
    Plan {
        /// Make it a full verification: search every desired email a holder has.
        #[arg(long)]
        full: bool,
        /// Save the plan (JSON, mode 0600) for `apply FILE`.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// One run now: plan, guard, apply, record. With FILE (from `plan --out`): send that saved
    /// plan, and only if a fresh plan is the same; it lifts the removal guards for it.
    Apply {
        /// Make it a full verification: search every desired email a holder has.
        #[arg(long)]
        full: bool,
        /// A plan saved by `plan --out FILE`.
        #[arg(value_name = "FILE")]
        saved_plan: Option<PathBuf>,
    },
    /// Approve the plan of a run a removal guard aborted: the daemon (or the next `apply`)
    /// sends it within seconds if the plan is still the same.
    Approve {
        /// The aborted run (see `history`).
        #[arg(value_name = "RUN_ID")]
        run_id: i64,
        /// Who approves (default: the OS user).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Ask the running daemon to run now (as SIGHUP / `systemctl reload` do).
    Trigger {
        /// Who asks (default: the OS user).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Run on the schedule and on edits until SIGTERM/SIGINT; serves http.listen.
    Daemon,
    /// Read the run history.
    History {
        /// How many runs to list.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Show one run with its actions and pending emails.
        #[arg(long, conflicts_with = "email")]
        run: Option<i64>,
        /// List the approvals (approve, saved plans) instead of the runs.
        #[arg(long, conflicts_with_all = ["run", "email"])]
        approvals: bool,
        /// Show one person's trail: every action and every left-alone reason, newest first.
        #[arg(long, value_name = "ADDRESS")]
        email: Option<String>,
        /// With --email: only runs since this time (2025-03-01, 2025-03-01T08:00:00Z, or 30d
        /// back from now).
        #[arg(long, value_name = "T", requires = "email")]
        since: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Print the current holders of the managed roles as a roles file.
    Export,
    /// Copy a SQLite history into the (empty) PostgreSQL history the config names: the
    /// upgrade step to several daemons. Stop the daemon first.
    CopyHistory {
        /// The SQLite history file to copy (the old `history` path).
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
    },
    /// Run validate, plan, apply and history against a built-in Studio simulator.
    #[cfg(feature = "demo")]
    Demo,
    /// OAuth: authorize this tool once (authorization-code flow) and store its tokens.
    Auth {
        #[command(subcommand)]
        command: AuthCommand,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
}

#[derive(Subcommand)]
enum AuthCommand {
    /// Print the authorize URL, take the code, store the tokens.
    Login,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return Exit::Error.into();
        }
    };
    let config = cli.config;
    let code = runtime.block_on(async move {
        match cli.command {
            Command::Validate { online } => commands::validate(&config, online).await,
            Command::Plan { full, out } => commands::plan(&config, full, out.as_deref()).await,
            Command::Apply { full, saved_plan } => {
                commands::apply(&config, full, saved_plan.as_deref()).await
            }
            Command::Approve { run_id, by } => commands::approve(&config, run_id, by).await,
            Command::Trigger { by } => commands::trigger(&config, by).await,
            Command::Daemon => commands::daemon(&config).await,
            Command::History {
                limit,
                approvals: true,
                format,
                ..
            } => commands::history_approvals(&config, limit, format).await,
            Command::History {
                limit,
                run,
                email,
                since,
                format,
                ..
            } => {
                let what = match (run, email) {
                    (Some(id), _) => commands::HistoryQuery::Run(id),
                    (None, Some(email)) => commands::HistoryQuery::Email { email, since },
                    (None, None) => commands::HistoryQuery::Runs,
                };
                commands::history(&config, limit, what, format).await
            }
            Command::Export => commands::export(&config).await,
            Command::CopyHistory { from } => commands::copy_history(&config, &from).await,
            #[cfg(feature = "demo")]
            Command::Demo => commands::demo().await,
            Command::Auth {
                command: AuthCommand::Login,
            } => commands::auth_login(&config).await,
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "studio-role-sync",
                    &mut std::io::stdout(),
                );
                Exit::Success
            }
            Command::Man => {
                match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                    Ok(()) => Exit::Success,
                    Err(e) => {
                        eprintln!("error: {e}");
                        Exit::Error
                    }
                }
            }
        }
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code.into()
}
