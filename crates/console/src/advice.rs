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

/// The domain most of `emails` use, when at least two do.
pub fn common_domain<'a>(emails: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut counts: std::collections::HashMap<&str, usize> = Default::default();
    for e in emails {
        if let Some((_, d)) = e.rsplit_once('@') {
            *counts.entry(d).or_default() += 1;
        }
    }
    let (domain, n) = counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))?;
    (n >= 2).then(|| domain.to_string())
}

/// `Did you mean …@common?` when `email`'s domain is a near miss of `common` (at most two
/// edits, not equal).
pub fn typo_hint(email: &str, common: Option<&str>) -> Option<String> {
    let common = common?;
    let (local, domain) = email.rsplit_once('@')?;
    (domain != common && edit_distance(domain, common) <= 2).then(|| format!("{local}@{common}?"))
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

    #[test]
    fn typos_are_near_misses_of_the_common_domain() {
        let emails = ["a@school.edu", "b@school.edu", "user15@shcool.edu"];
        let common = common_domain(emails.iter().copied());
        assert_eq!(common.as_deref(), Some("school.edu"));
        assert_eq!(
            typo_hint("user15@shcool.edu", common.as_deref()).as_deref(),
            Some("user15@school.edu?")
        );
        assert_eq!(typo_hint("a@school.edu", common.as_deref()), None);
        assert_eq!(typo_hint("x@gmail.com", common.as_deref()), None);
        assert_eq!(common_domain(["a@x.edu"].into_iter()), None);
        assert_eq!(reason_words("no_email"), "Studio account without an email");
    }
}
