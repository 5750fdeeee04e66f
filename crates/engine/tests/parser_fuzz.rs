//! Fuzzing the parsers users feed: the config file and the desired roles file.
//!
//! proptest generates whole random texts, and (more usefully) mutations of valid files: lines
//! dropped, duplicated, swapped, re-indented, truncated, values replaced by odd scalars. Every
//! input must either parse or fail with an error that names where: the file, and a line when
//! the problem is in the text. Never a panic.

use proptest::prelude::*;
use std::path::Path;
use studio_role_sync_engine::config::{Config, ConfigError};
use studio_role_sync_engine::desired::{yaml, DesiredError, Origin};
use studio_role_sync_engine::roles::ManagedRoles;

const CONFIG: &str = "\
studio:
  base_url: http://127.0.0.1:9
  token_env: PARSER_FUZZ_TOKEN
  requests_per_second: 5
  burst: 5
  concurrency: 4
  batch_size: 50
  timeout_seconds: 30
  max_retries: 5
roles:
  managed: [Admin, CaptionEditor]
  remove_unlisted: true
  protected: [breakglass@myschool.edu]
safety:
  max_removals: 25
  max_removal_ratio: 0.25
source:
  yaml: roles.yaml
schedule: \"0 */15 * * * *\"
history: state/history.db
http:
  listen: 127.0.0.1:9464
log:
  format: pretty
  level: info
";

const ROLES: &str = "\
users:
  alice@myschool.edu: [Admin]
  Bob.Smith@MySchool.edu: [Admin, CaptionEditor]
  carol@myschool.edu:
    - CaptionEditor
  dave@myschool.edu: []
";

const CONFIG_PATH: &str = "/fuzz/conf/studio-role-sync.yaml";
const ROLES_PATH: &str = "/fuzz/conf/roles.yaml";

fn managed() -> ManagedRoles {
    ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()])
}

/// Odd things to put where a value or a line was.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("~".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("1e309".to_string()),
        Just(".nan".to_string()),
        Just("18446744073709551616".to_string()),
        Just("[".to_string()),
        Just("{a: [b, {c: d}]}".to_string()),
        Just("&a [*a]".to_string()),
        Just("*undefined".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        Just("\"unterminated".to_string()),
        Just("'x'':".to_string()),
        Just("|\n  block".to_string()),
        Just("\t".to_string()),
        Just("é@ü.例".to_string()),
        Just("- - -".to_string()),
        Just("? complex\n: key".to_string()),
        Just("<<: *merge".to_string()),
        Just("---\n...".to_string()),
        "[ -~]{0,20}",
        any::<String>().prop_map(|s| s.chars().take(30).collect()),
    ]
}

#[derive(Debug, Clone)]
enum Edit {
    Drop(usize),
    Duplicate(usize),
    Swap(usize, usize),
    Indent(usize, usize),
    Dedent(usize),
    ReplaceValue(usize, String),
    ReplaceLine(usize, String),
    Insert(usize, String),
    Truncate(usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let i = 0usize..64;
    prop_oneof![
        i.clone().prop_map(Edit::Drop),
        i.clone().prop_map(Edit::Duplicate),
        (i.clone(), 0usize..64).prop_map(|(a, b)| Edit::Swap(a, b)),
        (i.clone(), 1usize..5).prop_map(|(a, n)| Edit::Indent(a, n)),
        i.clone().prop_map(Edit::Dedent),
        (i.clone(), scalar()).prop_map(|(a, s)| Edit::ReplaceValue(a, s)),
        (i.clone(), scalar()).prop_map(|(a, s)| Edit::ReplaceLine(a, s)),
        (i.clone(), scalar()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (0usize..2000).prop_map(Edit::Truncate),
    ]
}

fn mutate(base: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = base.lines().map(str::to_string).collect();
    let mut tail = None;
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::Drop(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::Duplicate(i) if !lines.is_empty() => {
                let l = lines[i % n].clone();
                lines.insert(i % n, l);
            }
            Edit::Swap(a, b) if !lines.is_empty() => lines.swap(a % n, b % n),
            Edit::Indent(i, k) if !lines.is_empty() => {
                lines[i % n] = format!("{}{}", " ".repeat(*k), lines[i % n]);
            }
            Edit::Dedent(i) if !lines.is_empty() => {
                lines[i % n] = lines[i % n].trim_start().to_string();
            }
            Edit::ReplaceValue(i, s) if !lines.is_empty() => {
                let l = &lines[i % n];
                if let Some(colon) = l.find(':') {
                    lines[i % n] = format!("{} {s}", &l[..=colon]);
                }
            }
            Edit::ReplaceLine(i, s) if !lines.is_empty() => lines[i % n] = s.clone(),
            Edit::Insert(i, s) => lines.insert(i % (lines.len() + 1), s.clone()),
            Edit::Truncate(at) => tail = Some(*at),
            _ => {}
        }
    }
    let mut text = lines.join("\n");
    text.push('\n');
    if let Some(at) = tail {
        let mut cut = at.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// The config parsed as if read from [`CONFIG_PATH`], with the token variable it names set in
/// the environment it is given (not in the process's: tests run in parallel).
fn parse_config(text: &str) -> Result<Config, ConfigError> {
    let env = |name: &str| (name == "PARSER_FUZZ_TOKEN").then(|| "fuzz-token".to_string());
    Config::from_text_with_env(Path::new(CONFIG_PATH), text, &env)
}

/// The config parser: parses, or fails naming the file (and a line when one is to blame).
fn check_config(text: &str) -> Result<(), TestCaseError> {
    match parse_config(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            let shown = e.to_string();
            prop_assert_eq!(e.file.as_path(), Path::new(CONFIG_PATH));
            prop_assert!(shown.starts_with(CONFIG_PATH), "no file in {:?}", shown);
            prop_assert!(!e.message.trim().is_empty(), "empty message");
            prop_assert!(e.line.is_some(), "no line in {:?} for {:?}", shown, text);
            if let Some(line) = e.line {
                // Lines are 1-based and within the file (or just past its end, for EOF).
                prop_assert!(
                    line >= 1 && line <= text.lines().count() + 1,
                    "line {} of a {}-line text: {}",
                    line,
                    text.lines().count(),
                    shown
                );
                prop_assert!(
                    shown.starts_with(&format!("{CONFIG_PATH}:{line}: ")),
                    "{}",
                    shown
                );
            }
            Ok(())
        }
    }
}

/// The roles parser: parses, or fails with every problem on a line of the file.
fn check_roles(text: &str) -> Result<(), TestCaseError> {
    match yaml::parse(ROLES_PATH, text, &managed()) {
        Ok(_) => Ok(()),
        Err(DesiredError::Invalid(e)) => {
            prop_assert!(!e.problems.is_empty());
            let lines = text.lines().count().max(1);
            for p in &e.problems {
                match p.origin {
                    Origin::Line(l) => prop_assert!(
                        l >= 1 && l <= lines + 1,
                        "line {} of a {}-line text: {}",
                        l,
                        lines,
                        p.message
                    ),
                    other => prop_assert!(
                        false,
                        "no line for {:?}: {} in {:?}",
                        other,
                        p.message,
                        text
                    ),
                }
            }
            let shown = e.to_string();
            prop_assert!(shown.starts_with(ROLES_PATH), "{}", shown);
            Ok(())
        }
        Err(other) => {
            prop_assert!(false, "parse of text gave {:?}", other);
            Ok(())
        }
    }
}

/// 512 cases per property, or `PROPTEST_CASES` for a longer session.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn config_mutations_never_panic_and_errors_name_the_place(edits in prop::collection::vec(edit(), 1..6)) {
        check_config(&mutate(CONFIG, &edits))?;
    }

    #[test]
    fn config_random_text_never_panics(text in prop_oneof![any::<String>(), "[ -~\n\t]{0,300}"]) {
        check_config(&text)?;
    }

    #[test]
    fn roles_mutations_never_panic_and_problems_have_lines(edits in prop::collection::vec(edit(), 1..6)) {
        check_roles(&mutate(ROLES, &edits))?;
    }

    #[test]
    fn roles_random_text_never_panics(text in prop_oneof![any::<String>(), "[ -~\n\t]{0,300}"]) {
        check_roles(&text)?;
    }

    #[test]
    fn roles_generated_entries_have_lines(
        entries in prop::collection::vec(("[a-zA-Z@. _-]{0,12}", prop::collection::vec("(Admin|CaptionEditor|Teacher|admin|)", 0..3)), 0..12)
    ) {
        let mut text = String::from("users:\n");
        for (email, roles) in &entries {
            text.push_str(&format!("  {email:?}: [{}]\n", roles.join(", ")));
        }
        check_roles(&text)?;
    }
}

#[test]
fn the_unmutated_files_parse() {
    parse_config(CONFIG).expect("base config parses");
    yaml::parse(ROLES_PATH, ROLES, &managed()).expect("base roles parse");
}

/// A second YAML document (`---` after content) is refused, naming the line of its marker
/// (serde gives no location for this error).
#[test]
fn multi_document_files_name_the_line() {
    let config = format!("{CONFIG}---\nstudio: {{}}\n");
    let e = parse_config(&config).unwrap_err();
    assert_eq!(e.line, Some(CONFIG.lines().count() + 1), "{e}");
    let roles = format!("{ROLES}---\nusers: {{}}\n");
    match yaml::parse(ROLES_PATH, &roles, &managed()) {
        Err(DesiredError::Invalid(e)) => {
            assert_eq!(
                e.problems[0].origin,
                Origin::Line(ROLES.lines().count() + 1),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// A file saved with old Mac line ends (a lone `\r`): problems still name their line, as YAML
/// counts lines.
#[test]
fn carriage_return_line_ends_keep_their_lines() {
    for text in [
        "users:\r\r\r\r  a@b.c: [Admin]\r  a@b.c: [Admin]\r",
        "users:\r\r\r\r  a@b.c: [Nope]\r",
    ] {
        let Err(DesiredError::Invalid(e)) = yaml::parse(ROLES_PATH, text, &managed()) else {
            panic!("{text:?} should be refused");
        };
        assert!(
            e.problems
                .iter()
                .all(|p| matches!(p.origin, Origin::Line(l) if l >= 5)),
            "{e}"
        );
    }
}
