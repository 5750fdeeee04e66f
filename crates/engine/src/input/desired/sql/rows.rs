//! The rows of the result, fed one by one into the [`DesiredBuilder`] as they arrive: a
//! million-row result costs the desired state and nothing more, and a result full of bad rows
//! stops being read after [`MAX_BAD_ROWS`]. Each cell is read as text; a NULL, a value of
//! another type or the wrong number of columns is a problem named by its row.

use super::ReadError;
use crate::input::desired::{DesiredBuilder, Origin};
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
        if columns.len() != 2 {
            let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
            b.problem(
                at,
                format!(
                    "the query returns {} column(s) ({}); it must return exactly two: email, role",
                    columns.len(),
                    names.join(", ")
                ),
            );
            break;
        }
        let email = cell(&row, 0);
        let role = cell(&row, 1);
        let ok = match (email.text(), role.text()) {
            (Some(e), Some(r)) => {
                let r = r.trim();
                match b.email(at, e) {
                    Some(email) => match b.role(at, &email, r) {
                        Some(index) => {
                            b.grant(at, email, index);
                            true
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
