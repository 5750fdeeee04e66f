//! `export`: the current holders of the managed roles as a roles file that `validate`
//! accepts, so an institution can start from what Studio has today. Holders without an email
//! cannot be written as a key; they are named in a comment instead of silently dropped.

use std::collections::BTreeMap;
use std::fmt::Write;
use studio_role_sync_engine::roles::ManagedRoles;
use studio_role_sync_engine::studio::StudioUser;

/// The current holders of the managed roles as a roles file `validate` accepts. Holders
/// without an email cannot be written (they are listed in a comment).
pub fn render_export(holders: &[StudioUser], managed: &ManagedRoles, base_url: &str) -> String {
    let mut by_email: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut no_email = Vec::new();
    for u in holders {
        let roles = managed.set_of(u.role_names.iter().map(String::as_str));
        match u
            .email
            .as_deref()
            .map(studio_role_sync_engine::email_address::normalize)
            .filter(|e| !e.is_empty())
        {
            Some(e) => {
                let entry = by_email.entry(e).or_default();
                for r in roles.iter() {
                    if !entry.contains(&r) {
                        entry.push(r);
                    }
                }
            }
            None => no_email.push(u.id),
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Holders of the managed roles {managed} in {base_url},"
    );
    let _ = writeln!(
        out,
        "# exported by studio-role-sync at {}.",
        studio_role_sync_engine::history::now()
    );
    if !no_email.is_empty() {
        no_email.sort_unstable();
        no_email.dedup();
        let ids: Vec<String> = no_email.iter().map(u64::to_string).collect();
        let _ = writeln!(
            out,
            "# Not listed (no email, never touched by a sync): users {}",
            ids.join(", ")
        );
    }
    if by_email.is_empty() {
        out.push_str("users: {}\n");
        return out;
    }
    out.push_str("users:\n");
    for (email, mut roles) in by_email {
        roles.sort_unstable();
        let names: Vec<&str> = roles.iter().map(|r| managed.name(*r)).collect();
        let _ = writeln!(out, "  {}: [{}]", yaml_key(&email), names.join(", "));
    }
    out
}

/// Quotes a YAML key when it needs it.
fn yaml_key(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "@._-+".contains(c))
        && !s.starts_with(['-', '.'])
    {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("string")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_round_trips_through_validation() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
        let u = |id, email: Option<&str>, roles: &[&str]| StudioUser {
            id,
            full_name: None,
            email: email.map(Into::into),
            role_names: roles.iter().map(|r| r.to_string()).collect(),
        };
        let text = render_export(
            &[
                u(1, Some("B@x.edu"), &["Admin", "Teacher"]),
                u(1, Some("B@x.edu"), &["Admin", "CaptionEditor"]),
                u(2, None, &["Admin"]),
            ],
            &managed,
            "https://x",
        );
        assert!(text.contains("users 2"), "{text}");
        let d = studio_role_sync_engine::desired::yaml::parse("export", &text, &managed).unwrap();
        assert_eq!(d.users["b@x.edu"].len(), 2);
    }
}
