//! The desired roles file that admins edit:
//!
//! ```yaml
//! users:
//!   alice@myschool.edu: [Admin]
//!   Bob.Smith@MySchool.edu: [Admin, CaptionEditor]
//!   carol@myschool.edu: [Admin, {role: CaptionEditor, until: 2027-01-31, reason: "MED101 TA"}]
//! ```
//!
//! A role is a name, or a mapping with an end date and a reason (`role`, `until`, `reason`).
//! An `until` before the day the file was last changed is refused with its line (see
//! [`DesiredBuilder::edited_on`]).
//!
//! serde checks the shape (a mapping of strings to lists of strings) and names the line of a
//! shape error; the contract's rules are then checked entry by entry, and only when one fails
//! is the text scanned for the entry's line.

use super::{Calendar, DesiredBuilder, DesiredError, DesiredState, Grant, Origin, SourceName};
use crate::input::config::YamlSourceConfig;
use crate::input::input_file::read_text;
use crate::input::roles::ManagedRoles;
use crate::input::yaml_guard::YamlRefusal;
use crate::input::yaml_lines::{child_keys, key_line};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;

/// Reads and checks the roles file of `config`, with the bounded reader every input file
/// goes through (a regular file only, at most `source.max_bytes`). An `until` before the day
/// the file was last changed (in `calendar`'s zone) is refused.
pub fn load(
    config: &YamlSourceConfig,
    managed: &ManagedRoles,
    calendar: &Calendar,
) -> Result<DesiredState, DesiredError> {
    let source = config.path.display().to_string();
    let text = read_text(&config.path, config.max_bytes).map_err(|e| {
        let hint = if e.is_too_large() {
            " (raise source.max_bytes to read a larger file)"
        } else {
            ""
        };
        DesiredError::Unavailable {
            place: source.clone(),
            message: format!("the roles file {e}{hint}"),
        }
    })?;
    let edited = edited_day(&config.path, calendar);
    parse_edited(&source, &text, managed, edited)
}

/// The day `path` was last changed (its modification time) in `calendar`'s zone; `None`
/// when the file system does not say.
pub(crate) fn edited_day(path: &std::path::Path, calendar: &Calendar) -> Option<chrono::NaiveDate> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    // A time in the future (a clock ahead where the file was written) counts as today: a
    // grant still current is never refused.
    Some(calendar.date_of(modified).min(calendar.today))
}

/// The name a file's grants show as their source: its file name, as the admin knows it.
pub(crate) fn file_name(path: &str) -> SourceName {
    SourceName::new(
        std::path::Path::new(path)
            .file_name()
            .map_or(Cow::Borrowed(path), |n| n.to_string_lossy()),
    )
}

/// Checks roles-file text; `source` names it in messages.
pub fn parse(
    source: &str,
    text: &str,
    managed: &ManagedRoles,
) -> Result<DesiredState, DesiredError> {
    parse_edited(source, text, managed, None)
}

/// As [`parse`], refusing an `until` before `edited`, the day the file was last changed.
pub(crate) fn parse_edited(
    source: &str,
    text: &str,
    managed: &ManagedRoles,
    edited: Option<chrono::NaiveDate>,
) -> Result<DesiredState, DesiredError> {
    let name = file_name(source);
    let entries = match parse_shape(text) {
        Ok(entries) => entries,
        Err(ShapeError::Refused(r)) => {
            let mut b = DesiredBuilder::new(managed, name.clone());
            b.problem(Origin::Line(r.line), r.message);
            return b.finish(source);
        }
        Err(ShapeError::Yaml(e)) => {
            let mut b = DesiredBuilder::new(managed, name.clone());
            let line = crate::input::yaml_lines::error_line(&e, text);
            let origin = line.map_or(Origin::Unknown, Origin::Line);
            // YAML refuses a key over 1024 characters without saying why: say it as the
            // email rules do (an address has at most 254).
            if let Some(key) = line.and_then(|l| overlong_key(text, l)) {
                if let Err(why) = crate::input::email_address::check(key) {
                    b.problem(
                        origin,
                        format!("{} {why}", crate::input::email_address::shown(key)),
                    );
                    return b.finish(source);
                }
            }
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
    let mut b = DesiredBuilder::new(managed, name.clone()).edited_on(edited);
    for (i, (raw_email, roles)) in entries.into_iter().enumerate() {
        let at = Origin::Entry(i);
        let Some(email) = b.email(at, &raw_email) else {
            continue;
        };
        // `ada@x.edu:` or `ada@x.edu: null` is a slip (a list lost in an edit), not "no role":
        // read as an empty list it would revoke every role she holds.
        let Some(roles) = roles else {
            b.problem(
                at,
                format!(
                    "{email}: the key has no value; write [] to list the email with no managed \
                     role, or [Role, ...]"
                ),
            );
            continue;
        };
        let mut grants = Vec::with_capacity(roles.len());
        for item in &roles {
            if let Some(g) = item_grant(&mut b, at, &email, item) {
                grants.push(g);
            }
        }
        b.declare_grants(at, email, grants);
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

/// One `email: [roles]` entry as written; borrowed from the text when it can be. `None`: the
/// key has no value (or `null`).
type Entry<'t> = (Cow<'t, str>, Option<Vec<RoleItem<'t>>>);

/// One item of an email's list as written: a role name, or a grant written as a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RoleItem<'t> {
    Name(Cow<'t, str>),
    Grant(GrantItem),
}

/// `{role: ..., until: ..., reason: ...}` as written; checked by [`item_grant`], which names
/// the line of what is wrong (serde would name none for an unknown key here).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct GrantItem {
    role: Option<String>,
    until: Option<String>,
    reason: Option<String>,
    /// Keys other than those three, refused.
    unknown: Vec<String>,
}

/// The grant an item gives `email`; `None` with a problem recorded when it is wrong.
fn item_grant(
    b: &mut DesiredBuilder<'_>,
    at: Origin,
    email: &str,
    item: &RoleItem<'_>,
) -> Option<Grant> {
    let g = match item {
        RoleItem::Name(role) => {
            return Some(Grant::new(b.role(at, email, role)?, b.source().clone()))
        }
        RoleItem::Grant(g) => g,
    };
    if let Some(key) = g.unknown.first() {
        b.problem(
            at,
            format!(
                "{email}: unknown key {} in a grant (a grant has role, until and reason)",
                crate::input::email_address::shown(key)
            ),
        );
        return None;
    }
    let Some(role) = g.role.as_deref() else {
        b.problem(
            at,
            format!("{email}: a grant without `role` (write {{role: Name, until: YYYY-MM-DD}})"),
        );
        return None;
    };
    let role = b.role(at, email, role.trim())?;
    let mut grant = Grant::new(role, b.source().clone());
    grant.until = b.until(at, email, g.until.as_deref().unwrap_or("")).ok()?;
    grant.reason = b
        .reason(at, email, g.reason.as_deref().unwrap_or(""))
        .ok()?;
    Some(grant)
}

/// Why the entries could not be read.
enum ShapeError {
    /// Refused before parsing: anchors, aliases or deep nesting (see `yaml_guard`).
    Refused(YamlRefusal),
    /// serde's error, with its location.
    Yaml(serde_yaml::Error),
}

/// The file's entries in order, duplicates kept. The common form is read line by line (linear,
/// no aliases possible); anything else passes the guard before serde parses it.
fn parse_shape(text: &str) -> Result<Vec<Entry<'_>>, ShapeError> {
    if text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Ok(Vec::new());
    }
    if let Some(entries) = parse_common_form(text) {
        return Ok(entries);
    }
    crate::input::yaml_guard::check(text).map_err(ShapeError::Refused)?;
    let file: RolesFile = serde_yaml::from_str(text).map_err(ShapeError::Yaml)?;
    let owned = file.users.map(|u| u.0).unwrap_or_default();
    Ok(owned
        .into_iter()
        .map(|(k, r)| {
            (
                Cow::Owned(k),
                r.map(|r| r.into_iter().map(|i| i.0).collect()),
            )
        })
        .collect())
}

/// The common form of the file, read without building a YAML document.
///
/// serde_norway holds a whole document as parser events before deserialising it: for a
/// million grants that is ~400 MB. Admins and `export` write one `email: [Role, ...]` line
/// per user, which needs nothing of YAML but this. Anything else (block lists, quotes,
/// anchors, flow mappings, tabs, a word YAML might not read as a plain string, a key longer
/// than YAML allows) answers `None` and serde reads the file, so both paths always agree (a
/// property test checks it). The contract's rules (emails, roles, a key with no value) are
/// then checked on the entries, whichever reader produced them.
fn parse_common_form(text: &str) -> Option<Vec<Entry<'_>>> {
    // Only spaces count as blank or indent: YAML refuses tabs there, so must this.
    let mut lines = text.lines().filter(|l| {
        let t = l.trim_start_matches(' ');
        !t.is_empty() && !t.starts_with('#')
    });
    if strip_comment(lines.next()?)? != "users:" {
        return None;
    }
    let mut indent = None;
    let mut entries = Vec::new();
    for line in lines {
        let body = line.trim_start_matches(' ');
        let width = line.len() - body.len();
        if width == 0 || *indent.get_or_insert(width) != width {
            return None;
        }
        let (key, list) = strip_comment(body)?.split_once(": ")?;
        let list = list.trim_end().strip_prefix('[')?.strip_suffix(']')?;
        // A key YAML itself would refuse (too long) goes to serde, so both readers agree.
        if !is_plain_key(key) || key.len() > MAX_YAML_KEY {
            return None;
        }
        let roles = if list.trim().is_empty() {
            Vec::new()
        } else {
            list.split(',')
                .map(|r| is_plain_role(r.trim()).then(|| RoleItem::Name(Cow::Borrowed(r.trim()))))
                .collect::<Option<Vec<_>>>()?
        };
        entries.push((Cow::Borrowed(key), Some(roles)));
    }
    Some(entries)
}

/// YAML's limit on the length of a plain (implicit) key.
const MAX_YAML_KEY: usize = 1024;

/// The key of line `line` (1-based) when it is longer than YAML allows.
fn overlong_key(text: &str, line: usize) -> Option<&str> {
    let body = text.lines().nth(line.checked_sub(1)?)?.trim_start();
    let key = body
        .split_once(": ")
        .map_or(body.trim_end_matches(':'), |(k, _)| k);
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    (key.len() > MAX_YAML_KEY).then_some(key)
}

/// A line without its trailing ` # comment`, or `None` if it holds a `#` anywhere else.
fn strip_comment(line: &str) -> Option<&str> {
    let body = match line.find(" #") {
        Some(i) => &line[..i],
        None => line,
    };
    (!body.contains('#') && !body.contains('\t')).then(|| body.trim_end())
}

/// An email-like plain scalar: YAML reads it as this very string.
fn is_plain_key(key: &str) -> bool {
    key.contains('@')
        && key.starts_with(|c: char| c.is_ascii_alphanumeric())
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._%+@-".contains(c))
}

/// A role name YAML reads as this very string (no word YAML 1.1 would read otherwise).
fn is_plain_role(role: &str) -> bool {
    const SPECIAL: [&str; 11] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    role.starts_with(|c: char| c.is_ascii_alphabetic())
        && role
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !SPECIAL.iter().any(|w| w.eq_ignore_ascii_case(role))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RolesFile {
    users: Option<Entries>,
}

/// The `users` mapping in file order; a plain map would hide a key written twice. A key
/// without a value (or `null`) is kept as `None`, to be refused with its line.
struct Entries(Vec<(String, Option<Vec<OwnedItem>>)>);

/// A [`RoleItem`] read by serde.
#[derive(Debug, PartialEq, Eq)]
struct OwnedItem(RoleItem<'static>);

impl<'de> Deserialize<'de> for OwnedItem {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OwnedItem;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a role, or {role: ..., until: YYYY-MM-DD, reason: ...}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OwnedItem, E> {
                Ok(OwnedItem(RoleItem::Name(Cow::Owned(v.to_string()))))
            }
            // A role YAML reads as another type (`true`, `1`) is kept as written, to be
            // refused as an unknown role.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<OwnedItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<OwnedItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<OwnedItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<OwnedItem, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OwnedItem, A::Error> {
                let mut g = GrantItem::default();
                while let Some(key) = map.next_key::<String>()? {
                    let value: Scalar = map.next_value()?;
                    match key.as_str() {
                        "role" => g.role = value.0,
                        "until" => g.until = value.0,
                        "reason" => g.reason = value.0,
                        _ => g.unknown.push(key),
                    }
                }
                Ok(OwnedItem(RoleItem::Grant(g)))
            }
        }
        d.deserialize_any(V)
    }
}

/// A value of a grant's mapping as text (`null`: none); a list or mapping there is a shape
/// error with its line.
struct Scalar(Option<String>);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a role name, a date YYYY-MM-DD or a text")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(Some(v.to_string())))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Scalar, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Scalar, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Scalar, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Scalar, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(None))
            }
        }
        d.deserialize_any(V)
    }
}

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
                    let roles: Option<Vec<OwnedItem>> = map.next_value()?;
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
    use proptest::prelude::*;

    type Owned = Vec<(String, Option<Vec<String>>)>;

    fn fast_entries(text: &str) -> Option<Owned> {
        parse_common_form(text).map(|e| {
            e.into_iter()
                .map(|(k, r)| (k.into_owned(), r.map(|r| r.into_iter().map(name).collect())))
                .collect()
        })
    }

    fn name(item: RoleItem<'_>) -> String {
        match item {
            RoleItem::Name(n) => n.into_owned(),
            RoleItem::Grant(g) => format!("{g:?}"),
        }
    }

    fn serde_entries(text: &str) -> Option<Owned> {
        serde_yaml::from_str::<RolesFile>(text).ok().map(|f| {
            f.users
                .map(|u| u.0)
                .unwrap_or_default()
                .into_iter()
                .map(|(k, r)| (k, r.map(|r| r.into_iter().map(|i| name(i.0)).collect())))
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// The common-form reader either declines or reads exactly what serde reads.
        #[test]
        fn common_form_agrees_with_serde(
            entries in prop::collection::vec(
                ("[a-zA-Z0-9][a-zA-Z0-9._+-]{0,6}@[a-z]{1,5}\\.(edu|org)", prop::collection::vec("(Admin|CaptionEditor|Teacher|yes|No|null|1x|x y|a#b|Admin )", 0..3)),
                0..12,
            ),
            indent in 1..4usize,
            comment in any::<bool>(),
            long_key in any::<bool>(),
            odd_line in prop::option::of("(  - Admin|\t|  'q@x.edu': \\[Admin\\]|  a@x.edu: \\[Admin,\\]|---|  b@x.edu: Admin|  c@x.edu:|  c@x.edu: null|  c@x.edu: ~|  c@x.edu: # none|  mailto:c@x.edu: \\[Admin\\]|  <c@x.edu>: \\[Admin\\]|  c\u{200B}@x.edu: \\[Admin\\]|  c@x.edu : \\[Admin\\])"),
        ) {
            let mut text = String::from("users:\n");
            for (i, (email, roles)) in entries.iter().enumerate() {
                text += &format!("{}{email}: [{}]", " ".repeat(indent), roles.join(", "));
                if comment && i % 2 == 0 {
                    text += "   # note";
                }
                text.push('\n');
                if i == 1 {
                    if let Some(odd) = &odd_line {
                        text += odd;
                        text.push('\n');
                    }
                }
            }
            if long_key {
                text += &format!("  {}@x.edu: [Admin]\n", "a".repeat(1100));
            }
            if let Some(fast) = fast_entries(&text) {
                prop_assert_eq!(Some(fast), serde_entries(&text), "{}", text);
            }
        }
    }

    #[test]
    fn common_form_reads_the_export_and_example_shape() {
        let text = "# c\nusers:\n  a@x.edu: [Admin, CaptionEditor]  # both\n\n  B.c@X.edu: []\n";
        let fast = fast_entries(text).expect("common form");
        assert_eq!(fast, serde_entries(text).unwrap());
        for other in [
            "users:\n  a@x.edu:\n    - Admin\n",
            "users:\n  \"a@x.edu\": [Admin]\n",
            "users: {}\n",
            "users:\n  a@x.edu: [true]\n",
        ] {
            assert_eq!(fast_entries(other), None, "{other:?}");
        }
    }

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
    fn careless_lines_are_errors_with_their_line() {
        let text = "users:\n  ok@x.edu: [Admin]\n  ada@x.edu:\n  bob@x.edu: null\n  mailto:cy@x.edu: [Admin]\n  <di@x.edu>: [Admin]\n  \"e\u{200B}d@x.edu\": [Admin]\n  \"f@x.edu\\t\": []\n";
        let p = problems(text);
        let lines: Vec<Origin> = p.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            lines,
            (3..=8).map(Origin::Line).collect::<Vec<_>>(),
            "{p:?}"
        );
        assert!(p[0].1.contains("ada@x.edu: the key has no value"), "{p:?}");
        assert!(p[1].1.contains("bob@x.edu: the key has no value"), "{p:?}");
        assert!(p[2].1.contains("scheme \"mailto:\""), "{p:?}");
        assert!(p[3].1.contains("angle brackets"), "{p:?}");
        assert!(
            p[4].1.contains("U+200B ZERO WIDTH SPACE at position 2"),
            "{p:?}"
        );
        assert!(p[5].1.contains("U+0009 CHARACTER TABULATION"), "{p:?}");
        let long = format!("users:\n  {}@x.edu: [Admin]\n", "a".repeat(70_000));
        let p = problems(&long);
        assert_eq!(p[0].0, Origin::Line(2));
        assert!(p[0].1.contains("bytes long") && p[0].1.len() < 300, "{p:?}");
    }

    #[test]
    fn shape_errors_have_lines() {
        let p = problems("users:\n  a@x.edu: [Admin]\n  b@x.edu: Admin\n");
        assert_eq!(p[0].0, Origin::Line(3), "{p:?}");
        assert!(p[0].1.contains("expected a sequence"), "{p:?}");
        let p = problems("users:\n  a@x.edu: [Admin]\nuser:\n  b@x.edu: [Admin]\n");
        assert_eq!(p[0].0, Origin::Line(3), "{p:?}");
        let p = problems("users:\n  a@x.edu:\n    - Admin\n    - [Admin]\n");
        assert_eq!(p[0].0, Origin::Line(4), "{p:?}");
    }

    fn day(s: &str) -> chrono::NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_grant_with_an_end_and_a_reason() {
        let text = "users:\n  a@x.edu: [Admin, {role: CaptionEditor, until: 2027-01-31, reason: \"MED101 TA, ticket 4411\"}]\n  b@x.edu:\n    - role: Admin\n      until: 2027-02-01\n";
        let d = parse_edited("roles.yaml", text, &managed(), Some(day("2027-01-01"))).unwrap();
        assert_eq!(d.users["a@x.edu"], managed().all());
        let cap = &d.grants_of("a@x.edu")[1];
        assert_eq!(cap.until, Some(day("2027-01-31")));
        assert_eq!(cap.reason.as_deref(), Some("MED101 TA, ticket 4411"));
        assert_eq!(d.grants_of("a@x.edu")[0].until, None);
        assert_eq!(d.until_of("b@x.edu", 0), Some(day("2027-02-01")));
    }

    #[test]
    fn a_wrong_grant_names_its_line() {
        let text = "users:\n  ok@x.edu: [Admin]\n  a@x.edu: [{role: Admin, untill: 2027-01-31}]\n  b@x.edu: [{until: 2027-01-31}]\n  c@x.edu: [{role: Admin, until: 31/01/2027}]\n  d@x.edu: [{role: Admin, until: 2027-2-30}]\n  e@x.edu: [{role: Admin, until: 2026-11-30}]\n  f@x.edu: [{role: Admin, until: 2026-12-04}]\n";
        let Err(DesiredError::Invalid(e)) =
            parse_edited("roles.yaml", text, &managed(), Some(day("2026-12-04")))
        else {
            panic!("refused")
        };
        let p: Vec<(Origin, String)> = e
            .problems
            .into_iter()
            .map(|p| (p.origin, p.message))
            .collect();
        let lines: Vec<Origin> = p.iter().map(|(o, _)| *o).collect();
        assert_eq!(
            lines,
            (3..=7).map(Origin::Line).collect::<Vec<_>>(),
            "{p:?}"
        );
        assert!(p[0].1.contains("unknown key \"untill\""), "{p:?}");
        assert!(p[1].1.contains("a grant without `role`"), "{p:?}");
        assert!(
            p[2].1.contains("until \"31/01/2027\" is not a date"),
            "{p:?}"
        );
        assert!(
            p[3].1.contains("until \"2027-2-30\" is not a date"),
            "{p:?}"
        );
        assert!(
            p[4].1.contains("Admin until 2026-11-30 had already ended when the file was last changed (2026-12-04)"),
            "{p:?}"
        );
    }

    #[test]
    fn a_grant_that_ended_after_the_edit_is_not_desired() {
        let text = "users:\n  a@x.edu: [{role: Admin, until: 2026-12-01}, CaptionEditor]\n  b@x.edu: [{role: Admin, until: 2026-12-01}]\n";
        let mut d = parse_edited("roles.yaml", text, &managed(), Some(day("2026-11-01"))).unwrap();
        d.expire(&Calendar {
            zone: chrono_tz::UTC,
            today: day("2026-12-01"),
        });
        assert_eq!(
            d.users["b@x.edu"],
            managed()
                .all()
                .intersection(crate::roles::RoleSet::single(0))
        );
        d.expire(&Calendar {
            zone: chrono_tz::UTC,
            today: day("2026-12-02"),
        });
        assert_eq!(d.users["a@x.edu"], crate::roles::RoleSet::single(1));
        assert!(d.users["b@x.edu"].is_empty());
        assert!(d.has_ended("b@x.edu", 0) && !d.has_ended("a@x.edu", 1));
    }
}
