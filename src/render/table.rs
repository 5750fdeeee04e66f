//! Tables and CSV for the history, drawn by `comfy-table` and written by `csv`.
//!
//! The table style is the one of `kubectl get` or `docker ps`: no borders, a header row,
//! columns two spaces apart, no trailing spaces. Its width is the content's: a history piped
//! to a file or `grep` is never wrapped to a terminal's width. Every cell is [`escaped`]: the
//! cells hold emails, details and errors from outside, and a control character in one must
//! not hide or draw a row. CSV is data for programs and keeps the values as they are.

use comfy_table::{presets, ContentArrangement, Table};
use studio_role_sync_engine::email_address::escaped;

/// Columns of `rows` under `headers`, left-aligned, two spaces apart; ends with a newline.
pub fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(headers.to_vec())
        .add_rows(rows.map(|row| {
            row.into_iter()
                .map(|cell| escaped(&cell).into_owned())
                .collect::<Vec<_>>()
        }));
    let last = headers.len().saturating_sub(1);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i == last { 0 } else { 2 }));
    }
    table.trim_fmt() + "\n"
}

/// RFC 4180 CSV: a header line, then one line per row.
pub fn csv(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    // Writing to memory cannot fail.
    out.write_record(headers).expect("in memory");
    for row in rows {
        out.write_record(&row).expect("in memory");
    }
    String::from_utf8(out.into_inner().expect("in memory")).expect("records are UTF-8")
}

/// One line of at most `max` characters, ending in `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= max {
        s
    } else {
        s.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes() {
        let s = csv(
            &["a", "b"],
            vec![vec!["x,y".to_string(), "say \"hi\"".to_string()]].into_iter(),
        );
        assert_eq!(s, "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn table_columns_are_two_spaces_apart_without_trailing_spaces() {
        let s = table(
            &["RUN", "STATUS", "ERROR"],
            vec![
                vec!["1".into(), "succeeded".into(), String::new()],
                vec!["12".into(), "failed".into(), "Studio is failing".into()],
            ]
            .into_iter(),
        );
        assert_eq!(
            s,
            "RUN  STATUS     ERROR\n1    succeeded\n12   failed     Studio is failing\n"
        );
    }
}
