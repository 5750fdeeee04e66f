//! The LDAP source on a large group: read time and memory for a group of `--members` members
//! (default 100,000), against a real OpenLDAP (`slapd`, started here on 127.0.0.1 with an mdb
//! database loaded by `slapadd`, as the tests do). Figures in BENCHMARKS.md.
//!
//! Two shapes are read, each `--rounds` times: a `dn` group (the group entry's `member`
//! values, then each member's entry, 32 lookups in flight on one connection) and a `filter`
//! group (one paged subtree search, 500 entries a page). The lower bound is the same search
//! with `ldapsearch` (the OpenLDAP client, in C) writing to /dev/null. The naive strategy,
//! read in the same run for comparison, is what a first version would do for a `dn` group:
//! read the member list, then look each member up one after another, keeping every entry
//! before turning them into emails. Memory is the process's peak resident size
//! (`getrusage`), read after each shape; the naive read goes last, since the peak only grows.
//!
//! `cargo run --release -p bench --bin ldap_bench` (needs slapd and ldap-utils)

#[path = "../../../../tests/ldap/slapd.rs"]
#[allow(dead_code)]
mod slapd;

use clap::Parser;
use slapd::{group_dn, person, uid_dn, Slapd, BIND_DN, PASSWORD, SUFFIX};
use std::path::Path;
use std::time::{Duration, Instant};
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::desired;

#[derive(Parser)]
struct Args {
    /// Members of the group.
    #[arg(long, default_value_t = 100_000)]
    members: usize,
    /// Reads timed per shape.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn peak_rss_mib() -> f64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage writes into the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    usage.ru_maxrss as f64 / 1024.0
}

fn config(url: &str, group: &str) -> Config {
    let text = format!(
        "studio:\n  base_url: https://school.instructuremedia.com\n  token_env: BENCH_TOKEN\n\
         roles:\n  managed: [Admin]\n\
         source:\n  ldap:\n    url: {url}\n    bind_dn: {BIND_DN}\n    password_env: BENCH_LDAP\n    \
         base_dn: {SUFFIX}\n    timeout_seconds: 600\n    groups:\n      - {group}\n"
    );
    let env = |name: &str| match name {
        "BENCH_TOKEN" => Some("t".to_string()),
        "BENCH_LDAP" => Some(PASSWORD.to_string()),
        _ => None,
    };
    Config::from_text_with_env(Path::new("/tmp/bench.yaml"), &text, &env).expect("config")
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if !slapd::available() {
        eprintln!("needs slapd and ldap-utils: apt-get install slapd ldap-utils");
        std::process::exit(1);
    }
    let n = args.members;
    let start = Instant::now();
    let mut ldif = String::with_capacity(n * 200);
    for i in 0..n {
        ldif.push_str(&person(
            &format!("p{i:06}"),
            Some(&format!("p{i:06}@school.edu")),
            "42",
        ));
    }
    let members: Vec<String> = (0..n).map(|i| uid_dn(&format!("p{i:06}"))).collect();
    ldif.push_str(&slapd::group("big", &members));
    drop(members);
    let dir = Slapd::start(&ldif, None);
    drop(ldif);
    println!(
        "directory of {n} people loaded in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let shapes = [
        (
            "dn group",
            format!("{{dn: \"{}\", roles: [Admin]}}", group_dn("big")),
        ),
        (
            "filter group",
            "{filter: \"(departmentNumber=42)\", roles: [Admin]}".to_string(),
        ),
    ];
    let before = peak_rss_mib();
    println!("peak RSS before reading: {before:.0} MiB");
    for (name, group) in &shapes {
        let c = config(&dir.url(), group);
        let studio_role_sync_engine::config::SourceConfig::Ldap(l) = &c.sources[0] else {
            unreachable!()
        };
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..args.rounds {
            let t = Instant::now();
            let (d, counts) = desired::ldap::load(l, &c.roles.managed)
                .await
                .expect("read");
            times.push(t.elapsed());
            assert_eq!(d.users.len(), n, "every member read");
            assert_eq!(counts[0].members, n);
        }
        times.sort();
        println!(
            "{name}: {n} members, median {:.2} s (min {:.2} s), peak RSS {:.0} MiB",
            times[times.len() / 2].as_secs_f64(),
            times[0].as_secs_f64(),
            peak_rss_mib()
        );
    }
    let t = Instant::now();
    let got = naive_read(&dir.url(), &group_dn("big")).await;
    assert_eq!(got, n, "every member read");
    println!(
        "naive (dn group, one lookup at a time, every entry kept): {n} members, {:.2} s, peak RSS {:.0} MiB",
        t.elapsed().as_secs_f64(),
        peak_rss_mib()
    );
    let t = Instant::now();
    let out = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &dir.url(),
            "-D",
            BIND_DN,
            "-w",
            PASSWORD,
            "-b",
            SUFFIX,
        ])
        .args(["-E", "pr=500/noprompt", "(departmentNumber=42)", "mail"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ldapsearch runs");
    assert!(out.success());
    println!(
        "lower bound (ldapsearch, same paged search, to /dev/null): {:.2} s",
        t.elapsed().as_secs_f64()
    );
}

/// The naive read of a `dn` group: its `member` values, then one base search per member,
/// each awaited before the next, every entry kept until the end. Returns the emails found.
async fn naive_read(url: &str, group: &str) -> usize {
    use ldap3::{LdapConnAsync, Scope, SearchEntry};
    let (conn, mut ldap) = LdapConnAsync::new(url).await.expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(BIND_DN, PASSWORD)
        .await
        .and_then(|r| r.success())
        .expect("bind");
    let (entries, _) = ldap
        .search(group, Scope::Base, "(objectClass=*)", vec!["member"])
        .await
        .and_then(|r| r.success())
        .expect("group");
    let group = SearchEntry::construct(entries.into_iter().next().expect("group entry"));
    let mut kept = Vec::new();
    for member in group.attrs.get("member").into_iter().flatten() {
        let (entries, _) = ldap
            .search(member, Scope::Base, "(objectClass=*)", vec!["mail"])
            .await
            .and_then(|r| r.success())
            .expect("member");
        kept.extend(entries.into_iter().map(SearchEntry::construct));
    }
    let _ = ldap.unbind().await;
    kept.iter()
        .filter_map(|e| e.attrs.get("mail").and_then(|m| m.first()))
        .count()
}
