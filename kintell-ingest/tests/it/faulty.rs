//! A store wrapper for tests: it passes every port call through to a real store, logs it, and fails the N-th call
//! (or every call from the N-th on, like a process that crashed there) with a `Backend` error.

use async_trait::async_trait;
use kintell_ingest::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BeneficiaryGroup, Campaign, Company, CompanyId, CompletionKey, CompletionWrite, Email,
    Enrollment, EntityKind, InstanceId, Key, MatchKey, MatchWrite, NewBatch, NewRun,
    ProgramInstance, ProgramSlug, RowErrorRecord, RunGuard, RunId, RunRecord, SessionId,
    SessionWrite, StoredRow, User, UserWrite, Written,
};
use kintell_ingest::ports::{
    ActivityRepository, ActivitySummary, AssociationRepository, BackfillFilter, BackfillRow,
    BatchFilter, BatchGuard, BatchRepository, CampaignCounts, CatalogData, CatalogRepository,
    ReviewFilter, ReviewItem, RunRepository, StoreError, StoreResult, UnitOfWork,
    UnitOfWorkFactory, UpsertCounts,
};
use kintell_ingest::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// When calls fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Only the N-th call fails.
    Once,
    /// The N-th call and every later one fail: the process "crashed" at the N-th call.
    Crash,
    /// Nothing fails (only logs).
    Never,
}

/// What wrapper and units share.
struct Shared {
    calls: AtomicU64,
    fail_at: u64,
    mode: Mode,
    log: Mutex<Vec<String>>,
}

impl Shared {
    /// Counts a call named `name`; fails it when its number says so.
    fn tick(&self, name: &str) -> StoreResult<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Ok(mut log) = self.log.lock() {
            log.push(name.to_owned());
        }
        let fail = match self.mode {
            Mode::Once => n == self.fail_at,
            Mode::Crash => n >= self.fail_at,
            Mode::Never => false,
        };
        if fail {
            Err(StoreError::Backend {
                message: format!("injected failure at call {n} ({name})"),
                source: "injected".into(),
            })
        } else {
            Ok(())
        }
    }
}

/// A store whose calls fail as told.
#[derive(Clone)]
pub struct Faulty {
    inner: Store,
    shared: Arc<Shared>,
}

impl Faulty {
    /// Wraps `inner`: the `fail_at`-th call (1-based) fails as `mode` says.
    pub fn new(inner: Store, fail_at: u64, mode: Mode) -> Faulty {
        Faulty {
            inner,
            shared: Arc::new(Shared {
                calls: AtomicU64::new(0),
                fail_at,
                mode,
                log: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A handle the library can use.
    pub fn store(&self) -> Store {
        Store::from_repositories(Arc::new(self.clone()))
    }

    /// How many calls were made.
    pub fn calls(&self) -> u64 {
        self.shared.calls.load(Ordering::SeqCst)
    }

    /// The names of the calls made, in order; calls of a unit of work are indented.
    pub fn log(&self) -> Vec<String> {
        self.shared
            .log
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }
}

/// Implements the listed methods of a repository trait by counting the call and passing it on.
macro_rules! pass {
    ($trait:ident for $ty:ty { $(fn $name:ident(&self $(, $arg:ident: $argty:ty)*) -> $ret:ty;)* }) => {
        #[async_trait]
        impl $trait for $ty {
            $(
                async fn $name(&self $(, $arg: $argty)*) -> StoreResult<$ret> {
                    self.shared.tick(stringify!($name))?;
                    self.inner.$name($($arg),*).await
                }
            )*
        }
    };
}

pass!(BatchRepository for Faulty {
    fn insert_batch(&self, batch: &NewBatch) -> BatchRecord;
    fn get_batch(&self, id: BatchId) -> Option<BatchRecord>;
    fn list_batches(&self, filter: &BatchFilter) -> Vec<BatchRecord>;
    fn batches_by_hash(&self, entity: EntityKind, file_hash: &str) -> Vec<BatchRecord>;
    fn batches_by_file_name(&self, entity: EntityKind, file_name: &str) -> Vec<BatchRecord>;
    fn save_batch(&self, batch: &BatchRecord, guard: &BatchGuard) -> bool;
    fn row_errors(&self, batch: BatchId, after_row: i64, limit: u32) -> Vec<RowErrorRecord>;
    fn adopt_legacy(&self, kind: ActivityKind, batch: &NewBatch) -> (BatchRecord, u64);
});

pass!(RunRepository for Faulty {
    fn insert_run(&self, run: &NewRun) -> RunRecord;
    fn get_run(&self, id: RunId) -> Option<RunRecord>;
    fn list_runs(&self, limit: Option<u32>) -> Vec<RunRecord>;
    fn save_run(&self, run: &RunRecord, guard: &RunGuard) -> bool;
});

pass!(ActivityRepository for Faulty {
    fn count_backfill(&self, kind: ActivityKind, after: Option<ActivityId>, filter: &BackfillFilter) -> u64;
    fn enrollments_of(&self, instance: InstanceId) -> Vec<Enrollment>;
    fn count_activities(&self, kind: ActivityKind) -> u64;
    fn activity_lineage(&self, kind: ActivityKind, id: ActivityId) -> Option<ActivityLineage>;
});

pass!(CatalogRepository for Faulty {
    fn load_catalog(&self) -> CatalogData;
    fn instance_by_slug(&self, slug: &ProgramSlug) -> Option<ProgramInstance>;
    fn instance_by_id(&self, id: InstanceId) -> Option<ProgramInstance>;
    fn user_by_email(&self, email: &Email) -> Option<User>;
    fn count_users(&self) -> u64;
});

pass!(AssociationRepository for Faulty {
    fn get_association(&self, id: AssociationId) -> Option<Association>;
    fn association_for(&self, kind: ActivityKind, activity_id: ActivityId) -> Option<Association>;
    fn list_reviews(&self, filter: &ReviewFilter) -> Vec<ReviewItem>;
    fn campaign_counts(&self, company: Option<CompanyId>) -> CampaignCounts;
});

#[async_trait]
impl UnitOfWorkFactory for Faulty {
    async fn begin(&self) -> StoreResult<Box<dyn UnitOfWork>> {
        self.shared.tick("begin")?;
        Ok(Box::new(FaultyUnit {
            inner: self.inner.begin().await?,
            shared: Arc::clone(&self.shared),
        }))
    }
}

/// A unit of work of [`Faulty`].
pub struct FaultyUnit {
    inner: Box<dyn UnitOfWork>,
    shared: Arc<Shared>,
}

/// Implements the listed unit methods by counting the call (indented in the log) and passing it on.
macro_rules! pass_unit {
    ($(fn $name:ident(&mut self $(, $arg:ident: $argty:ty)*) -> $ret:ty;)*) => {
        #[async_trait]
        impl UnitOfWork for FaultyUnit {
            $(
                async fn $name(&mut self $(, $arg: $argty)*) -> StoreResult<$ret> {
                    self.shared.tick(concat!("  ", stringify!($name)))?;
                    self.inner.$name($($arg),*).await
                }
            )*

            async fn commit(self: Box<Self>) -> StoreResult<()> {
                self.shared.tick("  commit")?;
                self.inner.commit().await
            }

            async fn rollback(self: Box<Self>) -> StoreResult<()> {
                self.shared.tick("  rollback")?;
                self.inner.rollback().await
            }
        }
    };
}

pass_unit! {
    fn users_by_email(&mut self, emails: &[Email]) -> Vec<User>;
    fn companies_by_slug(&mut self, slugs: &[Key]) -> Vec<Company>;
    fn groups_by_key(&mut self, keys: &[Key]) -> Vec<BeneficiaryGroup>;
    fn campaigns_by_key(&mut self, keys: &[Key]) -> Vec<Campaign>;
    fn instances_by_slug(&mut self, slugs: &[ProgramSlug]) -> Vec<ProgramInstance>;
    fn upsert_companies(&mut self, rows: &[Company]) -> UpsertCounts;
    fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> UpsertCounts;
    fn upsert_campaigns(&mut self, rows: &[Campaign]) -> UpsertCounts;
    fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> UpsertCounts;
    fn upsert_users(&mut self, rows: &[User]) -> UpsertCounts;
    fn upsert_associations(&mut self, rows: &[Association]) -> UpsertCounts;
    fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> bool;
    fn stored_sessions(&mut self, ids: &[SessionId]) -> Vec<(SessionId, StoredRow)>;
    fn stored_matches(&mut self, keys: &[MatchKey]) -> Vec<(MatchKey, StoredRow)>;
    fn stored_completions(&mut self, keys: &[CompletionKey]) -> Vec<(CompletionKey, StoredRow)>;
    fn stored_user_sources(&mut self, emails: &[Email]) -> Vec<(Email, StoredRow)>;
    fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> Vec<Written>;
    fn upsert_matches(&mut self, rows: &[MatchWrite]) -> Vec<Written>;
    fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> Vec<Written>;
    fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> Vec<Written>;
    fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> UpsertCounts;
    fn instances_by_id(&mut self, ids: &[InstanceId]) -> Vec<ProgramInstance>;
    fn association_by_id(&mut self, id: AssociationId) -> Option<Association>;
    fn activity_summary(&mut self, kind: ActivityKind, id: ActivityId) -> Option<ActivitySummary>;
    fn set_activity_instance(&mut self, kind: ActivityKind, id: ActivityId, instance: Option<InstanceId>) -> bool;
    fn backfill_page(&mut self, kind: ActivityKind, after: Option<ActivityId>, filter: &BackfillFilter, limit: u32) -> Vec<BackfillRow>;
    fn set_activity_instances(&mut self, kind: ActivityKind, links: &[(ActivityId, InstanceId)]) -> u64;
    fn save_run(&mut self, run: &RunRecord, guard: &RunGuard) -> bool;
    fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> ();
}
