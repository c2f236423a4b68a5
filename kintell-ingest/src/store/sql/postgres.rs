//! The PostgreSQL store: the shared SQL implementation with PostgreSQL's types and upsert counting.
//!
//! An upsert returns `xmax = 0` for each row it inserted or changed: a freshly inserted tuple has no deleting or
//! locking transaction, while a row reached through `ON CONFLICT DO UPDATE` carries the upserting transaction's id.
//! Rows the `WHERE` of the update left alone are not returned, so they are the unchanged ones. One statement per
//! chunk, no prior read.
//! The import's keyed writes, which need the id of every row (unchanged ones too), put the upsert in a `WITH` and
//! read the rows it found from the statement's snapshot in the same statement.

use super::{Backend, SqlRow, SqlStore, delegate_ports, rowdoc};
use crate::ports::BoxError;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_query::{Expr, Func, PostgresQueryBuilder, Query, SelectStatement, Value, Values};
use sea_query_sqlx::SqlxValues;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::{AssertSqlSafe, Postgres, Row, Transaction, TypeInfo, ValueRef};

/// PostgreSQL's details.
pub(crate) struct PostgresBackend;

#[async_trait]
impl Backend for PostgresBackend {
    type Pool = PgPool;
    type Conn = PgConnection;
    type Tx = Transaction<'static, Postgres>;
    type Pooled = PoolConnection<Postgres>;
    type Row = PgRow;
    type Builder = PostgresQueryBuilder;

    /// The wire protocol counts parameters in 16 bits.
    const MAX_BINDS: usize = 65_535;

    fn timestamp(t: Option<DateTime<Utc>>) -> Value {
        Value::ChronoDateTimeUtc(t)
    }

    fn json(v: Option<&serde_json::Value>) -> Value {
        Value::Json(v.map(|v| Box::new(v.clone())))
    }

    fn json_text(text: String) -> Value {
        rowdoc::raw_json(text)
    }

    fn analyze(tables: &[&str]) -> Option<String> {
        let names: Vec<String> = tables.iter().map(|t| format!("\"{t}\"")).collect();
        Some(format!("ANALYZE {}", names.join(", ")))
    }

    fn now() -> Expr {
        Expr::cust("now()")
    }

    fn inserted_marker() -> Option<Expr> {
        Some(Expr::cust("(xmax = 0) AS \"inserted\""))
    }

    const WRITES_IN_CTE: bool = true;

    const ROWS_AS_JSON: bool = true;

    const COPY_NEW_ROWS: bool = true;

    async fn copy_in(
        conn: &mut PgConnection,
        statement: String,
        data: Vec<u8>,
    ) -> Result<u64, sqlx::Error> {
        let mut copy = conn.copy_in_raw(&statement).await?;
        if let Err(e) = copy.send(data).await {
            // The connection is told to end the COPY, so it stays usable (in the failed transaction).
            let _ = copy.abort(e.to_string()).await;
            return Err(e);
        }
        copy.finish().await
    }

    fn exclusive_lock(key: i64) -> Option<SelectStatement> {
        Some(
            Query::select()
                .expr(Func::cust("pg_advisory_xact_lock").arg(key))
                .to_owned(),
        )
    }

    async fn begin(pool: &PgPool) -> Result<Self::Tx, sqlx::Error> {
        pool.begin().await
    }

    async fn begin_read(pool: &PgPool) -> Result<Self::Tx, sqlx::Error> {
        pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
    }

    async fn acquire(pool: &PgPool) -> Result<Self::Pooled, sqlx::Error> {
        pool.acquire().await
    }

    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.commit().await
    }

    async fn rollback(tx: Self::Tx) -> Result<(), sqlx::Error> {
        tx.rollback().await
    }

    fn constraint(err: &dyn sqlx::error::DatabaseError) -> Option<String> {
        err.constraint().map(str::to_owned)
    }

    async fn fetch(
        conn: &mut PgConnection,
        sql: String,
        values: Values,
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let persistent = !rowdoc::reads_document(&sql);
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .persistent(persistent)
            .fetch_all(conn)
            .await
    }

    async fn execute(
        conn: &mut PgConnection,
        sql: String,
        values: Values,
    ) -> Result<u64, sqlx::Error> {
        let persistent = !rowdoc::reads_document(&sql);
        sqlx::query_with(AssertSqlSafe(sql), SqlxValues(values))
            .persistent(persistent)
            .execute(conn)
            .await
            .map(|r| r.rows_affected())
    }
}

impl SqlRow for PgRow {
    fn uuid(&self, col: &str) -> Result<Option<uuid::Uuid>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn text(&self, col: &str) -> Result<Option<String>, BoxError> {
        Ok(self.try_get(col)?)
    }

    /// Widens whatever integer width the column has (the seeds use `INTEGER` where the domain has `i64`).
    fn int(&self, col: &str) -> Result<Option<i64>, BoxError> {
        let raw = self.try_get_raw(col)?;
        if raw.is_null() {
            return Ok(None);
        }
        let width = raw.type_info().name().to_owned();
        Ok(Some(match width.as_str() {
            "INT2" => i64::from(self.try_get::<i16, _>(col)?),
            "INT4" => i64::from(self.try_get::<i32, _>(col)?),
            _ => self.try_get::<i64, _>(col)?,
        }))
    }

    fn boolean(&self, col: &str) -> Result<Option<bool>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn date(&self, col: &str) -> Result<Option<chrono::NaiveDate>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn timestamp(&self, col: &str) -> Result<Option<DateTime<Utc>>, BoxError> {
        Ok(self.try_get(col)?)
    }

    fn json(&self, col: &str) -> Result<Option<serde_json::Value>, BoxError> {
        Ok(self.try_get(col)?)
    }
}

/// The store on a PostgreSQL database, migrated with the PostgreSQL migrations.
#[derive(Clone)]
pub struct PostgresStore {
    inner: SqlStore<PostgresBackend>,
}

impl PostgresStore {
    /// A store over a pool of a migrated database.
    pub(crate) fn new(pool: PgPool) -> Self {
        PostgresStore {
            inner: SqlStore::new(pool),
        }
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

delegate_ports!(PostgresStore);
