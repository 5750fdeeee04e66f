//! The rows of the result, fed one by one into the [`DesiredBuilder`] as they arrive: a
//! million-row result costs the desired state and nothing more, and a result full of bad rows
//! stops being read after [`MAX_BAD_ROWS`]. Each cell is read as text; a NULL, a value of
//! another type or the wrong number of columns is a problem named by its row. After `email`
//! and `role`, a query may return the columns `until` (a date `YYYY-MM-DD` as text, or NULL)
//! and `reason` (text or NULL), named so, in either order.

use super::ReadError;
use crate::input::desired::{DesiredBuilder, Grant, Origin};
use futures::{Stream, TryStreamExt};
use sqlx::{Column, Row, TypeInfo};

/// After this many bad rows the rest of the result is not read: the admin has enough to fix,
/// and a broken query returning millions of bad rows must not buffer millions of messages.
pub const MAX_BAD_ROWS: u64 = 1000;

/// One cell of a row, read as text.
enum Cell {
    Text(String),
    Null,
    NotText(String),
    Unreadable(String),
}

impl Cell {
    fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }
}

fn cell<R: Row>(row: &R, index: usize) -> Cell
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    match row.try_get::<Option<String>, _>(index) {
        Ok(Some(v)) => Cell::Text(v),
        Ok(None) => Cell::Null,
        Err(e) => {
            let ty = row.columns()[index].type_info();
            if <String as sqlx::Type<R::Database>>::compatible(ty) {
                Cell::Unreadable(e.to_string())
            } else {
                Cell::NotText(ty.name().to_string())
            }
        }
    }
}

/// Records the problem of a cell that is not text; `other` names the row's other value.
fn cell_problem(b: &mut DesiredBuilder<'_>, at: Origin, name: &str, c: &Cell, other: String) {
    let column = if name == "email" { 1 } else { 2 };
    cell_problem_at(b, at, name, column, c, other)
}

fn cell_problem_at(
    b: &mut DesiredBuilder<'_>,
    at: Origin,
    name: &str,
    column: usize,
    c: &Cell,
    other: String,
) {
    let what = match c {
        Cell::Text(_) => return,
        Cell::Null => format!("{name} is NULL"),
        Cell::NotText(ty) => {
            format!("{name} (column {column}) is of type {ty}, not text: cast it in the query")
        }
        Cell::Unreadable(e) => format!("{name} (column {column}) cannot be read as text: {e}"),
    };
    b.problem(at, format!("{what}{other}"));
}

/// Which of `until` and `reason` the columns after `email, role` are (by position, 0-based);
/// `None` when the columns are not those.
fn extra_columns(names: &[&str]) -> Option<[Option<usize>; 2]> {
    if !(2..=4).contains(&names.len()) {
        return None;
    }
    let mut found = [None, None];
    for (i, name) in names.iter().enumerate().skip(2) {
        let slot = match name.to_ascii_lowercase().as_str() {
            "until" => 0,
            "reason" => 1,
            _ => return None,
        };
        if found[slot].replace(i).is_some() {
            return None;
        }
    }
    Some(found)
}

/// Reads the row's `until` and `reason` into `grant` (NULL or blank: none).
fn ends<R: Row>(
    b: &mut DesiredBuilder<'_>,
    at: Origin,
    email: &str,
    row: &R,
    extra: &[Option<usize>; 2],
    grant: &mut Grant,
) -> Result<(), ()>
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    for (slot, name) in [(0, "until"), (1, "reason")] {
        let Some(i) = extra[slot] else { continue };
        let c = cell(row, i);
        let text = match &c {
            Cell::Null => continue,
            Cell::Text(t) => t.as_str(),
            _ => {
                let hint = if name == "until" {
                    " (as YYYY-MM-DD: until::text in PostgreSQL, CAST(until AS CHAR) in MariaDB)"
                } else {
                    ""
                };
                cell_problem_at(b, at, name, i + 1, &c, format!(" ({email}){hint}"));
                return Err(());
            }
        };
        if slot == 0 {
            grant.until = b.until(at, email, text)?;
        } else {
            grant.reason = b.reason(at, email, text)?;
        }
    }
    Ok(())
}

/// Feeds each `(email, role)` row to the builder as it arrives; returns the row count.
pub(super) async fn consume<R, S>(mut rows: S, b: &mut DesiredBuilder<'_>) -> Result<u64, ReadError>
where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
    R: Row,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let mut n: u64 = 0;
    let mut bad: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(ReadError::Query)? {
        n += 1;
        let at = Origin::Row(n);
        let columns = row.columns();
        let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
        let Some(extra) = extra_columns(&names) else {
            b.problem(
                at,
                format!(
                    "the query returns {} column(s) ({}); it must return email, role and \
                     optionally columns named until and reason",
                    columns.len(),
                    names.join(", ")
                ),
            );
            break;
        };
        let email = cell(&row, 0);
        let role = cell(&row, 1);
        let ok = match (email.text(), role.text()) {
            (Some(e), Some(r)) => {
                let r = r.trim();
                match b.email(at, e) {
                    Some(email) => match b.role(at, &email, r) {
                        Some(index) => {
                            let mut grant = Grant::new(index, b.source().clone());
                            match ends(b, at, &email, &row, &extra, &mut grant) {
                                Ok(()) => {
                                    b.add_grant(at, email, grant);
                                    true
                                }
                                Err(()) => false,
                            }
                        }
                        None => false,
                    },
                    None => {
                        // Report a bad role in the same row too: every problem at once.
                        let _ = b.role(at, e.trim(), r);
                        false
                    }
                }
            }
            (e, r) => {
                let with = |k: &str, v: Option<&str>| {
                    v.map(|v| format!(" ({k} {v:?})")).unwrap_or_default()
                };
                cell_problem(b, at, "email", &email, with("role", r));
                cell_problem(b, at, "role", &role, with("email", e));
                false
            }
        };
        if !ok {
            bad += 1;
            if bad >= MAX_BAD_ROWS {
                // Unlocated, so it is listed first, above the rows.
                b.problem(
                    Origin::Unknown,
                    format!(
                        "stopped reading the result at row {n}, after {MAX_BAD_ROWS} bad rows; \
                         the first ones follow"
                    ),
                );
                break;
            }
        }
    }
    Ok(n)
}
