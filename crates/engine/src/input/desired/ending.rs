//! Grants that end soon: what `plan` lists as "expires in N days" and what the
//! `grant_expiring` notification names, from the desired state and today's date. Pure, so
//! both read the same list.

use super::{Calendar, DesiredState, SourceName};
use chrono::NaiveDate;

/// A desired role whose grants all end within the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ending {
    pub email: String,
    /// Index into `roles.managed`.
    pub role: usize,
    /// Its last day (the latest end of its grants).
    pub until: NaiveDate,
    /// Days from today: 0 on its last day.
    pub days_left: i64,
    /// The reasons its sources gave, joined with "; ".
    pub reason: Option<String>,
    pub sources: Vec<SourceName>,
}

impl Ending {
    /// "expires today", "expires in 1 day", "expires in 5 days".
    pub fn when(&self) -> String {
        match self.days_left {
            i64::MIN..=0 => "expires today".into(),
            1 => "expires in 1 day".into(),
            n => format!("expires in {n} days"),
        }
    }
}

impl DesiredState {
    /// The desired roles that end within `days` days of `calendar`'s today (today included),
    /// sorted by end, then email and role. A role another grant holds without an end, or
    /// later, is not ending. `days` 0 lists none.
    pub fn ending_within(&self, calendar: &Calendar, days: u32) -> Vec<Ending> {
        if days == 0 {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (email, held) in &self.users {
            for role in held.iter() {
                let (Some(until), reason) = self.note_of(email, role) else {
                    continue;
                };
                let days_left = calendar.days_left(until);
                if (0..i64::from(days)).contains(&days_left) {
                    out.push(Ending {
                        email: email.clone(),
                        role,
                        until,
                        days_left,
                        reason,
                        sources: self.sources_of(email, role).cloned().collect(),
                    });
                }
            }
        }
        out.sort_by(|a, b| (a.until, &a.email, a.role).cmp(&(b.until, &b.email, b.role)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::{DesiredBuilder, Grant, Origin};
    use crate::roles::ManagedRoles;

    #[test]
    fn ending_lists_only_roles_whose_every_grant_ends_in_the_window() {
        let m = ManagedRoles::new(vec!["Admin".into(), "Cap".into()]);
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let mut b = DesiredBuilder::new(&m, SourceName::new("roles.yaml"));
        let mut g = |email: &str, role, until: Option<&str>| {
            let mut grant = Grant::new(role, SourceName::new("roles.yaml"));
            grant.until = until.map(day);
            grant.reason = Some(format!("why {email}"));
            b.add_grant(Origin::Unknown, email.into(), grant);
        };
        g("today@x.edu", 0, Some("2027-01-10"));
        g("soon@x.edu", 1, Some("2027-01-16"));
        g("later@x.edu", 0, Some("2027-01-17"));
        g("forever@x.edu", 0, None);
        let d = b.finish("s").unwrap();
        let cal = Calendar {
            zone: chrono_tz::UTC,
            today: day("2027-01-10"),
        };
        let got = d.ending_within(&cal, 7);
        let names: Vec<(&str, String)> = got.iter().map(|e| (e.email.as_str(), e.when())).collect();
        assert_eq!(
            names,
            [
                ("today@x.edu", "expires today".to_string()),
                ("soon@x.edu", "expires in 6 days".to_string())
            ]
        );
        assert_eq!(got[1].reason.as_deref(), Some("why soon@x.edu"));
        assert!(d.ending_within(&cal, 0).is_empty());
    }
}
