//! The history's one query layer over its two databases: a SQLite file (the default) or a
//! schema in PostgreSQL (several daemons, several tenants).
//!
//! Every query of the history is written once, as [`Sql`]: text with `?` placeholders and
//! the values bound to them. The business logic does not know which database answers; where
//! the two dialects differ, only the text differs ([`Sql::dialect`] picks it). For PostgreSQL
//! the `?` are numbered (`$1`, `$2`, …) as it sends them; SQLite takes them as they are.
//!
//! This is not sqlx's `Any` driver: each database keeps its own pool, connect options and
//! migrations (a SQLite pool's WAL, busy wait and read-only modes; a PostgreSQL pool's
//! `search_path`), and rows decode through each driver's own types. A type read from the
//! history must decode from both ([`Record`], [`Value`]): integers are `BIGINT` in
//! PostgreSQL, times the same RFC 3339 text in both.

use crate::model::change::{ChangeKind, Outcome};
use crate::model::guard_kind::GuardKind;
use crate::model::run_status::RunStatus;
use crate::store::lease::{fence, Epoch, FenceError};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::sqlite::{SqliteArguments, SqliteRow};
use sqlx::{
    Arguments, Decode, FromRow, PgConnection, PgPool, Postgres, Sqlite, SqliteConnection,
    SqlitePool, Transaction, Type,
};
use std::borrow::Cow;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// A statement that failed, or a write refused because this process no longer leads.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DbError {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    #[error("leadership lost: the lease of term {0} expired or another daemon took it over")]
    LeadershipLost(Epoch),
}

impl From<FenceError> for DbError {
    fn from(e: FenceError) -> DbError {
        match e {
            FenceError::LeadershipLost(epoch) => DbError::LeadershipLost(epoch),
            FenceError::Database(e) => DbError::Sql(e),
        }
    }
}

/// The term a process writes under on a shared PostgreSQL history, set by its leadership
/// (`service::leadership`) and read by every write: each one proves in its own transaction
/// that this term still leads ([`fence`]). No term (a standby, a lost lease): every write is
/// refused before it is sent.
#[derive(Clone, Debug, Default)]
pub struct WriteTerm(Arc<AtomicI64>);

impl WriteTerm {
    pub fn set(&self, epoch: Option<Epoch>) {
        self.0.store(epoch.map_or(0, Epoch::get), Ordering::SeqCst);
    }

    pub fn get(&self) -> Option<Epoch> {
        match self.0.load(Ordering::SeqCst) {
            0 => None,
            e => Some(Epoch(e)),
        }
    }

    /// The term to fence with, or the refusal of a process that does not lead.
    fn current(&self) -> Result<Epoch, DbError> {
        self.get().ok_or(DbError::LeadershipLost(Epoch::NONE))
    }
}

/// Which database a history lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The seconds from `start` to `end` (two RFC 3339 columns), as a floating-point number.
pub(crate) fn seconds_between(d: Dialect, end: &str, start: &str) -> String {
    match d {
        Dialect::Sqlite => format!("((julianday({end}) - julianday({start})) * 86400.0)"),
        Dialect::Postgres => format!(
            "CAST(EXTRACT(EPOCH FROM (CAST({end} AS TIMESTAMPTZ) - CAST({start} AS TIMESTAMPTZ))) \
             AS DOUBLE PRECISION)"
        ),
    }
}

/// The domain of the email in `column` (the text after its first `@`), as each dialect
/// writes it (SQLite's `instr` is PostgreSQL's `strpos`).
pub(crate) fn email_domain(d: Dialect, column: &str) -> String {
    match d {
        Dialect::Sqlite => format!("substr({column}, instr({column}, '@') + 1)"),
        Dialect::Postgres => format!("substr({column}, strpos({column}, '@') + 1)"),
    }
}

/// Put before a column (`{no_index}status = ?`) to keep SQLite off that column's index where
/// reading rows in id order is faster; PostgreSQL plans that by itself (and has no unary `+`
/// for text or booleans).
pub(crate) fn no_index(d: Dialect) -> &'static str {
    match d {
        Dialect::Sqlite => "+",
        Dialect::Postgres => "",
    }
}

/// The greater of two non-null values, as both dialects write it (SQLite's `MAX(a, b)` is
/// PostgreSQL's `GREATEST(a, b)`).
pub(crate) fn greater(a: &str, b: &str) -> String {
    format!("CASE WHEN {a} > {b} THEN {a} ELSE {b} END")
}

/// The smaller of two non-null values (SQLite's `MIN(a, b)`, PostgreSQL's `LEAST(a, b)`).
pub(crate) fn smaller(a: &str, b: &str) -> String {
    format!("CASE WHEN {a} < {b} THEN {a} ELSE {b} END")
}

/// A value bound to a `?`. (Its `Debug` is used by tests only: [`Sql`]'s own never shows
/// values.)
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Real(Option<f64>),
}

macro_rules! arg_from {
    ($($t:ty => |$v:ident| $e:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from($v: $t) -> Arg {
                $e
            }
        })*
    };
}

arg_from! {
    i64 => |v| Arg::Int(Some(v)),
    &i64 => |v| Arg::Int(Some(*v)),
    Option<i64> => |v| Arg::Int(v),
    u32 => |v| Arg::Int(Some(i64::from(v))),
    i32 => |v| Arg::Int(Some(i64::from(v))),
    bool => |v| Arg::Bool(Some(v)),
    Option<bool> => |v| Arg::Bool(v),
    f64 => |v| Arg::Real(Some(v)),
    String => |v| Arg::Text(Some(v)),
    &String => |v| Arg::Text(Some(v.clone())),
    &str => |v| Arg::Text(Some(v.to_owned())),
    &&str => |v| Arg::Text(Some((*v).to_owned())),
    Option<String> => |v| Arg::Text(v),
    &Option<String> => |v| Arg::Text(v.clone()),
    Option<&str> => |v| Arg::Text(v.map(str::to_owned)),
    Option<&String> => |v| Arg::Text(v.cloned()),
    ChangeKind => |v| Arg::Text(Some(v.as_str().to_owned())),
    Outcome => |v| Arg::Text(Some(v.as_str().to_owned())),
    RunStatus => |v| Arg::Text(Some(v.as_str().to_owned())),
    GuardKind => |v| Arg::Text(Some(v.as_str().to_owned())),
    Option<GuardKind> => |v| Arg::Text(v.map(|k| k.as_str().to_owned())),
}

/// One statement: its text, with `?` where values go, and those values in order.
#[derive(Clone, Default)]
pub(crate) struct Sql {
    text: String,
    args: Vec<Arg>,
}

/// The text and how many values, never the values: some are secrets (OAuth tokens).
impl std::fmt::Debug for Sql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sql")
            .field("text", &self.text)
            .field("values", &self.args.len())
            .finish()
    }
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Binds the next `?` of the text.
    pub(crate) fn bind(mut self, value: impl Into<Arg>) -> Sql {
        self.args.push(value.into());
        self
    }

    /// Appends text (without `?`: values go through [`push_bind`](Self::push_bind)).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends one `?` and its value.
    pub(crate) fn push_bind(&mut self, value: impl Into<Arg>) -> &mut Sql {
        self.text.push('?');
        self.args.push(value.into());
        self
    }

    /// Appends `(?, ?, …)`, one `?` per value: the list of an `IN`.
    pub(crate) fn push_list<A: Into<Arg>>(
        &mut self,
        values: impl IntoIterator<Item = A>,
    ) -> &mut Sql {
        self.text.push('(');
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.push_bind(v);
        }
        self.text.push(')');
        self
    }

    /// Appends ` VALUES (…), (…)`: one row per item, its values given by `row`.
    pub(crate) fn push_values<T>(
        &mut self,
        items: impl IntoIterator<Item = T>,
        mut row: impl FnMut(&mut Row<'_>, T),
    ) -> &mut Sql {
        self.text.push_str(" VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.text.push('(');
            row(&mut Row { sql: self, n: 0 }, item);
            self.text.push(')');
        }
        self
    }

    /// The text as `dialect` takes it: PostgreSQL numbers its placeholders. A `?` inside a
    /// quoted literal or identifier is left alone.
    fn text_for(&self, dialect: Dialect) -> Cow<'_, str> {
        if dialect == Dialect::Sqlite || !self.text.contains('?') {
            return Cow::Borrowed(&self.text);
        }
        let mut out = String::with_capacity(self.text.len() + 8);
        let mut quote: Option<char> = None;
        // As SQLite counts: `?` is the one after the highest so far, `?NNN` is number NNN.
        let mut n: u32 = 0;
        let mut chars = self.text.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, '\'' | '"') => quote = Some(c),
                (Some(q), _) if c == q => quote = None,
                (None, '?') => {
                    let mut digits = String::new();
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        digits.push(d);
                    }
                    let number = match digits.parse::<u32>() {
                        Ok(k) => k,
                        Err(_) => n + 1,
                    };
                    n = n.max(number);
                    out.push('$');
                    out.push_str(&number.to_string());
                    continue;
                }
                _ => {}
            }
            out.push(c);
        }
        Cow::Owned(out)
    }
}

/// The values of one row of [`Sql::push_values`].
pub(crate) struct Row<'a> {
    sql: &'a mut Sql,
    n: usize,
}

impl Row<'_> {
    pub(crate) fn bind(&mut self, value: impl Into<Arg>) -> &mut Self {
        if self.n > 0 {
            self.sql.text.push_str(", ");
        }
        self.n += 1;
        self.sql.push_bind(value);
        self
    }
}

/// A row type read from the history: decodes from both databases (`#[derive(sqlx::FromRow)]`
/// structs and tuples whose fields do).
pub(crate) trait Record:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A single column's value read from the history, from either database.
pub(crate) trait Value:
    for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Unpin
{
}
impl<T> Value for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// A row read from either database, read column by column.
pub(crate) enum HistoryRow {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl From<SqliteRow> for HistoryRow {
    fn from(r: SqliteRow) -> HistoryRow {
        HistoryRow::Sqlite(r)
    }
}

impl From<PgRow> for HistoryRow {
    fn from(r: PgRow) -> HistoryRow {
        HistoryRow::Postgres(r)
    }
}

impl HistoryRow {
    /// Column `index` (from 0); an error, never a panic, when it does not decode as `T`.
    pub(crate) fn try_get<T: Value>(&self, index: usize) -> Result<T, sqlx::Error> {
        use sqlx::Row;
        match self {
            HistoryRow::Sqlite(r) => r.try_get(index),
            HistoryRow::Postgres(r) => r.try_get(index),
        }
    }
}

fn encode_error(e: sqlx::error::BoxDynError) -> sqlx::Error {
    sqlx::Error::Encode(e)
}

fn sqlite_args(args: &[Arg]) -> Result<SqliteArguments<'static>, sqlx::Error> {
    let mut out = SqliteArguments::default();
    for a in args {
        match a {
            Arg::Int(v) => out.add(*v),
            Arg::Text(v) => out.add(v.clone()),
            Arg::Bool(v) => out.add(*v),
            Arg::Real(v) => out.add(*v),
        }
        .map_err(encode_error)?;
    }
    Ok(out)
}

fn pg_args(args: &[Arg]) -> Result<PgArguments, sqlx::Error> {
    let mut out = PgArguments::default();
    for a in args {
        match a {
            Arg::Int(v) => out.add(*v),
            Arg::Text(v) => out.add(v.clone()),
            Arg::Bool(v) => out.add(*v),
            Arg::Real(v) => out.add(*v),
        }
        .map_err(encode_error)?;
    }
    Ok(out)
}

/// Where a statement runs: a pool, or the connection of an open transaction.
pub(crate) enum Exec<'a> {
    SqlitePool(&'a SqlitePool),
    SqliteConn(&'a mut SqliteConnection),
    PgPool(&'a PgPool, Option<&'a WriteTerm>),
    PgConn(&'a mut PgConnection),
}

/// Runs `$body` with `$e` the executor, `$text` the statement's text in its dialect and
/// `$args` its bound values: written once, compiled for each database.
macro_rules! on_each {
    ($exec:expr, $sql:expr, |$e:ident, $text:ident, $args:ident| $body:expr) => {{
        let sql: &Sql = $sql;
        match $exec {
            Exec::SqlitePool($e) => {
                let $text = sql.text_for(Dialect::Sqlite);
                let $args = sqlite_args(&sql.args)?;
                $body
            }
            Exec::SqliteConn($e) => {
                let $e = &mut *$e;
                let $text = sql.text_for(Dialect::Sqlite);
                let $args = sqlite_args(&sql.args)?;
                $body
            }
            Exec::PgPool($e, _) => {
                let $text = sql.text_for(Dialect::Postgres);
                let $args = pg_args(&sql.args)?;
                $body
            }
            Exec::PgConn($e) => {
                let $e = &mut *$e;
                let $text = sql.text_for(Dialect::Postgres);
                let $args = pg_args(&sql.args)?;
                $body
            }
        }
    }};
}

impl Exec<'_> {
    /// A write. On a pool of a fenced history it runs in a transaction of its own, after the
    /// fence; inside a [`Tx`] the transaction's own fence covers it.
    async fn execute(self, sql: &Sql) -> Result<u64, DbError> {
        if let Exec::PgPool(pool, Some(term)) = self {
            let epoch = term.current()?;
            let mut tx = pool.begin().await?;
            fence(&mut tx, epoch).await?;
            let n = sqlx::query_with(&sql.text_for(Dialect::Postgres), pg_args(&sql.args)?)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            tx.commit().await?;
            return Ok(n);
        }
        let n: Result<u64, sqlx::Error> =
            on_each!(self, sql, |e, text, args| Ok(sqlx::query_with(&text, args)
                .execute(e)
                .await?
                .rows_affected()));
        Ok(n?)
    }

    async fn fetch_all<T: Record>(self, sql: &Sql) -> Result<Vec<T>, sqlx::Error> {
        on_each!(self, sql, |e, text, args| sqlx::query_as_with(&text, args)
            .fetch_all(e)
            .await)
    }

    async fn fetch_optional<T: Record>(self, sql: &Sql) -> Result<Option<T>, sqlx::Error> {
        on_each!(self, sql, |e, text, args| sqlx::query_as_with(&text, args)
            .fetch_optional(e)
            .await)
    }

    async fn rows(self, sql: &Sql) -> Result<Vec<HistoryRow>, sqlx::Error> {
        on_each!(self, sql, |e, text, args| Ok(sqlx::query_with(&text, args)
            .fetch_all(e)
            .await?
            .into_iter()
            .map(HistoryRow::from)
            .collect()))
    }

    async fn scalars<T: Value>(self, sql: &Sql) -> Result<Vec<T>, sqlx::Error> {
        on_each!(self, sql, |e, text, args| sqlx::query_scalar_with(
            &text, args
        )
        .fetch_all(e)
        .await)
    }

    async fn scalar_optional<T: Value>(self, sql: &Sql) -> Result<Option<T>, sqlx::Error> {
        on_each!(self, sql, |e, text, args| sqlx::query_scalar_with(
            &text, args
        )
        .fetch_optional(e)
        .await)
    }
}

impl<'a> From<&'a Db> for Exec<'a> {
    fn from(db: &'a Db) -> Exec<'a> {
        match db {
            Db::Sqlite(p) => Exec::SqlitePool(p),
            Db::Postgres(p, term) => Exec::PgPool(p, term.as_ref()),
        }
    }
}

impl<'a> From<&'a SqlitePool> for Exec<'a> {
    fn from(pool: &'a SqlitePool) -> Exec<'a> {
        Exec::SqlitePool(pool)
    }
}

impl<'a> From<&'a mut Tx> for Exec<'a> {
    fn from(tx: &'a mut Tx) -> Exec<'a> {
        match tx {
            Tx::Sqlite(t) => Exec::SqliteConn(&mut *t),
            Tx::Postgres(t) => Exec::PgConn(&mut *t),
        }
    }
}

/// Running a statement, on a pool (`&Db`) or inside a transaction (`&mut Tx`), the way
/// sqlx's own queries run.
impl Sql {
    /// Runs the statement; the number of rows it changed.
    pub(crate) async fn execute<'a>(self, on: impl Into<Exec<'a>>) -> Result<u64, DbError> {
        on.into().execute(&self).await
    }

    pub(crate) async fn fetch_all<'a, T: Record>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        on.into().fetch_all(&self).await
    }

    pub(crate) async fn fetch_optional<'a, T: Record>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        on.into().fetch_optional(&self).await
    }

    /// The one row the statement must return.
    pub(crate) async fn fetch_one<'a, T: Record>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<T, sqlx::Error> {
        on.into()
            .fetch_optional(&self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Every row, to read column by column ([`HistoryRow::try_get`]): for rows wider than a
    /// tuple reads well.
    pub(crate) async fn fetch_rows<'a>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<Vec<HistoryRow>, sqlx::Error> {
        on.into().rows(&self).await
    }

    /// The first column of every row.
    pub(crate) async fn scalars<'a, T: Value>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<Vec<T>, sqlx::Error> {
        on.into().scalars(&self).await
    }

    /// The first column of the first row, if there is a row.
    pub(crate) async fn scalar_optional<'a, T: Value>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<Option<T>, sqlx::Error> {
        on.into().scalar_optional(&self).await
    }

    /// The first column of the one row the statement must return (`COUNT(*)`, `MAX(id)`,
    /// `INSERT … RETURNING id`).
    pub(crate) async fn scalar<'a, T: Value>(
        self,
        on: impl Into<Exec<'a>>,
    ) -> Result<T, sqlx::Error> {
        on.into()
            .scalar_optional(&self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }
}

/// The history's pool, in either database. Cheap to clone (pools are shared handles).
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    /// A PostgreSQL schema; with a [`WriteTerm`] when several processes may write it and
    /// only the leader's writes count.
    Postgres(PgPool, Option<WriteTerm>),
}

impl Db {
    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(..) => Dialect::Postgres,
        }
    }

    /// A write transaction. SQLite's takes the write lock at once (`BEGIN IMMEDIATE`,
    /// waiting up to the busy timeout): a deferred one that reads before it writes fails at
    /// once with SQLITE_BUSY_SNAPSHOT ("database is locked", code 517), with no wait, when
    /// another process (a `plan` beside the daemon) wrote in between. PostgreSQL's rows lock
    /// as they are written.
    pub(crate) async fn begin_write(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p, None) => Tx::Postgres(p.begin().await?),
            Db::Postgres(p, Some(term)) => {
                let epoch = term.current()?;
                let mut tx = p.begin().await?;
                fence(&mut tx, epoch).await?;
                Tx::Postgres(tx)
            }
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Db::Sqlite(p) => p.close().await,
            Db::Postgres(p, _) => p.close().await,
        }
    }
}

/// An open write transaction of the history.
pub(crate) enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

impl Tx {
    pub(crate) async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(t) => t.commit().await,
            Tx::Postgres(t) => t.commit().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_numbers_the_placeholders_outside_quotes() {
        let mut q = Sql::new("SELECT '?' AS \"a?\", x FROM t WHERE a = ? AND b IN ");
        q.push_list([1i64, 2]);
        assert_eq!(
            q.text_for(Dialect::Postgres),
            "SELECT '?' AS \"a?\", x FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
        assert_eq!(
            q.text_for(Dialect::Sqlite),
            "SELECT '?' AS \"a?\", x FROM t WHERE a = ? AND b IN (?, ?)"
        );
        assert_eq!(q.args.len(), 2);
        let numbered = Sql::new("VALUES (?3, ?1, ?), (?2, ?)");
        assert_eq!(
            numbered.text_for(Dialect::Postgres),
            "VALUES ($3, $1, $4), ($2, $5)"
        );
    }

    #[test]
    fn values_rows_bind_in_order() {
        let mut q = Sql::new("INSERT INTO t (a, b)");
        q.push_values([(1i64, "x"), (2, "y")], |row, (a, b)| {
            row.bind(a).bind(b);
        });
        assert_eq!(q.text, "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)");
        assert_eq!(
            q.args,
            vec![
                Arg::Int(Some(1)),
                Arg::Text(Some("x".into())),
                Arg::Int(Some(2)),
                Arg::Text(Some("y".into()))
            ]
        );
    }
}
