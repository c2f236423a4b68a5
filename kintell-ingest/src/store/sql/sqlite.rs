//! The SQLite store: the shared SQL implementation with SQLite's binding, timestamps and upsert counting.
//!
//! Timestamps are TEXT in UTC, `YYYY-MM-DDTHH:MM:SS.ffffffZ`: fixed width, so ordering by the text is
//! chronological, and the same text the schema's defaults write. JSON is TEXT, UUIDs 16-byte BLOBs.
//!
//! SQLite has no way to tell, in `RETURNING`, a row an upsert inserted from one it updated, so each upsert
//! statement is preceded by one `COUNT(*)` of the chunk's keys in the same transaction: unchanged rows are the
//! ones not returned, updated rows are the existing ones that were returned, inserted rows the rest.
//!
//! Units of work start with `BEGIN IMMEDIATE`: they read and then write, and a deferred transaction that has read
//! cannot take the write lock once another connection has written (it fails with `SQLITE_BUSY` at once instead of
//! waiting for the busy timeout).

use super::{Backend, SqlRow, SqlStore, delegate_ports};
use crate::ports::BoxError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sea_query::{Expr, SqliteQueryBuilder, Value, Values};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

/// How timestamps are written: microseconds, always six digits, `Z`.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The current time in [`TIMESTAMP_FORMAT`], as the schema's defaults compute it (SQLite's `%f` has
/// milliseconds only, so three zeros pad it to microseconds).
const NOW_SQL: &str = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000Z')";

/// SQLite's details.
pub(crate) struct SqliteBackend;

/// Formats a timestamp as stored.
fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format(TIMESTAMP_FORMAT).to_string()
}

/// Parses a stored timestamp: RFC 3339 (any precision, any offset), or SQLite's own `YYYY-MM-DD HH:MM:SS[.f]`
/// (UTC) for rows written by hand.
fn parse_timestamp(s: &str) -> Result<DateTime<Utc>, BoxError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .map(|t| t.and_utc())
        .map_err(|_| format!("{s:?} is not an RFC 3339 timestamp").into())
}

#[async_trait]
impl Backend for SqliteBackend {
    type Pool = SqlitePool;
    type Conn = SqliteConnection;
    type Tx = Transaction<'static, Sqlite>;
    type Pooled = PoolConnection<Sqlite>;
    type Row = SqliteRow;
    type Builder = SqliteQueryBuilder;

    /// `SQLITE_MAX_VARIABLE_NUMBER` of every SQLite since 3.32.
    const MAX_BINDS: usize = 32_766;

    fn timestamp(t: Option<DateTime<Utc>>) -> Value {
        Value::String(t.map(format_timestamp))
    }

    fn json(v: Option<&serde_json::Value>) -> Value {
        Value::String(v.map(serde_json::Value::to_string))
    }

    fn now() -> Expr {
        Expr::cust(NOW_SQL)
    }

    fn inserted_marker() -> Option<Expr> {
        None
    }

    async fn begin(pool: &SqlitePool) -> Result<Self::Tx, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn begin_read(pool: &SqlitePool) -> Result<Self::Tx, sqlx::Error> {
        // A deferred transaction reads one snapshot from its first SELECT on (WAL).
        pool.begin().await
    }

    async fn acquire(pool: &SqlitePool) -> Result<Self::Pooled, sqlx::Error> {
        pool.acquire().await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn rollback(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.rollback().await
    }

    async fn fetch(
        conn: &mut SqliteConnection,
        sql: String,
        values: Values,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .fetch_all(conn)
            .await
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: String,
        values: Values,
    ) -> Result<u64, sqlx::Error> {
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    }
}

impl SqlRow for SqliteRow {
    fn uuid(&self, col: &str) -> Result<Option<uuid::Uuid>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn text(&self, col: &str) -> Result<Option<String>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> Result<Option<i64>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn boolean(&self, col: &str) -> Result<Option<bool>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn date(&self, col: &str) -> Result<Option<chrono::NaiveDate>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn timestamp(&self, col: &str) -> Result<Option<DateTime<Utc>>, BoxError> {
        let text: Option<String> = self.try_get(col)?;
        text.as_deref().map(parse_timestamp).transpose()
    }

    fn json(&self, col: &str) -> Result<Option<serde_json::Value>, BoxError> {
        let text: Option<String> = self.try_get(col)?;
        Ok(text.as_deref().map(serde_json::from_str).transpose()?)
    }
}

/// The store on an SQLite database file (or `:memory:`), migrated with the SQLite migrations.
#[derive(Clone)]
pub struct SqliteStore {
    inner: SqlStore<SqliteBackend>,
}

impl SqliteStore {
    /// A store over a pool whose connections have foreign keys on (as `Database::connect` sets them up).
    pub(crate) fn new(pool: SqlitePool) -> Self {
        SqliteStore {
            inner: SqlStore::new(pool),
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

delegate_ports!(SqliteStore);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_are_fixed_width_and_round_trip_to_the_microsecond() {
        let t = Utc.with_ymd_and_hms(2024, 10, 1, 8, 30, 0).single().expect("valid");
        assert_eq!(format_timestamp(t), "2024-10-01T08:30:00.000000Z");
        let later = t + chrono::Duration::microseconds(1_234_567);
        assert_eq!(format_timestamp(later), "2024-10-01T08:30:01.234567Z");
        assert_eq!(parse_timestamp(&format_timestamp(later)).ok(), Some(later));
        assert!(format_timestamp(t) < format_timestamp(later));
    }

    #[test]
    fn hand_written_timestamps_parse() {
        let t = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().expect("valid");
        assert_eq!(parse_timestamp("2024-01-02 03:04:05").ok(), Some(t));
        assert_eq!(parse_timestamp("2024-01-02T05:04:05+02:00").ok(), Some(t));
        assert!(parse_timestamp("yesterday").is_err());
    }
}
