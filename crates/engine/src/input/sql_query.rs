//! Which SQL the source sends: one query that only reads, checked with a real SQL parser
//! (`sqlparser`, in the dialect of the URL's database) before anything reaches the database.
//! The config loader checks it (a bad query is a config error with its line) and the SQL
//! source checks it again next to the send (`desired/sql`); so it is its own module, which
//! depends on neither.
//!
//! A read-only transaction is not enough on its own: MySQL/MariaDB commit it implicitly before
//! DDL (`DROP TABLE` drops), some statements write outside the database (`SELECT … INTO
//! OUTFILE`, `COPY … TO`), and `SET STATEMENT … FOR` lifts the statement timeout. So the check
//! is an allow-list: the text must parse as exactly one query (`SELECT`, `WITH … SELECT`,
//! `VALUES`), and nothing inside it may write, lock, or call a function known to act outside
//! the query (sleeping, server files, other sessions, SQL run from a string). Text the parser
//! cannot read is refused, never sent "to see what the server makes of it".
//!
//! The parser must read the text as the server will, or what it takes for a string could be
//! code on the server. What the two may read differently is refused: control and invisible
//! characters; on MySQL/MariaDB, backslashes (whether `\'` ends a string depends on the
//! server's `sql_mode`) and the comments the server executes (`/*M! … */`, optimizer hints
//! `/*+ … */`; `/*! … */` is parsed as code and checked). PostgreSQL sessions set
//! `standard_conforming_strings` for the same reason (see `postgres.rs`).
//!
//! This guards against mistakes and a hostile edit of the config, not against the database: a
//! view or a function can do whatever its owner may. The boundary is a database account that
//! may only `SELECT` (docs/sql-source.md).

use sqlparser::ast::{
    Expr, ObjectName, Query, Select, Spanned, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer, Whitespace};
use std::ops::ControlFlow;

/// The databases the source reads, picked by the URL's scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    Postgres,
    MySql,
    Sqlite,
}

impl Database {
    /// `postgres://`/`postgresql://`, `mysql://`/`mariadb://`, `sqlite:`; `None` otherwise.
    pub fn from_url(url: &str) -> Option<Database> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Some(Database::Postgres),
            "mysql" | "mariadb" => Some(Database::MySql),
            "sqlite" => Some(Database::Sqlite),
            _ => None,
        }
    }

    /// The engine feature that compiles this database's reader in.
    pub fn feature(self) -> &'static str {
        match self {
            Database::Postgres => "postgres",
            Database::MySql => "mysql",
            Database::Sqlite => "sqlite",
        }
    }

    /// Whether this build reads this database (its feature was on).
    pub fn is_built_in(self) -> bool {
        match self {
            Database::Postgres => cfg!(feature = "postgres"),
            Database::MySql => cfg!(feature = "mysql"),
            Database::Sqlite => cfg!(feature = "sqlite"),
        }
    }

    /// The refusal of a URL whose database this build does not read.
    pub(crate) fn not_built_in(self) -> String {
        format!(
            "this build of studio-role-sync cannot read {} (it was built without the `{}` feature)",
            self.name(),
            self.feature()
        )
    }

    fn name(self) -> &'static str {
        match self {
            Database::Postgres => "PostgreSQL",
            Database::MySql => "MySQL/MariaDB",
            Database::Sqlite => "SQLite",
        }
    }
}

/// Checks the configured query for the database the URL names, for the config loader: the
/// refusal, or nothing when the query may be sent. An unsupported scheme (or a URL not read,
/// for commands that never query) is not this check's to report: the read says so.
pub(crate) fn check_query(url: &str, query: &str) -> Result<(), String> {
    match Database::from_url(url) {
        Some(db) if !db.is_built_in() => Err(db.not_built_in()),
        Some(db) => check(db, query).map_err(|r| r.0),
        None => Ok(()),
    }
}

/// Why a query is refused: a sentence for the admin, without the config key (the caller
/// names `source.sql.query` and its line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What every refusal of a statement's kind ends with.
const ONLY_A_QUERY: &str =
    "the query must be one SELECT (or WITH … SELECT, VALUES) that only reads";

/// Functions refused by name (the last part of a qualified name, compared case-insensitively;
/// a trailing `*` matches a prefix), grouped by why. One list for every database: a name
/// that means nothing on one database is not a query anyone needs there.
const REFUSED_FUNCTIONS: &[(&str, &[&str])] = &[
    (
        "it waits instead of reading (a slow query is stopped by statement_timeout_seconds anyway)",
        &[
            "pg_sleep*",
            "sleep",
            "benchmark",
            "master_pos_wait",
            "master_gtid_wait",
            "source_pos_wait",
            "wait_for_executed_gtid_set",
            "wait_until_sql_thread_after_gtids",
        ],
    ),
    (
        "it reads or writes files on the database server",
        &[
            "pg_read_file",
            "pg_read_binary_file",
            "pg_ls_*",
            "pg_stat_file",
            "pg_file_*",
            "pg_logdir_ls",
            "lo_*",
            "loread",
            "lowrite",
            "load_file",
            "readfile",
            "writefile",
            "edit",
            "fsdir",
            "zipfile",
        ],
    ),
    (
        "it acts on other sessions or on the server",
        &[
            "pg_cancel_backend",
            "pg_terminate_backend",
            "pg_signal_backend",
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_create_*",
            "pg_drop_*",
            "pg_copy_*",
            "pg_replication_*",
            "pg_logical_*",
            "pg_wal_replay_*",
            "pg_backup_*",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_stat_reset*",
            "pg_stat_statements_reset",
            "pg_log_backend_memory_contexts",
            "pg_import_system_collations",
            "pg_notify",
        ],
    ),
    (
        "it takes locks other sessions wait for",
        &[
            "pg_advisory_*",
            "pg_try_advisory_*",
            "get_lock",
            "release_lock",
            "release_all_locks",
        ],
    ),
    (
        "it changes settings or sequences",
        &["set_config", "nextval", "setval"],
    ),
    (
        "it runs SQL given as a string, which this check cannot see",
        &[
            "dblink*",
            "query_to_xml*",
            "cursor_to_xml*",
            "ts_stat",
            "crosstab*",
            "connectby",
            "xpath_table",
        ],
    ),
    (
        "it loads or runs code outside SQL",
        &["load_extension", "fts3_tokenizer", "sys_exec", "sys_eval"],
    ),
];

/// The longest query accepted. Real ones are a few KB; a long list of emails belongs in a
/// table. It also bounds how deep the parsed tree can be (`1 + 1 + …` nests once per two
/// bytes), which the walk and the drop of the tree descend recursively.
pub(crate) const MAX_QUERY_BYTES: usize = 64 * 1024;

/// The stack the check runs on. A `MAX_QUERY_BYTES` query nests at most 32 K levels; 40 K
/// levels took under 8 MB in a debug build, so this leaves room several times over (the
/// parser itself grows its stack on the heap as it needs).
const CHECK_STACK_BYTES: usize = 32 * 1024 * 1024;

/// Checks that `query` is one read-only query for `db`; nothing is sent anywhere. Bounded in
/// time and stack whatever the text: it runs on a thread of its own with a known stack.
pub(crate) fn check(db: Database, query: &str) -> Result<(), Refusal> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(Refusal(format!(
            "is {} KiB; at most {} KiB is accepted: put long lists in a table and join it",
            query.len().div_ceil(1024),
            MAX_QUERY_BYTES / 1024
        )));
    }
    std::thread::scope(|scope| {
        let checker = std::thread::Builder::new()
            .name("sql-query-check".into())
            .stack_size(CHECK_STACK_BYTES)
            .spawn_scoped(scope, || check_here(db, query))
            .map_err(|e| Refusal(format!("cannot be checked: no thread for the check: {e}")))?;
        checker
            .join()
            .unwrap_or_else(|_| Err(Refusal("cannot be checked: the SQL parser failed".into())))
    })
}

fn check_here(db: Database, query: &str) -> Result<(), Refusal> {
    check_characters(db, query)?;
    let dialect = dialect(db);
    let tokens = Tokenizer::new(dialect.as_ref(), query)
        .tokenize_with_location()
        .map_err(|e| unreadable(&e.to_string()))?;
    check_tokens(db, &tokens)?;
    let statements = Parser::new(dialect.as_ref())
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| match e {
            ParserError::RecursionLimitExceeded => Refusal(format!(
                "cannot be checked: it nests too deeply for the SQL parser; {ADVICE}"
            )),
            other => unreadable(&other.to_string()),
        })?;
    let statement = match statements.as_slice() {
        [one] => one,
        [] => return Err(Refusal(format!("holds no statement; {ONLY_A_QUERY}"))),
        _ => {
            return Err(Refusal(format!(
                "several statements are refused: {ONLY_A_QUERY}"
            )))
        }
    };
    if !matches!(statement, Statement::Query(_)) {
        return Err(Refusal(format!(
            "{} is refused: {ONLY_A_QUERY}",
            statement_kind(statement)
        )));
    }
    match statement.visit(&mut Inspector) {
        ControlFlow::Break(refusal) => Err(refusal),
        ControlFlow::Continue(()) => Ok(()),
    }
}

fn dialect(db: Database) -> Box<dyn Dialect> {
    match db {
        Database::Postgres => Box::new(PostgreSqlDialect {}),
        Database::MySql => Box::new(MySqlDialect {}),
        Database::Sqlite => Box::new(SQLiteDialect {}),
    }
}

const ADVICE: &str = "only a query the check can read is sent: write it as a plain SELECT, or \
                      move the logic into a view and select from that";

fn unreadable(parser_message: &str) -> Refusal {
    let m = parser_message
        .strip_prefix("sql parser error: ")
        .unwrap_or(parser_message);
    Refusal(format!(
        "cannot be checked: the SQL parser says: {m}; {ADVICE}"
    ))
}

/// "line L, column C of the query".
fn place(l: Location) -> String {
    format!("line {}, column {} of the query", l.line, l.column)
}

/// " (line L, column C of the query)", or nothing for an unknown place.
fn at(l: Location) -> String {
    if l.line == 0 {
        String::new()
    } else {
        format!(" ({})", place(l))
    }
}

/// Characters the database and the parser may read differently.
fn check_characters(db: Database, query: &str) -> Result<(), Refusal> {
    for (line, text) in query.split('\n').enumerate() {
        for (column, c) in text.chars().enumerate() {
            let place = Location::new(line as u64 + 1, column as u64 + 1);
            if is_odd_character(c) {
                return Err(Refusal(format!(
                    "the character U+{:04X}{} is refused: invisible and control characters can \
                     be read differently by the database and by this check; remove it",
                    c as u32,
                    at(place)
                )));
            }
            if c == '\\' && db == Database::MySql {
                return Err(Refusal(format!(
                    "a backslash{} is refused for MySQL/MariaDB: whether it escapes a quote \
                     depends on the server's sql_mode (NO_BACKSLASH_ESCAPES, ANSI_QUOTES), so \
                     the query cannot be checked reliably; write it without one (CHAR(92) is a \
                     backslash; LIKE takes ESCAPE '!')",
                    at(place)
                )));
            }
        }
    }
    Ok(())
}

fn is_odd_character(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\r'))
        || (c.is_whitespace() && !c.is_ascii())
        || matches!(c,
            '\u{00AD}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// What the token stream shows before parsing: clearer messages for statements the parser
/// does not know (`SET STATEMENT`, `INTO OUTFILE`), and comments MySQL/MariaDB execute.
fn check_tokens(db: Database, tokens: &[TokenWithSpan]) -> Result<(), Refusal> {
    if db == Database::MySql {
        for t in tokens {
            if let Token::Whitespace(Whitespace::MultiLineComment(c)) = &t.token {
                let c = c.trim_start();
                if c.starts_with('+') || c.starts_with("M!") || c.starts_with("m!") {
                    return Err(Refusal(format!(
                        "the comment /*{}…*/{} is refused for MySQL/MariaDB: the server runs \
                         what it holds (/*M! … */ is code for MariaDB, /*+ … */ optimizer hints \
                         can change the statement timeout); remove it",
                        c.chars().take(2).collect::<String>(),
                        at(t.span.start)
                    )));
                }
            }
        }
    }
    let words: Vec<(String, Location)> = tokens
        .iter()
        .filter(|t| !matches!(t.token, Token::Whitespace(_)))
        .map(|t| {
            let w = match &t.token {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                Token::SemiColon => ";".into(),
                Token::LParen => "(".into(),
                _ => String::new(),
            };
            (w, t.span.start)
        })
        .collect();
    let word = |i: usize| words.get(i).map(|(w, _)| w.as_str()).unwrap_or_default();
    match word(0) {
        "SELECT" | "WITH" | "VALUES" | "(" => {}
        "SET" if word(1) == "STATEMENT" => {
            return Err(Refusal(
                "SET STATEMENT … FOR is refused: it would lift the statement timeout, and the \
                 query must be one SELECT (or WITH … SELECT, VALUES) that only reads"
                    .into(),
            ))
        }
        "" if words.is_empty() => {
            return Err(Refusal(format!("holds only comments; {ONLY_A_QUERY}")))
        }
        "" => {
            return Err(Refusal(format!(
                "does not start like a query; {ONLY_A_QUERY}"
            )))
        }
        first => {
            return Err(Refusal(format!(
                "{} statement is refused: {ONLY_A_QUERY}",
                a_kind(first)
            )))
        }
    }
    for (i, (w, loc)) in words.iter().enumerate() {
        match w.as_str() {
            ";" if i + 1 < words.len() => {
                return Err(Refusal(format!(
                    "several statements are refused (the second starts at {}): {ONLY_A_QUERY}",
                    place(words[i + 1].1)
                )));
            }
            "INTO" if matches!(word(i + 1), "OUTFILE" | "DUMPFILE") => {
                return Err(Refusal(format!(
                    "SELECT … INTO {}{} is refused: it writes a file on the database server",
                    word(i + 1),
                    at(*loc)
                )));
            }
            "LOCK" if word(i + 1) == "IN" && word(i + 2) == "SHARE" => {
                return Err(Refusal(format!(
                    "LOCK IN SHARE MODE{} is refused: a locking read makes the database's own \
                     writers wait",
                    at(*loc)
                )));
            }
            _ => {}
        }
    }
    Ok(())
}

/// "a DROP statement", from how the parser prints it.
fn statement_kind(s: &Statement) -> String {
    let text = s.to_string();
    let first = text.split_whitespace().next().unwrap_or("?");
    format!("{} statement", a_kind(&first.to_ascii_uppercase()))
}

/// "a DROP", "an UPDATE".
fn a_kind(keyword: &str) -> String {
    let an = keyword.starts_with(['A', 'E', 'I', 'O', 'U']);
    format!("{} {keyword}", if an { "an" } else { "a" })
}

/// Walks the parsed query for what may not appear anywhere in it, however deeply nested.
struct Inspector;

impl Visitor for Inspector {
    type Break = Refusal;

    fn pre_visit_statement(&mut self, s: &Statement) -> ControlFlow<Refusal> {
        if matches!(s, Statement::Query(_)) {
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(Refusal(format!(
            "{} inside the query is refused: {ONLY_A_QUERY}",
            statement_kind(s)
        )))
    }

    fn pre_visit_query(&mut self, q: &Query) -> ControlFlow<Refusal> {
        match q.locks.first() {
            Some(lock) => ControlFlow::Break(Refusal(format!(
                "{lock} is refused: a locking read makes the database's own writers wait"
            ))),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_select(&mut self, s: &Select) -> ControlFlow<Refusal> {
        match &s.into {
            Some(into) => ControlFlow::Break(Refusal(format!(
                "SELECT … {into}{} is refused: it creates a table or sets variables",
                at(into.span().start)
            ))),
            None => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<Refusal> {
        match e {
            Expr::Function(f) => refused_function(&f.name),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<Refusal> {
        match t {
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            }
            | TableFactor::Function { name, .. } => refused_function(name),
            _ => ControlFlow::Continue(()),
        }
    }
}

fn refused_function(name: &ObjectName) -> ControlFlow<Refusal> {
    let Some(last) = name.0.last().and_then(|p| p.as_ident()) else {
        return ControlFlow::Continue(());
    };
    let called = last.value.to_ascii_lowercase();
    for (why, names) in REFUSED_FUNCTIONS {
        let hit = names.iter().any(|n| match n.strip_suffix('*') {
            Some(prefix) => called.starts_with(prefix),
            None => called == *n,
        });
        if hit {
            return ControlFlow::Break(Refusal(format!(
                "the function {}{} is refused: {why}",
                last.value,
                at(name.span().start)
            )));
        }
    }
    ControlFlow::Continue(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use Database::{MySql, Postgres, Sqlite};

    #[test]
    fn the_url_scheme_picks_the_database() {
        for (url, db) in [
            ("postgres://h/d", Some(Database::Postgres)),
            ("PostgreSQL://h/d", Some(Database::Postgres)),
            ("mysql://h/d", Some(Database::MySql)),
            ("mariadb://h/d", Some(Database::MySql)),
            ("sqlite:///x.db", Some(Database::Sqlite)),
            ("sqlite:x.db", Some(Database::Sqlite)),
            ("oracle://h/d", None),
            ("", None),
        ] {
            assert_eq!(Database::from_url(url), db, "{url}");
        }
        // The config loader's check: refusals for a known database, silence otherwise.
        let e = check_query("mysql://h/d", "DROP TABLE grants").unwrap_err();
        assert!(
            e.starts_with("a DROP statement is refused: the query must be one SELECT"),
            "{e}"
        );
        assert_eq!(check_query("", "DROP TABLE grants"), Ok(()));
        assert_eq!(
            check_query("postgres://h/d", "SELECT email, role FROM g"),
            Ok(())
        );
    }

    const ALL: [Database; 3] = [Postgres, MySql, Sqlite];

    fn refusal(db: Database, query: &str) -> String {
        match check(db, query) {
            Ok(()) => panic!(
                "{db:?} accepted {:?}",
                query.chars().take(200).collect::<String>()
            ),
            Err(r) => r.0,
        }
    }

    #[test]
    fn queries_that_only_read_are_accepted() {
        for q in [
            "SELECT email, role FROM grants",
            "select email, role from grants;",
            "  SELECT email, role FROM grants ;  -- trailing comment",
            "SELECT lower(e.email), 'Admin' FROM employees e WHERE e.team = 'media' \
             UNION ALL SELECT lower(e.email), 'CaptionEditor' FROM employees e \
             JOIN captioners c ON c.id = e.id",
            "WITH staff AS (SELECT email FROM people WHERE active) SELECT email, 'Admin' FROM staff",
            "VALUES ('alice@x.edu', 'Admin'), ('bob@x.edu', 'Admin')",
            "(SELECT email, role FROM a) UNION (SELECT email, role FROM b)",
            "SELECT email, role FROM grants WHERE email IN (SELECT email FROM active)",
            "SELECT email, 'Admin' FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
            "SELECT email, role\nFROM grants\n/* a comment */\nORDER BY email",
            "SELECT 'José@x.edu', 'Admin'",
            // A table called like a refused function is not a call.
            "SELECT email, role FROM sleep",
        ] {
            for db in ALL {
                assert_eq!(check(db, q), Ok(()), "{db:?}: {q}");
            }
        }
        for (db, q) in [
            (Postgres, "SELECT email::text, role::text FROM hr.grants"),
            (Postgres, "SELECT $$a@x.edu$$, 'Admin'"),
            (
                Postgres,
                "SELECT email, role FROM grants /* nested /* comment */ still */",
            ),
            (
                MySql,
                "SELECT `email`, `role` FROM `hr`.`grants` # hash comment",
            ),
            (
                MySql,
                "SELECT CAST(email AS CHAR), role FROM grants LIMIT 10, 20",
            ),
            (Sqlite, "SELECT [email], role FROM grants"),
            (
                Postgres,
                "SELECT DISTINCT ON (email) email, role FROM g ORDER BY email, updated_at DESC",
            ),
            (Postgres, "SELECT lower(email), 'Admin' FROM people WHERE groups @> ARRAY['media']"),
            (Postgres, "SELECT email, role FROM g WHERE role = ANY('{Admin,Editor}'::text[])"),
            (Postgres, "SELECT p.data->>'email', 'Admin' FROM people p WHERE p.active IS TRUE"),
            (Postgres, "SELECT e.email, r.role FROM e CROSS JOIN LATERAL unnest(e.roles) AS r(role)"),
            (Postgres, "SELECT email, role FROM g WHERE updated > now() - interval '1 day'"),
            (MySql, "SELECT LOWER(TRIM(email)), 'Admin' FROM staff WHERE FIND_IN_SET('media', teams) > 0"),
            (MySql, "SELECT email, role FROM g WHERE updated_at > NOW() - INTERVAL 1 DAY"),
            (MySql, "SELECT email, GROUP_CONCAT(role) FROM g GROUP BY email HAVING COUNT(*) > 1"),
            (MySql, "SELECT IFNULL(email, ''), role FROM g WHERE role REGEXP '^(Admin|Editor)$'"),
            (Sqlite, "SELECT email || '', role FROM g WHERE role IN ('Admin') LIMIT -1"),
            (Sqlite, "SELECT email, role FROM g WHERE rowid > 0 AND email GLOB '*@x.edu'"),
        ] {
            assert_eq!(check(db, q), Ok(()), "{db:?}: {q}");
        }
    }

    #[test]
    fn statements_that_are_not_queries_are_refused() {
        for (q, kind) in [
            ("DROP TABLE grants", "DROP"),
            ("drop table grants;", "DROP"),
            ("TRUNCATE grants", "TRUNCATE"),
            ("TRUNCATE TABLE grants", "TRUNCATE"),
            ("ALTER TABLE grants ADD COLUMN x INT", "ALTER"),
            ("RENAME TABLE grants TO g2", "RENAME"),
            ("INSERT INTO grants VALUES ('a@x.edu', 'Admin')", "INSERT"),
            ("UPDATE grants SET role = 'Admin'", "UPDATE"),
            ("DELETE FROM grants", "DELETE"),
            ("DELETE FROM grants RETURNING email, role", "DELETE"),
            ("CREATE TABLE g2 AS SELECT * FROM grants", "CREATE"),
            ("GRANT ALL ON grants TO public", "GRANT"),
            ("CALL cleanup()", "CALL"),
            ("COPY grants TO '/tmp/grants.csv'", "COPY"),
            (
                "COPY (SELECT email, role FROM grants) TO PROGRAM 'sh'",
                "COPY",
            ),
            ("EXPLAIN ANALYZE DELETE FROM grants", "EXPLAIN"),
            ("SET search_path = evil", "SET"),
            ("SHOW TABLES", "SHOW"),
            ("PRAGMA writable_schema = 1", "PRAGMA"),
            ("ATTACH DATABASE '/tmp/x.db' AS x", "ATTACH"),
            ("VACUUM INTO '/tmp/copy.db'", "VACUUM"),
            ("DO $$ BEGIN DELETE FROM grants; END $$", "DO"),
            ("LOCK TABLES grants WRITE", "LOCK"),
            ("HANDLER grants OPEN", "HANDLER"),
            ("COMMIT", "COMMIT"),
            ("/* hidden */ DROP TABLE grants", "DROP"),
        ] {
            for db in ALL {
                let r = refusal(db, q);
                assert_eq!(
                    r,
                    format!("{} statement is refused: {ONLY_A_QUERY}", a_kind(kind)),
                    "{db:?}: {q}"
                );
                assert!(r.starts_with("a ") || r.starts_with("an "), "{r}");
            }
        }
    }

    #[test]
    fn several_statements_are_refused() {
        for db in ALL {
            let r = refusal(db, "SELECT email, role FROM g; DELETE FROM g");
            assert_eq!(
                r,
                format!(
                    "several statements are refused (the second starts at line 1, column 28 of \
                     the query): {ONLY_A_QUERY}"
                )
            );
            let r = refusal(db, "SELECT email, role FROM g;\nCOMMIT;\nDROP TABLE g");
            assert!(r.contains("the second starts at line 2, column 1"), "{r}");
            assert!(refusal(db, "").contains("holds only comments"));
            assert!(refusal(db, "-- nothing").contains("holds only comments"));
        }
    }

    #[test]
    fn writes_hidden_inside_a_query_are_refused() {
        for db in ALL {
            let r = refusal(
                db,
                "WITH d AS (DELETE FROM g RETURNING email, role) SELECT email, role FROM d",
            );
            assert!(
                r.starts_with("a DELETE statement inside the query is refused"),
                "{db:?}: {r}"
            );
            let r = refusal(
                db,
                "WITH u AS (UPDATE g SET role = 'Admin' RETURNING email, role) SELECT * FROM u",
            );
            assert!(
                r.starts_with("an UPDATE statement inside the query"),
                "{db:?}: {r}"
            );
            let r = refusal(db, "SELECT email, role INTO g2 FROM g");
            assert_eq!(
                r,
                "SELECT … INTO g2 (line 1, column 25 of the query) is refused: it creates a \
                 table or sets variables"
            );
            let r = refusal(db, "SELECT email, role FROM g INTO OUTFILE '/tmp/g.csv'");
            assert_eq!(
                r,
                "SELECT … INTO OUTFILE (line 1, column 27 of the query) is refused: it writes a \
                 file on the database server"
            );
            let r = refusal(db, "SELECT email, role INTO DUMPFILE '/tmp/g' FROM g");
            assert!(r.starts_with("SELECT … INTO DUMPFILE"), "{r}");
        }
        let r = refusal(
            MySql,
            "SELECT email, role FROM g /*!50000 INTO OUTFILE '/tmp/g' */",
        );
        assert!(r.starts_with("SELECT … INTO OUTFILE"), "{r}");
    }

    #[test]
    fn locking_reads_are_refused() {
        for db in ALL {
            for (q, lock) in [
                ("SELECT email, role FROM g FOR UPDATE", "FOR UPDATE"),
                ("SELECT email, role FROM g FOR SHARE", "FOR SHARE"),
                (
                    "SELECT email, role FROM g FOR UPDATE NOWAIT",
                    "FOR UPDATE NOWAIT",
                ),
                (
                    "SELECT email, role FROM g WHERE id IN (SELECT id FROM h FOR UPDATE)",
                    "FOR UPDATE",
                ),
            ] {
                assert_eq!(
                    refusal(db, q),
                    format!(
                        "{lock} is refused: a locking read makes the database's own writers wait"
                    ),
                    "{db:?}: {q}"
                );
            }
            let r = refusal(db, "SELECT email, role FROM g LOCK IN SHARE MODE");
            assert!(
                r.starts_with("LOCK IN SHARE MODE (line 1, column 27"),
                "{r}"
            );
        }
    }

    #[test]
    fn set_statement_is_refused() {
        for db in ALL {
            let r = refusal(
                db,
                "SET STATEMENT max_statement_time=0 FOR SELECT email, role FROM g",
            );
            assert!(
                r.starts_with(
                    "SET STATEMENT … FOR is refused: it would lift the statement timeout"
                ),
                "{r}"
            );
        }
    }

    #[test]
    fn functions_with_side_effects_are_refused() {
        for (q, name, why) in [
            (
                "SELECT 'a@x.edu', 'Admin' FROM pg_sleep(20)",
                "pg_sleep",
                "it waits",
            ),
            (
                "SELECT 'a@x.edu', 'Admin' WHERE pg_catalog.pg_sleep(1) IS NULL",
                "pg_sleep",
                "it waits",
            ),
            (
                "SELECT email, role FROM g WHERE SLEEP(5) = 0",
                "SLEEP",
                "it waits",
            ),
            (
                "SELECT email, role FROM (SELECT SLEEP(20)) s, g",
                "SLEEP",
                "it waits",
            ),
            (
                "SELECT BENCHMARK(1000000000, MD5('x')), 'Admin'",
                "BENCHMARK",
                "it waits",
            ),
            (
                "SELECT lo_export(42, '/tmp/x'), 'Admin'",
                "lo_export",
                "files on the database server",
            ),
            (
                "SELECT pg_read_file('/etc/passwd'), 'Admin'",
                "pg_read_file",
                "files on the database server",
            ),
            (
                "SELECT LOAD_FILE('/etc/passwd'), 'Admin'",
                "LOAD_FILE",
                "files on the database server",
            ),
            (
                "SELECT writefile('/tmp/x', 'y'), 'Admin'",
                "writefile",
                "files on the database server",
            ),
            (
                "SELECT email, role FROM g WHERE pg_terminate_backend(1)",
                "pg_terminate_backend",
                "other sessions",
            ),
            (
                "SELECT 'a', 'b' FROM g WHERE pg_cancel_backend(7)",
                "pg_cancel_backend",
                "other sessions",
            ),
            (
                "SELECT * FROM dblink('host=x', 'DELETE FROM g') AS t(a text, b text)",
                "dblink",
                "runs SQL given as a string",
            ),
            (
                "SELECT query_to_xml('DELETE FROM g', true, true, ''), 'x'",
                "query_to_xml",
                "runs SQL given as a string",
            ),
            (
                "SELECT set_config('statement_timeout', '0', false), 'x'",
                "set_config",
                "settings",
            ),
            ("SELECT nextval('s')::text, 'Admin'", "nextval", "sequences"),
            (
                "SELECT pg_advisory_lock(1)::text, 'Admin'",
                "pg_advisory_lock",
                "locks",
            ),
            ("SELECT GET_LOCK('x', 10), 'Admin'", "GET_LOCK", "locks"),
            (
                "SELECT load_extension('/tmp/evil.so'), 'Admin'",
                "load_extension",
                "code outside SQL",
            ),
            ("SELECT \"PG_SLEEP\"(1), 'x'", "PG_SLEEP", "it waits"),
        ] {
            let mut named = 0;
            for db in ALL {
                // What one dialect cannot parse is refused anyway; the others name the function.
                let r = refusal(db, q);
                if r.starts_with("cannot be checked") {
                    continue;
                }
                named += 1;
                assert!(
                    r.starts_with(&format!("the function {name} (line 1, column ")),
                    "{db:?}: {q}: {r}"
                );
                assert!(r.contains(why), "{db:?}: {q}: {r}");
            }
            assert!(named >= 2, "{q}: named by {named} dialect(s)");
        }
    }

    #[test]
    fn what_the_parser_cannot_read_is_refused_with_advice() {
        for db in ALL {
            let r = refusal(db, "SELECT email, role FROM g WHERE (");
            assert!(
                r.starts_with("cannot be checked: the SQL parser says: "),
                "{r}"
            );
            assert!(r.ends_with(ADVICE), "{r}");
            let deep = format!("SELECT {}1{}, 'x'", "(".repeat(500), ")".repeat(500));
            let r = refusal(db, &deep);
            assert!(r.contains("nests too deeply"), "{r}");
            // The longest query accepted, as deep as a query that long can be: checked
            // without exhausting the stack. One byte more is refused for its length.
            let n = (MAX_QUERY_BYTES - "SELECT 1, 'x'".len()) / 2;
            let longest = format!("SELECT 1{}, 'x'", "+1".repeat(n));
            assert!(longest.len() > MAX_QUERY_BYTES - 2, "{}", longest.len());
            assert_eq!(check(db, &longest), Ok(()));
            let chain = format!(
                "SELECT email, role FROM g WHERE {}",
                vec!["email = 'a'"; 4000].join(" OR ")
            );
            assert_eq!(check(db, &chain), Ok(()));
            let over = format!(
                "{longest}{}",
                " ".repeat(MAX_QUERY_BYTES + 1 - longest.len())
            );
            let r = refusal(db, &over);
            assert!(
                r.starts_with("is 65 KiB; at most 64 KiB is accepted"),
                "{r}"
            );
        }
    }

    #[test]
    fn text_the_database_may_read_differently_is_refused() {
        for db in ALL {
            let r = refusal(db, "SELECT email,\u{00A0}role FROM g");
            assert_eq!(
                r,
                "the character U+00A0 (line 1, column 14 of the query) is refused: invisible and \
                 control characters can be read differently by the database and by this check; \
                 remove it"
            );
            assert!(refusal(db, "SELECT email, role\nFROM g\u{200B}")
                .contains("U+200B (line 2, column 7"));
            assert!(refusal(db, "SELECT 1\u{0}").contains("U+0000"));
        }
        // MySQL: `\'` ends the string or not depending on sql_mode, so `'a\'` could hide code.
        let r = refusal(MySql, "SELECT 'a\\', SLEEP(9), '' , 'x'");
        assert!(
            r.starts_with(
                "a backslash (line 1, column 10 of the query) is refused for MySQL/MariaDB"
            ),
            "{r}"
        );
        assert!(
            refusal(MySql, "SELECT \"a\\\", 'x' INTO OUTFILE '/tmp/x' -- \"")
                .starts_with("a backslash")
        );
        // Comments MariaDB and MySQL execute.
        let r = refusal(
            MySql,
            "SELECT email, role FROM g /*M!100000 INTO OUTFILE '/tmp/x' */",
        );
        assert!(
            r.starts_with("the comment /*M!…*/ (line 1, column 27 of the query) is refused"),
            "{r}"
        );
        let r = refusal(
            MySql,
            "SELECT /*+ SET_VAR(max_execution_time=0) */ email, role FROM g",
        );
        assert!(r.starts_with("the comment /*+ …*/"), "{r}");
        // `--` without a space is not a comment in MySQL: the rest is checked as code.
        let r = refusal(MySql, "SELECT 1 --1, SLEEP(9)");
        assert!(r.starts_with("the function SLEEP"), "{r}");
        // Elsewhere a backslash is a plain character, and such comments are plain comments.
        assert_eq!(check(Postgres, "SELECT 'a\\', 'Admin'"), Ok(()));
        assert_eq!(check(Sqlite, "SELECT 'a\\', 'Admin'"), Ok(()));
        assert_eq!(
            check(Postgres, "SELECT /*+ hint */ email, role FROM g"),
            Ok(())
        );
        // PostgreSQL escape strings are read as the server reads them.
        let r = refusal(Postgres, "SELECT E'a\\'', pg_sleep(9)");
        assert!(r.starts_with("the function pg_sleep"), "{r}");
        let r = refusal(Postgres, "SELECT $x$ ', $x$, pg_sleep(9)");
        assert!(r.starts_with("the function pg_sleep"), "{r}");
    }
}
