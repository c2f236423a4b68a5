//! The SQL stores: one implementation of the ports over sqlx and sea-query, with per-backend details behind a
//! crate-private `Backend` trait; `SqliteStore` and `PostgresStore` are that implementation on each backend.
//!
//! Statements are built with sea-query and executed with sqlx; the backend supplies the query builder, how
//! timestamps and JSON are bound, the bind-parameter limit and how an upsert tells inserted rows from updated
//! ones. Every write of many rows is one multi-row statement per call, split only where the backend's
//! bind-parameter limit (or a key repeated within the call) forces it.
//!
//! The import's keyed writes (activities, users of the users export, enrolments) must also say, per row, which id
//! it has and whether it was inserted, changed or left alone. Each joins its keys, as a `VALUES` list carrying the
//! input position, to the table to find the rows as they were, and upserts with `RETURNING "id"` the rows it
//! inserted or changed (the `DO UPDATE … WHERE` skips unchanged ones). On PostgreSQL both are one statement (the
//! upsert in a `WITH`, whose main query reads the snapshot from before it); on SQLite, which allows no writes in
//! `WITH`, the look-up runs just before the upsert in the same transaction.

mod backfill;
mod query;
mod review;
mod rowdoc;
mod rows;
mod webhooks;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::association::DecidedAssociation;
use crate::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BeneficiaryGroup, Campaign, Company, CompletionKey, CompletionWrite, Email, Enrollment,
    EnrollmentRole, EntityKind, InstanceId, Key, MatchKey, MatchWrite, NewBatch, ProgramInstance,
    ProgramSlug, RowErrorRecord, RowOutcome, SessionId, SessionWrite, StoredRow, User, UserId,
    UserWrite, Written,
};
use crate::ports::{
    BatchFilter, BatchGuard, CatalogData, StoreError, StoreResult, UnitOfWork, UpsertCounts,
};
use crate::store::lineage;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_query::{Expr, QueryBuilder, QueryStatementBuilder, SelectStatement, Value, Values};
use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::ops::DerefMut;

pub(crate) use rows::SqlRow;

/// What differs between SQLite and PostgreSQL: connections, binding of a few types, and counting upserts.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    /// The connection pool.
    type Pool: Clone + Send + Sync + 'static;
    /// One connection.
    type Conn: Send;
    /// An open transaction (`sqlx::Transaction<'static, _>`), rolled back on drop.
    type Tx: Send + DerefMut<Target = Self::Conn>;
    /// A connection borrowed from the pool.
    type Pooled: Send + DerefMut<Target = Self::Conn>;
    /// A result row.
    type Row: SqlRow + Send + Sync;
    /// The sea-query dialect.
    type Builder: QueryBuilder + Default + Send + Sync;

    /// The most bind parameters one statement may carry.
    const MAX_BINDS: usize;

    /// A timestamp as bound to a timestamp column.
    fn timestamp(t: Option<DateTime<Utc>>) -> Value;

    /// A JSON document as bound to a JSON column.
    fn json(v: Option<&serde_json::Value>) -> Value;

    /// A JSON document given as its text (valid JSON), as written to a JSON column by the multi-row writes.
    fn json_text(text: String) -> Value;

    /// The statement that refreshes the planner's statistics of `tables`; `None` where the planner needs none
    /// kept fresh (SQLite plans from its indexes when it has no statistics).
    fn analyze(tables: &[&str]) -> Option<String>;

    /// The current time as the schema's defaults write it.
    fn now() -> Expr;

    /// An expression true for a row an upsert inserted and false for one it updated, usable in `RETURNING`;
    /// `None` when the backend has none and the existing keys are counted before the upsert instead.
    fn inserted_marker() -> Option<Expr>;

    /// Whether a data-modifying statement may stand in a `WITH` clause, so that the look-up of the rows a write
    /// finds and the write itself are one statement; otherwise the look-up runs just before the write, in the same
    /// transaction.
    const WRITES_IN_CTE: bool;

    /// Whether multi-row inserts and key lists travel as one JSON document expanded by the server
    /// (`json_populate_recordset`, `json_array_elements`; see `rowdoc`) rather than as `VALUES` lists of bind
    /// parameters.
    const ROWS_AS_JSON: bool;

    /// Whether rows known to be new are stored with `COPY … FROM STDIN` ([`Backend::copy_in`]) rather than through
    /// the upsert statement: COPY neither plans nor evaluates a statement per row, nor inserts speculatively as
    /// `ON CONFLICT` does.
    const COPY_NEW_ROWS: bool;

    /// Runs `statement` (`COPY … FROM STDIN`) with `data` in its text format; returns the rows stored. Called only
    /// where [`Backend::COPY_NEW_ROWS`] holds.
    async fn copy_in(
        conn: &mut Self::Conn,
        statement: String,
        data: Vec<u8>,
    ) -> Result<u64, sqlx::Error>;

    /// A statement that serialises legacy adoptions of one table until the transaction ends (`key` names the
    /// table); `None` when the transaction alone does (a writer that holds the database's only write lock).
    fn exclusive_lock(key: i64) -> Option<SelectStatement>;

    /// Starts a transaction that will write.
    async fn begin(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error>;

    /// Starts a transaction whose reads all see one snapshot.
    async fn begin_read(pool: &Self::Pool) -> Result<Self::Tx, sqlx::Error>;

    /// Borrows a connection.
    async fn acquire(pool: &Self::Pool) -> Result<Self::Pooled, sqlx::Error>;

    /// Commits.
    async fn commit(tx: Self::Tx) -> Result<(), sqlx::Error>;

    /// Rolls back.
    async fn rollback(tx: Self::Tx) -> Result<(), sqlx::Error>;

    /// The name of the constraint a database error reports, in PostgreSQL's naming on both backends.
    fn constraint(err: &dyn sqlx::error::DatabaseError) -> Option<String>;

    /// Runs a statement and returns its rows.
    async fn fetch(
        conn: &mut Self::Conn,
        sql: String,
        values: Values,
    ) -> Result<Vec<Self::Row>, sqlx::Error>;

    /// Runs a statement and returns the number of rows it changed.
    async fn execute(
        conn: &mut Self::Conn,
        sql: String,
        values: Values,
    ) -> Result<u64, sqlx::Error>;
}

/// The most rows one statement of a multi-row write carries when these rows travel as one JSON document: bounded
/// so that a very large call does not become one very large statement.
const JSON_ROWS_PER_STATEMENT: usize = 10_000;

/// How many rows one multi-row statement carries when each costs `binds` parameters as a `VALUES` list: as many as
/// the bind limit allows, or [`JSON_ROWS_PER_STATEMENT`] where rows travel as one JSON document.
fn rows_per_statement<B: Backend>(binds: usize) -> usize {
    if B::ROWS_AS_JSON {
        JSON_ROWS_PER_STATEMENT
    } else {
        (B::MAX_BINDS / binds.max(1)).max(1)
    }
}

/// Builds a statement for backend `B`.
fn build<B: Backend>(stmt: &impl QueryStatementBuilder) -> (String, Values) {
    stmt.build_any(&B::Builder::default())
}

/// Runs a built statement, returning its rows; a driver error is translated for `doing`.
async fn fetch<B: Backend>(
    conn: &mut B::Conn,
    stmt: &impl QueryStatementBuilder,
    doing: &str,
) -> StoreResult<Vec<B::Row>> {
    let (sql, values) = build::<B>(stmt);
    B::fetch(conn, sql, values)
        .await
        .map_err(|e| translate::<B>(e, doing))
}

/// Runs a built statement, returning how many rows it changed.
async fn execute<B: Backend>(
    conn: &mut B::Conn,
    stmt: &impl QueryStatementBuilder,
    doing: &str,
) -> StoreResult<u64> {
    let (sql, values) = build::<B>(stmt);
    B::execute(conn, sql, values)
        .await
        .map_err(|e| translate::<B>(e, doing))
}

/// Turns a driver error into the store's: constraint violations by kind, everything else `Backend`.
///
/// A violation the backend does not locate (SQLite's foreign keys) is named after the operation and the driver's
/// message.
pub(crate) fn translate<B: Backend>(err: sqlx::Error, doing: &str) -> StoreError {
    use sqlx::error::ErrorKind;
    if let sqlx::Error::Database(db) = &err {
        let constraint =
            || B::constraint(db.as_ref()).unwrap_or_else(|| format!("{doing}: {}", db.message()));
        match db.kind() {
            ErrorKind::UniqueViolation => {
                return StoreError::Duplicate {
                    constraint: constraint(),
                };
            }
            ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
                return StoreError::Invalid {
                    constraint: constraint(),
                };
            }
            ErrorKind::ForeignKeyViolation => {
                return StoreError::MissingReference {
                    constraint: constraint(),
                };
            }
            _ => {}
        }
    }
    StoreError::Backend {
        message: doing.to_owned(),
        source: Box::new(err),
    }
}

/// The store over one backend's pool; the public stores wrap it.
pub(crate) struct SqlStore<B: Backend> {
    pool: B::Pool,
}

impl<B: Backend> Clone for SqlStore<B> {
    fn clone(&self) -> Self {
        SqlStore {
            pool: self.pool.clone(),
        }
    }
}

impl<B: Backend> SqlStore<B> {
    /// A store over `pool`, whose database is migrated.
    pub(crate) fn new(pool: B::Pool) -> Self {
        SqlStore { pool }
    }

    async fn begin(&self) -> StoreResult<B::Tx> {
        B::begin(&self.pool)
            .await
            .map_err(|e| translate::<B>(e, "starting a transaction"))
    }

    async fn acquire(&self) -> StoreResult<B::Pooled> {
        B::acquire(&self.pool)
            .await
            .map_err(|e| translate::<B>(e, "connecting to the database"))
    }

    async fn commit(tx: B::Tx) -> StoreResult<()> {
        B::commit(tx)
            .await
            .map_err(|e| translate::<B>(e, "committing a transaction"))
    }

    /// Starts a unit of work.
    pub(crate) async fn begin_unit(&self) -> StoreResult<Box<dyn UnitOfWork>> {
        let tx = self.begin().await?;
        Ok(Box::new(SqlUnit::<B> { tx }))
    }

    // --- BatchRepository -------------------------------------------------------------------------------------

    pub(crate) async fn insert_batch(&self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        let mut conn = self.acquire().await?;
        insert_batch::<B>(&mut conn, batch).await
    }

    pub(crate) async fn get_batch(&self, id: BatchId) -> StoreResult<Option<BatchRecord>> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(&mut conn, &query::batch_by_id(id), "reading a batch").await?;
        rows.first().map(rows::batch).transpose()
    }

    pub(crate) async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Vec<BatchRecord>> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(&mut conn, &query::list_batches(filter), "listing batches").await?;
        rows.iter().map(rows::batch).collect()
    }

    pub(crate) async fn batches_by_hash(
        &self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        let mut conn = self.acquire().await?;
        let stmt = query::batches_where(entity, "file_hash", file_hash);
        let rows = fetch::<B>(&mut conn, &stmt, "listing batches by file hash").await?;
        rows.iter().map(rows::batch).collect()
    }

    pub(crate) async fn batches_by_file_name(
        &self,
        entity: EntityKind,
        file_name: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        let mut conn = self.acquire().await?;
        let stmt = query::batches_where(entity, "file_name", file_name);
        let rows = fetch::<B>(&mut conn, &stmt, "listing batches by file name").await?;
        rows.iter().map(rows::batch).collect()
    }

    pub(crate) async fn save_batch_alone(
        &self,
        batch: &BatchRecord,
        guard: &BatchGuard,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let saved = save_batch::<B>(&mut tx, batch, guard).await?;
        Self::commit(tx).await?;
        Ok(saved)
    }

    pub(crate) async fn row_errors(
        &self,
        batch: BatchId,
        after_row: i64,
        limit: u32,
    ) -> StoreResult<Vec<RowErrorRecord>> {
        let mut conn = self.acquire().await?;
        let stmt = query::row_errors(batch, after_row, limit);
        let rows = fetch::<B>(&mut conn, &stmt, "reading row errors").await?;
        rows.iter().map(rows::row_error).collect()
    }

    /// One transaction: find (or create) the legacy batch, link the unlinked rows to it, grow its counters.
    pub(crate) async fn adopt_legacy(
        &self,
        kind: ActivityKind,
        new: &NewBatch,
    ) -> StoreResult<(BatchRecord, u64)> {
        let doing = "adopting legacy rows";
        let mut tx = self.begin().await?;
        if let Some(lock) = B::exclusive_lock(legacy_lock_key(kind)) {
            execute::<B>(&mut tx, &lock, doing).await?;
        }
        let found = fetch::<B>(
            &mut tx,
            &query::legacy_batch(lineage::entity_of(kind)),
            doing,
        )
        .await?;
        let (stored, now) = match found.first().map(rows::batch).transpose()? {
            Some(batch) => (batch, new.created_at),
            None => {
                let batch = lineage::new_legacy_batch(new, kind, 0);
                execute::<B>(&mut tx, &query::insert_batch_record::<B>(&batch)?, doing).await?;
                let created = batch.updated_at;
                (batch, created)
            }
        };
        let table = query::activity_table(kind);
        let adopted = execute::<B>(&mut tx, &query::adopt_rows(table, stored.id), doing).await?;
        if adopted > 0 {
            let count = i64::try_from(adopted).map_err(|e| StoreError::Backend {
                message: doing.to_owned(),
                source: Box::new(e),
            })?;
            let grown = lineage::grown_legacy_batch(stored.clone(), count, now);
            if !save_batch::<B>(&mut tx, &grown, &BatchGuard::of(&stored)).await? {
                return Err(StoreError::Corrupt {
                    what: "ingestion_batches: the legacy batch changed under its lock".to_owned(),
                });
            }
        }
        let batch = fetch::<B>(&mut tx, &query::batch_by_id(stored.id), doing).await?;
        let batch = match batch.first() {
            Some(row) => rows::batch(row)?,
            None => {
                return Err(StoreError::Corrupt {
                    what: "ingestion_batches: the legacy batch vanished".to_owned(),
                });
            }
        };
        Self::commit(tx).await?;
        Ok((batch, adopted))
    }

    // --- RunRepository ---------------------------------------------------------------------------------------

    pub(crate) async fn insert_run(
        &self,
        run: &crate::domain::NewRun,
    ) -> StoreResult<crate::domain::RunRecord> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(
            &mut conn,
            &backfill::insert_run::<B>(run)?,
            "inserting a backfill run",
        )
        .await?;
        match rows.first() {
            Some(row) => rows::run(row),
            None => Err(StoreError::Corrupt {
                what: "association_runs: the insert returned no row".to_owned(),
            }),
        }
    }

    pub(crate) async fn get_run(
        &self,
        id: crate::domain::RunId,
    ) -> StoreResult<Option<crate::domain::RunRecord>> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(
            &mut conn,
            &backfill::run_by_id(id),
            "reading a backfill run",
        )
        .await?;
        rows.first().map(rows::run).transpose()
    }

    pub(crate) async fn list_runs(
        &self,
        limit: Option<u32>,
    ) -> StoreResult<Vec<crate::domain::RunRecord>> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(
            &mut conn,
            &backfill::list_runs(limit),
            "listing backfill runs",
        )
        .await?;
        rows.iter().map(rows::run).collect()
    }

    pub(crate) async fn save_run_alone(
        &self,
        run: &crate::domain::RunRecord,
        guard: &crate::domain::RunGuard,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let saved = backfill::save::<B>(&mut tx, run, guard).await?;
        Self::commit(tx).await?;
        Ok(saved)
    }

    // --- ActivityRepository ----------------------------------------------------------------------------------

    pub(crate) async fn prepare_backfill(&self, kinds: &[ActivityKind]) -> StoreResult<()> {
        let mut tables: Vec<&str> = kinds.iter().map(|k| query::activity_table(*k)).collect();
        tables.extend(["activity_associations", "users"]);
        let Some(sql) = B::analyze(&tables) else {
            return Ok(());
        };
        let mut conn = self.acquire().await?;
        B::execute(&mut conn, sql, Values(Vec::new()))
            .await
            .map_err(|e| translate::<B>(e, "refreshing the planner's statistics"))?;
        Ok(())
    }

    pub(crate) async fn count_backfill(
        &self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &crate::ports::BackfillFilter,
    ) -> StoreResult<u64> {
        let mut conn = self.acquire().await?;
        let table = query::activity_table(kind);
        let rows = fetch::<B>(
            &mut conn,
            &backfill::count::<B>(kind, after, filter),
            "counting the rows of a backfill",
        )
        .await?;
        rows::count(rows.first(), table)
    }

    pub(crate) async fn enrollments_of(
        &self,
        instance: InstanceId,
    ) -> StoreResult<Vec<Enrollment>> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(
            &mut conn,
            &backfill::enrollments_of(instance),
            "reading enrolments",
        )
        .await?;
        backfill::enrollment_rows(&rows)
    }

    pub(crate) async fn count_activities(&self, kind: ActivityKind) -> StoreResult<u64> {
        let mut conn = self.acquire().await?;
        let table = query::activity_table(kind);
        let rows = fetch::<B>(&mut conn, &query::count(table), "counting activities").await?;
        rows::count(rows.first(), table)
    }

    pub(crate) async fn activity_lineage(
        &self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivityLineage>> {
        let mut conn = self.acquire().await?;
        let table = query::activity_table(kind);
        let rows = fetch::<B>(
            &mut conn,
            &query::lineage(table, id),
            "reading an activity's lineage",
        )
        .await?;
        rows.first().map(|r| rows::lineage(r, table)).transpose()
    }

    // --- CatalogRepository -----------------------------------------------------------------------------------

    pub(crate) async fn load_catalog(&self) -> StoreResult<CatalogData> {
        let mut tx = B::begin_read(&self.pool)
            .await
            .map_err(|e| translate::<B>(e, "starting a transaction"))?;
        let catalog = CatalogData {
            companies: read_all::<B, _>(&mut tx, query::COMPANIES, rows::company).await?,
            groups: read_all::<B, _>(&mut tx, query::GROUPS, rows::group).await?,
            campaigns: read_all::<B, _>(&mut tx, query::CAMPAIGNS, rows::campaign).await?,
            instances: read_all::<B, _>(&mut tx, query::INSTANCES, rows::instance).await?,
        };
        Self::commit(tx).await?;
        Ok(catalog)
    }

    pub(crate) async fn instance_by_slug(
        &self,
        slug: &ProgramSlug,
    ) -> StoreResult<Option<ProgramInstance>> {
        let mut conn = self.acquire().await?;
        let stmt = query::by_texts(query::INSTANCES, "program_slug", [slug.as_str()]);
        let rows = fetch::<B>(&mut conn, &stmt, "reading a programme instance").await?;
        rows.first().map(rows::instance).transpose()
    }

    pub(crate) async fn instance_by_id(
        &self,
        id: InstanceId,
    ) -> StoreResult<Option<ProgramInstance>> {
        let mut conn = self.acquire().await?;
        let stmt = query::by_id(query::INSTANCES, id.uuid());
        let rows = fetch::<B>(&mut conn, &stmt, "reading a programme instance").await?;
        rows.first().map(rows::instance).transpose()
    }

    pub(crate) async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let mut conn = self.acquire().await?;
        let stmt = query::by_texts(query::USERS, "email", [email.as_str()]);
        let rows = fetch::<B>(&mut conn, &stmt, "reading a user").await?;
        rows.first().map(rows::user).transpose()
    }

    pub(crate) async fn count_users(&self) -> StoreResult<u64> {
        let mut conn = self.acquire().await?;
        let rows = fetch::<B>(&mut conn, &query::count("users"), "counting users").await?;
        rows::count(rows.first(), "users")
    }

    // --- AssociationRepository -------------------------------------------------------------------------------

    pub(crate) async fn get_association(
        &self,
        id: AssociationId,
    ) -> StoreResult<Option<Association>> {
        let mut conn = self.acquire().await?;
        let stmt = query::by_id(query::ASSOCIATIONS, id.uuid());
        let rows = fetch::<B>(&mut conn, &stmt, "reading an association").await?;
        rows.first().map(rows::association).transpose()
    }

    pub(crate) async fn list_reviews(
        &self,
        filter: &crate::ports::ReviewFilter,
    ) -> StoreResult<Vec<crate::ports::ReviewItem>> {
        let mut tx = B::begin_read(&self.pool)
            .await
            .map_err(|e| translate::<B>(e, "starting a transaction"))?;
        let items = review::list_reviews::<B>(&mut tx, filter).await?;
        Self::commit(tx).await?;
        Ok(items)
    }

    pub(crate) async fn campaign_counts(
        &self,
        company: Option<crate::domain::CompanyId>,
    ) -> StoreResult<crate::ports::CampaignCounts> {
        let mut tx = B::begin_read(&self.pool)
            .await
            .map_err(|e| translate::<B>(e, "starting a transaction"))?;
        let counts = review::campaign_counts::<B>(&mut tx, company).await?;
        Self::commit(tx).await?;
        Ok(counts)
    }

    pub(crate) async fn association_for(
        &self,
        kind: ActivityKind,
        activity_id: ActivityId,
    ) -> StoreResult<Option<Association>> {
        let mut conn = self.acquire().await?;
        let stmt = query::association_for(kind, activity_id);
        let rows = fetch::<B>(&mut conn, &stmt, "reading an association").await?;
        rows.first().map(rows::association).transpose()
    }
}

/// The insert of a batch row, on any connection.
async fn insert_batch<B: Backend>(
    conn: &mut B::Conn,
    batch: &NewBatch,
) -> StoreResult<BatchRecord> {
    let rows = fetch::<B>(conn, &query::insert_batch::<B>(batch)?, "inserting a batch").await?;
    match rows.first() {
        Some(row) => rows::batch(row),
        None => Err(StoreError::Corrupt {
            what: "ingestion_batches: the insert returned no row".to_owned(),
        }),
    }
}

/// The guarded overwrite of a batch row, on any connection.
async fn save_batch<B: Backend>(
    conn: &mut B::Conn,
    batch: &BatchRecord,
    guard: &BatchGuard,
) -> StoreResult<bool> {
    let changed = execute::<B>(
        conn,
        &query::save_batch::<B>(batch, guard),
        "saving a batch",
    )
    .await?;
    Ok(changed > 0)
}

/// A unit of work: one transaction, rolled back when dropped uncommitted.
struct SqlUnit<B: Backend> {
    tx: B::Tx,
}

impl<B: Backend> SqlUnit<B> {
    /// Looks rows up by a text column, in as few statements as the bind limit allows (one for any realistic
    /// chunk).
    async fn lookup<T>(
        &mut self,
        table: query::Table,
        column: &'static str,
        keys: &[&str],
        parse: fn(&B::Row) -> StoreResult<T>,
        doing: &str,
    ) -> StoreResult<Vec<T>> {
        let mut found = Vec::new();
        for chunk in keys.chunks(rows_per_statement::<B>(1)) {
            let stmt = query::by_text_list::<B>(table, column, chunk)?;
            let rows = fetch::<B>(&mut self.tx, &stmt, doing).await?;
            for row in &rows {
                found.push(parse(row)?);
            }
        }
        Ok(found)
    }

    /// Refuses associations naming a batch that does not exist.
    ///
    /// `activity_associations.batch_id` has no foreign key in the schema (the record outlives what it names), yet
    /// the port promises [`StoreError::MissingReference`] for an unknown batch: one count of the distinct batch
    /// ids (usually one) stands in for it. Batches are never deleted, so the count cannot go stale before the
    /// write.
    async fn check_batches(&mut self, rows: &[impl query::AssociationWrite]) -> StoreResult<()> {
        let ids: std::collections::BTreeSet<uuid::Uuid> = rows
            .iter()
            .filter_map(query::AssociationWrite::batch)
            .map(BatchId::uuid)
            .collect();
        let ids: Vec<uuid::Uuid> = ids.into_iter().collect();
        for chunk in ids.chunks(B::MAX_BINDS) {
            let stmt = query::count_ids(query::BATCHES.name, chunk);
            let found =
                fetch::<B>(&mut self.tx, &stmt, "checking the batches of associations").await?;
            if rows::count(found.first(), query::BATCHES.name)? < chunk.len() as u64 {
                return Err(StoreError::MissingReference {
                    constraint: "activity_associations_batch_id_fkey".to_owned(),
                });
            }
        }
        Ok(())
    }

    async fn upsert(
        &mut self,
        spec: &query::Upsert,
        rows: Vec<query::KeyedRow>,
    ) -> StoreResult<UpsertCounts> {
        query::run_upsert::<B>(&mut self.tx, spec, rows, true).await
    }

    /// The enrolments of `chunk` (at `first` in `merged`) by COPY where the look-up finds none stored, and with the
    /// upsert statement where it finds a later one; the stored times found go to `stored`. `false`, and nothing
    /// written, when a key turned out to be taken after all (the caller then writes the chunk with the upsert
    /// statement alone).
    async fn enroll_by_copy(
        &mut self,
        merged: &[Enrollment],
        first: usize,
        chunk: &[Enrollment],
        lookup: &sea_query::SelectStatement,
        stored: &mut HashMap<EnrollmentKey, DateTime<Utc>>,
    ) -> StoreResult<bool> {
        let table = "program_enrollments";
        let mut found: HashMap<i64, DateTime<Utc>> = HashMap::new();
        for row in fetch::<B>(&mut self.tx, lookup, "enrolling").await? {
            found.insert(
                rows::ord(&row, table)?,
                rows::timestamp(&row, "enrolled_at", table)?,
            );
        }
        let fresh: Vec<Vec<Value>> = chunk
            .iter()
            .enumerate()
            .filter(|(i, _)| !found.contains_key(&position(first + i)))
            .map(|(_, e)| query::enrollment_values::<B>(e))
            .collect();
        if !fresh.is_empty()
            && !query::copy_rows::<B>(
                &mut self.tx,
                table,
                query::ENROLLMENT_COLUMNS,
                fresh.iter().map(Vec::as_slice),
                "enrolling",
            )
            .await?
        {
            return Ok(false);
        }
        let earlier: Vec<Enrollment> = chunk
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                found
                    .get(&position(first + i))
                    .is_some_and(|at| e.enrolled_at < *at)
            })
            .map(|(_, e)| *e)
            .collect();
        if !earlier.is_empty() {
            let upsert = query::upsert_enrollments::<B>(&earlier)?;
            fetch::<B>(&mut self.tx, &upsert, "enrolling").await?;
        }
        for (ord, at_time) in found {
            stored.insert(enrollment_key(at(merged, ord, table)?), at_time);
        }
        Ok(true)
    }

    /// Associations whose activities have none stored yet, by COPY; the others through the upsert statement.
    ///
    /// The general path ([`Self::upsert`]) also copies new rows, but from values built for the upsert statement;
    /// here the COPY text of each explanation is written straight from the record or the outcome, and only for
    /// the rows found new. The keys of `rows` are distinct.
    async fn associate_by_copy(
        &mut self,
        rows: &[impl query::AssociationWrite + Sync],
    ) -> StoreResult<UpsertCounts> {
        let spec = &query::UPSERT_ASSOCIATIONS;
        let doing = "upserting activity_associations";
        let mut counts = UpsertCounts::default();
        for chunk in rows.chunks(rows_per_statement::<B>(spec.columns.len())) {
            let keys: Vec<[Value; 2]> = chunk.iter().map(query::association_key).collect();
            let present = spec.present::<B>(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (position(i), k.as_slice())),
            )?;
            let copied = query::copy_new_rows::<B, _>(
                &mut self.tx,
                spec.table,
                spec.columns,
                &present,
                chunk.iter().enumerate().map(|(i, a)| (position(i), a)),
                |a| a.values::<B>(true).map(Cow::Owned),
                doing,
            )
            .await?;
            counts.inserted += copied.len() as u64;
            // The others (all of them when a key was taken meanwhile) through the upsert statement, which needs no
            // second look-up.
            let rest: Vec<query::KeyedRow> = chunk
                .iter()
                .enumerate()
                .filter(|(i, _)| !copied.contains(&position(*i)))
                .map(|(_, a)| query::association_row::<B>(a))
                .collect::<StoreResult<_>>()?;
            if !rest.is_empty() {
                counts.add(query::run_upsert::<B>(&mut self.tx, spec, rest, false).await?);
            }
        }
        Ok(counts)
    }

    /// [`UnitOfWork::upsert_associations`] of records or of decided associations.
    async fn associate(
        &mut self,
        rows: &[impl query::AssociationWrite + Sync],
    ) -> StoreResult<UpsertCounts> {
        self.check_batches(rows).await?;
        let mut keys = HashSet::with_capacity(rows.len());
        if B::COPY_NEW_ROWS && rows.iter().all(|a| keys.insert(a.activity())) {
            return self.associate_by_copy(rows).await;
        }
        let rows = rows
            .iter()
            .map(query::association_row::<B>)
            .collect::<StoreResult<_>>()?;
        self.upsert(&query::UPSERT_ASSOCIATIONS, rows).await
    }

    /// Looks stored activities up by key (each key once), in as few statements as the bind limit allows.
    async fn stored_activities<K: Clone + Eq + Hash>(
        &mut self,
        spec: &query::ActivitySpec,
        keys: &[K],
        encode: impl Fn(&K) -> Vec<Value>,
    ) -> StoreResult<Vec<(K, StoredRow)>> {
        let keys = distinct(keys);
        let encoded: Vec<Vec<Value>> = keys.iter().map(encode).collect();
        let per_statement = rows_per_statement::<B>(encoded.first().map_or(1, Vec::len) + 1);
        let doing = format!("looking {} up by key", spec.table);
        let mut found = Vec::new();
        for (n, chunk) in encoded.chunks(per_statement).enumerate() {
            let first = n * per_statement;
            let lookup = spec.lookup::<B>(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (position(first + i), k.as_slice())),
            )?;
            for row in fetch::<B>(&mut self.tx, &lookup.stmt, &doing).await? {
                let (ord, stored) = rows::stored_activity(&row, spec.table)?;
                found.push((at(&keys, ord, spec.table)?.clone(), stored));
            }
        }
        Ok(found)
    }

    /// Upserts activities, one statement (with its look-up) per chunk that the bind limit allows.
    async fn upsert_activities(
        &mut self,
        spec: &query::ActivitySpec,
        writes: Vec<query::KeyedWrite>,
    ) -> StoreResult<Vec<Written>> {
        let per_statement = rows_per_statement::<B>(spec.binds_per_row());
        let doing = format!("upserting {}", spec.table);
        let mut written = Vec::with_capacity(writes.len());
        for chunk in writes.chunks(per_statement) {
            // Where the backend can, the rows whose keys are new are stored by COPY first; the upsert statement
            // then carries only the others.
            let copied = if B::COPY_NEW_ROWS {
                let present = spec.lookup::<B>(chunk.iter().map(|w| (w.ord, w.key.as_slice())))?;
                query::copy_new_rows::<B, _>(
                    &mut self.tx,
                    spec.table,
                    spec.columns,
                    &present.stmt,
                    chunk.iter().map(|w| (w.ord, w)),
                    |w| Ok(Cow::Borrowed(w.values.as_slice())),
                    &doing,
                )
                .await?
            } else {
                HashSet::new()
            };
            let rest: Vec<&query::KeyedWrite> =
                chunk.iter().filter(|w| !copied.contains(&w.ord)).collect();
            let mut existed = HashMap::new();
            let mut changed = HashSet::new();
            if !rest.is_empty() {
                let lookup = spec.lookup::<B>(rest.iter().map(|w| (w.ord, w.key.as_slice())))?;
                let upsert = spec.upsert::<B>(rest.iter().copied())?;
                let (before, ids) =
                    query::write_with_lookup::<B>(&mut self.tx, spec.table, lookup, upsert, &doing)
                        .await?;
                for row in &before {
                    let (ord, stored) = rows::stored_activity(row, spec.table)?;
                    existed.insert(ord, stored.id);
                }
                changed = ids;
            }
            for w in chunk {
                written.push(if copied.contains(&w.ord) {
                    Written {
                        id: w.id,
                        outcome: RowOutcome::Inserted,
                    }
                } else {
                    outcome(w.id, existed.get(&w.ord).copied(), &changed, spec.table)?
                });
            }
        }
        Ok(written)
    }
}

/// Rows per page of [`read_all`].
const READ_PAGE: u64 = 2_000;

/// Every row of `table`, in id order, read in keyset pages of [`READ_PAGE`] rows, each page converted before the
/// next is read: the driver holds a copy of every value of the rows it returns (tens of megabytes for a
/// catalogue of 10,000 campaigns read whole), the records are much smaller.
async fn read_all<B: Backend, T>(
    conn: &mut B::Conn,
    table: query::Table,
    convert: impl Fn(&B::Row) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    use sea_query::ExprTrait;
    let doing = "loading the catalogue";
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let mut page = query::all(table);
        if let Some(id) = after {
            page.and_where(Expr::col("id").gt(Value::Uuid(Some(id))));
        }
        page.limit(READ_PAGE);
        let rows = fetch::<B>(conn, &page, doing).await?;
        for row in &rows {
            all.push(convert(row)?);
        }
        match rows.last() {
            Some(last) if rows.len() as u64 == READ_PAGE => {
                after = Some(rows::id(last, table.name)?)
            }
            _ => return Ok(all),
        }
    }
}

/// The keys in their first order, each once.
fn distinct<K: Clone + Eq + Hash>(keys: &[K]) -> Vec<K> {
    let mut seen = HashSet::with_capacity(keys.len());
    keys.iter().filter(|k| seen.insert(*k)).cloned().collect()
}

/// The position of an input row, as a look-up carries it.
fn position(i: usize) -> i64 {
    i64::try_from(i).unwrap_or(i64::MAX)
}

/// The input item a look-up row's `ord` names.
fn at<'a, K>(items: &'a [K], ord: i64, table: &'static str) -> StoreResult<&'a K> {
    usize::try_from(ord)
        .ok()
        .and_then(|i| items.get(i))
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("{table}: a look-up answered for input row {ord}, which does not exist"),
        })
}

/// How a keyed write went for one row: `before` is the id of the row its key had before the write, `changed`
/// the ids the write inserted or changed.
fn outcome(
    new_id: uuid::Uuid,
    before: Option<uuid::Uuid>,
    changed: &HashSet<uuid::Uuid>,
    table: &'static str,
) -> StoreResult<Written> {
    match before {
        Some(id) if changed.contains(&id) => Ok(Written {
            id,
            outcome: RowOutcome::Updated,
        }),
        Some(id) => Ok(Written {
            id,
            outcome: RowOutcome::Unchanged,
        }),
        None if changed.contains(&new_id) => Ok(Written {
            id: new_id,
            outcome: RowOutcome::Inserted,
        }),
        // PostgreSQL: another transaction committed the key after this statement's snapshot was taken, and the
        // upsert found it unchanged; this snapshot cannot tell its id.
        None => Err(StoreError::Backend {
            message: format!("upserting {table}"),
            source: "a concurrent transaction wrote a row of the same key; retry the unit of work"
                .into(),
        }),
    }
}

/// What makes an enrolment unique.
type EnrollmentKey = (UserId, InstanceId, EnrollmentRole);

fn enrollment_key(e: &Enrollment) -> EnrollmentKey {
    (e.user_id, e.program_instance_id, e.role)
}

/// The name of the external ids' unique key, as the schema names it.
const EXTERNAL_ID_UNIQUE: &str = "user_external_ids_provider_external_id_key";

/// The lock key that serialises legacy adoptions of one activity table.
fn legacy_lock_key(kind: ActivityKind) -> i64 {
    // "KINT" then the table's number.
    0x4B49_4E54_0000_0000
        + match kind {
            ActivityKind::KintellSession => 1,
            ActivityKind::BuddyMatch => 2,
            ActivityKind::CourseCompletion => 3,
        }
}

#[async_trait]
impl<B: Backend> UnitOfWork for SqlUnit<B> {
    async fn users_by_email(&mut self, emails: &[Email]) -> StoreResult<Vec<User>> {
        let keys: Vec<&str> = emails.iter().map(Email::as_str).collect();
        self.lookup(
            query::USERS,
            "email",
            &keys,
            rows::user,
            "looking users up by email",
        )
        .await
    }

    async fn companies_by_slug(&mut self, slugs: &[Key]) -> StoreResult<Vec<Company>> {
        let keys: Vec<&str> = slugs.iter().map(Key::as_str).collect();
        self.lookup(
            query::COMPANIES,
            "slug",
            &keys,
            rows::company,
            "looking companies up by slug",
        )
        .await
    }

    async fn groups_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<BeneficiaryGroup>> {
        let keys: Vec<&str> = keys.iter().map(Key::as_str).collect();
        self.lookup(
            query::GROUPS,
            "key",
            &keys,
            rows::group,
            "looking beneficiary groups up by key",
        )
        .await
    }

    async fn campaigns_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<Campaign>> {
        let keys: Vec<&str> = keys.iter().map(Key::as_str).collect();
        self.lookup(
            query::CAMPAIGNS,
            "key",
            &keys,
            rows::campaign,
            "looking campaigns up by key",
        )
        .await
    }

    async fn instances_by_slug(
        &mut self,
        slugs: &[ProgramSlug],
    ) -> StoreResult<Vec<ProgramInstance>> {
        let keys: Vec<&str> = slugs.iter().map(ProgramSlug::as_str).collect();
        self.lookup(
            query::INSTANCES,
            "program_slug",
            &keys,
            rows::instance,
            "looking programme instances up by slug",
        )
        .await
    }

    async fn upsert_companies(&mut self, rows: &[Company]) -> StoreResult<UpsertCounts> {
        let rows = rows.iter().map(query::company_row::<B>).collect();
        self.upsert(&query::UPSERT_COMPANIES, rows).await
    }

    async fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> StoreResult<UpsertCounts> {
        let rows = rows.iter().map(query::group_row::<B>).collect();
        self.upsert(&query::UPSERT_GROUPS, rows).await
    }

    async fn upsert_campaigns(&mut self, rows: &[Campaign]) -> StoreResult<UpsertCounts> {
        let rows = rows.iter().map(query::campaign_row::<B>).collect();
        self.upsert(&query::UPSERT_CAMPAIGNS, rows).await
    }

    async fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> StoreResult<UpsertCounts> {
        let rows = rows.iter().map(query::instance_row::<B>).collect();
        self.upsert(&query::UPSERT_INSTANCES, rows).await
    }

    async fn upsert_users(&mut self, rows: &[User]) -> StoreResult<UpsertCounts> {
        let rows = rows.iter().map(query::user_row::<B>).collect();
        self.upsert(&query::UPSERT_USERS, rows).await
    }

    async fn upsert_associations(&mut self, rows: &[Association]) -> StoreResult<UpsertCounts> {
        self.associate(rows).await
    }

    async fn upsert_decided(&mut self, rows: &[DecidedAssociation]) -> StoreResult<UpsertCounts> {
        self.associate(rows).await
    }

    async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        insert_batch::<B>(&mut self.tx, batch).await
    }

    async fn batches_by_hash(
        &mut self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        let stmt = query::batches_where(entity, "file_hash", file_hash);
        let rows = fetch::<B>(&mut self.tx, &stmt, "listing batches by file hash").await?;
        rows.iter().map(rows::batch).collect()
    }

    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        save_batch::<B>(&mut self.tx, batch, guard).await
    }

    async fn instances_by_id(&mut self, ids: &[InstanceId]) -> StoreResult<Vec<ProgramInstance>> {
        review::instances_by_id::<B>(&mut self.tx, ids).await
    }

    async fn associations_of(
        &mut self,
        kind: ActivityKind,
        activities: &[ActivityId],
    ) -> StoreResult<Vec<Association>> {
        review::associations_of::<B>(&mut self.tx, kind, activities).await
    }

    async fn association_by_id(&mut self, id: AssociationId) -> StoreResult<Option<Association>> {
        review::association_by_id::<B>(&mut self.tx, id).await
    }

    async fn activity_summary(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<crate::ports::ActivitySummary>> {
        review::activity_summary::<B>(&mut self.tx, kind, id).await
    }

    async fn set_activity_instance(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
        instance: Option<InstanceId>,
    ) -> StoreResult<bool> {
        review::set_activity_instance::<B>(&mut self.tx, kind, id, instance).await
    }

    async fn stored_sessions(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, StoredRow)>> {
        self.stored_activities(&query::SESSIONS, ids, query::session_key)
            .await
    }

    async fn stored_matches(
        &mut self,
        keys: &[MatchKey],
    ) -> StoreResult<Vec<(MatchKey, StoredRow)>> {
        self.stored_activities(&query::MATCHES, keys, query::match_key::<B>)
            .await
    }

    async fn stored_completions(
        &mut self,
        keys: &[CompletionKey],
    ) -> StoreResult<Vec<(CompletionKey, StoredRow)>> {
        self.stored_activities(&query::COMPLETIONS, keys, query::completion_key)
            .await
    }

    async fn stored_user_sources(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<Vec<(Email, StoredRow)>> {
        let emails = distinct(emails);
        let encoded: Vec<Vec<Value>> = emails
            .iter()
            .map(|e| vec![Value::String(Some(e.as_str().to_owned()))])
            .collect();
        let per_statement = rows_per_statement::<B>(2);
        let mut found = Vec::new();
        for (n, chunk) in encoded.chunks(per_statement).enumerate() {
            let first = n * per_statement;
            let lookup = query::user_sources::<B>(
                chunk
                    .iter()
                    .enumerate()
                    .map(|(i, k)| (position(first + i), k.as_slice())),
            )?;
            let doing = "looking the sources of users up";
            for row in fetch::<B>(&mut self.tx, &lookup.stmt, doing).await? {
                let (ord, stored) = rows::stored_user_source(&row)?;
                found.push((at(&emails, ord, "users")?.clone(), stored));
            }
        }
        Ok(found)
    }

    async fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows
            .iter()
            .enumerate()
            .map(|(i, w)| query::session_write::<B>(position(i), w))
            .collect();
        self.upsert_activities(&query::SESSIONS, writes).await
    }

    async fn upsert_matches(&mut self, rows: &[MatchWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows
            .iter()
            .enumerate()
            .map(|(i, w)| query::match_write::<B>(position(i), w))
            .collect();
        self.upsert_activities(&query::MATCHES, writes).await
    }

    async fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows
            .iter()
            .enumerate()
            .map(|(i, w)| query::completion_write::<B>(position(i), w))
            .collect();
        self.upsert_activities(&query::COMPLETIONS, writes).await
    }

    /// Per chunk: the users with their look-up (one statement where the backend allows it), then the external ids
    /// of the users inserted or changed and of those still without one (one statement).
    async fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> StoreResult<Vec<Written>> {
        let per_statement = rows_per_statement::<B>(query::USER_ROW_BINDS);
        let doing = "upserting users of the users export";
        let mut written = Vec::with_capacity(rows.len());
        for (n, chunk) in rows.chunks(per_statement).enumerate() {
            let first = n * per_statement;
            let writes: Vec<query::KeyedWrite> = chunk
                .iter()
                .enumerate()
                .map(|(i, w)| query::user_write::<B>(position(first + i), w))
                .collect();
            let lookup =
                query::user_rows_lookup::<B>(writes.iter().map(|w| (w.ord, w.key.as_slice())))?;
            let upsert = query::upsert_user_rows::<B>(&writes)?;
            let (before, changed) =
                query::write_with_lookup::<B>(&mut self.tx, "users", lookup, upsert, doing).await?;
            let mut existed = HashMap::with_capacity(before.len());
            for row in &before {
                let ord = rows::ord(row, "users")?;
                let id = rows::id(row, "users")?;
                let holder = rows::opt_uuid(row, "ext_user_id", "users")?;
                existed.insert(ord, (id, holder));
            }
            let mut external = Vec::new();
            for (w, kw) in chunk.iter().zip(&writes) {
                let stored = existed.get(&kw.ord).copied();
                let result = outcome(kw.id, stored.map(|(id, _)| id), &changed, "users")?;
                match stored.and_then(|(_, holder)| holder) {
                    Some(holder) if holder != result.id => {
                        return Err(StoreError::Duplicate {
                            constraint: EXTERNAL_ID_UNIQUE.to_owned(),
                        });
                    }
                    Some(_) if result.outcome == RowOutcome::Unchanged => {}
                    _ => external.push(query::external_id_values::<B>(
                        result.id,
                        w.user.email.as_str(),
                        &w.source,
                        w.now,
                    )),
                }
                written.push(result);
            }
            if !external.is_empty() {
                let sent = external.len();
                let stmt = query::upsert_external_ids::<B>(external)?;
                let returned =
                    fetch::<B>(&mut self.tx, &stmt, "ensuring external ids of users").await?;
                // A row not returned is held by another user (the update's condition refused it).
                if returned.len() < sent {
                    return Err(StoreError::Duplicate {
                        constraint: EXTERNAL_ID_UNIQUE.to_owned(),
                    });
                }
            }
        }
        Ok(written)
    }

    /// Repeated keys are merged into one row with the earliest `enrolled_at` (and the first row's id), so each
    /// statement touches a row once; the counts are those of applying the input rows one after another, from the
    /// stored times the look-up found.
    async fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> StoreResult<UpsertCounts> {
        let mut merged: Vec<Enrollment> = Vec::new();
        let mut index: HashMap<EnrollmentKey, usize> = HashMap::new();
        for e in rows {
            match index
                .get(&enrollment_key(e))
                .and_then(|&i| merged.get_mut(i))
            {
                Some(m) => m.enrolled_at = m.enrolled_at.min(e.enrolled_at),
                None => {
                    index.insert(enrollment_key(e), merged.len());
                    merged.push(*e);
                }
            }
        }
        let table = "program_enrollments";
        let per_statement = rows_per_statement::<B>(query::ENROLLMENT_BINDS);
        let mut stored: HashMap<EnrollmentKey, DateTime<Utc>> = HashMap::new();
        for (n, chunk) in merged.chunks(per_statement).enumerate() {
            let first = n * per_statement;
            let keys: Vec<Vec<Value>> = chunk.iter().map(query::enrollment_key).collect();
            let lookup = query::enrollment_lookup::<B>(
                keys.iter()
                    .enumerate()
                    .map(|(i, k)| (position(first + i), k.as_slice())),
            )?;
            if B::COPY_NEW_ROWS
                && self
                    .enroll_by_copy(&merged, first, chunk, &lookup.stmt, &mut stored)
                    .await?
            {
                continue;
            }
            let upsert = query::upsert_enrollments::<B>(chunk)?;
            let (before, _) =
                query::write_with_lookup::<B>(&mut self.tx, table, lookup, upsert, "enrolling")
                    .await?;
            for row in &before {
                let e = at(&merged, rows::ord(row, table)?, table)?;
                stored.insert(
                    enrollment_key(e),
                    rows::timestamp(row, "enrolled_at", table)?,
                );
            }
        }
        let mut counts = UpsertCounts::default();
        for e in rows {
            match stored.entry(enrollment_key(e)) {
                Entry::Vacant(v) => {
                    counts.inserted += 1;
                    v.insert(e.enrolled_at);
                }
                Entry::Occupied(mut o) if e.enrolled_at < *o.get() => {
                    counts.updated += 1;
                    o.insert(e.enrolled_at);
                }
                Entry::Occupied(_) => counts.unchanged += 1,
            }
        }
        Ok(counts)
    }

    async fn backfill_page(
        &mut self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &crate::ports::BackfillFilter,
        limit: u32,
    ) -> StoreResult<Vec<crate::ports::BackfillRow>> {
        backfill::read_page::<B>(&mut self.tx, kind, after, filter, limit).await
    }

    /// An id given twice takes its last instance, as applying the links one after another would leave it.
    async fn set_activity_instances(
        &mut self,
        kind: ActivityKind,
        links: &[(ActivityId, InstanceId)],
    ) -> StoreResult<u64> {
        let mut index: HashMap<ActivityId, usize> = HashMap::with_capacity(links.len());
        let mut last: Vec<(ActivityId, InstanceId)> = Vec::with_capacity(links.len());
        for &(id, instance) in links {
            match index.get(&id) {
                Some(&i) => last[i] = (id, instance),
                None => {
                    index.insert(id, last.len());
                    last.push((id, instance));
                }
            }
        }
        let per_statement = rows_per_statement::<B>(backfill::LINK_BINDS);
        let mut found = 0;
        for chunk in last.chunks(per_statement) {
            found += execute::<B>(
                &mut self.tx,
                &backfill::set_instances::<B>(kind, chunk)?,
                "linking activities to programme instances",
            )
            .await?;
        }
        Ok(found)
    }

    async fn save_run(
        &mut self,
        run: &crate::domain::RunRecord,
        guard: &crate::domain::RunGuard,
    ) -> StoreResult<bool> {
        backfill::save::<B>(&mut self.tx, run, guard).await
    }

    async fn sessions_by_external_id(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<crate::domain::StoredSession>> {
        let ids = distinct(ids);
        let mut found = Vec::new();
        for chunk in ids.chunks(B::MAX_BINDS.saturating_sub(1).max(1)) {
            let stmt = webhooks::sessions_with_people(chunk);
            for row in fetch::<B>(&mut self.tx, &stmt, "reading sessions by external id").await? {
                found.push(rows::stored_session(&row)?);
            }
        }
        Ok(found)
    }

    async fn delivery(
        &mut self,
        id: &crate::domain::DeliveryId,
    ) -> StoreResult<Option<crate::domain::DeliveryRecord>> {
        let rows = fetch::<B>(
            &mut self.tx,
            &webhooks::delivery(id),
            "reading a webhook delivery",
        )
        .await?;
        rows.first().map(rows::delivery).transpose()
    }

    async fn insert_delivery(
        &mut self,
        delivery: &crate::domain::DeliveryRecord,
    ) -> StoreResult<()> {
        execute::<B>(
            &mut self.tx,
            &webhooks::insert_delivery::<B>(delivery)?,
            "recording a webhook delivery",
        )
        .await
        .map(|_| ())
    }

    async fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> StoreResult<()> {
        // The last error of a (batch, row) wins, as writing them one after another would leave it.
        let mut index: HashMap<(BatchId, i64), usize> = HashMap::new();
        let mut last: Vec<&RowErrorRecord> = Vec::new();
        for r in rows {
            match index.get(&(r.batch_id, r.row_number)) {
                Some(&i) => last[i] = r,
                None => {
                    index.insert((r.batch_id, r.row_number), last.len());
                    last.push(r);
                }
            }
        }
        let per_statement = rows_per_statement::<B>(query::ROW_ERROR_BINDS);
        for chunk in last.chunks(per_statement) {
            execute::<B>(
                &mut self.tx,
                &query::put_row_errors::<B>(chunk)?,
                "writing row errors",
            )
            .await?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        SqlStore::<B>::commit(self.tx).await
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        B::rollback(self.tx)
            .await
            .map_err(|e| translate::<B>(e, "rolling a transaction back"))
    }
}

/// Implements every port for a public store type by delegating to its `inner: SqlStore<_>`.
macro_rules! delegate_ports {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::ports::UnitOfWorkFactory for $store {
            async fn begin(
                &self,
            ) -> $crate::ports::StoreResult<Box<dyn $crate::ports::UnitOfWork>> {
                self.inner.begin_unit().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::BatchRepository for $store {
            async fn insert_batch(
                &self,
                batch: &$crate::domain::NewBatch,
            ) -> $crate::ports::StoreResult<$crate::domain::BatchRecord> {
                self.inner.insert_batch(batch).await
            }

            async fn get_batch(
                &self,
                id: $crate::domain::BatchId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::BatchRecord>> {
                self.inner.get_batch(id).await
            }

            async fn list_batches(
                &self,
                filter: &$crate::ports::BatchFilter,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::BatchRecord>> {
                self.inner.list_batches(filter).await
            }

            async fn batches_by_hash(
                &self,
                entity: $crate::domain::EntityKind,
                file_hash: &str,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::BatchRecord>> {
                self.inner.batches_by_hash(entity, file_hash).await
            }

            async fn batches_by_file_name(
                &self,
                entity: $crate::domain::EntityKind,
                file_name: &str,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::BatchRecord>> {
                self.inner.batches_by_file_name(entity, file_name).await
            }

            async fn save_batch(
                &self,
                batch: &$crate::domain::BatchRecord,
                guard: &$crate::ports::BatchGuard,
            ) -> $crate::ports::StoreResult<bool> {
                self.inner.save_batch_alone(batch, guard).await
            }

            async fn row_errors(
                &self,
                batch: $crate::domain::BatchId,
                after_row: i64,
                limit: u32,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::RowErrorRecord>> {
                self.inner.row_errors(batch, after_row, limit).await
            }

            async fn adopt_legacy(
                &self,
                kind: $crate::domain::ActivityKind,
                batch: &$crate::domain::NewBatch,
            ) -> $crate::ports::StoreResult<($crate::domain::BatchRecord, u64)> {
                self.inner.adopt_legacy(kind, batch).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::RunRepository for $store {
            async fn insert_run(
                &self,
                run: &$crate::domain::NewRun,
            ) -> $crate::ports::StoreResult<$crate::domain::RunRecord> {
                self.inner.insert_run(run).await
            }

            async fn get_run(
                &self,
                id: $crate::domain::RunId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::RunRecord>> {
                self.inner.get_run(id).await
            }

            async fn list_runs(
                &self,
                limit: Option<u32>,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::RunRecord>> {
                self.inner.list_runs(limit).await
            }

            async fn save_run(
                &self,
                run: &$crate::domain::RunRecord,
                guard: &$crate::domain::RunGuard,
            ) -> $crate::ports::StoreResult<bool> {
                self.inner.save_run_alone(run, guard).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::ActivityRepository for $store {
            async fn prepare_backfill(
                &self,
                kinds: &[$crate::domain::ActivityKind],
            ) -> $crate::ports::StoreResult<()> {
                self.inner.prepare_backfill(kinds).await
            }

            async fn count_backfill(
                &self,
                kind: $crate::domain::ActivityKind,
                after: Option<$crate::domain::ActivityId>,
                filter: &$crate::ports::BackfillFilter,
            ) -> $crate::ports::StoreResult<u64> {
                self.inner.count_backfill(kind, after, filter).await
            }

            async fn enrollments_of(
                &self,
                instance: $crate::domain::InstanceId,
            ) -> $crate::ports::StoreResult<Vec<$crate::domain::Enrollment>> {
                self.inner.enrollments_of(instance).await
            }

            async fn count_activities(
                &self,
                kind: $crate::domain::ActivityKind,
            ) -> $crate::ports::StoreResult<u64> {
                self.inner.count_activities(kind).await
            }

            async fn activity_lineage(
                &self,
                kind: $crate::domain::ActivityKind,
                id: $crate::domain::ActivityId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::ActivityLineage>> {
                self.inner.activity_lineage(kind, id).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::CatalogRepository for $store {
            async fn load_catalog(&self) -> $crate::ports::StoreResult<$crate::ports::CatalogData> {
                self.inner.load_catalog().await
            }

            async fn instance_by_slug(
                &self,
                slug: &$crate::domain::ProgramSlug,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::ProgramInstance>> {
                self.inner.instance_by_slug(slug).await
            }

            async fn instance_by_id(
                &self,
                id: $crate::domain::InstanceId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::ProgramInstance>> {
                self.inner.instance_by_id(id).await
            }

            async fn user_by_email(
                &self,
                email: &$crate::domain::Email,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::User>> {
                self.inner.user_by_email(email).await
            }

            async fn count_users(&self) -> $crate::ports::StoreResult<u64> {
                self.inner.count_users().await
            }
        }

        #[async_trait::async_trait]
        impl $crate::ports::AssociationRepository for $store {
            async fn get_association(
                &self,
                id: $crate::domain::AssociationId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::Association>> {
                self.inner.get_association(id).await
            }

            async fn association_for(
                &self,
                kind: $crate::domain::ActivityKind,
                activity_id: $crate::domain::ActivityId,
            ) -> $crate::ports::StoreResult<Option<$crate::domain::Association>> {
                self.inner.association_for(kind, activity_id).await
            }

            async fn list_reviews(
                &self,
                filter: &$crate::ports::ReviewFilter,
            ) -> $crate::ports::StoreResult<Vec<$crate::ports::ReviewItem>> {
                self.inner.list_reviews(filter).await
            }

            async fn campaign_counts(
                &self,
                company: Option<$crate::domain::CompanyId>,
            ) -> $crate::ports::StoreResult<$crate::ports::CampaignCounts> {
                self.inner.campaign_counts(company).await
            }
        }
    };
}
pub(crate) use delegate_ports;

#[cfg(test)]
mod tests;
