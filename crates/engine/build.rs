//! Decides, when the tests are built, whether the history's PostgreSQL tests can run: without
//! `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` they are compiled `#[ignore]` (reported ignored, with
//! the variable to set), unless `CI=true`, where they run and fail for want of a server.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(history_postgres_ignored)");
    println!("cargo::rerun-if-env-changed=STUDIO_ROLE_SYNC_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=CI");
    let url = std::env::var("STUDIO_ROLE_SYNC_TEST_POSTGRES_URL").unwrap_or_default();
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    if url.trim().is_empty() && !ci {
        println!("cargo::rustc-cfg=history_postgres_ignored");
    }
}
