//! TLS on a campus network: the simulator served over HTTPS with a private CA made here
//! (`rcgen`), as a university's own CA or a TLS-inspecting proxy would present it. Trusted
//! through `studio.ca_file` or the operating system's store (`SSL_CERT_FILE`), for API and
//! token requests alike; without either, the run fails with a clear TLS error (exit 1) and
//! nothing is sent.

use crate::support::{test_ca, user, Opts, Tenant, TOKEN};
use std::time::Duration;
use studio_sim::tls::TlsIdentity;
use studio_sim::{Sim, SimConfig, SimOAuth, SimUser};

/// A private CA (its certificate, PEM) and a server identity for 127.0.0.1 it signed.
fn private_ca() -> (String, TlsIdentity) {
    let ca = test_ca::private_ca("Campus Test Root CA", "studio.campus.test");
    (
        ca.ca_pem,
        TlsIdentity {
            cert_chain_pem: ca.cert_pem,
            key_pem: ca.key_pem,
        },
    )
}

fn people(n: u64) -> Vec<SimUser> {
    (1..=n)
        .map(|i| user(i, Some(&format!("u{i}@campus.edu")), &[]))
        .collect()
}

fn admins(n: u64) -> String {
    let mut text = String::from("users:\n");
    for i in 1..=n {
        text.push_str(&format!("  u{i}@campus.edu: [Admin]\n"));
    }
    text
}

/// A tenant served over HTTPS by a private CA; `ca.pem` is written in its folder.
async fn https_tenant(config: SimConfig) -> Tenant {
    let (ca_pem, identity) = private_ca();
    let sim = Sim::start_tls(config, people(8), identity)
        .await
        .expect("simulator starts");
    assert!(sim.base_url().starts_with("https://127.0.0.1:"));
    let t = Tenant::with_sim(sim);
    std::fs::write(t.path("ca.pem"), ca_pem).unwrap();
    t.write_roles(&admins(8));
    t
}

fn static_token() -> SimConfig {
    SimConfig {
        token: Some(TOKEN.into()),
        ..SimConfig::default()
    }
}

fn with_ca_file() -> Opts {
    Opts {
        auth: "  token_file: token\n  ca_file: ca.pem\n".into(),
        ..Opts::default()
    }
}

#[tokio::test]
async fn a_private_ca_in_ca_file_is_trusted() {
    let t = https_tenant(static_token()).await;
    t.write_config(&with_ca_file());
    let check = t.cli(&["validate", "--online"]).await;
    assert_eq!(check.code, 0, "{check:?}");
    assert!(check.stdout.contains("TLS verified"), "{check:?}");
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 8);
    assert_eq!(t.sim.stats().tls_handshake_failures, 0);
}

#[tokio::test]
async fn without_the_ca_the_run_fails_with_a_clear_tls_error() {
    let t = https_tenant(static_token()).await;
    t.write_config(&Opts::default());
    for command in ["apply", "plan"] {
        let run = t.cli(&[command]).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains("certificate") && run.stderr.contains("studio.ca_file"),
            "the error says what to do: {run:?}"
        );
        assert!(
            run.stderr.contains("after 1 attempt"),
            "not retried: {run:?}"
        );
    }
    let check = t.cli(&["validate", "--online"]).await;
    assert_eq!(check.code, 1, "{check:?}");
    assert!(check.stderr.contains("studio.ca_file"), "{check:?}");
    assert!(t.sim.stats().tls_handshake_failures > 0);
    assert_eq!(t.sim.stats().put_roles, 0, "nothing was sent");
    assert!(t.holders("Admin").is_empty());
}

#[tokio::test]
async fn the_operating_system_trust_store_is_used() {
    let t = https_tenant(static_token()).await;
    t.write_config(&Opts::default());
    // The OS store, as OpenSSL-style tools find it: here the CA is its only certificate.
    let ca = t.path("ca.pem");
    let run = t
        .cli_env(&["apply"], &[("SSL_CERT_FILE", ca.to_str().unwrap())])
        .await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(t.holders("Admin").len(), 8);
}

#[tokio::test]
async fn oauth_token_requests_use_the_same_trust() {
    let t = https_tenant(SimConfig {
        token: None,
        oauth: Some(SimOAuth {
            client_id: "campus".into(),
            client_secret: "campus-secret".into(),
            refresh_token: "campus-seed".into(),
            access_ttl: Duration::from_secs(60),
        }),
        ..SimConfig::default()
    })
    .await;
    t.write_config(&Opts {
        auth: "  ca_file: ca.pem\n  oauth:\n    client_id: campus\n    client_secret_env: CAMPUS_SECRET\n    refresh_token_env: CAMPUS_SEED\n".into(),
        ..Opts::default()
    });
    let env = [
        ("CAMPUS_SECRET", "campus-secret"),
        ("CAMPUS_SEED", "campus-seed"),
    ];
    let run = t.cli_env(&["apply"], &env).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        t.sim.refresh_count(),
        1,
        "the token endpoint was reached over TLS"
    );
    assert_eq!(t.holders("Admin").len(), 8);
}

#[tokio::test]
async fn a_bad_ca_file_is_refused_naming_the_key_and_line() {
    let t = https_tenant(static_token()).await;
    t.write_config(&Opts {
        auth: "  token_file: token\n  ca_file: missing.pem\n".into(),
        ..Opts::default()
    });
    let run = t.cli(&["validate"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("studio-role-sync.yaml:4: studio.ca_file: cannot read")
            && run.stderr.contains("missing.pem"),
        "{run:?}"
    );
    std::fs::write(t.path("notes.pem"), "this is not a certificate\n").unwrap();
    t.write_config(&Opts {
        auth: "  token_file: token\n  ca_file: notes.pem\n".into(),
        ..Opts::default()
    });
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("studio.ca_file") && run.stderr.contains("no PEM certificate"),
        "{run:?}"
    );
    assert_eq!(t.sim.stats().total, 0, "nothing was sent");
}
