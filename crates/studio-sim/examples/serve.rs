//! `serve`: the simulator as a process of its own, for checks written in shell (the package
//! checks in deploy/packaging/verify.sh) that need a Studio to point an installed binary at.
//!
//! ```sh
//! cargo run -p studio-sim --example serve -- TOKEN EMAIL[=ROLE,ROLE] ...
//! ```
//! Each EMAIL becomes one Studio user holding the given roles (none without `=`). The first
//! line on stdout is the base URL (`http://127.0.0.1:PORT`); the server then runs until stdin
//! closes or the process is signalled, so a script stops it by closing the pipe or killing it.

use studio_sim::{Sim, SimConfig, SimUser};
use tokio::io::AsyncReadExt;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(token) = args.next() else {
        eprintln!("usage: serve TOKEN EMAIL[=ROLE,ROLE] ...");
        return std::process::ExitCode::from(2);
    };
    let users = args
        .enumerate()
        .map(|(i, spec)| {
            let (email, roles) = spec.split_once('=').unwrap_or((spec.as_str(), ""));
            SimUser {
                id: i as u64 + 1,
                full_name: format!("User {}", i + 1),
                email: Some(email.to_string()),
                role_names: roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .map(str::to_string)
                    .collect(),
            }
        })
        .collect();
    let config = SimConfig {
        token: Some(token),
        ..SimConfig::default()
    };
    let sim = match Sim::start(config, users).await {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("serve: cannot start the simulator: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    println!("{}", sim.base_url());
    // Until stdin reaches its end (the caller closed the pipe or went away).
    let mut sink = [0u8; 256];
    let mut stdin = tokio::io::stdin();
    while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
    sim.stop().await;
    std::process::ExitCode::SUCCESS
}
