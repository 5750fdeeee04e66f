//! Query parameters: each page names the ones it takes, each value is checked against a
//! short list or a range, and anything else is a `400` that says which parameter and why.
//! The whole query string is bounded too, before any of it is decoded.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use studio_role_sync_engine::history::{history_time, parse_time, RunFilter};
use studio_role_sync_engine::run_status::RunStatus;

/// Longest query string looked at.
const MAX_QUERY: usize = 2048;
/// Longest email looked up (RFC 5321 allows 254; `user 123` stands for an email-less user).
pub const MAX_EMAIL: usize = 320;
/// Highest page number of the runs list (50 a page: five million runs).
pub const MAX_PAGE: u32 = 100_000;
/// Widest chart range, in days.
pub const MAX_CHART_DAYS: i64 = 400;

/// Every run status, as `runs.status` writes it.
pub fn statuses() -> Vec<&'static str> {
    RunStatus::ALL.iter().map(|s| s.as_str()).collect()
}
pub const TRIGGERS: &[&str] = &["manual", "schedule", "startup", "reload"];
/// The runs list's views: runs with changes (the default) or every run.
pub const VIEWS: &[&str] = &["changes", "all"];

/// A bad parameter, as the `400` page says it.
#[derive(Debug)]
pub struct BadParam(pub String);

/// The decoded `name=value` pairs of a query string, refusing names not in `allowed`, repeated
/// names, and a query string longer than [`MAX_QUERY`].
pub fn pairs(query: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, BadParam> {
    let query = query.unwrap_or("");
    if query.len() > MAX_QUERY {
        return Err(BadParam(format!(
            "the query string is {} bytes; at most {MAX_QUERY}",
            query.len()
        )));
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for part in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = part.split_once('=').unwrap_or((part, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| BadParam("a parameter is not valid UTF-8".into()))
        };
        let (name, value) = (decode(name)?, decode(value)?);
        if !allowed.contains(&name.as_str()) {
            return Err(BadParam(format!(
                "unknown parameter {:?}; this page takes: {}",
                shorten(&name),
                allowed.join(", ")
            )));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(BadParam(format!("parameter {name:?} is given twice")));
        }
        out.push((name, value));
    }
    Ok(out)
}

/// The value of `name`, `None` when absent or empty (an empty form field).
pub fn get<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn shorten(s: &str) -> String {
    s.chars().take(40).collect()
}

/// One of `allowed`, or an error naming them.
pub fn one_of(
    name: &str,
    value: Option<&str>,
    allowed: &[&str],
) -> Result<Option<String>, BadParam> {
    match value {
        None => Ok(None),
        Some(v) if allowed.contains(&v) => Ok(Some(v.to_string())),
        Some(v) => Err(BadParam(format!(
            "{name} {:?} is not one of: {}",
            shorten(v),
            allowed.join(", ")
        ))),
    }
}

/// A time (date, RFC 3339, or a duration back from now).
pub fn time(
    name: &str,
    value: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, BadParam> {
    value
        .map(|v| {
            if v.len() > 64 {
                return Err(BadParam(format!("{name}: at most 64 characters")));
            }
            parse_time(v, now).map_err(|e| BadParam(format!("{name}: {e}")))
        })
        .transpose()
}

/// A whole number in `min..=max`.
pub fn number(
    name: &str,
    value: Option<&str>,
    min: u32,
    max: u32,
) -> Result<Option<u32>, BadParam> {
    value
        .map(|v| match v.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(BadParam(format!(
                "{name} must be a whole number from {min} to {max}"
            ))),
        })
        .transpose()
}

/// The runs page's filter and page.
#[derive(Debug, Default)]
pub struct RunsQuery {
    pub filter: RunFilter,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// The day the form's "To (day included)" shows again: the day given, or, for a time or
    /// a duration back (`to=2025-03-05T12:00:00Z`, `to=7d`), the last day the filter reaches.
    pub to_day: Option<NaiveDate>,
    pub page: u32,
    /// As written, to fill the form back in.
    pub shown: Vec<(String, String)>,
}

pub fn runs_query(query: Option<&str>, now: DateTime<Utc>) -> Result<RunsQuery, BadParam> {
    let p = pairs(query, &["view", "status", "trigger", "from", "to", "page"])?;
    let from = time("from", get(&p, "from"), now)?;
    // A plain day as "to" includes that day: the filter ends at the next midnight.
    let plain_day = get(&p, "to").and_then(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok());
    let given_to = time("to", get(&p, "to"), now)?;
    let to = given_to.map(|t| match plain_day {
        Some(_) => t + Duration::days(1),
        None => t,
    });
    // A time ends the filter: the day shown is the last one it reaches into.
    let to_day = plain_day.or(given_to.map(|t| (t - Duration::milliseconds(1)).date_naive()));
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            return Err(BadParam("from must be before to".into()));
        }
    }
    Ok(RunsQuery {
        filter: RunFilter {
            status: one_of("status", get(&p, "status"), &statuses())?
                .and_then(|s| RunStatus::parse(&s)),
            trigger: one_of("trigger", get(&p, "trigger"), TRIGGERS)?,
            from: from.map(history_time),
            to: to.map(history_time),
            changes_only: one_of("view", get(&p, "view"), VIEWS)?.as_deref() != Some("all"),
        },
        from,
        to,
        to_day,
        page: number("page", get(&p, "page"), 1, MAX_PAGE)?.unwrap_or(1),
        shown: p,
    })
}

/// The person page's email and `since`.
pub fn person_query(
    query: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Option<String>, Option<DateTime<Utc>>), BadParam> {
    let p = pairs(query, &["email", "since"])?;
    let email = get(&p, "email").map(str::to_string);
    if email.as_ref().is_some_and(|e| e.len() > MAX_EMAIL) {
        return Err(BadParam(format!("email: at most {MAX_EMAIL} characters")));
    }
    Ok((email, time("since", get(&p, "since"), now)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2025-03-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn runs_query_checks_every_value() {
        let q = runs_query(
            Some("status=aborted&trigger=&from=2025-03-01&page=3"),
            now(),
        )
        .unwrap();
        assert_eq!(q.filter.status, Some(RunStatus::Aborted));
        assert_eq!(q.filter.trigger, None);
        assert_eq!(q.filter.from.as_deref(), Some("2025-03-01T00:00:00.000Z"));
        assert_eq!(q.page, 3);
        let bad = |s: &str| runs_query(Some(s), now()).unwrap_err().0;
        assert!(bad("status=done").contains("status \"done\" is not one of: running"));
        assert!(bad("page=0").contains("page must be a whole number from 1 to 100000"));
        assert!(bad("page=100001").contains("from 1 to 100000"));
        assert!(bad("page=-1").contains("whole number"));
        assert!(bad("from=yesterday").starts_with("from: \"yesterday\" is not a time"));
        assert!(bad("from=2025-03-02&to=2025-03-01").contains("before"));
        assert!(bad("sort=id").contains("unknown parameter \"sort\""));
        assert!(bad("page=1&page=2").contains("given twice"));
        assert!(bad(&"a".repeat(3000)).contains("at most 2048"));
        assert!(bad("status=%FF").contains("UTF-8"));
    }

    /// The form shows the day the filter was given, whichever way `to` was written.
    #[test]
    fn the_to_day_is_kept_as_given() {
        let q = |s: &str| runs_query(Some(s), now()).unwrap();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let plain = q("to=2025-03-05");
        assert_eq!(plain.to, Some("2025-03-06T00:00:00Z".parse().unwrap()));
        assert_eq!(plain.to_day, Some(day("2025-03-05")));
        let at = q("to=2025-03-05T12:00:00Z");
        assert_eq!(at.to, Some("2025-03-05T12:00:00Z".parse().unwrap()));
        assert_eq!(at.to_day, Some(day("2025-03-05")));
        let midnight = q("to=2025-03-05T00:00:00Z");
        assert_eq!(
            midnight.to_day,
            Some(day("2025-03-04")),
            "ends as 03-04 ends"
        );
        assert_eq!(q("to=7d").to_day, Some(day("2025-03-03")));
        assert_eq!(q("").to_day, None);
    }

    #[test]
    fn person_query_decodes_and_bounds_the_email() {
        let (email, since) = person_query(Some("email=Ada%40X.edu&since=7d"), now()).unwrap();
        assert_eq!(email.as_deref(), Some("Ada@X.edu"));
        assert_eq!(since, Some("2025-03-03T12:00:00Z".parse().unwrap()));
        let long = format!("email={}", "a".repeat(400));
        assert!(person_query(Some(&long), now())
            .unwrap_err()
            .0
            .contains("at most 320"));
        assert_eq!(person_query(None, now()).unwrap().0, None);
    }
}
