//! Tests of the simulator over real HTTP.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};

use super::*;

const TOKEN: &str = "sim-token";

fn user(id: u64, name: &str, email: Option<&str>, roles: &[&str]) -> SimUser {
    SimUser {
        id,
        full_name: name.to_string(),
        email: email.map(str::to_string),
        role_names: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn small_population() -> Vec<SimUser> {
    vec![
        user(1, "Ann", Some("ann@x.edu"), &["Admin"]),
        user(2, "Ann Old", Some("Ann@X.edu.old"), &[]),
        user(3, "Bob", Some("bob@x.edu"), &["Admin", "Teacher"]),
        user(4, "Nomail", None, &["Admin"]),
        user(5, "Carl", Some("carl@x.edu"), &["Teacher"]),
    ]
}

async fn start() -> Sim {
    Sim::start(SimConfig::default(), small_population())
        .await
        .expect("sim starts")
}

fn api(sim: &Sim, path: &str) -> String {
    format!("{}/api/public/v1{}", sim.base_url(), path)
}

async fn get(client: &Client, url: &str) -> (StatusCode, Value) {
    let response = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = response.status();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body)
}

async fn put(client: &Client, sim: &Sim, body: Value) -> (StatusCode, Value) {
    let response = client
        .put(api(sim, "/users/roles"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (
        status,
        response.json::<Value>().await.unwrap_or(Value::Null),
    )
}

fn ids(body: &Value) -> Vec<u64> {
    body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["id"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn unauthorized_without_or_with_wrong_token() {
    let sim = start().await;
    let client = Client::new();
    let url = api(&sim, "/users/search?role=Admin");
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "unauthorized"})
    );
    let r = client.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = get(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
    let stats = sim.stats();
    assert_eq!(stats.status_401, 2);
    assert_eq!(stats.search_by_role, 3);
    assert_eq!(stats.total, 3);
}

#[tokio::test]
async fn search_parameter_validation() {
    let sim = start().await;
    let client = Client::new();
    let (status, body) = get(&client, &api(&sim, "/users/search")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "role or email is required"}));
    let (status, _) = get(&client, &api(&sim, "/users/search?per_page=5")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    for query in [
        "role=Admin&per_page=51",
        "role=Admin&per_page=0",
        "role=Admin&per_page=abc",
        "role=Admin&page=0",
        "role=Admin&page=-1",
        "role=Admin&page=1.5",
    ] {
        let (status, body) = get(&client, &api(&sim, &format!("/users/search?{query}"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{query}");
        assert!(body["error"].is_string(), "{query}");
    }
    let (status, body) = get(&client, &api(&sim, "/users/search?role=Wizard")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body, json!({"error": "unknown role: Wizard"}));
    // Role names are case-sensitive.
    let (status, _) = get(&client, &api(&sim, "/users/search?role=admin")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = get(&client, &api(&sim, "/users/search?role=Admin&per_page=50")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.stats().status_4xx_other, 10);
}

#[tokio::test]
async fn role_search_pagination() {
    let users = (1..=45)
        .map(|i| {
            let roles: &[&str] = if i % 2 == 1 { &["Teacher"] } else { &[] };
            user(i, &format!("U{i}"), Some(&format!("u{i}@x.edu")), roles)
        })
        .collect();
    let sim = Sim::start(SimConfig::default(), users).await.unwrap();
    let client = Client::new();
    // 23 teachers (odd ids 1..=45), 10 per page: 3 pages.
    let (status, body) = get(
        &client,
        &api(&sim, "/users/search?role=Teacher&per_page=10"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["meta"],
        json!({"current_page": 1, "last_page": 3, "total_count": 23})
    );
    assert_eq!(ids(&body), (1..=19).step_by(2).collect::<Vec<u64>>());
    let (_, body) = get(
        &client,
        &api(&sim, "/users/search?role=Teacher&per_page=10&page=3"),
    )
    .await;
    assert_eq!(
        body["meta"],
        json!({"current_page": 3, "last_page": 3, "total_count": 23})
    );
    assert_eq!(ids(&body), vec![41, 43, 45]);
    let (status, body) = get(
        &client,
        &api(&sim, "/users/search?role=Teacher&per_page=10&page=4"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ids(&body).is_empty());
    // Defaults: page 1, 20 per page.
    let (_, body) = get(&client, &api(&sim, "/users/search?role=Teacher")).await;
    assert_eq!(ids(&body).len(), 20);
    assert_eq!(body["meta"]["last_page"], 2);
    // A known role nobody holds: empty, last_page 1.
    let (status, body) = get(&client, &api(&sim, "/users/search?role=Admin")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["meta"],
        json!({"current_page": 1, "last_page": 1, "total_count": 0})
    );
    // The user object shape.
    let (_, body) = get(&client, &api(&sim, "/users/search?role=Teacher&per_page=1")).await;
    assert_eq!(
        body["users"][0],
        json!({"id": 1, "full_name": "U1", "display_name": "U1", "email": "u1@x.edu", "role_names": ["Teacher"]})
    );
}

#[tokio::test]
async fn email_search_is_a_loose_prefix_match() {
    let sim = start().await;
    let client = Client::new();
    let (status, body) = get(&client, &api(&sim, "/users/search?email=%20ANN@x.edu%20")).await;
    assert_eq!(status, StatusCode::OK);
    // The partial match ann@x.edu.old comes back too: clients must filter exactly.
    assert_eq!(ids(&body), vec![1, 2]);
    assert_eq!(body["users"][1]["email"], "Ann@X.edu.old");
    assert_eq!(body["meta"]["total_count"], 2);
    // Email and role combined.
    let (_, body) = get(
        &client,
        &api(&sim, "/users/search?email=ann@x.edu&role=Admin"),
    )
    .await;
    assert_eq!(ids(&body), vec![1]);
    let (_, body) = get(&client, &api(&sim, "/users/search?email=nobody@x.edu")).await;
    assert!(ids(&body).is_empty());
    // A user without email serializes null.
    let (_, body) = get(&client, &api(&sim, "/users/search?role=Admin")).await;
    assert_eq!(ids(&body), vec![1, 3, 4]);
    assert_eq!(body["users"][2]["email"], Value::Null);
    assert_eq!(sim.users_with_email(" ANN@x.edu ").len(), 1);
    let stats = sim.stats();
    assert_eq!((stats.search_by_email, stats.search_by_role), (2, 2));
}

#[tokio::test]
async fn get_user_and_recreate() {
    let sim = start().await;
    let client = Client::new();
    let (status, body) = get(&client, &api(&sim, "/users/3")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], 3);
    assert_eq!(body["role_names"], json!(["Admin", "Teacher"]));
    let new_id = sim.recreate_user(3);
    assert_eq!(new_id, 6);
    let (status, body) = get(&client, &api(&sim, "/users/3")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "user not found"}));
    let (status, body) = get(&client, &api(&sim, "/users/6")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["email"], "bob@x.edu");
    assert_eq!(body["role_names"], json!(["Admin", "Teacher"]));
    assert_eq!(
        sim.holders("Admin")
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![1, 4, 6]
    );
    let (status, _) = get(&client, &api(&sim, "/users/abc")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(sim.stats().get_user, 4);
}

#[tokio::test]
async fn put_roles_applies_and_returns_updated_users() {
    let sim = start().await;
    let client = Client::new();
    let (status, body) = put(
        &client,
        &sim,
        json!({"actions": [
            {"user_id": 5, "action": "add", "role": "Admin"},
            {"user_id": 1, "action": "remove", "role": "Admin"},
            {"user_id": 5, "action": "add", "role": "Admin"},
            {"user_id": 5, "action": "remove", "role": "Student"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&body), vec![5, 1]);
    assert_eq!(body["users"][0]["role_names"], json!(["Teacher", "Admin"]));
    assert_eq!(body["users"][1]["role_names"], json!([]));
    assert_eq!(sim.user(5).unwrap().role_names, vec!["Teacher", "Admin"]);
    assert_eq!(
        sim.holders("Admin")
            .iter()
            .map(|u| u.id)
            .collect::<Vec<_>>(),
        vec![3, 4, 5]
    );
    let stats = sim.stats();
    assert_eq!((stats.put_roles, stats.put_actions), (1, 4));
}

#[tokio::test]
async fn put_roles_is_atomic_and_validated() {
    let sim = start().await;
    let client = Client::new();
    let before = sim.users();
    let (status, body) = put(
        &client,
        &sim,
        json!({"actions": [
            {"user_id": 5, "action": "add", "role": "Admin"},
            {"user_id": 999, "action": "add", "role": "Admin"},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, json!({"error": "the user(s) was not found"}));
    assert_eq!(sim.users(), before, "nothing in the batch is applied");

    for actions in [
        json!([{"user_id": 5, "action": "promote", "role": "Admin"}]),
        json!([{"user_id": 5, "action": "add", "role": "Wizard"}]),
        json!([{"user_id": 5, "action": "add", "role": "Admin"},
               {"user_id": 999, "action": "add", "role": "Wizard"}]),
    ] {
        let (status, body) = put(&client, &sim, json!({ "actions": actions })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{actions}");
        assert!(body["error"].is_string());
    }
    for body in [
        json!({}),
        json!({"actions": []}),
        json!([1]),
        json!({"actions": [{"user_id": 5}]}),
    ] {
        let (status, _) = put(&client, &sim, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let r = client
        .put(api(&sim, "/users/roles"))
        .bearer_auth(TOKEN)
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(sim.users(), before);
    let stats = sim.stats();
    assert_eq!((stats.put_roles, stats.put_actions), (9, 0));
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let config = SimConfig {
        faults: Faults {
            rate_limit: Some(2.0),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Sim::start(config, small_population()).await.unwrap();
    let client = Client::new();
    let url = api(&sim, "/users/1");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = client.get(&url).bearer_auth(TOKEN).send().await.unwrap();
        statuses.push(r.status());
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                r.json::<Value>().await.unwrap(),
                json!({"error": "rate limit exceeded"})
            );
        }
    }
    assert_eq!(&statuses[..2], &[StatusCode::OK, StatusCode::OK]);
    assert_eq!(statuses[2], StatusCode::TOO_MANY_REQUESTS);
    let secs: u64 = retry_after.unwrap().parse().unwrap();
    assert!(secs >= 1);
    let stats = sim.stats();
    assert!(stats.status_429 >= 1);
    assert_eq!(stats.get_user, 4);
    // Lifting the limit takes effect at once.
    sim.set_faults(Faults::default());
    let (status, _) = get(&client, &url).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn malformed_and_dropped_responses() {
    let config = SimConfig {
        faults: Faults {
            malformed_rate: 1.0,
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Sim::start(config, small_population()).await.unwrap();
    let client = Client::new();
    let r = client
        .get(api(&sim, "/users/1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text:?}");
    // Error answers are not replaced.
    let (status, _) = get(&client, &api(&sim, "/users/99")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(sim.stats().malformed, 1);

    sim.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let r = client
        .get(api(&sim, "/users/1"))
        .bearer_auth(TOKEN)
        .send()
        .await;
    // A send error is also a broken response; headers then a failing body is the usual case.
    if let Ok(r) = r {
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.bytes().await.is_err(), "the body must fail");
    }
    // A PUT whose answer is dropped was still applied.
    let r = client
        .put(api(&sim, "/users/roles"))
        .bearer_auth(TOKEN)
        .json(&json!({"actions": [{"user_id": 5, "action": "add", "role": "Student"}]}))
        .send()
        .await;
    if let Ok(r) = r {
        assert!(r.json::<Value>().await.is_err());
    }
    assert!(sim
        .user(5)
        .unwrap()
        .role_names
        .contains(&"Student".to_string()));
    assert_eq!(sim.stats().dropped, 2);

    sim.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let (status, body) = get(&client, &api(&sim, "/users/1")).await;
    assert!(status.is_server_error());
    assert!(body["error"].is_string());
    assert_eq!(sim.stats().status_5xx, 1);
}

#[tokio::test]
async fn latency_and_concurrency_are_measured() {
    let config = SimConfig {
        faults: Faults {
            latency: Duration::from_millis(200),
            ..Faults::default()
        },
        ..SimConfig::default()
    };
    let sim = Sim::start(config, small_population()).await.unwrap();
    let client = Client::new();
    let started = std::time::Instant::now();
    let url = api(&sim, "/users/1");
    let requests = (0..4).map(|_| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .get(&url)
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == StatusCode::OK));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert!(
        started.elapsed() < Duration::from_millis(790),
        "requests run concurrently"
    );
    assert_eq!(sim.stats().max_in_flight, 4);
    sim.reset_stats();
    assert_eq!(sim.stats(), SimStats::default());
}

fn oauth_config(ttl: Duration) -> SimConfig {
    SimConfig {
        token: None,
        oauth: Some(SimOAuth {
            client_id: "cid".into(),
            client_secret: "secret".into(),
            refresh_token: "seed-refresh".into(),
            access_ttl: ttl,
        }),
        ..SimConfig::default()
    }
}

async fn refresh(client: &Client, sim: &Sim, token: &str) -> (StatusCode, Value) {
    let r = client
        .post(format!("{}/api/public/oauth/token", sim.base_url()))
        .basic_auth("cid", Some("secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn oauth_refresh_rotation_and_expiry() {
    let sim = Sim::start(
        oauth_config(Duration::from_millis(1500)),
        small_population(),
    )
    .await
    .unwrap();
    let client = Client::new();
    let url = api(&sim, "/users/1");
    // No static token in this configuration.
    let (status, _) = get(&client, &url).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(sim.current_refresh_token().as_deref(), Some("seed-refresh"));

    let (status, body) = refresh(&client, &sim, "seed-refresh").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 1);
    let access = body["access_token"].as_str().unwrap().to_string();
    let new_refresh = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new_refresh, "seed-refresh");
    assert_eq!(sim.current_refresh_token(), Some(new_refresh.clone()));
    assert_eq!(sim.refresh_count(), 1);

    // The used refresh token is refused.
    let (status, body) = refresh(&client, &sim, "seed-refresh").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "invalid_grant"}));

    // Wrong client credentials (form fields this time).
    let r = client
        .post(format!("{}/api/public/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh.as_str()),
            ("client_id", "cid"),
            ("client_secret", "wrong"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "invalid_client"})
    );

    let r = client.get(&url).bearer_auth(&access).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // It lives 1 s: accepted until then, refused after (polled, not slept for a fixed time).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = client.get(&url).bearer_auth(&access).send().await.unwrap();
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            std::time::Instant::now() < deadline,
            "the access token never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Form-field credentials work and rotate again.
    let r = client
        .post(format!("{}/api/public/oauth/token", sim.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", new_refresh.as_str()),
            ("client_id", "cid"),
            ("client_secret", "secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.refresh_count(), 2);
    let stats = sim.stats();
    assert_eq!(stats.token, 4);
    assert_eq!(stats.status_401, 3);
}

#[tokio::test]
async fn oauth_authorization_code_flow() {
    let sim = Sim::start(oauth_config(Duration::from_secs(7200)), small_population())
        .await
        .unwrap();
    let client = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let authorize = |redirect: &str| {
        let url = format!(
            "{}/api/public/oauth/authorize?client_id=cid&response_type=code&state=xyz&redirect_uri={}",
            sim.base_url(),
            url::form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>()
        );
        let client = client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    // Like Studio: http and localhost redirect URIs are refused, unless a test allows loopback.
    for refused in [
        "http://127.0.0.1:9/cb",
        "https://localhost/cb",
        "http://school.edu/cb",
    ] {
        assert_eq!(
            authorize(refused).await.status(),
            StatusCode::BAD_REQUEST,
            "{refused}"
        );
    }
    sim.allow_loopback_redirects(true);
    assert_eq!(
        authorize("http://127.0.0.1:9/cb").await.status(),
        StatusCode::FOUND
    );
    sim.allow_loopback_redirects(false);
    let r = authorize("https://app.school.edu/cb").await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let location = url::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(location.path(), "/cb");
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert!(!params.contains_key("state"), "Studio does not echo state");
    let code = params["code"].clone();

    let exchange = |code: String| {
        let client = client.clone();
        let url = format!("{}/api/public/oauth/token", sim.base_url());
        async move {
            let r = client
                .post(url)
                .basic_auth("cid", Some("secret"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("code", code.as_str()),
                    ("redirect_uri", "https://app.school.edu/cb"),
                ])
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = exchange(code.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["expires_in"], 7200);
    assert_eq!(
        sim.current_refresh_token().as_deref(),
        body["refresh_token"].as_str()
    );
    // Codes are single use.
    let (status, body) = exchange(code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, json!({"error": "invalid_grant"}));
    // A code issued by the handle works too.
    let (status, body) = exchange(sim.issue_auth_code()).await;
    assert_eq!(status, StatusCode::OK);
    let access = body["access_token"].as_str().unwrap();
    let r = client
        .get(api(&sim, "/users/1"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(sim.refresh_count(), 0);
    assert_eq!(sim.stats().authorize, 5);
}

#[tokio::test]
async fn oauth_endpoints_absent_without_oauth() {
    let sim = start().await;
    let r = Client::new()
        .post(format!("{}/api/public/oauth/token", sim.base_url()))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(sim.current_refresh_token(), None);
}

#[tokio::test]
async fn stop_closes_the_server() {
    let sim = start().await;
    let url = api(&sim, "/users/1");
    let client = Client::new();
    assert_eq!(get(&client, &url).await.0, StatusCode::OK);
    sim.stop().await;
    let fresh = Client::new();
    assert!(fresh.get(&url).bearer_auth(TOKEN).send().await.is_err());
}

#[test]
fn sample_population_shape() {
    let users = sample_population(2000, &["Admin", "Teacher"], &[10, 300], 7);
    assert_eq!(users.len(), 2000);
    assert_eq!(
        users,
        sample_population(2000, &["Admin", "Teacher"], &[10, 300], 7)
    );
    assert!(users.iter().enumerate().all(|(i, u)| u.id == i as u64 + 1));
    assert!(users[96].email.is_none());
    assert_eq!(
        users.iter().filter(|u| u.email.is_none()).count(),
        2000 / 97
    );
    let holders = |r: &str| {
        users
            .iter()
            .filter(|u| u.role_names.iter().any(|x| x == r))
            .count()
    };
    assert_eq!((holders("Admin"), holders("Teacher")), (10, 300));
    let mut emails: Vec<String> = users
        .iter()
        .filter_map(|u| u.email.as_ref())
        .map(|e| e.to_lowercase())
        .collect();
    let before = emails.len();
    emails.sort();
    emails.dedup();
    assert_eq!(before - emails.len(), 2, "two duplicate pairs");
    assert!(users
        .iter()
        .any(|u| u.email.as_deref().is_some_and(|e| e != e.to_lowercase())));
    let small = sample_population(5, &["Admin"], &[9], 1);
    assert!(small.iter().all(|u| u.role_names == vec!["Admin"]));
}

#[tokio::test]
async fn large_population_pages_quickly() {
    let users = sample_population(200_000, &["Teacher"], &[50_000], 3);
    let sim = Sim::start(SimConfig::default(), users).await.unwrap();
    let client = Client::new();
    let started = std::time::Instant::now();
    for page in [1, 500, 1000] {
        let (status, body) = get(
            &client,
            &api(
                &sim,
                &format!("/users/search?role=Teacher&per_page=50&page={page}"),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["meta"]["total_count"], 50_000);
        assert_eq!(body["meta"]["last_page"], 1000);
        assert_eq!(ids(&body).len(), 50);
    }
    let (_, body) = get(
        &client,
        &api(&sim, "/users/search?email=user1234@example.edu"),
    )
    .await;
    assert!(ids(&body).contains(&1234));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn exclusive_roles_refuse_an_add_unless_the_other_role_goes_first() {
    let sim = Sim::start(
        SimConfig {
            exclusive: vec![vec!["Admin".into(), "SubAccountAdmin".into()]],
            ..SimConfig::default()
        },
        small_population(),
    )
    .await
    .unwrap();
    let client = Client::new();
    let add = json!({"user_id": 1, "action": "add", "role": "SubAccountAdmin"});
    let remove = json!({"user_id": 1, "action": "remove", "role": "Admin"});
    let other = json!({"user_id": 5, "action": "add", "role": "Admin"});
    // Add first: the whole batch is refused, nothing changes.
    let (status, body) = put(&client, &sim, json!({"actions": [other, add, remove]})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("holds Admin, which excludes SubAccountAdmin"));
    assert_eq!(sim.user(1).unwrap().role_names, ["Admin"]);
    assert_eq!(sim.user(5).unwrap().role_names, ["Teacher"]);
    // Remove first: accepted.
    let (status, _) = put(&client, &sim, json!({"actions": [remove, add]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sim.user(1).unwrap().role_names, ["SubAccountAdmin"]);
}

#[tokio::test]
async fn edits_behind_the_back_are_not_counted_and_puts_are_logged_with_the_email_then() {
    let sim = start().await;
    let client = Client::new();
    let url = format!("{}/sim/users/1", sim.base_url());
    let r = client
        .patch(&url)
        .json(&json!({"email": "ann.former@x.edu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the token is needed");
    let r = client
        .patch(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"email": "ann.former@x.edu", "role_names": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .put(format!("{}/sim/users/77", sim.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"email": "ann@x.edu"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .patch(&url)
        .bearer_auth(TOKEN)
        .json(&json!({"emial": "typo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        sim.user(1).unwrap().email.as_deref(),
        Some("ann.former@x.edu")
    );
    assert_eq!(sim.users_with_email("ann@x.edu")[0].id, 77);
    assert_eq!(sim.stats().total, 0, "edits are not API requests");
    assert!(sim.requests().is_empty());

    let (status, _) = put(
        &client,
        &sim,
        json!({"actions": [{"user_id": 1, "action": "add", "role": "Admin"}, {"user_id": 99, "action": "add", "role": "Admin"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    sim.set_email(3, None);
    let (status, _) = put(
        &client,
        &sim,
        json!({"actions": [{"user_id": 3, "action": "remove", "role": "Admin"}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    get(&client, &api(&sim, "/users/search?email=ann@x.edu")).await;
    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert_eq!((log[0].status, log[0].method.as_str()), (404, "PUT"));
    let then: Vec<_> = log[0]
        .actions
        .iter()
        .map(|a| (a.user_id, a.email_then.as_deref()))
        .collect();
    assert_eq!(then, [(1, Some("ann.former@x.edu")), (99, None)]);
    assert_eq!(log[1].actions[0].email_then, None);
    assert_eq!(log[2].query.as_deref(), Some("email=ann@x.edu"));
    assert!(log[2].actions.is_empty());
    sim.clear_requests();
    assert!(sim.requests().is_empty());
}

#[tokio::test]
async fn ping_and_apidocs() {
    let sim = start().await;
    let client = Client::new();
    let r = client.get(api(&sim, "/ping")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = client
        .get(api(&sim, "/ping"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "pong");
    let docs = format!("{}/api/public/apidocs", sim.base_url());
    let (status, doc) = get(&client, &docs).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        doc["paths"]["/users/search"]["get"]["parameters"][0]["enum"],
        json!([
            "Admin",
            "SubAccountAdmin",
            "CaptionEditor",
            "Teacher",
            "Student"
        ])
    );
    sim.set_apidocs(None);
    assert_eq!(get(&client, &docs).await.0, StatusCode::NOT_FOUND);
    let s = sim.stats();
    assert_eq!((s.ping, s.apidocs), (2, 2));
}

#[tokio::test]
async fn hostile_answers_and_canvas_style_throttling() {
    let sim = start().await;
    let client = Client::new();
    let mut statuses = Vec::new();
    for which in 0..hostile::count() {
        if which == hostile::HUGE {
            continue;
        }
        sim.set_faults(Faults {
            hostile_rate: 1.0,
            hostile_answer: Some(which),
            ..Faults::default()
        });
        let r = client
            .get(api(&sim, "/users/search?role=Admin"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_string());
        statuses.push((r.status().as_u16(), retry_after));
    }
    assert_eq!(statuses[0], (429, Some("inf".to_string())));
    assert_eq!(statuses[3], (429, Some("1e308".to_string())));
    assert_eq!(statuses[10].0, 502);
    assert_eq!(statuses[11].0, 200);
    assert_eq!(statuses[hostile::CANVAS_403].0, 403);
    // The huge body streams lazily and counts what was sent.
    sim.set_faults(Faults {
        hostile_rate: 1.0,
        hostile_answer: Some(hostile::HUGE),
        ..Faults::default()
    });
    let mut r = client
        .get(api(&sim, "/users/search?role=Admin"))
        .send()
        .await
        .unwrap();
    let mut read = 0;
    while read < 1024 * 1024 {
        read += r.chunk().await.unwrap().unwrap().len();
    }
    drop(r);
    assert!(sim.stats().hostile_body_bytes >= 1024 * 1024);
    assert_eq!(sim.stats().hostile, hostile::count() as u64);
    // The rate limit can answer like Canvas LMS.
    sim.set_faults(Faults {
        rate_limit: Some(1.0),
        throttle_with_403: true,
        ..Faults::default()
    });
    let mut forbidden = None;
    for _ in 0..3 {
        let r = client
            .get(api(&sim, "/users/1"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::FORBIDDEN {
            forbidden = Some((
                r.headers()["x-rate-limit-remaining"]
                    .to_str()
                    .unwrap()
                    .to_string(),
                r.text().await.unwrap(),
            ));
        }
    }
    let (remaining, body) = forbidden.expect("throttled with 403");
    assert_eq!(remaining, "0.0");
    assert!(body.contains("Rate Limit Exceeded"));
}
