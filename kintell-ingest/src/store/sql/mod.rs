//! The SQL stores: one implementation of the ports over sqlx and sea-query, with per-backend details behind a
//! crate-private `Backend` trait; `SqliteStore` and `PostgresStore` are that implementation on each backend.
//!
//! Statements are built with sea-query and executed with sqlx; the backend supplies the query builder, how
//! timestamps and JSON are bound, the bind-parameter limit and how an upsert tells inserted rows from updated
//! ones. Every write of many rows is one multi-row statement per call, split only where the backend's
//! bind-parameter limit (or a key repeated within the call) forces it.

mod query;
mod review;
mod rows;

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "postgres")]
pub use postgres::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

use crate::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BeneficiaryGroup, Campaign, Company, Email, EntityKind, InstanceId, Key, NewBatch,
    ProgramInstance, ProgramSlug, User,
};
use crate::ports::{
    BatchFilter, BatchGuard, CatalogData, StoreError, StoreResult, UnitOfWork, UpsertCounts,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_query::{Expr, QueryBuilder, QueryStatementBuilder, Value, Values};
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

    /// The current time as the schema's defaults write it.
    fn now() -> Expr;

    /// An expression true for a row an upsert inserted and false for one it updated, usable in `RETURNING`;
    /// `None` when the backend has none and the existing keys are counted before the upsert instead.
    fn inserted_marker() -> Option<Expr>;

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
        let rows = fetch::<B>(
            &mut conn,
            &query::insert_batch::<B>(batch)?,
            "inserting a batch",
        )
        .await?;
        match rows.first() {
            Some(row) => rows::batch(row),
            None => Err(StoreError::Corrupt {
                what: "ingestion_batches: the insert returned no row".to_owned(),
            }),
        }
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

    // --- ActivityRepository ----------------------------------------------------------------------------------

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
        let doing = "loading the catalogue";
        let companies = fetch::<B>(&mut tx, &query::all(query::COMPANIES), doing).await?;
        let groups = fetch::<B>(&mut tx, &query::all(query::GROUPS), doing).await?;
        let campaigns = fetch::<B>(&mut tx, &query::all(query::CAMPAIGNS), doing).await?;
        let instances = fetch::<B>(&mut tx, &query::all(query::INSTANCES), doing).await?;
        Self::commit(tx).await?;
        Ok(CatalogData {
            companies: companies
                .iter()
                .map(rows::company)
                .collect::<StoreResult<_>>()?,
            groups: groups.iter().map(rows::group).collect::<StoreResult<_>>()?,
            campaigns: campaigns
                .iter()
                .map(rows::campaign)
                .collect::<StoreResult<_>>()?,
            instances: instances
                .iter()
                .map(rows::instance)
                .collect::<StoreResult<_>>()?,
        })
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
        for chunk in keys.chunks(B::MAX_BINDS) {
            let stmt = query::by_texts(table, column, chunk.iter().copied());
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
    async fn check_batches(&mut self, rows: &[Association]) -> StoreResult<()> {
        let ids: std::collections::BTreeSet<uuid::Uuid> = rows
            .iter()
            .filter_map(|a| a.batch_id)
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
        query::run_upsert::<B>(&mut self.tx, spec, rows).await
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
        self.check_batches(rows).await?;
        let rows = rows.iter().map(query::association_row::<B>).collect();
        self.upsert(&query::UPSERT_ASSOCIATIONS, rows).await
    }

    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        save_batch::<B>(&mut self.tx, batch, guard).await
    }

    async fn instances_by_id(&mut self, ids: &[InstanceId]) -> StoreResult<Vec<ProgramInstance>> {
        review::instances_by_id::<B>(&mut self.tx, ids).await
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
        }

        #[async_trait::async_trait]
        impl $crate::ports::ActivityRepository for $store {
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
