//! The import pipeline: a CSV file in, a batch in the ledger and its rows in the store, resumable at any point.
//!
//! [`Ingestor::import`] runs the pipeline of `../shared/spec/batches.md` over the ports:
//!
//! 1. a streaming **pre-pass** over the file: SHA-256, size, record count, format and delimiter, and the pure
//!    validation of every record, keeping only counts and the error summary in memory;
//! 2. the **re-import check**, keyed on (entity, hash): a completed batch refuses ([`ImportError::AlreadyImported`])
//!    unless forced, a live running one or a pending one younger than a lease refuses
//!    ([`ImportError::InProgress`]), an older pending one, a paused, failed, expired or orphaned one (its holder a
//!    dead process of this host) is resumed; notices name batches of the same name with other bytes and of the
//!    same bytes under another name;
//! 3. a **file error** still leaves a `failed` batch (a later attempt with the same bytes reuses it); the **reject
//!    limits** fail the batch before any data row, recording the pre-pass's row errors;
//! 4. **chunks**: each is one unit of work holding its look-ups (one per table), its upserts with lineage, its
//!    `explicit` associations and enrolments, its row errors and the batch's checkpoint, guarded by the lease (a
//!    lost lease rolls the chunk back: [`ImportError::LeaseLost`]); pause and cancel requests are honoured between
//!    chunks;
//! 5. **completion** with the error summary.
//!
//! A **dry run** runs all of it in one unit of work that is rolled back, and reports what the real run would.
//! [`Ingestor::resume`] continues a batch from its checkpoint given the same bytes; [`write_error_csv`] exports a
//! batch's rejected rows; [`Ingestor::adopt_legacy`] links rows older than batches to legacy batches. A caller that
//! runs imports in the background learns the batch once the run holds it ([`ImportCall::on_start`]) and can stop
//! them between chunks, leaving them resumable ([`StopSignal`]).
//!
//! The source is read with blocking I/O (and parsing is CPU work): inside an async server, run an import where
//! blocking is allowed (a dedicated thread or `spawn_blocking`).
//!
//! Choices where the specification is silent:
//! - Re-import: a `failed` batch is resumed only when it is newer than every completed batch of the same bytes
//!   (older failures are history); a dry run of bytes a live worker is importing is refused like a real import.
//! - Concurrent imports of the same bytes: a `pending` batch has no lease, so one created less than a lease
//!   duration ago (by `created_at`, the ingestor's lease length, [`DEFAULT_LEASE`] by default) counts as being
//!   started by its creator and refuses with [`ImportError::InProgress`]; an older one is an orphan and is
//!   resumed. A new batch is inserted in a unit of work that reads the file's batches again before committing;
//!   when the in-flight index refuses the insert, when that second read shows a batch created, finished or moved
//!   since the decision, or when a batch the decision chose to resume was taken first, the import decides again
//!   (a few times at most). So of two imports started together one runs and the other is refused as in progress,
//!   or as already imported when it decides after the first has finished: one batch, never a store error.
//! - `duplicate_in_file` across chunks reads the stored row's lineage; a row a forced re-import found unchanged
//!   still names the earlier batch, so the lineage of every batch of the same entity and bytes counts as "this
//!   file" (the same bytes number their records the same way).
//! - A resume reuses the options that decide what is stored (time zone, "create missing users", format,
//!   delimiter, instance), kept in `csv_metadata.options`; the association counts so far are kept in
//!   `csv_metadata.associations`, so a resumed batch reports them all. Every write pass judges dates against the
//!   batch's `created_at`, so a resume a day later accepts exactly what the first run did.
//! - File errors: without an entity given or detected, the failed batch is recorded under `kintell_sessions`. An
//!   attempt with the same bytes reuses a `pending` or `failed` batch that never wrote a row (its `last_error`
//!   rewritten; the machine has no failed → failed event); a batch of those bytes that has written rows is left
//!   alone and no batch is reported.
//! - Reject limits apply to a batch that has not started (new, or pending or failed with no row written). The
//!   instance a file name announces is created only when the batch goes on to write rows.
//! - A pause or cancel request that arrives while a chunk is written makes that chunk's guarded checkpoint fail;
//!   the chunk is rolled back and the request honoured. A request on a running batch whose lease has expired is
//!   applied at once. The write pass hashes the bytes again and fails the batch if they changed under it.
//! - Users created by "create missing users" get the role of the column of the first stored row naming them. In
//!   the users export a given name replaces both name parts.
//! - Every stored row linked to an instance gets its `explicit` association upserted, also a row found unchanged
//!   (the association then names the latest batch).
//!
//! ```
//! use kintell_ingest::domain::EntityKind;
//! use kintell_ingest::ingest::{ImportRequest, Ingestor};
//! use kintell_ingest::store::Store;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let csv = "participant_email,buddy_email,matched_at\nanna@example.com,olga@example.org,2024-05-01\n";
//! let ingestor = Ingestor::new(Store::memory());
//! let report = ingestor
//!     .import(
//!         ImportRequest::from_bytes("matches.csv", csv.as_bytes().to_vec())
//!             .entity(EntityKind::BuddyMatches)
//!             .create_missing_users(true),
//!     )
//!     .await?;
//! assert_eq!((report.inserted, report.errors), (1, 0));
//! assert_eq!(report.batch.status.as_str(), "completed");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod chunk;
mod error_csv;
mod error_file;
mod ledger;
mod legacy;
mod metadata;
mod prepass;
mod reimport;
mod report;
mod request;
mod run;
mod webhook;

pub(crate) use chunk::Scoring as WebhookScoring;
pub use error_csv::{ErrorCsvError, write_error_csv};
pub use error_file::write_error_file;
pub use legacy::{LegacyAdoption, LegacyReport};
pub(crate) use prepass::hex;
pub(crate) use reimport::{holder_is_dead, this_host};
pub use report::{AssociationCounts, ImportReport};
pub use request::{ImportOptions, ImportRequest, ImportSource};
pub(crate) use webhook::{WebhookBatch, WebhookRow};

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};

use crate::batch::{NoProgress, Progress, TransitionError};
use crate::domain::{BatchId, BatchRecord};
use crate::formats::FileError;
use crate::ports::StoreError;
use crate::scoring::ScoringPolicy;
use crate::store::Store;

/// The time, as the pipeline reads it: injectable so that tests control leases and timestamps.
pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(std::time::SystemTime::now())
    }
}

impl<F> Clock for F
where
    F: Fn() -> DateTime<Utc> + Send + Sync,
{
    fn now(&self) -> DateTime<Utc> {
        self()
    }
}

/// Records per chunk unless told otherwise.
pub const DEFAULT_CHUNK_SIZE: usize = 5_000;

/// How long a lease lasts unless renewed (every chunk renews it).
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Imports files into a store. Cheap to clone; every import takes a lease of its own.
#[derive(Clone)]
pub struct Ingestor {
    store: Store,
    clock: Arc<dyn Clock>,
    chunk_size: usize,
    lease: TimeDelta,
    policy: ScoringPolicy,
    host: String,
    imported_by: Option<String>,
}

impl std::fmt::Debug for Ingestor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingestor")
            .field("store", &self.store)
            .field("chunk_size", &self.chunk_size)
            .field("lease", &self.lease)
            .field("policy", &self.policy.version)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Ingestor {
    /// An ingestor writing to `store`: chunks of [`DEFAULT_CHUNK_SIZE`], leases of [`DEFAULT_LEASE`], the system
    /// clock, the default [`ScoringPolicy`], this machine's host name in lease owners.
    pub fn new(store: Store) -> Self {
        Ingestor {
            store,
            clock: Arc::new(SystemClock),
            chunk_size: DEFAULT_CHUNK_SIZE,
            lease: TimeDelta::from_std(DEFAULT_LEASE).unwrap_or(TimeDelta::seconds(60)),
            policy: ScoringPolicy::default(),
            host: reimport::this_host(),
            imported_by: None,
        }
    }

    /// Records per chunk (at least 1).
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = n.max(1);
        self
    }

    /// How long a lease lasts unless renewed (at least one second).
    pub fn lease_duration(mut self, d: std::time::Duration) -> Self {
        self.lease = TimeDelta::from_std(d)
            .unwrap_or(TimeDelta::MAX)
            .max(TimeDelta::seconds(1));
        self
    }

    /// Reads time from `clock`.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The scoring policy; its version is stored with every association.
    pub fn policy(mut self, policy: ScoringPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The host name written in lease owners (default: this machine's). A lease held by a process of this host
    /// that no longer exists is taken over at once.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Recorded as the batches' `imported_by_service`.
    pub fn imported_by(mut self, who: impl Into<String>) -> Self {
        self.imported_by = Some(who.into());
        self
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The time, as this ingestor's clock reads it.
    pub(crate) fn clock_now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Imports a file; await the returned call, after [`ImportCall::with_progress`] if you want progress.
    ///
    /// Rejected rows do not make it fail: they are counted in [`ImportReport::errors`] and recorded with the
    /// batch. A batch paused or cancelled on request ends with an `Ok` report in that status.
    pub fn import(&self, request: ImportRequest) -> ImportCall<'_> {
        ImportCall::new(self, Job::Import(request))
    }

    /// Resumes a batch (pending, paused, failed, or running with an expired lease or a dead holder) from its
    /// checkpoint. `source` must hold the same bytes: their hash is checked before any record is skipped.
    pub fn resume(&self, batch: BatchId, source: ImportSource) -> ImportCall<'_> {
        ImportCall::new(self, Job::Resume(batch, source))
    }
}

/// What an [`ImportCall`] runs.
#[derive(Debug)]
pub(crate) enum Job {
    Import(ImportRequest),
    Resume(BatchId, ImportSource),
}

/// The reason a batch stopped through a [`StopSignal`] is paused with (its `last_error`).
pub const STOPPED_REASON: &str = "stopped: the worker shut down; resume it to continue";

/// Whether `batch` was paused by a [`StopSignal`] (its worker shut down) rather than on a person's request: a
/// server restarting resumes such batches on its own.
pub fn stopped_by_signal(batch: &BatchRecord) -> bool {
    batch.status == crate::domain::BatchStatus::Paused
        && batch.last_error.as_deref() == Some(STOPPED_REASON)
}

/// Asks running imports to stop between chunks, for a process shutting down. Clones share the signal.
///
/// An import given one ([`ImportCall::with_stop`]) checks it before each chunk; once it is raised the batch is
/// paused with [`STOPPED_REASON`] (the lease released, the checkpoint kept) and the call returns its report, so
/// that a later resume, or an import of the same bytes, continues where it stopped. The pre-pass is not
/// interrupted; a dry run does not stop (it has nothing to keep).
#[derive(Debug, Clone, Default)]
pub struct StopSignal(Arc<std::sync::atomic::AtomicBool>);

impl StopSignal {
    /// A signal not raised yet.
    pub fn new() -> Self {
        StopSignal::default()
    }

    /// Raises the signal: every import watching it stops before its next chunk.
    pub fn stop(&self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the signal has been raised.
    pub fn is_stopped(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A callback told the batch a run holds, once it holds it.
pub type OnStart<'a> = &'a (dyn Fn(&BatchRecord) + Send + Sync);

/// The observers and signals of one call.
pub(crate) struct Hooks<'a> {
    pub(crate) progress: &'a dyn Progress,
    pub(crate) stop: Option<&'a StopSignal>,
    pub(crate) on_start: Option<OnStart<'a>>,
}

/// An import or resume waiting to be awaited.
#[must_use = "an import does nothing until it is awaited"]
pub struct ImportCall<'a> {
    ingestor: &'a Ingestor,
    job: Job,
    hooks: Hooks<'a>,
}

impl<'a> ImportCall<'a> {
    fn new(ingestor: &'a Ingestor, job: Job) -> Self {
        ImportCall {
            ingestor,
            job,
            hooks: Hooks {
                progress: &NoProgress,
                stop: None,
                on_start: None,
            },
        }
    }

    /// Reports progress to `progress` (after each stretch of the pre-pass and after each chunk).
    pub fn with_progress(mut self, progress: &'a dyn Progress) -> Self {
        self.hooks.progress = progress;
        self
    }

    /// Stops between chunks once `stop` is raised (see [`StopSignal`]).
    pub fn with_stop(mut self, stop: &'a StopSignal) -> Self {
        self.hooks.stop = Some(stop);
        self
    }

    /// Calls `on_start` once the run holds its batch (created and started, resumed or taken over; stored and
    /// `running`, its lease taken), before its first chunk. Not called when the call ends before that (a
    /// refusal, a file error, a reject limit), nor for a dry run (its batch is never stored). A server answers
    /// with the batch from here while the import goes on.
    pub fn on_start(mut self, on_start: OnStart<'a>) -> Self {
        self.hooks.on_start = Some(on_start);
        self
    }
}

impl std::fmt::Debug for ImportCall<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportCall")
            .field("job", &self.job)
            .finish_non_exhaustive()
    }
}

impl<'a> IntoFuture for ImportCall<'a> {
    type Output = Result<ImportReport, ImportError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            match self.job {
                Job::Import(request) => self.ingestor.run_import(request, &self.hooks).await,
                Job::Resume(batch, source) => {
                    self.ingestor.run_resume(batch, source, &self.hooks).await
                }
            }
        })
    }
}

/// Why an import, a resume or a request on a batch did not go through.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// An option is out of range (a chunk size of 0, a ratio outside 0..=1, an unusable host name).
    #[error("invalid import option: {0}")]
    InvalidOption(String),
    /// The source could not be opened.
    #[error("cannot open {path}")]
    Open {
        /// The path or name.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Reading the source failed.
    #[error("cannot read {path}")]
    Read {
        /// The path or name.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The whole file was refused (a file error); the failed batch recording it, when one was written.
    #[error("the file was refused")]
    File {
        /// The file error.
        #[source]
        error: FileError,
        /// The report of the failed batch (none when a batch of these bytes with progress exists and was left
        /// alone).
        report: Option<Box<ImportReport>>,
    },
    /// The pre-pass found more invalid rows than the reject limits allow; the batch failed before any data row.
    #[error("the file was refused: {reason}")]
    Rejected {
        /// Which limit, and by how much.
        reason: String,
        /// The report of the failed batch.
        report: Box<ImportReport>,
    },
    /// A completed batch already imported these bytes (use `force` to import them again).
    #[error(
        "this file was already imported by batch {} ({}); force the import to run it again",
        batch.id,
        batch.file_name
    )]
    AlreadyImported {
        /// The completed batch.
        batch: Box<BatchRecord>,
    },
    /// A live worker is importing these bytes, or a batch of them was created less than a lease ago and has not
    /// started yet (its creator is starting it).
    #[error("this file is being imported by batch {}, owner {owner}, until {}", batch.id, until.to_rfc3339())]
    InProgress {
        /// Its batch.
        batch: Box<BatchRecord>,
        /// The lease holder (for a batch not started yet, a phrase saying so).
        owner: String,
        /// The end of its lease (for a batch not started yet, its creation plus a lease).
        until: DateTime<Utc>,
    },
    /// Another worker took the batch over (or moved it on): the current chunk was rolled back.
    #[error("batch {batch} was taken over by another worker; this worker wrote nothing more")]
    LeaseLost {
        /// The batch.
        batch: BatchId,
    },
    /// No batch has this id.
    #[error("batch {batch} does not exist")]
    NotFound {
        /// The id.
        batch: BatchId,
    },
    /// The bytes given to a resume are not those of the batch.
    #[error(
        "the file is not the one batch {batch} imports (its hash is {found}, the batch's {expected})"
    )]
    DifferentFile {
        /// The batch.
        batch: BatchId,
        /// The batch's hash.
        expected: String,
        /// The hash of the bytes given.
        found: String,
    },
    /// The batch is in a state where this cannot happen (resume a completed batch, pause a paused one, …).
    #[error("batch {batch}: {source}")]
    Transition {
        /// The batch.
        batch: BatchId,
        /// What the state machine said.
        #[source]
        source: TransitionError,
    },
    /// The store failed; the unit of work in progress was rolled back and the batch, when possible, marked
    /// failed (resumable).
    #[error("the store failed")]
    Store(#[from] StoreError),
}

impl ImportError {
    /// The report of the batch the error left behind, if any (a file error's or a reject limit's failed batch).
    pub fn report(&self) -> Option<&ImportReport> {
        match self {
            ImportError::File { report, .. } => report.as_deref(),
            ImportError::Rejected { report, .. } => Some(report),
            _ => None,
        }
    }

    pub(crate) fn open(source: &ImportSource, e: std::io::Error) -> Self {
        ImportError::Open {
            path: source.describe(),
            source: e,
        }
    }

    pub(crate) fn read(source: &ImportSource, e: std::io::Error) -> Self {
        ImportError::Read {
            path: source.describe(),
            source: e,
        }
    }

    fn moving(batch: BatchId, e: ledger::MoveError) -> Self {
        match e {
            ledger::MoveError::Transition(source) => ImportError::Transition { batch, source },
            ledger::MoveError::Store(e) => ImportError::Store(e),
        }
    }
}
