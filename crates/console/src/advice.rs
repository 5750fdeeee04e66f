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

/// Whether a run's error says Studio refused the credentials.
pub fn is_auth_error(error: &str) -> bool {
    let e = error.to_lowercase();
    e.contains("401")
        || e.contains("403")
        || e.contains("refused the credentials")
        || e.contains("token")
}

/// The advice for a run's `error`; `base_url` is `studio.base_url`.
pub fn explain(error: &str, base_url: &str) -> Advice {
    let e = error.to_lowercase();
    let advice = |what: String, next: &str| Advice {
        what,
        next: next.to_string(),
    };
    if e.contains("cannot reach studio") {
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
    if is_auth_error(error) {
        return advice(
            "Studio refused the daemon's credentials.".into(),
            "Renew the Studio token (studio.token_env or token_file, or run `auth login` for \
             OAuth) and restart or reload the daemon; see docs/operations.md §2.",
        );
    }
    if e.contains("429") || e.contains("rate limit") {
        return advice(
            "Studio kept answering \"too many requests\".".into(),
            "Lower studio.requests_per_second, or ask Instructure about the API limit.",
        );
    }
    if e.contains("answered 5") || e.contains("not the expected json") {
        return advice(
            "Studio answered with a server error.".into(),
            "Usually passing: the next run tries again. If it lasts, check Studio's status page.",
        );
    }
    if e.contains("desired state") && e.contains("empty") || e.contains("grants no role") {
        return advice(
            "The desired state grants no role, so every managed role would be revoked.".into(),
            "Restore the roles file or fix the source query; an approval cannot lift this guard.",
        );
    }
    if e.contains("line ") || e.contains("invalid") || e.contains("yaml") || e.contains("sql") {
        return advice(
            "The desired state could not be read.".into(),
            "Fix the file or the source at the line named below; nothing was sent meanwhile.",
        );
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
