//! A test-only store wrapper: it counts and names every port call, fails the N-th one on request (or every one from
//! the N-th on, as a process that crashed there would), and runs a hook (async code of the test's own) before the
//! N-th call of a given name.

use async_trait::async_trait;
use kintell_ingest::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BeneficiaryGroup, Campaign, Company, CompletionKey, CompletionWrite, Email, Enrollment,
    EntityKind, InstanceId, Key, MatchKey, MatchWrite, NewBatch, NewRun, ProgramInstance,
    ProgramSlug, RowErrorRecord, RunGuard, RunId, RunRecord, SessionId, SessionWrite, StoredRow,
    User, UserWrite, Written,
};
use kintell_ingest::ports::{
    ActivityRepository, AssociationRepository, BackfillFilter, BackfillRow, BatchFilter,
    BatchGuard, BatchRepository, CatalogData, CatalogRepository, RunRepository, StoreError,
    StoreResult, UnitOfWork, UnitOfWorkFactory, UpsertCounts,
};
use kintell_ingest::store::Store;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Async code run by a hook.
pub type Hook = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

#[derive(Default)]
struct State {
    /// Every call so far, by name, in order.
    log: Vec<&'static str>,
    /// Fail the call with this 1-based number.
    fail_at: Option<usize>,
    /// Fail every call from this 1-based number on.
    crash_at: Option<usize>,
    /// Run the hook before the n-th call (1-based) of this name.
    hooks: Vec<(&'static str, usize, Hook)>,
}

/// The wrapper. Clones share their counters.
#[derive(Clone)]
pub struct Probe {
    inner: Store,
    state: Arc<Mutex<State>>,
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Probe {
    /// Wraps `inner`.
    pub fn new(inner: Store) -> Self {
        Probe {
            inner,
            state: Arc::default(),
        }
    }

    /// A store speaking through this probe.
    pub fn store(&self) -> Store {
        Store::from_repositories(Arc::new(self.clone()))
    }

    /// Makes the `n`-th call from now on (1-based, counting every call) fail with a backend error.
    pub fn fail_at(&self, n: usize) {
        let mut s = lock(&self.state);
        let base = s.log.len();
        s.fail_at = base.checked_add(n);
    }

    /// Makes the `n`-th call from now on (1-based) and every later one fail: the store stops answering, as it
    /// does for a process that crashed there.
    pub fn crash_at(&self, n: usize) {
        let mut s = lock(&self.state);
        let base = s.log.len();
        s.crash_at = base.checked_add(n);
    }

    /// Runs `hook` before the `n`-th call named `name` from now on.
    pub fn hook(&self, name: &'static str, n: usize, hook: Hook) {
        let mut s = lock(&self.state);
        let seen = s.log.iter().filter(|c| **c == name).count();
        s.hooks.push((name, seen + n, hook));
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<&'static str> {
        lock(&self.state).log.clone()
    }

    /// Calls so far, counted by name.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut m = BTreeMap::new();
        for c in lock(&self.state).log.iter() {
            *m.entry(*c).or_insert(0) += 1;
        }
        m
    }

    async fn call(&self, name: &'static str) -> StoreResult<()> {
        let (fail, hook) = {
            let mut s = lock(&self.state);
            s.log.push(name);
            let n = s.log.len();
            let nth = s.log.iter().filter(|c| **c == name).count();
            let hook = s
                .hooks
                .iter()
                .position(|(h, at, _)| *h == name && *at == nth)
                .map(|i| s.hooks.remove(i).2);
            (
                s.fail_at == Some(n) || s.crash_at.is_some_and(|c| n >= c),
                hook,
            )
        };
        if let Some(hook) = hook {
            hook().await;
        }
        if fail {
            return Err(StoreError::Backend {
                message: format!("injected failure of {name}"),
                source: "injected".into(),
            });
        }
        Ok(())
    }
}

/// A unit of work of the probe.
struct ProbeUnit {
    probe: Probe,
    inner: Box<dyn UnitOfWork>,
}

#[async_trait]
impl UnitOfWork for ProbeUnit {
    async fn users_by_email(&mut self, emails: &[Email]) -> StoreResult<Vec<User>> {
        self.probe.call("uow.users_by_email").await?;
        self.inner.users_by_email(emails).await
    }
    async fn companies_by_slug(&mut self, slugs: &[Key]) -> StoreResult<Vec<Company>> {
        self.probe.call("uow.companies_by_slug").await?;
        self.inner.companies_by_slug(slugs).await
    }
    async fn groups_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<BeneficiaryGroup>> {
        self.probe.call("uow.groups_by_key").await?;
        self.inner.groups_by_key(keys).await
    }
    async fn campaigns_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<Campaign>> {
        self.probe.call("uow.campaigns_by_key").await?;
        self.inner.campaigns_by_key(keys).await
    }
    async fn instances_by_slug(
        &mut self,
        slugs: &[ProgramSlug],
    ) -> StoreResult<Vec<ProgramInstance>> {
        self.probe.call("uow.instances_by_slug").await?;
        self.inner.instances_by_slug(slugs).await
    }
    async fn upsert_companies(&mut self, rows: &[Company]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_companies").await?;
        self.inner.upsert_companies(rows).await
    }
    async fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_groups").await?;
        self.inner.upsert_groups(rows).await
    }
    async fn upsert_campaigns(&mut self, rows: &[Campaign]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_campaigns").await?;
        self.inner.upsert_campaigns(rows).await
    }
    async fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_instances").await?;
        self.inner.upsert_instances(rows).await
    }
    async fn upsert_users(&mut self, rows: &[User]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_users").await?;
        self.inner.upsert_users(rows).await
    }
    async fn upsert_associations(&mut self, rows: &[Association]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_associations").await?;
        self.inner.upsert_associations(rows).await
    }
    async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        self.probe.call("uow.insert_batch").await?;
        self.inner.insert_batch(batch).await
    }
    async fn batches_by_hash(
        &mut self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.probe.call("uow.batches_by_hash").await?;
        self.inner.batches_by_hash(entity, file_hash).await
    }
    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        self.probe.call("uow.save_batch").await?;
        self.inner.save_batch(batch, guard).await
    }
    async fn stored_sessions(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, StoredRow)>> {
        self.probe.call("uow.stored_sessions").await?;
        self.inner.stored_sessions(ids).await
    }
    async fn stored_matches(
        &mut self,
        keys: &[MatchKey],
    ) -> StoreResult<Vec<(MatchKey, StoredRow)>> {
        self.probe.call("uow.stored_matches").await?;
        self.inner.stored_matches(keys).await
    }
    async fn stored_completions(
        &mut self,
        keys: &[CompletionKey],
    ) -> StoreResult<Vec<(CompletionKey, StoredRow)>> {
        self.probe.call("uow.stored_completions").await?;
        self.inner.stored_completions(keys).await
    }
    async fn stored_user_sources(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<Vec<(Email, StoredRow)>> {
        self.probe.call("uow.stored_user_sources").await?;
        self.inner.stored_user_sources(emails).await
    }
    async fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> StoreResult<Vec<Written>> {
        self.probe.call("uow.upsert_sessions").await?;
        self.inner.upsert_sessions(rows).await
    }
    async fn upsert_matches(&mut self, rows: &[MatchWrite]) -> StoreResult<Vec<Written>> {
        self.probe.call("uow.upsert_matches").await?;
        self.inner.upsert_matches(rows).await
    }
    async fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> StoreResult<Vec<Written>> {
        self.probe.call("uow.upsert_completions").await?;
        self.inner.upsert_completions(rows).await
    }
    async fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> StoreResult<Vec<Written>> {
        self.probe.call("uow.upsert_user_rows").await?;
        self.inner.upsert_user_rows(rows).await
    }
    async fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> StoreResult<UpsertCounts> {
        self.probe.call("uow.upsert_enrollments").await?;
        self.inner.upsert_enrollments(rows).await
    }
    async fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> StoreResult<()> {
        self.probe.call("uow.put_row_errors").await?;
        self.inner.put_row_errors(rows).await
    }
    async fn sessions_by_external_id(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<kintell_ingest::domain::StoredSession>> {
        self.probe.call("uow.sessions_by_external_id").await?;
        self.inner.sessions_by_external_id(ids).await
    }
    async fn delivery(
        &mut self,
        id: &kintell_ingest::domain::DeliveryId,
    ) -> StoreResult<Option<kintell_ingest::domain::DeliveryRecord>> {
        self.probe.call("uow.delivery").await?;
        self.inner.delivery(id).await
    }
    async fn insert_delivery(
        &mut self,
        delivery: &kintell_ingest::domain::DeliveryRecord,
    ) -> StoreResult<()> {
        self.probe.call("uow.insert_delivery").await?;
        self.inner.insert_delivery(delivery).await
    }
    async fn instances_by_id(
        &mut self,
        ids: &[kintell_ingest::domain::InstanceId],
    ) -> StoreResult<Vec<kintell_ingest::domain::ProgramInstance>> {
        self.probe.call("uow.instances_by_id").await?;
        self.inner.instances_by_id(ids).await
    }
    async fn associations_of(
        &mut self,
        kind: ActivityKind,
        activities: &[ActivityId],
    ) -> StoreResult<Vec<Association>> {
        self.probe.call("uow.associations_of").await?;
        self.inner.associations_of(kind, activities).await
    }
    async fn association_by_id(&mut self, id: AssociationId) -> StoreResult<Option<Association>> {
        self.probe.call("uow.association_by_id").await?;
        self.inner.association_by_id(id).await
    }
    async fn activity_summary(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<kintell_ingest::ports::ActivitySummary>> {
        self.probe.call("uow.activity_summary").await?;
        self.inner.activity_summary(kind, id).await
    }
    async fn set_activity_instance(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
        instance: Option<kintell_ingest::domain::InstanceId>,
    ) -> StoreResult<bool> {
        self.probe.call("uow.set_activity_instance").await?;
        self.inner.set_activity_instance(kind, id, instance).await
    }
    async fn backfill_page(
        &mut self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
        limit: u32,
    ) -> StoreResult<Vec<BackfillRow>> {
        self.probe.call("uow.backfill_page").await?;
        self.inner.backfill_page(kind, after, filter, limit).await
    }
    async fn set_activity_instances(
        &mut self,
        kind: ActivityKind,
        links: &[(ActivityId, InstanceId)],
    ) -> StoreResult<u64> {
        self.probe.call("uow.set_activity_instances").await?;
        self.inner.set_activity_instances(kind, links).await
    }
    async fn save_run(&mut self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        self.probe.call("uow.save_run").await?;
        self.inner.save_run(run, guard).await
    }
    async fn commit(self: Box<Self>) -> StoreResult<()> {
        // On a failure the inner unit is dropped uncommitted, which rolls it back.
        self.probe.call("uow.commit").await?;
        self.inner.commit().await
    }
    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        self.probe.call("uow.rollback").await?;
        self.inner.rollback().await
    }
}

#[async_trait]
impl UnitOfWorkFactory for Probe {
    async fn begin(&self) -> StoreResult<Box<dyn UnitOfWork>> {
        self.call("begin").await?;
        Ok(Box::new(ProbeUnit {
            probe: self.clone(),
            inner: self.inner.begin().await?,
        }))
    }
}

#[async_trait]
impl BatchRepository for Probe {
    async fn insert_batch(&self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        self.call("insert_batch").await?;
        self.inner.insert_batch(batch).await
    }
    async fn get_batch(&self, id: BatchId) -> StoreResult<Option<BatchRecord>> {
        self.call("get_batch").await?;
        self.inner.get_batch(id).await
    }
    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Vec<BatchRecord>> {
        self.call("list_batches").await?;
        self.inner.list_batches(filter).await
    }
    async fn batches_by_hash(
        &self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.call("batches_by_hash").await?;
        self.inner.batches_by_hash(entity, file_hash).await
    }
    async fn batches_by_file_name(
        &self,
        entity: EntityKind,
        file_name: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.call("batches_by_file_name").await?;
        self.inner.batches_by_file_name(entity, file_name).await
    }
    async fn save_batch(&self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        self.call("save_batch").await?;
        self.inner.save_batch(batch, guard).await
    }
    async fn row_errors(
        &self,
        batch: BatchId,
        after_row: i64,
        limit: u32,
    ) -> StoreResult<Vec<RowErrorRecord>> {
        self.call("row_errors").await?;
        self.inner.row_errors(batch, after_row, limit).await
    }
    async fn adopt_legacy(
        &self,
        kind: ActivityKind,
        batch: &NewBatch,
    ) -> StoreResult<(BatchRecord, u64)> {
        self.call("adopt_legacy").await?;
        self.inner.adopt_legacy(kind, batch).await
    }
}

#[async_trait]
impl RunRepository for Probe {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<RunRecord> {
        self.call("insert_run").await?;
        self.inner.insert_run(run).await
    }
    async fn get_run(&self, id: RunId) -> StoreResult<Option<RunRecord>> {
        self.call("get_run").await?;
        self.inner.get_run(id).await
    }
    async fn list_runs(&self, limit: Option<u32>) -> StoreResult<Vec<RunRecord>> {
        self.call("list_runs").await?;
        self.inner.list_runs(limit).await
    }
    async fn save_run(&self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        self.call("save_run").await?;
        self.inner.save_run(run, guard).await
    }
}

#[async_trait]
impl ActivityRepository for Probe {
    async fn prepare_backfill(&self, kinds: &[ActivityKind]) -> StoreResult<()> {
        self.call("prepare_backfill").await?;
        self.inner.prepare_backfill(kinds).await
    }
    async fn count_backfill(
        &self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
    ) -> StoreResult<u64> {
        self.call("count_backfill").await?;
        self.inner.count_backfill(kind, after, filter).await
    }
    async fn enrollments_of(&self, instance: InstanceId) -> StoreResult<Vec<Enrollment>> {
        self.call("enrollments_of").await?;
        self.inner.enrollments_of(instance).await
    }
    async fn count_activities(&self, kind: ActivityKind) -> StoreResult<u64> {
        self.call("count_activities").await?;
        self.inner.count_activities(kind).await
    }
    async fn activity_lineage(
        &self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivityLineage>> {
        self.call("activity_lineage").await?;
        self.inner.activity_lineage(kind, id).await
    }
}

#[async_trait]
impl CatalogRepository for Probe {
    async fn load_catalog(&self) -> StoreResult<CatalogData> {
        self.call("load_catalog").await?;
        self.inner.load_catalog().await
    }
    async fn instance_by_slug(&self, slug: &ProgramSlug) -> StoreResult<Option<ProgramInstance>> {
        self.call("instance_by_slug").await?;
        self.inner.instance_by_slug(slug).await
    }
    async fn instance_by_id(&self, id: InstanceId) -> StoreResult<Option<ProgramInstance>> {
        self.call("instance_by_id").await?;
        self.inner.instance_by_id(id).await
    }
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        self.call("user_by_email").await?;
        self.inner.user_by_email(email).await
    }
    async fn count_users(&self) -> StoreResult<u64> {
        self.call("count_users").await?;
        self.inner.count_users().await
    }
}

#[async_trait]
impl AssociationRepository for Probe {
    async fn get_association(&self, id: AssociationId) -> StoreResult<Option<Association>> {
        self.call("get_association").await?;
        self.inner.get_association(id).await
    }
    async fn association_for(
        &self,
        kind: ActivityKind,
        activity_id: ActivityId,
    ) -> StoreResult<Option<Association>> {
        self.call("association_for").await?;
        self.inner.association_for(kind, activity_id).await
    }
    async fn list_reviews(
        &self,
        filter: &kintell_ingest::ports::ReviewFilter,
    ) -> StoreResult<Vec<kintell_ingest::ports::ReviewItem>> {
        self.call("list_reviews").await?;
        self.inner.list_reviews(filter).await
    }
    async fn campaign_counts(
        &self,
        company: Option<kintell_ingest::domain::CompanyId>,
    ) -> StoreResult<kintell_ingest::ports::CampaignCounts> {
        self.call("campaign_counts").await?;
        self.inner.campaign_counts(company).await
    }
}
