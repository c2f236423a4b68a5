//! A store of your own behind the repository ports, plugged into every service of the library.
//!
//! ```text
//! cargo run -p kintell-ingest-examples --example custom_store
//! ```
//!
//! The library speaks to storage only through the traits of `kintell_ingest::ports`: `UnitOfWorkFactory` (hands
//! out transactions, `UnitOfWork`), `BatchRepository`, `RunRepository`, `ActivityRepository`,
//! `CatalogRepository` and `AssociationRepository`. Whatever implements all six is `ports::Repositories`, and
//! `Store::from_repositories` turns it into the `Store` that `Ingestor`, `CatalogImport`, `ReviewQueue`, `Reports`
//! and `Backfill` take.
//!
//! The store here is an *audited* store: it keeps its data in the in-memory store (`store::MemoryStore`, the model
//! for every store: the SQLite and PostgreSQL stores pass the same contract suite) and counts every call, and its
//! units of work count the rows they write, adding them to the totals only when they commit. A store on another
//! database implements the same methods against its driver; the doc comments of `ports` say what each must do,
//! including which `StoreError` a refused write returns.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BeneficiaryGroup, Campaign, Company, CompanyId, CompletionKey, CompletionWrite, DeliveryId,
    DeliveryRecord, Email, Enrollment, EntityKind, InstanceId, Key, MatchKey, MatchWrite, NewBatch,
    NewRun, ProgramInstance, ProgramSlug, RowErrorRecord, RunGuard, RunId, RunRecord, SessionId,
    SessionWrite, StoredRow, StoredSession, User, UserWrite, Written,
};
use kintell_ingest::ingest::{ImportReport, ImportRequest, Ingestor};
use kintell_ingest::ports::{
    ActivityRepository, ActivitySummary, AssociationRepository, BackfillFilter, BackfillRow,
    BatchFilter, BatchGuard, BatchRepository, CampaignCounts, CatalogData, CatalogRepository,
    ReviewFilter, ReviewItem, RunRepository, StoreResult, UnitOfWork, UnitOfWorkFactory,
    UpsertCounts,
};
use kintell_ingest::reports::Reports;
use kintell_ingest::review::{ReviewQuery, ReviewQueue};
use kintell_ingest::store::{MemoryStore, Store};
use kintell_ingest_examples::sample;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kintell_ingest_examples::exit_code(run(&mut std::io::stdout().lock()).await.map(|_| ()))
}

// ---------------------------------------------------------------------------------------------------------------
// The audit: what the store counts.
// ---------------------------------------------------------------------------------------------------------------

/// What the audited store has seen. Shared by the store, its clones and its units of work.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Audit {
    /// Calls of every port method, by name (`uow.` for the methods of a unit of work).
    pub calls: BTreeMap<&'static str, u64>,
    /// Rows written by committed units of work, by table.
    pub committed_rows: BTreeMap<&'static str, u64>,
    /// Units of work begun.
    pub units_begun: u64,
    /// Units of work committed; the others were rolled back (explicitly, after an error, or by being dropped).
    pub units_committed: u64,
}

fn lock(m: &Mutex<Audit>) -> MutexGuard<'_, Audit> {
    // Every update is a single step, so a panic elsewhere cannot leave the audit half-changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------------------------
// The store and its unit of work.
// ---------------------------------------------------------------------------------------------------------------

/// The audited store. Clones share the data and the audit.
#[derive(Clone, Default)]
pub struct AuditedStore {
    data: MemoryStore,
    audit: Arc<Mutex<Audit>>,
}

impl AuditedStore {
    /// An empty store.
    pub fn new() -> Self {
        AuditedStore::default()
    }

    /// The audit so far.
    pub fn audit(&self) -> Audit {
        lock(&self.audit).clone()
    }

    fn call(&self, name: &'static str) {
        *lock(&self.audit).calls.entry(name).or_default() += 1;
    }
}

/// A unit of work of the audited store: the in-memory store's unit, plus the rows written so far.
struct AuditedUnit {
    inner: Box<dyn UnitOfWork>,
    audit: Arc<Mutex<Audit>>,
    written: BTreeMap<&'static str, u64>,
}

impl AuditedUnit {
    fn call(&self, name: &'static str) {
        *lock(&self.audit).calls.entry(name).or_default() += 1;
    }

    fn wrote(&mut self, table: &'static str, rows: usize) {
        *self.written.entry(table).or_default() += rows as u64;
    }
}

#[async_trait]
impl UnitOfWorkFactory for AuditedStore {
    async fn begin(&self) -> StoreResult<Box<dyn UnitOfWork>> {
        self.call("begin");
        let inner = self.data.begin().await?;
        lock(&self.audit).units_begun += 1;
        Ok(Box::new(AuditedUnit {
            inner,
            audit: Arc::clone(&self.audit),
            written: BTreeMap::new(),
        }))
    }
}

#[async_trait]
impl UnitOfWork for AuditedUnit {
    // Look-ups: counted and passed on.
    async fn users_by_email(&mut self, emails: &[Email]) -> StoreResult<Vec<User>> {
        self.call("uow.users_by_email");
        self.inner.users_by_email(emails).await
    }
    async fn companies_by_slug(&mut self, slugs: &[Key]) -> StoreResult<Vec<Company>> {
        self.call("uow.companies_by_slug");
        self.inner.companies_by_slug(slugs).await
    }
    async fn groups_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<BeneficiaryGroup>> {
        self.call("uow.groups_by_key");
        self.inner.groups_by_key(keys).await
    }
    async fn campaigns_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<Campaign>> {
        self.call("uow.campaigns_by_key");
        self.inner.campaigns_by_key(keys).await
    }
    async fn instances_by_slug(
        &mut self,
        slugs: &[ProgramSlug],
    ) -> StoreResult<Vec<ProgramInstance>> {
        self.call("uow.instances_by_slug");
        self.inner.instances_by_slug(slugs).await
    }
    async fn batches_by_hash(
        &mut self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.call("uow.batches_by_hash");
        self.inner.batches_by_hash(entity, file_hash).await
    }
    async fn sessions_by_external_id(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<StoredSession>> {
        self.call("uow.sessions_by_external_id");
        self.inner.sessions_by_external_id(ids).await
    }
    async fn delivery(&mut self, id: &DeliveryId) -> StoreResult<Option<DeliveryRecord>> {
        self.call("uow.delivery");
        self.inner.delivery(id).await
    }
    async fn insert_delivery(&mut self, delivery: &DeliveryRecord) -> StoreResult<()> {
        self.call("uow.insert_delivery");
        self.inner.insert_delivery(delivery).await
    }
    async fn stored_sessions(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, StoredRow)>> {
        self.call("uow.stored_sessions");
        self.inner.stored_sessions(ids).await
    }
    async fn stored_matches(
        &mut self,
        keys: &[MatchKey],
    ) -> StoreResult<Vec<(MatchKey, StoredRow)>> {
        self.call("uow.stored_matches");
        self.inner.stored_matches(keys).await
    }
    async fn stored_completions(
        &mut self,
        keys: &[CompletionKey],
    ) -> StoreResult<Vec<(CompletionKey, StoredRow)>> {
        self.call("uow.stored_completions");
        self.inner.stored_completions(keys).await
    }
    async fn stored_user_sources(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<Vec<(Email, StoredRow)>> {
        self.call("uow.stored_user_sources");
        self.inner.stored_user_sources(emails).await
    }
    async fn instances_by_id(&mut self, ids: &[InstanceId]) -> StoreResult<Vec<ProgramInstance>> {
        self.call("uow.instances_by_id");
        self.inner.instances_by_id(ids).await
    }
    async fn associations_of(
        &mut self,
        kind: ActivityKind,
        activities: &[ActivityId],
    ) -> StoreResult<Vec<Association>> {
        self.call("uow.associations_of");
        self.inner.associations_of(kind, activities).await
    }
    async fn association_by_id(&mut self, id: AssociationId) -> StoreResult<Option<Association>> {
        self.call("uow.association_by_id");
        self.inner.association_by_id(id).await
    }
    async fn activity_summary(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivitySummary>> {
        self.call("uow.activity_summary");
        self.inner.activity_summary(kind, id).await
    }
    async fn backfill_page(
        &mut self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
        limit: u32,
    ) -> StoreResult<Vec<BackfillRow>> {
        self.call("uow.backfill_page");
        self.inner.backfill_page(kind, after, filter, limit).await
    }

    // Writes: counted, passed on, and their rows noted (they count once the unit commits).
    async fn upsert_companies(&mut self, rows: &[Company]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_companies");
        self.wrote("companies", rows.len());
        self.inner.upsert_companies(rows).await
    }
    async fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_groups");
        self.wrote("beneficiary_groups", rows.len());
        self.inner.upsert_groups(rows).await
    }
    async fn upsert_campaigns(&mut self, rows: &[Campaign]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_campaigns");
        self.wrote("campaigns", rows.len());
        self.inner.upsert_campaigns(rows).await
    }
    async fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_instances");
        self.wrote("program_instances", rows.len());
        self.inner.upsert_instances(rows).await
    }
    async fn upsert_users(&mut self, rows: &[User]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_users");
        self.wrote("users", rows.len());
        self.inner.upsert_users(rows).await
    }
    async fn upsert_associations(&mut self, rows: &[Association]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_associations");
        self.wrote("activity_associations", rows.len());
        self.inner.upsert_associations(rows).await
    }
    async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        self.call("uow.insert_batch");
        self.wrote("ingestion_batches", 1);
        self.inner.insert_batch(batch).await
    }
    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        self.call("uow.save_batch");
        self.inner.save_batch(batch, guard).await
    }
    async fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> StoreResult<Vec<Written>> {
        self.call("uow.upsert_sessions");
        self.wrote("kintell_sessions", rows.len());
        self.inner.upsert_sessions(rows).await
    }
    async fn upsert_matches(&mut self, rows: &[MatchWrite]) -> StoreResult<Vec<Written>> {
        self.call("uow.upsert_matches");
        self.wrote("buddy_matches", rows.len());
        self.inner.upsert_matches(rows).await
    }
    async fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> StoreResult<Vec<Written>> {
        self.call("uow.upsert_completions");
        self.wrote("course_completions", rows.len());
        self.inner.upsert_completions(rows).await
    }
    async fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> StoreResult<Vec<Written>> {
        self.call("uow.upsert_user_rows");
        self.wrote("users", rows.len());
        self.inner.upsert_user_rows(rows).await
    }
    async fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> StoreResult<UpsertCounts> {
        self.call("uow.upsert_enrollments");
        self.wrote("program_enrollments", rows.len());
        self.inner.upsert_enrollments(rows).await
    }
    async fn set_activity_instance(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
        instance: Option<InstanceId>,
    ) -> StoreResult<bool> {
        self.call("uow.set_activity_instance");
        self.inner.set_activity_instance(kind, id, instance).await
    }
    async fn set_activity_instances(
        &mut self,
        kind: ActivityKind,
        links: &[(ActivityId, InstanceId)],
    ) -> StoreResult<u64> {
        self.call("uow.set_activity_instances");
        self.inner.set_activity_instances(kind, links).await
    }
    async fn save_run(&mut self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        self.call("uow.save_run");
        self.inner.save_run(run, guard).await
    }
    async fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> StoreResult<()> {
        self.call("uow.put_row_errors");
        self.wrote("ingestion_row_errors", rows.len());
        self.inner.put_row_errors(rows).await
    }

    // The end of the unit: only a successful commit makes its rows count. A unit that is rolled back, fails to
    // commit or is dropped wrote nothing, and its rows are forgotten with it.
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        self.call("uow.commit");
        let AuditedUnit {
            inner,
            audit,
            written,
        } = *self;
        inner.commit().await?;
        let mut a = lock(&audit);
        a.units_committed += 1;
        for (table, rows) in written {
            *a.committed_rows.entry(table).or_default() += rows;
        }
        Ok(())
    }
    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        self.call("uow.rollback");
        self.inner.rollback().await
    }
}

// The repositories: methods that are each their own transaction. Counted and passed on.

#[async_trait]
impl BatchRepository for AuditedStore {
    async fn insert_batch(&self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        self.call("insert_batch");
        self.data.insert_batch(batch).await
    }
    async fn get_batch(&self, id: BatchId) -> StoreResult<Option<BatchRecord>> {
        self.call("get_batch");
        self.data.get_batch(id).await
    }
    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Vec<BatchRecord>> {
        self.call("list_batches");
        self.data.list_batches(filter).await
    }
    async fn batches_by_hash(
        &self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.call("batches_by_hash");
        self.data.batches_by_hash(entity, file_hash).await
    }
    async fn batches_by_file_name(
        &self,
        entity: EntityKind,
        file_name: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.call("batches_by_file_name");
        self.data.batches_by_file_name(entity, file_name).await
    }
    async fn save_batch(&self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        self.call("save_batch");
        self.data.save_batch(batch, guard).await
    }
    async fn row_errors(
        &self,
        batch: BatchId,
        after_row: i64,
        limit: u32,
    ) -> StoreResult<Vec<RowErrorRecord>> {
        self.call("row_errors");
        self.data.row_errors(batch, after_row, limit).await
    }
    async fn adopt_legacy(
        &self,
        kind: ActivityKind,
        batch: &NewBatch,
    ) -> StoreResult<(BatchRecord, u64)> {
        self.call("adopt_legacy");
        self.data.adopt_legacy(kind, batch).await
    }
}

#[async_trait]
impl RunRepository for AuditedStore {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<RunRecord> {
        self.call("insert_run");
        self.data.insert_run(run).await
    }
    async fn get_run(&self, id: RunId) -> StoreResult<Option<RunRecord>> {
        self.call("get_run");
        self.data.get_run(id).await
    }
    async fn list_runs(&self, limit: Option<u32>) -> StoreResult<Vec<RunRecord>> {
        self.call("list_runs");
        self.data.list_runs(limit).await
    }
    async fn save_run(&self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        self.call("save_run");
        self.data.save_run(run, guard).await
    }
}

#[async_trait]
impl ActivityRepository for AuditedStore {
    async fn prepare_backfill(&self, kinds: &[ActivityKind]) -> StoreResult<()> {
        self.call("prepare_backfill");
        self.data.prepare_backfill(kinds).await
    }
    async fn count_backfill(
        &self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
    ) -> StoreResult<u64> {
        self.call("count_backfill");
        self.data.count_backfill(kind, after, filter).await
    }
    async fn enrollments_of(&self, instance: InstanceId) -> StoreResult<Vec<Enrollment>> {
        self.call("enrollments_of");
        self.data.enrollments_of(instance).await
    }
    async fn count_activities(&self, kind: ActivityKind) -> StoreResult<u64> {
        self.call("count_activities");
        self.data.count_activities(kind).await
    }
    async fn activity_lineage(
        &self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivityLineage>> {
        self.call("activity_lineage");
        self.data.activity_lineage(kind, id).await
    }
}

#[async_trait]
impl CatalogRepository for AuditedStore {
    async fn load_catalog(&self) -> StoreResult<CatalogData> {
        self.call("load_catalog");
        self.data.load_catalog().await
    }
    async fn instance_by_slug(&self, slug: &ProgramSlug) -> StoreResult<Option<ProgramInstance>> {
        self.call("instance_by_slug");
        self.data.instance_by_slug(slug).await
    }
    async fn instance_by_id(&self, id: InstanceId) -> StoreResult<Option<ProgramInstance>> {
        self.call("instance_by_id");
        self.data.instance_by_id(id).await
    }
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.call("user_by_email");
        self.data.user_by_email(email).await
    }
    async fn count_users(&self) -> StoreResult<u64> {
        self.call("count_users");
        self.data.count_users().await
    }
}

#[async_trait]
impl AssociationRepository for AuditedStore {
    async fn get_association(&self, id: AssociationId) -> StoreResult<Option<Association>> {
        self.call("get_association");
        self.data.get_association(id).await
    }
    async fn association_for(
        &self,
        kind: ActivityKind,
        activity_id: ActivityId,
    ) -> StoreResult<Option<Association>> {
        self.call("association_for");
        self.data.association_for(kind, activity_id).await
    }
    async fn list_reviews(&self, filter: &ReviewFilter) -> StoreResult<Vec<ReviewItem>> {
        self.call("list_reviews");
        self.data.list_reviews(filter).await
    }
    async fn campaign_counts(&self, company: Option<CompanyId>) -> StoreResult<CampaignCounts> {
        self.call("campaign_counts");
        self.data.campaign_counts(company).await
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The store in use.
// ---------------------------------------------------------------------------------------------------------------

/// What the example did, for callers (and tests) that want more than the printed text.
#[derive(Debug)]
pub struct Outcome {
    /// The dry run's report: what the import would do.
    pub dry_run: ImportReport,
    /// The import's report.
    pub report: ImportReport,
    /// Items in the review queue.
    pub reviews: usize,
    /// The pending reviews of every campaign in the campaign report, added up.
    pub pending_reviews: u64,
    /// The audit at the end.
    pub audit: Audit,
}

/// Plugs the audited store into the library, loads the sample catalogue, imports the sample sessions (a dry run,
/// then for real), reads the review queue and the campaign report, and prints the audit to `out`.
pub async fn run(out: &mut dyn Write) -> Result<Outcome, Error> {
    let audited = AuditedStore::new();
    // The extension point: any implementation of the ports, as an `Arc<dyn Repositories>`, becomes a `Store`.
    let store = Store::from_repositories(Arc::new(audited.clone()));

    let catalogue = CatalogImport::new(store.clone())
        .run_json(sample::CATALOGUE_JSON, chrono::Utc::now())
        .await?;
    writeln!(
        out,
        "catalogue: {} rows inserted",
        catalogue.total().inserted
    )?;

    let ingestor = Ingestor::new(store.clone());
    let request = || {
        ImportRequest::from_bytes(sample::SESSIONS_FILE_NAME, sample::SESSIONS_CSV.as_bytes())
            .entity(EntityKind::KintellSessions)
    };
    // A dry run does all the work in one unit of work and rolls it back: the audit shows no row committed by it.
    let dry_run = ingestor.import(request().dry_run(true)).await?;
    let committed = audited
        .audit()
        .committed_rows
        .get("kintell_sessions")
        .copied();
    writeln!(
        out,
        "dry run: would insert {} and reject {}; session rows committed so far: {}",
        dry_run.inserted,
        dry_run.errors,
        committed.unwrap_or(0)
    )?;
    let report = ingestor.import(request()).await?;
    writeln!(
        out,
        "import: batch {} {}, {} inserted, {} rejected",
        report.batch.id, report.batch.status, report.inserted, report.errors
    )?;

    let reviews = ReviewQueue::new(store.clone())
        .list_by(&ReviewQuery::default())
        .await?;
    let campaigns = Reports::new(store.clone()).campaigns(None).await?;
    let pending_reviews = campaigns.iter().map(|c| c.pending_reviews).sum();
    writeln!(
        out,
        "review queue: {} item(s); campaign report: {} campaign(s), {} pending review(s)",
        reviews.len(),
        campaigns.len(),
        pending_reviews
    )?;

    let audit = audited.audit();
    writeln!(
        out,
        "units of work: {} begun, {} committed",
        audit.units_begun, audit.units_committed
    )?;
    writeln!(out, "rows written by committed units:")?;
    for (table, rows) in &audit.committed_rows {
        writeln!(out, "  {table:<24} {rows}")?;
    }
    writeln!(out, "port calls:")?;
    for (name, n) in &audit.calls {
        writeln!(out, "  {name:<28} {n}")?;
    }
    Ok(Outcome {
        dry_run,
        report,
        reviews: reviews.len(),
        pending_reviews,
        audit,
    })
}
