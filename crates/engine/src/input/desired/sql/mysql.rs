//! MySQL/MariaDB: the query runs in a `START TRANSACTION READ ONLY` transaction. At the
//! deadline it is stopped with `KILL QUERY <connection id>` from a second connection (an
//! account may kill its own connections' queries, so the read-only account needs no extra
//! right, only a second connection); the session's `max_statement_time` (MariaDB) or
//! `max_execution_time` (MySQL), a little later, is the backstop.
//!
//! The read-only transaction does not stop DDL here (MySQL commits it implicitly first):
//! that is the query check's job, which refuses anything but one query before it is sent.

use super::rows::consume;
use super::{close, deadline, within_connect_allowance, Database, ReadError};
use crate::input::config::SqlSourceConfig;
use crate::input::desired::DesiredBuilder;
use secrecy::ExposeSecret;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Executor};
use std::str::FromStr;

pub(super) async fn read(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let url = config
        .url
        .expose_secret()
        .replacen("mariadb://", "mysql://", 1);
    let options = MySqlConnectOptions::from_str(&url)
        .map_err(ReadError::Connect)?
        .disable_statement_logging();
    let (mut conn, id) = within_connect_allowance(async {
        let mut conn = options.connect().await?;
        let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
            .fetch_one(&mut conn)
            .await?;
        Ok((conn, id))
    })
    .await?;
    let backstop = config.statement_timeout + deadline::SERVER_GRACE;
    let read = async {
        // MariaDB and MySQL name the statement limit differently; whichever the server knows.
        let secs = backstop.as_secs_f64();
        if conn
            .execute(format!("SET SESSION max_statement_time = {secs}").as_str())
            .await
            .is_err()
        {
            let ms = backstop.as_millis();
            conn.execute(format!("SET SESSION max_execution_time = {ms}").as_str())
                .await
                .map_err(ReadError::Query)?;
        }
        conn.execute("START TRANSACTION READ ONLY")
            .await
            .map_err(ReadError::Query)?;
        let rows = sqlx::query(&config.query)
            .persistent(false)
            .fetch(&mut conn);
        consume(rows, b).await
    };
    let n = deadline::run(
        Database::MySql,
        config.statement_timeout,
        read,
        kill_query(&options, id),
    )
    .await?;
    // Closing the connection ends the (read-only) transaction.
    close(conn).await;
    Ok(n)
}

/// Stops the query running on connection `id`, from a connection of its own.
async fn kill_query(options: &MySqlConnectOptions, id: u64) -> Result<(), String> {
    let mut c = options
        .connect()
        .await
        .map_err(|e| super::connect_message(&e))?;
    c.execute(format!("KILL QUERY {id}").as_str())
        .await
        .map_err(|e| super::query_message(&e))?;
    close(c).await;
    Ok(())
}
