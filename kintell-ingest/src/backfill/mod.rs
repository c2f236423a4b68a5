//! The historical backfill: re-associates stored activities in checkpointed, resumable runs (`association_runs`).
//!
//! A [`Backfill`] over a [`Store`] starts a run with [`Backfill::run`] and continues an interrupted one with
//! [`Backfill::resume`]. A run loads the catalogue once into an [`Associator`], then reads each activity table in
//! pages ordered by id (keyset pagination: `id > last`, never an offset). Each page is associated in memory and
//! written in **one unit of work** together with the run's checkpoint (the last id per entity) and statistics:
//! associations upserted (human and `explicit` decisions are never touched), activities linked for `auto`
//! decisions (never unlinked), both people enrolled. A crash loses at most the page in flight; a resume continues
//! after the checkpoint and ends in the state an uninterrupted run would have reached.
//!
//! A run is held by a lease like an import batch (owner `host:pid:nonce`, renewed by every page, released when the
//! run stops); a run whose lease has expired, or whose holder is a dead process of this host, can be taken over.
//! Every page's write is guarded by the lease, so two workers never run the same run at once. A dry run is recorded
//! like any run, with its statistics and a sample of the changes it would make, and writes nothing else.
//!
//! Choices where the specification is silent:
//! - A row whose decision, campaign and instance come out as stored counts as `unchanged` and is not rewritten
//!   (its confidence, reasons and `run_id` stay as they were). A changed row is rewritten whole, with the run's id.
//!   Human and `explicit` decisions are not scored at all and count as `unchanged`.
//! - `avg_confidence` and `histogram` cover the rows that had candidates (fresh decision `auto`, `review` or
//!   `ignored`), unchanged ones included; `avg_confidence` is `null` when there were none. A row with no activity
//!   time (a session without `scheduled_at` and `completed_at`, a course never completed) is an `error`.
//! - Linking and enrolling happen only for rows that change to `auto`; an activity is linked only when its stored
//!   link differs, and never unlinked (a row that changes from `auto` to something else keeps its link).
//! - The company filter uses the company the scorer uses (the volunteer's, else the participant's); the date
//!   filter uses the activity date in the policy's time zone, both ends inclusive.
//! - The scoring policy's time zone is not stored with the run (`association_runs` has no column for it): resume
//!   with the same policy as the run started with (`associate resume --policy-timezone`).
//! - `association_runs` has no column for an error message: a run that fails is marked `failed` and the error is
//!   returned to the caller (the CLI prints it); resuming it continues from its checkpoint.
//! - The rows still to read are counted once when a run starts or resumes (one aggregate query per entity), for
//!   progress and its ETA.
//!
//! ```
//! use kintell_ingest::backfill::{Backfill, BackfillOptions};
//! use kintell_ingest::domain::BatchStatus;
//! use kintell_ingest::store::Store;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let store = Store::memory();
//! let run = Backfill::new(store.clone()).run(BackfillOptions::default().dry_run(true)).await?;
//! assert_eq!(run.status, BatchStatus::Completed);
//! assert!(run.dry_run);
//! assert_eq!(run.stats.scanned, 0);
//! assert_eq!(Backfill::new(store).runs().await?.len(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod plan;
mod worker;

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};

use crate::association::Associator;
use crate::batch::{NoProgress, Progress};
use crate::domain::{BackfillEntity, BatchStatus, Key, RunId, RunRecord, TimeZoneOffset};
use crate::ports::StoreError;
use crate::scoring::ScoringPolicy;
use crate::store::Store;

/// Activities per page unless told otherwise.
pub const DEFAULT_BATCH_SIZE: u32 = 1_000;

/// The largest page a run takes (a page is held in memory and written in one transaction).
pub const MAX_BATCH_SIZE: u32 = 100_000;

/// How long a lease lasts unless renewed by a page, unless told otherwise.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// The clock runs read (the import's: injectable so that tests control leases and timestamps).
pub use crate::ingest::{Clock, SystemClock};

/// What a run re-associates and how. `Default` is the specification's: every entity, only activities without an
/// association (other than `none`), pages of [`DEFAULT_BATCH_SIZE`], the backfill's policy time zone, for real.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillOptions {
    /// Only report what would change: the run and its statistics (with a sample of changes) are recorded, nothing
    /// else is written.
    pub dry_run: bool,
    /// Which activities.
    pub entity: BackfillEntity,
    /// Only activities of this company (slug): the volunteer's company if set, otherwise the participant's.
    pub company: Option<Key>,
    /// Only activities on or after this activity date.
    pub start_date: Option<NaiveDate>,
    /// Only activities on or before this activity date.
    pub end_date: Option<NaiveDate>,
    /// Skip activities that already have an association other than `none` (default); `false` re-associates
    /// every row (human and `explicit` decisions are still left alone).
    pub only_unassociated: bool,
    /// Activities per page and transaction, 1 to [`MAX_BATCH_SIZE`].
    pub batch_size: u32,
    /// The time zone of activity dates, instead of the backfill's policy's.
    pub policy_timezone: Option<TimeZoneOffset>,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            dry_run: false,
            entity: BackfillEntity::All,
            company: None,
            start_date: None,
            end_date: None,
            only_unassociated: true,
            batch_size: DEFAULT_BATCH_SIZE,
            policy_timezone: None,
        }
    }
}

impl BackfillOptions {
    /// Sets [`BackfillOptions::dry_run`].
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`BackfillOptions::entity`].
    pub fn entity(mut self, entity: BackfillEntity) -> Self {
        self.entity = entity;
        self
    }

    /// Sets [`BackfillOptions::company`].
    pub fn company(mut self, slug: Key) -> Self {
        self.company = Some(slug);
        self
    }

    /// Sets [`BackfillOptions::start_date`].
    pub fn start_date(mut self, date: NaiveDate) -> Self {
        self.start_date = Some(date);
        self
    }

    /// Sets [`BackfillOptions::end_date`].
    pub fn end_date(mut self, date: NaiveDate) -> Self {
        self.end_date = Some(date);
        self
    }

    /// Re-associates every row, not only those without an association (`--all-rows`).
    pub fn all_rows(mut self) -> Self {
        self.only_unassociated = false;
        self
    }

    /// Sets [`BackfillOptions::batch_size`].
    pub fn batch_size(mut self, n: u32) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets [`BackfillOptions::policy_timezone`].
    pub fn policy_timezone(mut self, tz: TimeZoneOffset) -> Self {
        self.policy_timezone = Some(tz);
        self
    }

    fn check(&self) -> Result<(), BackfillError> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(BackfillError::InvalidOption(format!(
                "the batch size must be between 1 and {MAX_BATCH_SIZE}, not {}",
                self.batch_size
            )));
        }
        if let (Some(start), Some(end)) = (self.start_date, self.end_date)
            && end < start
        {
            return Err(BackfillError::InvalidOption(format!(
                "the end date {end} is before the start date {start}"
            )));
        }
        Ok(())
    }
}

/// Why a backfill operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// An option is out of range, or the policy or host name cannot be used.
    #[error("invalid backfill option: {0}")]
    InvalidOption(String),
    /// No company has this slug.
    #[error("no company {0}")]
    UnknownCompany(String),
    /// No run has this id.
    #[error("no backfill run {0}")]
    NotFound(RunId),
    /// The run is completed or cancelled.
    #[error("backfill run {run} is {status}: there is nothing to resume")]
    NotResumable {
        /// The run.
        run: RunId,
        /// Its status.
        status: BatchStatus,
    },
    /// Another live worker holds the run.
    #[error("backfill run {run} is being run by {owner}{}", until.map(|u| format!(" until {}", u.to_rfc3339())).unwrap_or_default())]
    Busy {
        /// The run.
        run: RunId,
        /// The holder.
        owner: String,
        /// The end of its lease.
        until: Option<DateTime<Utc>>,
    },
    /// The run's lease was taken over while this worker ran it; this worker stopped (its page was rolled back).
    #[error("backfill run {0} was taken over by another worker; this one stopped")]
    LeaseLost(RunId),
    /// The store failed; the run is marked `failed` (when the store still answers) and can be resumed.
    #[error("the store failed")]
    Store(#[from] StoreError),
}

/// Runs and resumes backfills over a store.
#[derive(Clone)]
pub struct Backfill {
    store: Store,
    clock: Arc<dyn Clock>,
    host: String,
    lease: TimeDelta,
    policy: ScoringPolicy,
}

impl std::fmt::Debug for Backfill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backfill")
            .field("store", &self.store)
            .field("host", &self.host)
            .field("lease", &self.lease)
            .field("policy", &self.policy.version)
            .finish_non_exhaustive()
    }
}

impl Backfill {
    /// A backfill over `store`: the system clock, leases of [`DEFAULT_LEASE`], the default [`ScoringPolicy`], this
    /// machine's host name in lease owners.
    pub fn new(store: Store) -> Self {
        Backfill {
            store,
            clock: Arc::new(SystemClock),
            host: crate::ingest::this_host(),
            lease: TimeDelta::seconds(60),
            policy: ScoringPolicy::default(),
        }
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The host name written in lease owners (default: this machine's). A run held by a process of this host that
    /// no longer exists is taken over at once.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// How long a lease lasts unless renewed (at least one second).
    pub fn lease_duration(mut self, d: std::time::Duration) -> Self {
        self.lease = TimeDelta::from_std(d)
            .unwrap_or(TimeDelta::MAX)
            .max(TimeDelta::seconds(1));
        self
    }

    /// The scoring policy; its version is stored with every association, its time zone makes activity dates.
    pub fn policy(mut self, policy: ScoringPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Starts a run; await the returned call, after [`BackfillCall::with_progress`] if you want progress. Returns
    /// the run as it ended (`completed`).
    pub fn run(&self, options: BackfillOptions) -> BackfillCall<'_> {
        BackfillCall {
            backfill: self,
            job: Job::Run(options),
            progress: &NoProgress,
        }
    }

    /// Continues a run that is pending, paused, failed, or running with an expired lease or a dead holder, from its
    /// checkpoint, with this backfill's policy.
    pub fn resume(&self, run: RunId) -> BackfillCall<'_> {
        BackfillCall {
            backfill: self,
            job: Job::Resume(run),
            progress: &NoProgress,
        }
    }

    /// Every run, newest first.
    ///
    /// # Errors
    /// [`BackfillError::Store`].
    pub async fn runs(&self) -> Result<Vec<RunRecord>, BackfillError> {
        Ok(self.store.list_runs(None).await?)
    }

    /// One run.
    ///
    /// # Errors
    /// [`BackfillError::NotFound`], [`BackfillError::Store`].
    pub async fn get(&self, run: RunId) -> Result<RunRecord, BackfillError> {
        self.store
            .get_run(run)
            .await?
            .ok_or(BackfillError::NotFound(run))
    }

    /// The policy of a run with these options.
    fn policy_for(&self, tz: Option<TimeZoneOffset>) -> Result<ScoringPolicy, BackfillError> {
        let mut policy = self.policy.clone();
        if let Some(tz) = tz {
            policy.timezone = tz;
        }
        policy
            .validate()
            .map_err(|e| BackfillError::InvalidOption(e.to_string()))?;
        Ok(policy)
    }
}

/// What a [`BackfillCall`] runs.
#[derive(Debug)]
enum Job {
    Run(BackfillOptions),
    Resume(RunId),
}

/// A run or resume waiting to be awaited.
#[must_use = "a backfill does nothing until it is awaited"]
pub struct BackfillCall<'a> {
    backfill: &'a Backfill,
    job: Job,
    progress: &'a dyn Progress,
}

impl<'a> BackfillCall<'a> {
    /// Reports progress to `progress` after every page (rows scanned out of the rows the run will read).
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = progress;
        self
    }
}

impl std::fmt::Debug for BackfillCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackfillCall")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl<'a> IntoFuture for BackfillCall<'a> {
    type Output = Result<RunRecord, BackfillError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.job {
                Job::Run(options) => self.backfill.start(options, self.progress).await,
                Job::Resume(run) => self.backfill.continue_run(run, self.progress).await,
            }
        })
    }
}

/// The index and look-ups of one run, built once from the catalogue.
struct Prepared {
    associator: Associator,
    instance_types:
        std::collections::HashMap<crate::domain::InstanceId, crate::domain::ProgramType>,
}
