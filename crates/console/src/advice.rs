//! Plain words and next steps: what a run's error means and what to do about it, what a
//! left-alone reason means, and a typo hint for pending emails.
//!
//! The history keeps errors as the engine wrote them (precise, for logs and `history`). An
//! admin reading the console first needs the cause in words and the next step, so these
//! functions classify the raw text by the phrases the engine writes; the raw error is always
//! shown below the advice, so a phrase that changes only loses the advice, never the facts.

/// What went wrong, and what to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advice {
    pub what: String,
    pub next: String,
}

/// How Studio or its token endpoint refused the daemon, as the engine words it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Refusal {
    /// `401` for the access token (`StudioError::Unauthorized`).
    Credentials,
    /// `403` that is not a rate limit (`StudioError::Status`): the token's user may not do it.
    Forbidden,
    /// The OAuth token endpoint refused the client, the refresh token or the code, or there
    /// is no refresh token to spend (`StudioError::Auth`, studio/oauth.rs).
    OAuth,
}

/// The engine's texts for each refusal (crates/engine/src/studio/mod.rs and oauth.rs), in
/// lower case. Whole phrases, not `401` or `token`: a roles file's line 401 or YAML's "cannot
/// start any token" is not a credentials problem.
const REFUSALS: &[(&str, Refusal)] = &[
    (
        "studio refused the credentials (401 unauthorized)",
        Refusal::Credentials,
    ),
    ("studio answered 403 to ", Refusal::Forbidden),
    (
        "studio refused the oauth client (invalid_client)",
        Refusal::OAuth,
    ),
    (
        "studio refused the oauth refresh token (invalid_grant",
        Refusal::OAuth,
    ),
    (
        "studio refused the authorization code (invalid_grant",
        Refusal::OAuth,
    ),
    ("no oauth refresh token: run", Refusal::OAuth),
    (
        "the token endpoint answered no refresh token",
        Refusal::OAuth,
    ),
];

/// The token endpoint's other `4xx` answers: "the token endpoint answered 400 ..." (a `5xx` or
/// `429` there is Studio failing, not a refusal).
fn token_endpoint_refused(e: &str) -> bool {
    e.match_indices("the token endpoint answered 4")
        .any(|(i, m)| !e[i + m.len()..].starts_with("29"))
}

fn refusal(e: &str) -> Option<Refusal> {
    REFUSALS
        .iter()
        .find(|(phrase, _)| e.contains(phrase))
        .map(|(_, r)| *r)
        .or_else(|| token_endpoint_refused(e).then_some(Refusal::OAuth))
}

/// The engine's texts for a desired state it could not read (crates/engine/src/input/desired),
/// in lower case: checked first, since they quote the admin's file, which may say anything.
const DESIRED_STATE: &[&str] = &[
    "desired roles are invalid",
    ": the roles file ",
    ": the csv file ",
    "; nothing was sent to studio",
];

fn is_desired_state_error(e: &str) -> bool {
    DESIRED_STATE.iter().any(|p| e.contains(p)) || e.starts_with("sql source (")
}

/// Whether a run's error says Studio (or its OAuth token endpoint) refused the daemon's
/// credentials or access, by the engine's own texts.
pub fn is_auth_error(error: &str) -> bool {
    let e = error.to_lowercase();
    !is_desired_state_error(&e) && refusal(&e).is_some()
}

/// The advice for a run's `error`; `base_url` is `studio.base_url`.
pub fn explain(error: &str, base_url: &str) -> Advice {
    let e = error.to_lowercase();
    let advice = |what: String, next: &str| Advice {
        what,
        next: next.to_string(),
    };
    // The input files first: their messages quote the file, which may contain any word.
    if e.contains("desired state") && e.contains("empty") || e.contains("grants no role") {
        return advice(
            "The desired state grants no role, so every managed role would be revoked.".into(),
            "Restore the roles file or fix the source query; an approval cannot lift this guard.",
        );
    }
    if is_desired_state_error(&e) {
        return desired_state_advice();
    }
    if e.contains("cannot reach studio") || e.contains("cannot reach the token endpoint") {
        let why = if e.contains("connection refused") || e.contains("os error 111") {
            "connection refused"
        } else if e.contains("timed out") || e.contains("timeout") {
            "timed out"
        } else if e.contains("dns") || e.contains("failed to lookup") || e.contains("resolve") {
            "its name did not resolve"
        } else if e.contains("certificate") || e.contains("tls") {
            "the TLS handshake failed"
        } else {
            "no connection"
        };
        return advice(
            format!("Studio was not reachable ({why}) at {base_url}."),
            "Check the network from the daemon's host, Studio's status page and any proxy \
             (HTTPS_PROXY); the next run tries again.",
        );
    }
    match refusal(&e) {
        Some(Refusal::Credentials) => {
            return advice(
                "Studio refused the daemon's credentials.".into(),
                "Renew the Studio token (studio.token_env or token_file, or run `auth login` \
                 for OAuth) and restart or reload the daemon; see docs/operations.md §2.",
            )
        }
        Some(Refusal::Forbidden) => {
            return advice(
                "Studio refused the request (403 Forbidden): the token's user may not do this."
                    .into(),
                "Check that the user the Studio token belongs to is a Studio admin (or renew \
                 the token as one), then reload the daemon; see docs/operations.md §2.",
            )
        }
        Some(Refusal::OAuth) => {
            return advice(
                "Studio's token endpoint refused the daemon's OAuth credentials.".into(),
                "Run `studio-role-sync auth login` (or set a new refresh token), and check \
                 studio.oauth.client_id and the client secret; see docs/operations.md §2.",
            )
        }
        None => {}
    }
    if e.contains("429") || e.contains("rate limit") {
        return advice(
            "Studio kept answering \"too many requests\".".into(),
            "Lower studio.requests_per_second, or ask Instructure about the API limit.",
        );
    }
    if e.contains("answered 5")
        || e.contains("not the expected json")
        || e.contains("token endpoint answered")
    {
        return advice(
            "Studio answered with a server error.".into(),
            "Usually passing: the next run tries again. If it lasts, check Studio's status page.",
        );
    }
    if e.contains("line ") || e.contains("invalid") || e.contains("yaml") || e.contains("sql") {
        return desired_state_advice();
    }
    if e.contains("database") || e.contains("disk") || e.contains("history") {
        return advice(
            "The history could not be written.".into(),
            "Check the disk space and permissions of the history file on the daemon's host.",
        );
    }
    advice(
        "The run failed.".into(),
        "Read the error below and the daemon's log; see docs/operations.md §13.",
    )
}

fn desired_state_advice() -> Advice {
    Advice {
        what: "The desired state could not be read.".into(),
        next: "Fix the file or the source at the line named below; nothing was sent meanwhile."
            .into(),
    }
}

pub use studio_role_sync_engine::history::reason_words;

/// A near miss of the domain most listed emails use: `Typo? Most listed emails use
/// @school.edu: did you mean user15@school.edu?`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Typo {
    /// The domain most listed emails use (`school.edu`).
    pub common: String,
    /// The email with that domain (`user15@school.edu`).
    pub suggestion: String,
}

/// The hint for `email` when its domain is rare among the listed emails and at most two
/// edits (a swap of neighbours is one) from the domain most of them use. `domains` is what
/// `History::listed_domains` gives: each domain with how many listed emails use it, the most
/// used first. Rare: used by one email, or by at most a tenth as many as the common one; two
/// domains both in real use (`school.edu`, `schools.edu`) get no hint. The common domain
/// needs two emails at least: one listed email says nothing of a habit.
pub fn typo_hint(email: &str, domains: &[(String, i64)]) -> Option<Typo> {
    let (common, common_count) = domains.first()?;
    let (local, domain) = email.split_once('@')?;
    let domain = domain.to_lowercase();
    // A domain beyond the list given is used less than any in it.
    let count = domains
        .iter()
        .find(|(d, _)| d.to_lowercase() == domain)
        .map_or(0, |(_, n)| *n);
    let rare = count <= (common_count / 10).max(1);
    (*common_count >= 2
        && rare
        && domain != common.to_lowercase()
        && edit_distance(&domain, &common.to_lowercase()) <= 2)
        .then(|| Typo {
            common: common.clone(),
            suggestion: format!("{local}@{common}"),
        })
}

/// Levenshtein distance with adjacent swaps (`shcool` → `school` is one), over characters;
/// bounded inputs (emails), so the quadratic table is small.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > 2 || a.len() > 320 || b.len() > 320 {
        return usize::MAX;
    }
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_get_a_cause_and_a_next_step() {
        let a = explain(
            "reading Studio failed: cannot reach Studio (users) after 6 attempt(s): error \
             sending request: Connection refused (os error 111)",
            "https://myschool.instructuremedia.com",
        );
        assert_eq!(
            a.what,
            "Studio was not reachable (connection refused) at https://myschool.instructuremedia.com."
        );
        assert!(a.next.contains("proxy"), "{a:?}");
        let a = explain(
            "reading Studio failed: Studio refused the credentials (401 Unauthorized) for users: x",
            "u",
        );
        assert!(a.next.contains("Renew the Studio token"), "{a:?}");
        assert!(
            explain("the roles file roles.yaml, line 3: not an email", "u")
                .next
                .contains("line named")
        );
    }

    fn domains(counts: &[(&str, i64)]) -> Vec<(String, i64)> {
        counts.iter().map(|(d, n)| (d.to_string(), *n)).collect()
    }

    /// Input-file errors that mention a token or a status-like number are about the file.
    #[test]
    fn an_input_file_error_is_never_taken_for_refused_credentials() {
        for error in [
            // serde_norway's own message for a tab, as the brief quotes it.
            "found character that cannot start any token at line 2 column 1, while scanning \
             a plain scalar at line 1 column 8",
            // The same, as a run records it (yaml.rs cuts " at line" and names the line).
            "/etc/studio-role-sync/roles.yaml: desired roles are invalid (1 problem); nothing \
             was sent to Studio\n  /etc/studio-role-sync/roles.yaml:2: found character that \
             cannot start any token (expected `users:` mapping each email to a list of roles)",
            "the roles file roles.yaml, line 401: not an email",
            "/etc/roles.yaml: desired roles are invalid (1 problem); nothing was sent to \
             Studio\n  /etc/roles.yaml:401: token@x.edu: unknown role \"403\"",
            "/etc/roles.yaml: the roles file cannot be read: Permission denied (os error 13)",
        ] {
            assert!(!is_auth_error(error), "{error}");
            let a = explain(error, "u");
            assert_eq!(a.what, "The desired state could not be read.", "{error}");
            assert!(a.next.contains("line named"), "{error}: {a:?}");
        }
    }

    /// Each refusal the engine writes (studio/mod.rs, studio/oauth.rs) is recognised, and told
    /// what to renew or check.
    #[test]
    fn each_real_refusal_is_an_authentication_problem() {
        for (error, what, next) in [
            (
                "reading Studio failed: Studio refused the credentials (401 Unauthorized) for \
                 search_by_role: check the token named by studio.token_env or studio.token_file",
                "Studio refused the daemon's credentials.",
                "Renew the Studio token",
            ),
            (
                "Studio refused the credentials (401 Unauthorized) for put_roles: the access \
                 token was refused right after a refresh; check the developer key in Studio",
                "Studio refused the daemon's credentials.",
                "Renew the Studio token",
            ),
            (
                "reading Studio failed: Studio answered 403 to search_by_role: forbidden",
                "Studio refused the request (403 Forbidden): the token's user may not do this.",
                "is a Studio admin",
            ),
            (
                "cannot set up the Studio client: Studio refused the OAuth refresh token \
                 (invalid_grant: revoked). It was revoked or expired",
                "Studio's token endpoint refused the daemon's OAuth credentials.",
                "auth login",
            ),
            (
                "reading Studio failed: Studio refused the OAuth client (invalid_client): check \
                 studio.oauth.client_id and the client secret",
                "Studio's token endpoint refused the daemon's OAuth credentials.",
                "client secret",
            ),
            (
                "Studio refused the authorization code (invalid_grant): codes are single use",
                "Studio's token endpoint refused the daemon's OAuth credentials.",
                "auth login",
            ),
            (
                "reading Studio failed: no OAuth refresh token: run `studio-role-sync auth \
                 login` once, or set studio.oauth.refresh_token_env",
                "Studio's token endpoint refused the daemon's OAuth credentials.",
                "auth login",
            ),
            (
                "reading Studio failed: the token endpoint answered 400 unsupported_grant_type ",
                "Studio's token endpoint refused the daemon's OAuth credentials.",
                "auth login",
            ),
        ] {
            assert!(is_auth_error(error), "{error}");
            let a = explain(error, "u");
            assert_eq!(a.what, what, "{error}");
            assert!(a.next.contains(next), "{error}: {a:?}");
        }
        // The token endpoint failing or throttling is not a refusal of the credentials.
        for error in [
            "reading Studio failed: the token endpoint answered 503",
            "reading Studio failed: the token endpoint answered 429",
            "reading Studio failed: cannot reach the token endpoint: connection refused",
            "cannot set up the Studio client: cannot read stored OAuth tokens: the history \
             database is locked",
        ] {
            assert!(!is_auth_error(error), "{error}");
        }
        assert_eq!(
            explain(
                "reading Studio failed: cannot reach the token endpoint: error sending request: \
                 Connection refused (os error 111)",
                "https://s.example"
            )
            .what,
            "Studio was not reachable (connection refused) at https://s.example."
        );
    }

    #[test]
    fn typos_are_rare_near_misses_of_the_common_domain() {
        let listed = domains(&[("school.edu", 2), ("shcool.edu", 1), ("gmail.com", 1)]);
        assert_eq!(
            typo_hint("user15@shcool.edu", &listed),
            Some(Typo {
                common: "school.edu".into(),
                suggestion: "user15@school.edu".into()
            })
        );
        // Two edits, and a domain beyond the list (rarer than any in it).
        assert_eq!(
            typo_hint("ada@scool.ed", &listed).map(|t| t.suggestion),
            Some("ada@school.edu".into())
        );
        assert_eq!(typo_hint("a@school.edu", &listed), None, "the common one");
        assert_eq!(typo_hint("a@SCHOOL.EDU", &listed), None, "the common one");
        assert_eq!(typo_hint("x@gmail.com", &listed), None, "not a near miss");
        assert_eq!(typo_hint("x@schooool.eduu", &listed), None, "three edits");
        assert_eq!(typo_hint("no-at-sign", &listed), None);
        // One listed email is no habit; nothing listed, no hint.
        assert_eq!(
            typo_hint("b@shcool.edu", &domains(&[("school.edu", 1)])),
            None
        );
        assert_eq!(typo_hint("b@shcool.edu", &[]), None);
        // Two domains in real use: neither is a typo of the other.
        let both = domains(&[("school.edu", 40), ("schools.edu", 30)]);
        assert_eq!(typo_hint("b@schools.edu", &both), None);
        // Rare: a tenth of the common one's count at most.
        let many = domains(&[("school.edu", 100), ("shcool.edu", 10)]);
        assert!(typo_hint("b@shcool.edu", &many).is_some());
        let many = domains(&[("school.edu", 100), ("shcool.edu", 11)]);
        assert_eq!(typo_hint("b@shcool.edu", &many), None);
        assert_eq!(reason_words("no_email"), "Studio account without an email");
    }
}
