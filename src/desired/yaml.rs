//! The desired roles file that admins edit:
//!
//! ```yaml
//! users:
//!   alice@myschool.edu: [Admin]
//!   Bob.Smith@MySchool.edu: [Admin, CaptionEditor]
//! ```
//!
//! serde checks the shape (a mapping of strings to lists of strings) and names the line of a
//! shape error; the contract's rules are then checked entry by entry, and only when one fails
//! is the text scanned for the entry's line.

use super::{DesiredBuilder, DesiredError, DesiredState, Origin};
use crate::roles::{ManagedRoles, RoleSet};
use crate::yaml_lines::{child_keys, key_line};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::path::Path;

/// Reads and checks the roles file at `path`.
pub fn load(path: &Path, managed: &ManagedRoles) -> Result<DesiredState, DesiredError> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DesiredError::Unavailable {
        place: source.clone(),
        message: format!("cannot read roles file: {e}"),
    })?;
    parse(&source, &text, managed)
}

/// Checks roles-file text; `source` names it in messages.
pub fn parse(
    source: &str,
    text: &str,
    managed: &ManagedRoles,
) -> Result<DesiredState, DesiredError> {
    let entries = match parse_shape(text) {
        Ok(entries) => entries,
        Err(e) => {
            let mut b = DesiredBuilder::new(managed);
            let origin =
                crate::yaml_lines::error_line(&e, text).map_or(Origin::Unknown, Origin::Line);
            let message = e.to_string();
            let message = message
                .rfind(" at line ")
                .map_or(&*message, |i| &message[..i]);
            b.problem(
                origin,
                format!("{message} (expected `users:` mapping each email to a list of roles)"),
            );
            return b.finish(source);
        }
    };
    let mut b = DesiredBuilder::new(managed);
    for (i, (raw_email, roles)) in entries.into_iter().enumerate() {
        let at = Origin::Entry(i);
        let Some(email) = b.email(at, &raw_email) else {
            continue;
        };
        let mut set = RoleSet::EMPTY;
        for role in &roles {
            if let Some(r) = b.role(at, &email, role) {
                set.insert(r);
            }
        }
        b.declare(at, email, set);
    }
    b.finish_with(source, |origins| {
        let keys = child_keys(text, &["users"]);
        let fallback = key_line(text, &["users"]).map_or(Origin::Unknown, Origin::Line);
        origins
            .into_iter()
            .map(|o| match o {
                Origin::Entry(i) => keys
                    .get(i)
                    .map_or(fallback, |(_, line)| Origin::Line(*line)),
                other => other,
            })
            .collect()
    })
}

/// The file's entries in order, duplicates kept, or serde's error (with its location).
fn parse_shape(text: &str) -> Result<Vec<(String, Vec<String>)>, serde_yaml::Error> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Ok(Vec::new());
    }
    let file: RolesFile = serde_yaml::from_str(text)?;
    Ok(file.users.map(|u| u.0).unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    users: Option<Entries>,
}

/// The `users` mapping in file order; a plain map would hide a key written twice.
struct Entries(Vec<(String, Vec<String>)>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a mapping of email to a list of roles")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Entries, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(email) = map.next_key::<String>()? {
                    let roles: Vec<String> = map.next_value()?;
                    out.push((email, roles));
                }
                Ok(Entries(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn managed() -> ManagedRoles {
        ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()])
    }

    fn problems(text: &str) -> Vec<(Origin, String)> {
        match parse("roles.yaml", text, &managed()) {
            Err(DesiredError::Invalid(e)) => e
                .problems
                .into_iter()
                .map(|p| (p.origin, p.message))
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn normalises_emails() {
        let d = parse(
            "roles.yaml",
            "users:\n  alice@myschool.edu: [Admin]\n  ' Bob.Smith@MySchool.edu ': [Admin, CaptionEditor]\n  carol@x.edu: []\n",
            &managed(),
        )
        .unwrap();
        assert_eq!(d.users.len(), 3);
        assert_eq!(d.users["bob.smith@myschool.edu"].len(), 2);
        assert!(d.users["carol@x.edu"].is_empty());
        assert_eq!(d.grants(), 3);
    }

    #[test]
    fn empty_file_is_empty_state() {
        for text in ["", "# nothing\n", "users:\n", "users: {}\n"] {
            assert!(parse("r", text, &managed()).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn every_problem_with_its_line() {
        let p = problems(
            "users:\n  a@x.edu: [Admin]\n  not-an-email: [Admin]\n  b@x.edu: [Teacher]\n  A@X.EDU: [Admin]\n  c@x.edu: [admin]\n",
        );
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(p[0].0, Origin::Line(3));
        assert!(p[0].1.contains("not an email"));
        assert_eq!(p[1].0, Origin::Line(4));
        assert!(p[1].1.contains("\"Teacher\" is not in roles.managed"));
        assert_eq!(p[2].0, Origin::Line(5));
        assert!(p[2].1.contains("listed twice"));
        assert!(p[3].1.contains("did you mean \"Admin\""), "{}", p[3].1);
    }

    #[test]
    fn shape_errors_have_lines() {
        let p = problems("users:\n  a@x.edu: [Admin]\n  b@x.edu: Admin\n");
        assert_eq!(p[0].0, Origin::Line(3), "{p:?}");
        assert!(p[0].1.contains("expected a sequence"), "{p:?}");
        let p = problems("users:\n  a@x.edu: [Admin]\nuser:\n  b@x.edu: [Admin]\n");
        assert_eq!(p[0].0, Origin::Line(3), "{p:?}");
        let p = problems("users:\n  a@x.edu:\n    - Admin\n    - {role: Admin}\n");
        assert_eq!(p[0].0, Origin::Line(4), "{p:?}");
    }
}
