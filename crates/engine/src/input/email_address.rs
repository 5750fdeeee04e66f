//! Emails: how they are normalised and which strings count as one.
//!
//! An email is how a desired grant finds its Studio account, so a string that merely *looks*
//! like an address is dangerous: `mailto:ada@x.edu`, `<ada@x.edu>` or `ada@x.edu` with a
//! zero-width space inside are new, unknown emails to Studio, and the real `ada@x.edu` would
//! silently lose her role. So the rules are strict, live here once for every reader (the
//! roles file's two readers, SQL rows, `roles.protected`), and each refusal shows the
//! offending character by code point and name, since invisible characters cannot be seen in
//! the message otherwise.
//!
//! Deliberately loose on the rest: Studio is the authority on which addresses exist, so any
//! visible local part and a dotted domain pass.
//!
//! Emails from Studio, a directory or a SQL row are data, and reach terminals raw otherwise:
//! [`escaped`] is the one function that makes outside text safe to print (a bad value in a
//! message, [`shown`], goes through it too).

use std::borrow::Cow;
use std::fmt;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// RFC 5321 4.5.3.1: at most 64 octets before the `@` and 254 in all (a 256-octet path
/// less its angle brackets).
pub(crate) const MAX_LOCAL: usize = 64;
pub(crate) const MAX_ADDRESS: usize = 254;

/// How much of a bad value a message shows: a 70,000-character "email" must not become a
/// 70,000-character error line.
const SHOWN_CHARS: usize = 60;

/// Emails compare trimmed of spaces and case-insensitively; this is the one place that
/// decides how. Only spaces are trimmed: any other blank at either end is refused by
/// [`check`] (it is usually pasted in by accident, and Studio would not match it).
pub fn normalize(email: &str) -> String {
    email.trim_matches(' ').to_lowercase()
}

/// Why a string is not an email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailProblem {
    Empty,
    /// `mailto:ada@x.edu`: the scheme as written.
    Scheme(String),
    AngleBrackets,
    /// A whitespace, control or invisible character, with its 1-based position.
    BadChar {
        c: char,
        position: usize,
    },
    TooLong {
        bytes: usize,
    },
    LocalTooLong {
        bytes: usize,
    },
    /// Not `local@dotted.domain`.
    Shape,
}

impl fmt::Display for EmailProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmailProblem::Empty => write!(f, "is empty"),
            EmailProblem::Scheme(s) => write!(
                f,
                "starts with the scheme {s:?}: write the bare address, without {s:?}"
            ),
            EmailProblem::AngleBrackets => {
                write!(f, "has angle brackets: write the bare address, without < >")
            }
            EmailProblem::BadChar { c, position } => write!(
                f,
                "contains {} at position {position} (emails may not contain {})",
                describe_char(*c),
                kind_of(*c)
            ),
            EmailProblem::TooLong { bytes } => write!(
                f,
                "is {bytes} bytes long; an address may have at most {MAX_ADDRESS} (RFC 5321)"
            ),
            EmailProblem::LocalTooLong { bytes } => write!(
                f,
                "has {bytes} bytes before the @; at most {MAX_LOCAL} are allowed (RFC 5321)"
            ),
            EmailProblem::Shape => write!(
                f,
                "is not an email address (expected name@domain.tld, with one @)"
            ),
        }
    }
}

/// Checks a raw value (as written in a file or a SQL row) and returns it normalised.
pub fn check(raw: &str) -> Result<String, EmailProblem> {
    let trimmed = raw.trim_matches(' ');
    if trimmed.is_empty() {
        return Err(EmailProblem::Empty);
    }
    // Length first: nothing below should walk a huge value more than once.
    if trimmed.len() > MAX_ADDRESS {
        return Err(EmailProblem::TooLong {
            bytes: trimmed.len(),
        });
    }
    if let Some(scheme) = scheme_of(trimmed) {
        return Err(EmailProblem::Scheme(scheme.to_string()));
    }
    if trimmed.contains(['<', '>']) {
        return Err(EmailProblem::AngleBrackets);
    }
    // The position counts in the value as written, leading spaces included.
    let offset = raw.len() - raw.trim_start_matches(' ').len();
    if let Some((i, c)) = trimmed.chars().enumerate().find(|(_, c)| is_forbidden(*c)) {
        return Err(EmailProblem::BadChar {
            c,
            position: offset + i + 1,
        });
    }
    let Some((local, domain)) = trimmed.split_once('@') else {
        return Err(EmailProblem::Shape);
    };
    if local.len() > MAX_LOCAL {
        return Err(EmailProblem::LocalTooLong { bytes: local.len() });
    }
    let shape_ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !trimmed.contains([',', ';', ':']);
    if !shape_ok {
        return Err(EmailProblem::Shape);
    }
    Ok(trimmed.to_lowercase())
}

/// True when `email` (normalised or not) passes [`check`].
pub(crate) fn is_valid(email: &str) -> bool {
    check(email).is_ok()
}

/// A bad value as a message shows it: quoted, [`escaped`], and cut after [`SHOWN_CHARS`].
pub fn shown(raw: &str) -> String {
    let mut chars = raw.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let head = escaped(&head).replace('"', "\\\"");
    if chars.next().is_some() {
        format!("\"{head}\"… ({} characters)", raw.chars().count())
    } else {
        format!("\"{head}\"")
    }
}

/// Outside text (a Studio email, name or detail, a SQL value) as a person may read it in a
/// terminal: every control character, and every character that hides or reorders text
/// (zero-width, bidi controls, line separators), written as its Rust escape (`\u{1b}`, `\n`).
/// So an `ESC[8m` cannot hide the rest of a plan, and a newline cannot draw a line of it.
/// Borrowed, at no cost, when there is nothing to escape (nearly always).
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(hides) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hides(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A character that a terminal does not show as itself.
fn hides(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        )
}

/// `mailto:`, `smtp:`... : letters then a colon before any `@`.
fn scheme_of(value: &str) -> Option<&str> {
    let colon = value.find(':')?;
    let scheme = &value[..=colon];
    let before_at = value.find('@').is_none_or(|at| colon < at);
    (before_at
        && colon > 0
        && scheme[..colon]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some(scheme)
}

/// Whitespace, control characters, and every character that shows nothing: format
/// characters (zero-width, bidi marks, BOM), private-use and unassigned code points, and the
/// other default-ignorable or blank-looking characters (fillers, variation selectors).
fn is_forbidden(c: char) -> bool {
    // Nearly every address is ASCII: no table lookup for it.
    if c.is_ascii() {
        return c.is_ascii_control() || c == ' ';
    }
    if c.is_whitespace() || c.is_control() {
        return true;
    }
    matches!(
        c.general_category(),
        GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
            | GeneralCategory::SpaceSeparator
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
    ) || matches!(
        c,
        '\u{034F}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{2800}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FFA0}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

fn kind_of(c: char) -> &'static str {
    if c.is_control() {
        "control characters"
    } else if c.is_whitespace() {
        "whitespace"
    } else {
        "invisible characters"
    }
}

/// `U+200B ZERO WIDTH SPACE`: the code point, and its name for the characters people paste.
pub(crate) fn describe_char(c: char) -> String {
    let name = match c {
        '\t' => "CHARACTER TABULATION",
        '\n' => "LINE FEED",
        '\r' => "CARRIAGE RETURN",
        '\0' => "NULL",
        ' ' => "SPACE",
        '\u{85}' => "NEXT LINE",
        '\u{A0}' => "NO-BREAK SPACE",
        '\u{AD}' => "SOFT HYPHEN",
        '\u{34F}' => "COMBINING GRAPHEME JOINER",
        '\u{61C}' => "ARABIC LETTER MARK",
        '\u{115F}' => "HANGUL CHOSEONG FILLER",
        '\u{1160}' => "HANGUL JUNGSEONG FILLER",
        '\u{1680}' => "OGHAM SPACE MARK",
        '\u{180E}' => "MONGOLIAN VOWEL SEPARATOR",
        '\u{2000}'..='\u{200A}' => "SPACE (typographic width)",
        '\u{200B}' => "ZERO WIDTH SPACE",
        '\u{200C}' => "ZERO WIDTH NON-JOINER",
        '\u{200D}' => "ZERO WIDTH JOINER",
        '\u{200E}' => "LEFT-TO-RIGHT MARK",
        '\u{200F}' => "RIGHT-TO-LEFT MARK",
        '\u{2028}' => "LINE SEPARATOR",
        '\u{2029}' => "PARAGRAPH SEPARATOR",
        '\u{202A}' => "LEFT-TO-RIGHT EMBEDDING",
        '\u{202B}' => "RIGHT-TO-LEFT EMBEDDING",
        '\u{202C}' => "POP DIRECTIONAL FORMATTING",
        '\u{202D}' => "LEFT-TO-RIGHT OVERRIDE",
        '\u{202E}' => "RIGHT-TO-LEFT OVERRIDE",
        '\u{202F}' => "NARROW NO-BREAK SPACE",
        '\u{205F}' => "MEDIUM MATHEMATICAL SPACE",
        '\u{2060}' => "WORD JOINER",
        '\u{2061}'..='\u{2064}' => "INVISIBLE OPERATOR",
        '\u{2066}' => "LEFT-TO-RIGHT ISOLATE",
        '\u{2067}' => "RIGHT-TO-LEFT ISOLATE",
        '\u{2068}' => "FIRST STRONG ISOLATE",
        '\u{2069}' => "POP DIRECTIONAL ISOLATE",
        '\u{2800}' => "BRAILLE PATTERN BLANK",
        '\u{3000}' => "IDEOGRAPHIC SPACE",
        '\u{3164}' => "HANGUL FILLER",
        '\u{FE00}'..='\u{FE0F}' => "VARIATION SELECTOR",
        '\u{FEFF}' => "ZERO WIDTH NO-BREAK SPACE (byte order mark)",
        '\u{FFA0}' => "HALFWIDTH HANGUL FILLER",
        c if c.is_control() => "control character",
        c if c.is_whitespace() => "space character",
        _ => "invisible character",
    };
    format!("U+{:04X} {name}", c as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_and_accepts_plain_addresses() {
        assert_eq!(
            check("  Bob.Smith@MySchool.edu ").unwrap(),
            "bob.smith@myschool.edu"
        );
        for good in [
            "a@b.co",
            "first.last+tag@sub.school.edu",
            "josé@école.fr",
            "o'brien@x.edu",
        ] {
            assert!(is_valid(good), "{good}");
        }
        let local = "a".repeat(64);
        assert!(is_valid(&format!("{local}@x.edu")));
        let whole = format!("{local}@{}.edu", "d".repeat(254 - 64 - 1 - 4));
        assert_eq!(whole.len(), 254);
        assert!(is_valid(&whole));
    }

    #[test]
    fn refuses_what_only_looks_like_an_address() {
        let cases: &[(&str, &str)] = &[
            ("", "is empty"),
            ("   ", "is empty"),
            ("alice", "not an email address"),
            ("a@b", "not an email address"),
            ("@b.co", "not an email address"),
            ("a@@b.co", "not an email address"),
            ("a@.co", "not an email address"),
            ("a@b..co", "not an email address"),
            ("a@b.co,c@d.ef", "not an email address"),
            ("mailto:ada@x.edu", "scheme \"mailto:\""),
            ("MAILTO:ada@x.edu", "scheme \"MAILTO:\""),
            ("<ada@x.edu>", "angle brackets"),
            ("Ada <ada@x.edu>", "angle brackets"),
            ("ada @x.edu", "U+0020 SPACE at position 4"),
            ("ada@x.edu\t", "U+0009 CHARACTER TABULATION at position 10"),
            ("ada\u{200B}@x.edu", "U+200B ZERO WIDTH SPACE at position 4"),
            ("\u{FEFF}ada@x.edu", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
            ("ada@x.edu\u{202E}", "U+202E RIGHT-TO-LEFT OVERRIDE"),
            ("ada@x\u{200E}.edu", "U+200E LEFT-TO-RIGHT MARK"),
            ("ada\u{A0}@x.edu", "U+00A0 NO-BREAK SPACE"),
            ("ad\u{0}a@x.edu", "U+0000 NULL"),
            ("ada\u{E0041}@x.edu", "invisible character"),
            ("ada\u{3164}@x.edu", "U+3164 HANGUL FILLER"),
        ];
        for (raw, want) in cases {
            let e = check(raw).expect_err(raw).to_string();
            assert!(e.contains(want), "{raw:?}: {e}");
        }
        let long = format!("{}@x.edu", "a".repeat(70_000));
        assert!(check(&long)
            .unwrap_err()
            .to_string()
            .contains("70006 bytes"));
        let local = format!("{}@x.edu", "a".repeat(65));
        assert!(check(&local)
            .unwrap_err()
            .to_string()
            .contains("65 bytes before the @"));
        assert!(shown(&long).len() < 120, "{}", shown(&long));
    }

    #[test]
    fn emails() {
        assert_eq!(
            normalize("  Bob.Smith@MySchool.edu "),
            "bob.smith@myschool.edu"
        );
        assert!(is_valid("first.last+tag@sub.school.edu"));
        for bad in ["", "alice", "a b@c.de", "mailto:a@b.co", "<a@b.co>"] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn positions_count_leading_spaces() {
        assert_eq!(
            check("  a\u{200B}@x.edu"),
            Err(EmailProblem::BadChar {
                c: '\u{200B}',
                position: 4
            })
        );
    }

    proptest! {
        /// Any string: no panic, and what passes is normalised, bounded and visible.
        #[test]
        fn checked_emails_are_clean(s in "\\PC{0,80}|[a-z]{1,8}@[a-z]{1,8}\\.[a-z]{2,3}") {
            if let Ok(e) = check(&s) {
                prop_assert!(e.len() <= MAX_ADDRESS);
                prop_assert_eq!(&e, &normalize(&e));
                prop_assert!(!e.chars().any(is_forbidden));
                prop_assert!(is_valid(&e));
            }
        }
    }

    #[test]
    fn escaped_leaves_text_alone_and_makes_controls_visible() {
        assert!(matches!(escaped("ada@x.edu"), Cow::Borrowed("ada@x.edu")));
        assert_eq!(escaped("Zoë Ünal"), "Zoë Ünal");
        assert_eq!(escaped("a\u{1b}[8m@x.edu"), "a\\u{1b}[8m@x.edu");
        assert_eq!(escaped("a@x.edu\n    - b"), "a@x.edu\\n    - b");
        assert_eq!(escaped("\u{202e}moc.x@a"), "\\u{202e}moc.x@a");
        assert_eq!(shown("a\"\u{7}"), "\"a\\\"\\u{7}\"");
    }
}
