//! A CSV file of grants, as a spreadsheet exports it:
//!
//! ```text
//! email,role,until,reason
//! alice@myschool.edu,Admin,,
//! carol@myschool.edu,CaptionEditor,2027-01-31,"MED101 TA, ticket 4411"
//! ```
//!
//! One row per grant (an email on several rows holds several roles). The header names the
//! columns (`email` and `role`, then `until` and `reason` if wanted, any order, any case).
//! LibreOffice and Excel write a byte-order mark, CRLF line ends, quotes around a field with a
//! comma, and in some locales `;` between fields: all are read. The file goes through the
//! same bounded reader as the roles file, and every bad row is reported with its line.

use super::{Calendar, DesiredBuilder, DesiredError, DesiredState, Grant, Origin};
use crate::config::CsvSourceConfig;
use crate::input::input_file::read_bytes;
use crate::roles::ManagedRoles;
use chrono::NaiveDate;

pub use super::MAX_REASON_CHARS;

/// Reads and checks the CSV file of `config`.
/// An `until` before the day the file was last changed (in `calendar`'s zone) is refused.
pub fn load(
    config: &CsvSourceConfig,
    managed: &ManagedRoles,
    calendar: &Calendar,
) -> Result<DesiredState, DesiredError> {
    let source = config.path.display().to_string();
    let bytes = read_bytes(&config.path, config.max_bytes).map_err(|e| {
        let hint = if e.is_too_large() {
            " (raise max_bytes to read a larger file)"
        } else {
            ""
        };
        DesiredError::Unavailable {
            place: source.clone(),
            message: format!("the CSV file {e}{hint}"),
        }
    })?;
    let edited = super::yaml::edited_day(&config.path, calendar);
    parse_edited(&source, &bytes, config.name.clone(), managed, edited)
}

/// The columns the header named, by position.
struct Columns {
    email: usize,
    role: usize,
    until: Option<usize>,
    reason: Option<usize>,
}

/// Checks CSV bytes; `source` names the file in messages, `name` is the grants' source.
pub fn parse(
    source: &str,
    bytes: &[u8],
    name: super::SourceName,
    managed: &ManagedRoles,
) -> Result<DesiredState, DesiredError> {
    parse_edited(source, bytes, name, managed, None)
}

/// As [`parse`], refusing an `until` before `edited`, the day the file was last changed.
pub(crate) fn parse_edited(
    source: &str,
    bytes: &[u8],
    name: super::SourceName,
    managed: &ManagedRoles,
    edited: Option<NaiveDate>,
) -> Result<DesiredState, DesiredError> {
    let mut b = DesiredBuilder::new(managed, name).edited_on(edited);
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first_line = bytes.split(|c| *c == b'\n').next().unwrap_or_default();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter(first_line))
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.byte_records();
    let columns = match records.next() {
        None => {
            b.problem(
                Origin::Line(1),
                "the file is empty: expected a header email,role",
            );
            return b.finish(source);
        }
        Some(Err(e)) => {
            b.problem(Origin::Line(1), csv_error(&e));
            return b.finish(source);
        }
        Some(Ok(header)) => match columns(&header) {
            Ok(c) => c,
            Err(message) => {
                b.problem(Origin::Line(1), message);
                return b.finish(source);
            }
        },
    };
    let width = [
        Some(columns.email),
        Some(columns.role),
        columns.until,
        columns.reason,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 1;
    for record in records {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, line_of);
                b.problem(Origin::Line(line), csv_error(&e));
                continue;
            }
        };
        let at = Origin::Line(record.position().map_or(0, line_of));
        if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            continue; // a blank row, as spreadsheets leave at the end
        }
        if record.len() < width {
            b.problem(
                at,
                format!("{} fields where the header has {width}", record.len()),
            );
            continue;
        }
        let Some(fields) = text_fields(&mut b, at, &record) else {
            continue;
        };
        row(&mut b, at, &fields, &columns);
    }
    b.finish(source)
}

/// One row: its email, role, and optional end date and reason.
fn row(b: &mut DesiredBuilder<'_>, at: Origin, fields: &[&str], c: &Columns) {
    let Some(email) = b.email(at, fields[c.email]) else {
        return;
    };
    let role = fields[c.role].trim();
    if role.is_empty() {
        b.problem(at, format!("{email}: the role is empty"));
        return;
    }
    let Some(role) = b.role(at, &email, role) else {
        return;
    };
    let mut grant = Grant::new(role, b.source().clone());
    if let Some(i) = c.until {
        let Ok(until) = b.until(at, &email, fields[i]) else {
            return;
        };
        grant.until = until;
    }
    if let Some(i) = c.reason {
        let Ok(reason) = b.reason(at, &email, fields[i]) else {
            return;
        };
        grant.reason = reason;
    }
    b.add_grant(at, email, grant);
}

/// The fields as text; a problem (and `None`) for a field that is not UTF-8, as a
/// spreadsheet saving in a legacy code page writes it.
fn text_fields<'r>(
    b: &mut DesiredBuilder<'_>,
    at: Origin,
    record: &'r csv::ByteRecord,
) -> Option<Vec<&'r str>> {
    let mut out = Vec::with_capacity(record.len());
    for field in record {
        match std::str::from_utf8(field) {
            Ok(s) => out.push(s),
            Err(_) => {
                b.problem(
                    at,
                    "not UTF-8 text: save the sheet as \"CSV UTF-8\" (Excel) or with the \
                     Unicode (UTF-8) character set (LibreOffice)",
                );
                return None;
            }
        }
    }
    Some(out)
}

/// The field separator: `,` unless the header uses `;` or a tab and no comma.
fn delimiter(header: &[u8]) -> u8 {
    if header.contains(&b',') {
        b','
    } else if header.contains(&b';') {
        b';'
    } else if header.contains(&b'\t') {
        b'\t'
    } else {
        b','
    }
}

fn columns(header: &csv::ByteRecord) -> Result<Columns, String> {
    let (mut email, mut role, mut until, mut reason) = (None, None, None, None);
    for (i, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw).trim().to_ascii_lowercase();
        let slot = match name.as_str() {
            "email" => &mut email,
            "role" => &mut role,
            "until" => &mut until,
            "reason" => &mut reason,
            _ => {
                return Err(format!(
                    "column {} is {}: the header names email, role and optionally until, \
                     reason",
                    i + 1,
                    crate::email_address::shown(&name)
                ))
            }
        };
        if slot.replace(i).is_some() {
            return Err(format!("the header names column {name} twice"));
        }
    }
    match (email, role) {
        (Some(email), Some(role)) => Ok(Columns {
            email,
            role,
            until,
            reason,
        }),
        _ => Err(
            "the header must name the columns email and role (then until, reason if \
                  wanted)"
                .into(),
        ),
    }
}

/// The 1-based line a record starts on. The reader reports the line its previous record
/// ended on, one less (tested below with quoted line breaks).
fn line_of(p: &csv::Position) -> usize {
    p.line() as usize + 1
}

fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".into(),
        _ => {
            let s = e.to_string();
            // The csv crate appends its own position; the line is shown in front instead.
            s.split(" (line").next().unwrap_or(&s).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::SourceName;

    fn managed() -> ManagedRoles {
        ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()])
    }

    fn read(bytes: &[u8]) -> Result<DesiredState, DesiredError> {
        parse(
            "grants.csv",
            bytes,
            SourceName::new("grants.csv"),
            &managed(),
        )
    }

    fn problems(bytes: &[u8]) -> Vec<String> {
        match read(bytes) {
            Err(DesiredError::Invalid(e)) => e
                .to_string()
                .lines()
                .skip(1)
                .map(str::trim)
                .map(String::from)
                .collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn a_libreoffice_export_reads_right() {
        // LibreOffice Calc, "Text CSV", UTF-8, quote text cells only where needed, LF.
        let d = read(b"email,role,until,reason\nalice@x.edu,Admin,,\n\"Carol@X.edu\",CaptionEditor,2027-01-31,\"MED101 TA, ticket 4411\"\ncarol@x.edu,Admin,,\n").unwrap();
        assert_eq!(d.users.len(), 2);
        assert_eq!(d.users["carol@x.edu"], managed().all());
        let cap = d
            .grants_of("carol@x.edu")
            .iter()
            .find(|g| g.role == 1)
            .unwrap();
        assert_eq!(cap.until, NaiveDate::from_ymd_opt(2027, 1, 31));
        assert_eq!(cap.reason.as_deref(), Some("MED101 TA, ticket 4411"));
        assert_eq!(cap.source.as_str(), "grants.csv");
    }

    #[test]
    fn an_excel_export_reads_right() {
        // Excel "CSV UTF-8 (Comma delimited)": a BOM, CRLF, every quote doubled inside quotes,
        // and a trailing blank row; a European locale writes `;`.
        let d = read(b"\xEF\xBB\xBFEmail,Role,Reason\r\nalice@x.edu,Admin,\"the \"\"media\"\" lead, 2026\"\r\n,,\r\n").unwrap();
        let g = &d.grants_of("alice@x.edu")[0];
        assert_eq!(g.reason.as_deref(), Some("the \"media\" lead, 2026"));
        let d = read(b"\xEF\xBB\xBFemail;role\r\nbob@x.edu;CaptionEditor\r\n").unwrap();
        assert_eq!(d.users["bob@x.edu"], crate::roles::RoleSet::single(1));
    }

    #[test]
    fn bad_rows_are_refused_with_their_line() {
        let got = problems(b"email,role,until\r\nalice@x.edu,Admin,\r\nnot-an-email,Admin,\r\n\"bob@x.edu\nx\",Admin,\r\ncarol@x.edu,Teacher,\r\ndan@x.edu,Admin,31/01/2027\r\neve@x.edu\r\nfay@x.edu,Admin,\xff\r\n");
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(
            got[0].starts_with("grants.csv:3: \"not-an-email\""),
            "{got:?}"
        );
        assert!(got[1].starts_with("grants.csv:4: "), "{got:?}");
        assert!(
            got[2]
                .starts_with("grants.csv:6: carol@x.edu: role \"Teacher\" is not in roles.managed"),
            "{got:?}"
        );
        assert!(
            got[3].contains(":7: dan@x.edu: until \"31/01/2027\" is not a date"),
            "{got:?}"
        );
        assert!(
            got[4].contains(":8: 1 fields where the header has 3"),
            "{got:?}"
        );
        assert!(got[5].contains(":9: not UTF-8"), "{got:?}");
    }

    #[test]
    fn a_header_must_name_email_and_role() {
        assert!(problems(b"mail,role\na@x.edu,Admin\n")[0]
            .contains("grants.csv:1: column 1 is \"mail\""));
        assert!(problems(b"email\na@x.edu\n")[0].contains("must name the columns email and role"));
        assert!(problems(b"")[0].contains("empty"));
    }
}
