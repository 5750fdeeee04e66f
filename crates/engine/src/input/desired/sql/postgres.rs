//! PostgreSQL: the query runs in a `READ ONLY` transaction. At the deadline it is cancelled
//! with `pg_cancel_backend` from a second connection (an account may cancel its own sessions,
//! so the read-only account needs no extra right, only a second connection slot); the
//! transaction's `statement_timeout`, a little later, is the backstop.
//!
//! `standard_conforming_strings` is set on for the transaction: with it off, a backslash in a
//! string would escape the quote on the server but not for the query check, and what the
//! check took for a string could be code.

use super::rows::consume;
use super::{close, deadline, within_connect_allowance, Database, ReadError};
use crate::input::config::SqlSourceConfig;
use crate::input::desired::DesiredBuilder;
use secrecy::ExposeSecret;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;

pub(super) async fn read(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())
        .map_err(ReadError::Connect)?
        .application_name("studio-role-sync")
        .disable_statement_logging();
    let (mut conn, pid) = within_connect_allowance(async {
        let mut conn = options.connect().await?;
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await?;
        Ok((conn, pid))
    })
    .await?;
    let backstop_ms = (config.statement_timeout + deadline::SERVER_GRACE).as_millis();
    let read = async {
        let mut tx = conn.begin().await.map_err(ReadError::Query)?;
        for set_up in [
            "SET TRANSACTION READ ONLY".to_string(),
            format!("SET LOCAL statement_timeout = {backstop_ms}"),
            "SET LOCAL standard_conforming_strings = on".to_string(),
        ] {
            tx.execute(set_up.as_str())
                .await
                .map_err(ReadError::Query)?;
        }
        let rows = sqlx::query(&config.query).persistent(false).fetch(&mut *tx);
        // Nothing to keep: dropping the transaction rolls it back, without waiting for the
        // rest of a result that was not read to the end.
        consume(rows, b).await
    };
    let n = deadline::run(
        Database::Postgres,
        config.statement_timeout,
        read,
        cancel(&options, pid),
    )
    .await?;
    close(conn).await;
    Ok(n)
}

/// Asks the server to cancel the query of session `pid`, from a connection of its own.
async fn cancel(options: &PgConnectOptions, pid: i32) -> Result<(), String> {
    let mut c = options
        .connect()
        .await
        .map_err(|e| super::connect_message(&e))?;
    let done: bool = sqlx::query_scalar("SELECT pg_cancel_backend($1)")
        .bind(pid)
        .fetch_one(&mut c)
        .await
        .map_err(|e| super::query_message(&e))?;
    close(c).await;
    if done {
        Ok(())
    } else {
        Err(format!(
            "the server did not accept the cancel of session {pid}"
        ))
    }
}
