//! The SQLite store: the shared SQL implementation with SQLite's binding, timestamps and upsert counting.
//!
//! Timestamps are TEXT in UTC in the shape of the schema's defaults and of sqlx's own encoding,
//! `YYYY-MM-DDTHH:MM:SS[.fff[fff[fff]]]+00:00`: because `+` sorts before `.` and every digit, ordering by the
//! text is chronological whatever the number of fraction digits. JSON is TEXT, UUIDs 16-byte BLOBs.
//!
//! SQLite has no way to tell, in `RETURNING`, a row an upsert inserted from one it updated, so each upsert
//! statement is preceded by one `COUNT(*)` of the chunk's keys in the same transaction: unchanged rows are the
//! ones not returned, updated rows are the existing ones that were returned, inserted rows the rest.
//! The import's keyed writes likewise look their keys up just before the upsert.
//!
//! Units of work start with `BEGIN IMMEDIATE`: they read and then write, and a deferred transaction that has read
//! cannot take the write lock once another connection has written (it fails with `SQLITE_BUSY` at once instead of
//! waiting for the busy timeout).

use super::{Backend, SqlRow, SqlStore, delegate_ports};
use crate::ports::BoxError;
use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use sea_query::{Expr, SelectStatement, SqliteQueryBuilder, Value, Values};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{AssertSqlSafe, Row, Sqlite, Transaction};

/// The current time exactly as the schema's defaults write it (milliseconds, `+00:00`).
const NOW_SQL: &str = "strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now')";

/// SQLite's details.
pub(crate) struct SqliteBackend;

/// Formats a timestamp as stored: RFC 3339 with `+00:00` and 0, 3, 6 or 9 fraction digits, as sqlx does, so no
/// precision is lost.
fn format_timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, false)
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

/// The name PostgreSQL gives the unique constraint SQLite reports by its columns (`t.a, t.b`): the table's
/// primary key is `t_pkey`, the indexes named otherwise by the migrations are listed, the rest follow
/// `t_a_b_key`.
fn unique_index_name(columns: &str) -> String {
    let columns = columns.trim();
    let named = [
        (
            "ingestion_batches.entity_kind, ingestion_batches.file_hash",
            "ingestion_batches_in_flight_uq",
        ),
        (
            "program_instances.program_slug",
            "program_instances_program_slug_idx",
        ),
        (
            "kintell_sessions.external_session_id, kintell_sessions.source_system",
            "kintell_sessions_external_session_id_idx",
        ),
    ];
    if let Some((_, name)) = named.iter().find(|(cols, _)| *cols == columns) {
        return (*name).to_owned();
    }
    let mut table = None;
    let mut names = Vec::new();
    for qualified in columns.split(", ") {
        let Some((t, c)) = qualified.split_once('.') else {
            return columns.to_owned();
        };
        table.get_or_insert(t);
        names.push(c);
    }
    match (table, names.as_slice()) {
        (Some(t), ["id"]) => format!("{t}_pkey"),
        (Some(t), _) => format!("{t}_{}_key", names.join("_")),
        (None, _) => columns.to_owned(),
    }
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

    fn json_text(text: String) -> Value {
        Value::String(Some(text))
    }

    fn analyze(_tables: &[&str]) -> Option<String> {
        None
    }

    fn now() -> Expr {
        Expr::cust(NOW_SQL)
    }

    fn inserted_marker() -> Option<Expr> {
        None
    }

    const WRITES_IN_CTE: bool = false;

    const ROWS_AS_JSON: bool = false;

    /// SQLite has no `COPY`; its multi-row prepared inserts are its bulk path.
    const COPY_NEW_ROWS: bool = false;

    async fn copy_in(
        _conn: &mut SqliteConnection,
        _statement: String,
        _data: Vec<u8>,
    ) -> Result<u64, sqlx::Error> {
        Err(sqlx::Error::Configuration(
            "SQLite has no COPY statement".into(),
        ))
    }

    /// Units of work begin `IMMEDIATE`: they hold the write lock from the start.
    fn exclusive_lock(_key: i64) -> Option<SelectStatement> {
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

    fn constraint(err: &dyn sqlx::error::DatabaseError) -> Option<String> {
        let (_, located) = err.message().split_once(" constraint failed: ")?;
        Some(match err.kind() {
            sqlx::error::ErrorKind::UniqueViolation => unique_index_name(located),
            _ => located.trim().to_owned(),
        })
    }

    async fn fetch(
        conn: &mut SqliteConnection,
        sql: String,
        values: Values,
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        let persistent = cached(&values);
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .persistent(persistent)
            .fetch_all(conn)
            .await
    }

    async fn execute(
        conn: &mut SqliteConnection,
        sql: String,
        values: Values,
    ) -> Result<u64, sqlx::Error> {
        let persistent = cached(&values);
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .persistent(persistent)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    }
}

/// The most bind parameters of a statement kept in the connection's statement cache.
///
/// Above it are the multi-row writes and look-ups, whose text changes with the row count, so that a cached copy is
/// seldom used again, while a prepared statement of a thousand rows holds megabytes: kept up to the cache's capacity
/// (100 per connection), they made the import's memory grow with the file (251 MB of peak RSS for 1M rows). They
/// are prepared for one use instead.
const CACHED_BINDS_MAX: usize = 1_000;

/// Whether a statement with these parameters is kept prepared for reuse.
fn cached(values: &Values) -> bool {
    values.0.len() <= CACHED_BINDS_MAX
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
    fn timestamp_text_orders_chronologically_and_round_trips() {
        let t = Utc
            .with_ymd_and_hms(2024, 10, 1, 8, 30, 0)
            .single()
            .expect("valid");
        assert_eq!(format_timestamp(t), "2024-10-01T08:30:00+00:00");
        let times = [
            t,
            t + chrono::Duration::nanoseconds(1),
            t + chrono::Duration::microseconds(1),
            t + chrono::Duration::milliseconds(1),
            t + chrono::Duration::seconds(1),
            t + chrono::Duration::microseconds(1_234_567),
        ];
        for pair in times.windows(2) {
            if let [a, b] = pair {
                assert!(format_timestamp(*a) < format_timestamp(*b), "{a} < {b}");
            }
        }
        // The defaults write milliseconds: "08:30:00.002+00:00" sits between 1 ms and 1 s.
        assert!(format_timestamp(times[3]).as_str() < "2024-10-01T08:30:00.002+00:00");
        assert!("2024-10-01T08:30:00.002+00:00" < format_timestamp(times[4]).as_str());
        for t in times {
            assert_eq!(parse_timestamp(&format_timestamp(t)).ok(), Some(t));
        }
    }

    #[test]
    fn unique_violations_are_named_as_on_postgres() {
        let cases = [
            ("companies.slug", "companies_slug_key"),
            ("companies.id", "companies_pkey"),
            (
                "activity_associations.activity_kind, activity_associations.activity_id",
                "activity_associations_activity_kind_activity_id_key",
            ),
            (
                "ingestion_batches.entity_kind, ingestion_batches.file_hash",
                "ingestion_batches_in_flight_uq",
            ),
            (
                "program_instances.program_slug",
                "program_instances_program_slug_idx",
            ),
            ("something odd", "something odd"),
        ];
        for (columns, name) in cases {
            assert_eq!(unique_index_name(columns), name);
        }
    }

    #[test]
    fn hand_written_timestamps_parse() {
        let t = Utc
            .with_ymd_and_hms(2024, 1, 2, 3, 4, 5)
            .single()
            .expect("valid");
        assert_eq!(parse_timestamp("2024-01-02 03:04:05").ok(), Some(t));
        assert_eq!(parse_timestamp("2024-01-02T05:04:05+02:00").ok(), Some(t));
        assert!(parse_timestamp("yesterday").is_err());
    }
}
