//! The ingestion batch state machine: pure, time passed in, effects returned as data.
//!
//! A [`Batch`] is what the machine governs of an `ingestion_batches` row: its status, counters, checkpoint, lease and
//! pending request. [`Batch::apply`] takes a [`BatchEvent`] (each carries its `now`) and returns the next state or a
//! [`TransitionError`] naming the state and the event; it never reads a clock, so replaying the same events from the
//! same state gives the same result. The legal pairs are [`transition_target`], the spec's table as data; guards
//! (checkpoint arithmetic, complete-only-when-done, lease liveness) come on top.
//!
//! Alongside: [`LeaseOwner`] and [`Lease`] (who holds a batch), [`ErrorSummary`] (the `error_summary` JSON) and the
//! [`Progress`] observer with its arithmetic in [`ProgressMeter`].
//!
//! Choices where the table is silent:
//! - `started_at` is set by the first transition into `running` (`Start`, or `Resume` of an orphaned pending batch)
//!   and never changed afterwards; `completed_at` only by `Complete` (a cancelled batch has none).
//! - `last_error` says why the batch is paused or failed: `Pause` and `Fail` set it, `Resume` clears it (the batch is
//!   no longer stopped), `Cancel` keeps it (why a failed batch was given up is still worth reading).
//! - A lease must end after the event's `now`: taking or renewing a lease that is already over is refused
//!   ([`TransitionError::LeaseNotInFuture`]).
//! - A recorded request survives `Start` and `Takeover` (the new holder honours it) and is cleared by every
//!   transition out of `running` or `pending` (it has been honoured or made moot) and by `Resume` (an operator who
//!   resumes wants the batch to run). `RequestCancel` replaces a pause request; `RequestPause` leaves a cancel
//!   request in place (cancelling is the stronger wish); repeating a request changes nothing.
//! - A `Checkpoint` of zero rows is legal: it renews the lease.

mod lease;
mod progress;
mod summary;

pub use lease::{Lease, LeaseOwner, LeaseOwnerError, MAX_LEASE_OWNER_LEN};
pub use progress::{NoProgress, Progress, ProgressMeter, ProgressPhase, ProgressSnapshot};
pub use summary::{ErrorSample, ErrorSummary};

use crate::domain::{BatchStatus, RequestedAction};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;

/// The six states of the machine: the spec's name for [`BatchStatus`].
pub type BatchState = BatchStatus;

/// Whether a status is terminal (`completed`, `cancelled`): no event leaves it.
pub const fn is_terminal(status: BatchStatus) -> bool {
    matches!(status, BatchStatus::Completed | BatchStatus::Cancelled)
}

/// The `last_error` a `Pause` honouring a recorded pause request gives.
pub const PAUSE_REQUESTED_REASON: &str = "pause requested";

/// The state of one batch as far as the machine governs it. Built by [`Batch::new`] or read back through
/// [`StateRecord`]; changed only by [`Batch::apply`], so every value satisfies the invariants of
/// [`StateRecord`]'s conversion.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "StateRecord", try_from = "StateRecord")]
pub struct Batch {
    status: BatchStatus,
    total_rows: u64,
    inserted_rows: u64,
    updated_rows: u64,
    skipped_rows: u64,
    error_rows: u64,
    last_processed_row: u64,
    started_at: Option<DateTime<Utc>>,
    completed_at: Option<DateTime<Utc>>,
    lease: Option<Lease>,
    last_error: Option<String>,
    requested_action: Option<RequestedAction>,
}

/// An event of the machine. Every event carries `now`, the instant it happens; the machine reads no clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchEvent {
    /// A worker starts a new batch and takes its lease.
    Start {
        /// The worker.
        owner: LeaseOwner,
        /// When its lease ends unless renewed.
        lease_until: DateTime<Utc>,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// A chunk committed: counter deltas, and the lease renewed.
    Checkpoint {
        /// Records the chunk covered; must equal `inserted + updated + skipped + errors`.
        rows: u64,
        /// Rows inserted.
        inserted: u64,
        /// Rows whose stored values changed.
        updated: u64,
        /// Rows unchanged.
        skipped: u64,
        /// Rows rejected.
        errors: u64,
        /// The renewed end of the lease.
        lease_until: DateTime<Utc>,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// The worker stops after the current chunk, resumable.
    Pause {
        /// Why; becomes `last_error`.
        reason: String,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// The batch is given up for good.
    Cancel {
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// Every record has been processed.
    Complete {
        /// When it happens; becomes `completed_at`.
        now: DateTime<Utc>,
    },
    /// The batch stops on an error, resumable.
    Fail {
        /// What went wrong; becomes `last_error`.
        error: String,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// A worker resumes a paused, failed or orphaned pending batch and takes its lease.
    Resume {
        /// The worker.
        owner: LeaseOwner,
        /// When its lease ends unless renewed.
        lease_until: DateTime<Utc>,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// A worker takes over a running batch whose lease has expired or whose holder is dead.
    Takeover {
        /// The new holder.
        owner: LeaseOwner,
        /// When its lease ends unless renewed.
        lease_until: DateTime<Utc>,
        /// Whether the caller has established that the current holder is a dead process of its own host.
        holder_dead: bool,
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// Someone asks the worker to pause after its current chunk.
    RequestPause {
        /// When it happens.
        now: DateTime<Utc>,
    },
    /// Someone asks the worker to cancel after its current chunk.
    RequestCancel {
        /// When it happens.
        now: DateTime<Utc>,
    },
}

/// The name of a [`BatchEvent`], without its data: what errors and the transition table speak of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BatchEventKind {
    /// [`BatchEvent::Start`].
    Start,
    /// [`BatchEvent::Checkpoint`].
    Checkpoint,
    /// [`BatchEvent::Pause`].
    Pause,
    /// [`BatchEvent::Cancel`].
    Cancel,
    /// [`BatchEvent::Complete`].
    Complete,
    /// [`BatchEvent::Fail`].
    Fail,
    /// [`BatchEvent::Resume`].
    Resume,
    /// [`BatchEvent::Takeover`].
    Takeover,
    /// [`BatchEvent::RequestPause`].
    RequestPause,
    /// [`BatchEvent::RequestCancel`].
    RequestCancel,
}

impl BatchEventKind {
    /// Every kind, in declaration order.
    pub const ALL: &'static [BatchEventKind] = &[
        BatchEventKind::Start,
        BatchEventKind::Checkpoint,
        BatchEventKind::Pause,
        BatchEventKind::Cancel,
        BatchEventKind::Complete,
        BatchEventKind::Fail,
        BatchEventKind::Resume,
        BatchEventKind::Takeover,
        BatchEventKind::RequestPause,
        BatchEventKind::RequestCancel,
    ];

    /// The event's name as the spec writes it, e.g. `Complete`.
    pub const fn as_str(self) -> &'static str {
        match self {
            BatchEventKind::Start => "Start",
            BatchEventKind::Checkpoint => "Checkpoint",
            BatchEventKind::Pause => "Pause",
            BatchEventKind::Cancel => "Cancel",
            BatchEventKind::Complete => "Complete",
            BatchEventKind::Fail => "Fail",
            BatchEventKind::Resume => "Resume",
            BatchEventKind::Takeover => "Takeover",
            BatchEventKind::RequestPause => "RequestPause",
            BatchEventKind::RequestCancel => "RequestCancel",
        }
    }
}

impl fmt::Display for BatchEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl BatchEvent {
    /// The event's name.
    pub const fn kind(&self) -> BatchEventKind {
        match self {
            BatchEvent::Start { .. } => BatchEventKind::Start,
            BatchEvent::Checkpoint { .. } => BatchEventKind::Checkpoint,
            BatchEvent::Pause { .. } => BatchEventKind::Pause,
            BatchEvent::Cancel { .. } => BatchEventKind::Cancel,
            BatchEvent::Complete { .. } => BatchEventKind::Complete,
            BatchEvent::Fail { .. } => BatchEventKind::Fail,
            BatchEvent::Resume { .. } => BatchEventKind::Resume,
            BatchEvent::Takeover { .. } => BatchEventKind::Takeover,
            BatchEvent::RequestPause { .. } => BatchEventKind::RequestPause,
            BatchEvent::RequestCancel { .. } => BatchEventKind::RequestCancel,
        }
    }

    /// When the event happens.
    pub const fn now(&self) -> DateTime<Utc> {
        match self {
            BatchEvent::Start { now, .. }
            | BatchEvent::Checkpoint { now, .. }
            | BatchEvent::Pause { now, .. }
            | BatchEvent::Cancel { now }
            | BatchEvent::Complete { now }
            | BatchEvent::Fail { now, .. }
            | BatchEvent::Resume { now, .. }
            | BatchEvent::Takeover { now, .. }
            | BatchEvent::RequestPause { now }
            | BatchEvent::RequestCancel { now } => *now,
        }
    }
}

/// The spec's transition table without its guards: the state `event` leads to from `from`, or `None` when the pair
/// is illegal. Requests leave the status as it is.
pub const fn transition_target(from: BatchStatus, event: BatchEventKind) -> Option<BatchStatus> {
    use BatchEventKind as E;
    use BatchStatus as S;
    match (from, event) {
        (S::Pending, E::Start | E::Resume) => Some(S::Running),
        (S::Pending, E::Fail) => Some(S::Failed),
        (S::Running, E::Checkpoint | E::Takeover) => Some(S::Running),
        (S::Running, E::Pause) => Some(S::Paused),
        (S::Running, E::Complete) => Some(S::Completed),
        (S::Running, E::Fail) => Some(S::Failed),
        (S::Paused | S::Failed, E::Resume) => Some(S::Running),
        (S::Pending | S::Running | S::Paused | S::Failed, E::Cancel) => Some(S::Cancelled),
        (S::Pending | S::Running, E::RequestPause | E::RequestCancel) => Some(from),
        _ => None,
    }
}

fn rfc3339(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Why [`Batch::apply`] refused an event. Every message starts `cannot <Event> a batch that is <state>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The pair is not in the transition table.
    #[error("cannot {event} a batch that is {from}")]
    Illegal {
        /// The batch's status.
        from: BatchStatus,
        /// The refused event.
        event: BatchEventKind,
    },
    /// A checkpoint whose parts do not add up to its rows.
    #[error(
        "cannot Checkpoint a batch that is running: {rows} rows is not {inserted} inserted + {updated} updated + \
         {skipped} skipped + {errors} errors"
    )]
    CheckpointMismatch {
        /// Rows reported.
        rows: u64,
        /// Inserted reported.
        inserted: u64,
        /// Updated reported.
        updated: u64,
        /// Skipped reported.
        skipped: u64,
        /// Errors reported.
        errors: u64,
    },
    /// A checkpoint that would take `last_processed_row` past `total_rows`.
    #[error(
        "cannot Checkpoint a batch that is running: {processed} rows processed + {rows} would pass its {total} rows"
    )]
    CheckpointOverrun {
        /// `last_processed_row` before the checkpoint.
        processed: u64,
        /// Rows reported.
        rows: u64,
        /// `total_rows`.
        total: u64,
    },
    /// `Complete` before every record was processed.
    #[error("cannot Complete a batch that is running: {processed} of {total} rows processed")]
    Incomplete {
        /// `last_processed_row`.
        processed: u64,
        /// `total_rows`.
        total: u64,
    },
    /// `Takeover` while the holder's lease is live and the holder is not known to be dead.
    #[error("cannot Takeover a batch that is running: its lease is held by {owner} until {}", rfc3339(.until))]
    LeaseLive {
        /// The holder.
        owner: LeaseOwner,
        /// The end of its lease.
        until: DateTime<Utc>,
    },
    /// A lease taken or renewed that would already be over at the event's `now`.
    #[error(
        "cannot {event} a batch that is {from}: a lease until {} is over at {}",
        rfc3339(.lease_until),
        rfc3339(.now)
    )]
    LeaseNotInFuture {
        /// The batch's status.
        from: BatchStatus,
        /// The refused event.
        event: BatchEventKind,
        /// The lease end given.
        lease_until: DateTime<Utc>,
        /// The event's `now`.
        now: DateTime<Utc>,
    },
}

impl TransitionError {
    /// The status of the batch that refused the event.
    pub const fn from_status(&self) -> BatchStatus {
        match self {
            TransitionError::Illegal { from, .. }
            | TransitionError::LeaseNotInFuture { from, .. } => *from,
            TransitionError::CheckpointMismatch { .. }
            | TransitionError::CheckpointOverrun { .. }
            | TransitionError::Incomplete { .. }
            | TransitionError::LeaseLive { .. } => BatchStatus::Running,
        }
    }

    /// The refused event.
    pub const fn event(&self) -> BatchEventKind {
        match self {
            TransitionError::Illegal { event, .. }
            | TransitionError::LeaseNotInFuture { event, .. } => *event,
            TransitionError::CheckpointMismatch { .. }
            | TransitionError::CheckpointOverrun { .. } => BatchEventKind::Checkpoint,
            TransitionError::Incomplete { .. } => BatchEventKind::Complete,
            TransitionError::LeaseLive { .. } => BatchEventKind::Takeover,
        }
    }
}

impl Batch {
    /// A new `pending` batch of `total_rows` records (counted by the pre-pass), with nothing processed.
    pub const fn new(total_rows: u64) -> Batch {
        Batch {
            status: BatchStatus::Pending,
            total_rows,
            inserted_rows: 0,
            updated_rows: 0,
            skipped_rows: 0,
            error_rows: 0,
            last_processed_row: 0,
            started_at: None,
            completed_at: None,
            lease: None,
            last_error: None,
            requested_action: None,
        }
    }

    /// The state after `event`, or why the event is refused (this state is never changed).
    ///
    /// # Errors
    /// [`TransitionError::Illegal`] for a pair outside the table; the other variants when a guard fails.
    pub fn apply(&self, event: &BatchEvent) -> Result<Batch, TransitionError> {
        let from = self.status;
        let kind = event.kind();
        let Some(to) = transition_target(from, kind) else {
            return Err(TransitionError::Illegal { from, event: kind });
        };
        let mut next = self.clone();
        match event {
            BatchEvent::Start {
                owner,
                lease_until,
                now,
            } => {
                next.take_lease(from, kind, owner, *lease_until, *now)?;
            }
            BatchEvent::Resume {
                owner,
                lease_until,
                now,
            } => {
                next.take_lease(from, kind, owner, *lease_until, *now)?;
                next.last_error = None;
                next.requested_action = None;
            }
            BatchEvent::Takeover {
                owner,
                lease_until,
                holder_dead,
                now,
            } => {
                if let Some(lease) = &self.lease
                    && !lease.can_be_taken_over(*now, *holder_dead)
                {
                    return Err(TransitionError::LeaseLive {
                        owner: lease.owner.clone(),
                        until: lease.expires_at,
                    });
                }
                next.take_lease(from, kind, owner, *lease_until, *now)?;
            }
            BatchEvent::Checkpoint {
                rows,
                inserted,
                updated,
                skipped,
                errors,
                lease_until,
                now,
            } => {
                next.checkpoint(
                    Deltas {
                        rows: *rows,
                        inserted: *inserted,
                        updated: *updated,
                        skipped: *skipped,
                        errors: *errors,
                    },
                    *lease_until,
                    *now,
                )?;
            }
            BatchEvent::Pause { reason, .. } => {
                next.stop();
                next.last_error = Some(reason.clone());
            }
            BatchEvent::Fail { error, .. } => {
                next.stop();
                next.last_error = Some(error.clone());
            }
            BatchEvent::Cancel { .. } => next.stop(),
            BatchEvent::Complete { now } => {
                if self.last_processed_row != self.total_rows {
                    return Err(TransitionError::Incomplete {
                        processed: self.last_processed_row,
                        total: self.total_rows,
                    });
                }
                next.stop();
                next.completed_at = Some(*now);
            }
            BatchEvent::RequestPause { .. } => {
                if next.requested_action.is_none() {
                    next.requested_action = Some(RequestedAction::Pause);
                }
            }
            BatchEvent::RequestCancel { .. } => {
                next.requested_action = Some(RequestedAction::Cancel)
            }
        }
        next.status = to;
        Ok(next)
    }

    /// Applies `event` in place; on error the state is left as it was.
    ///
    /// # Errors
    /// As [`Batch::apply`].
    pub fn step(&mut self, event: &BatchEvent) -> Result<(), TransitionError> {
        *self = self.apply(event)?;
        Ok(())
    }

    /// The event with which a worker honours the recorded request between chunks: `Pause` (with
    /// [`PAUSE_REQUESTED_REASON`]) or `Cancel`. `None` when nothing is requested or the batch is not running.
    pub fn requested_event(&self, now: DateTime<Utc>) -> Option<BatchEvent> {
        if self.status != BatchStatus::Running {
            return None;
        }
        self.requested_action.map(|action| match action {
            RequestedAction::Pause => BatchEvent::Pause {
                reason: PAUSE_REQUESTED_REASON.to_owned(),
                now,
            },
            RequestedAction::Cancel => BatchEvent::Cancel { now },
        })
    }

    fn take_lease(
        &mut self,
        from: BatchStatus,
        event: BatchEventKind,
        owner: &LeaseOwner,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        if lease_until <= now {
            return Err(TransitionError::LeaseNotInFuture {
                from,
                event,
                lease_until,
                now,
            });
        }
        self.lease = Some(Lease {
            owner: owner.clone(),
            expires_at: lease_until,
        });
        self.started_at.get_or_insert(now);
        Ok(())
    }

    fn checkpoint(
        &mut self,
        d: Deltas,
        lease_until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), TransitionError> {
        let parts = u128::from(d.inserted)
            + u128::from(d.updated)
            + u128::from(d.skipped)
            + u128::from(d.errors);
        if parts != u128::from(d.rows) {
            return Err(TransitionError::CheckpointMismatch {
                rows: d.rows,
                inserted: d.inserted,
                updated: d.updated,
                skipped: d.skipped,
                errors: d.errors,
            });
        }
        let overrun = TransitionError::CheckpointOverrun {
            processed: self.last_processed_row,
            rows: d.rows,
            total: self.total_rows,
        };
        let processed = match self.last_processed_row.checked_add(d.rows) {
            Some(p) if p <= self.total_rows => p,
            _ => return Err(overrun),
        };
        if lease_until <= now {
            return Err(TransitionError::LeaseNotInFuture {
                from: BatchStatus::Running,
                event: BatchEventKind::Checkpoint,
                lease_until,
                now,
            });
        }
        // Each part is at most `rows`, and every counter is at most `last_processed_row`, so none of these
        // additions can pass `total_rows`.
        self.last_processed_row = processed;
        self.inserted_rows = self.inserted_rows.saturating_add(d.inserted);
        self.updated_rows = self.updated_rows.saturating_add(d.updated);
        self.skipped_rows = self.skipped_rows.saturating_add(d.skipped);
        self.error_rows = self.error_rows.saturating_add(d.errors);
        if let Some(lease) = &mut self.lease {
            lease.expires_at = lease_until;
        }
        Ok(())
    }

    /// Leaving `running` (or `pending`): the lease is released and any request has been honoured or made moot.
    fn stop(&mut self) {
        self.lease = None;
        self.requested_action = None;
    }

    /// The status.
    pub const fn status(&self) -> BatchStatus {
        self.status
    }

    /// Whether the status is terminal.
    pub const fn is_terminal(&self) -> bool {
        is_terminal(self.status)
    }

    /// Records in the file.
    pub const fn total_rows(&self) -> u64 {
        self.total_rows
    }

    /// Rows inserted or updated: `inserted_rows + updated_rows`.
    pub const fn success_rows(&self) -> u64 {
        // Both are at most `last_processed_row` together, so this cannot overflow.
        self.inserted_rows.saturating_add(self.updated_rows)
    }

    /// Rows inserted.
    pub const fn inserted_rows(&self) -> u64 {
        self.inserted_rows
    }

    /// Rows whose stored values changed.
    pub const fn updated_rows(&self) -> u64 {
        self.updated_rows
    }

    /// Rows already stored with the same values.
    pub const fn skipped_rows(&self) -> u64 {
        self.skipped_rows
    }

    /// Rows rejected.
    pub const fn error_rows(&self) -> u64 {
        self.error_rows
    }

    /// Records processed so far: where a resume restarts.
    pub const fn last_processed_row(&self) -> u64 {
        self.last_processed_row
    }

    /// When the batch first ran.
    pub const fn started_at(&self) -> Option<DateTime<Utc>> {
        self.started_at
    }

    /// When it completed.
    pub const fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.completed_at
    }

    /// The lease, held exactly while the batch is running.
    pub const fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref()
    }

    /// The lease holder.
    pub fn lease_owner(&self) -> Option<&LeaseOwner> {
        self.lease.as_ref().map(|l| &l.owner)
    }

    /// The end of the lease.
    pub fn lease_expires_at(&self) -> Option<DateTime<Utc>> {
        self.lease.as_ref().map(|l| l.expires_at)
    }

    /// Whether a live lease holds the batch at `now`.
    pub fn lease_is_live(&self, now: DateTime<Utc>) -> bool {
        self.lease.as_ref().is_some_and(|l| l.is_live(now))
    }

    /// Why the batch is paused or failed (kept when a failed batch is cancelled).
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The request waiting for the worker.
    pub const fn requested_action(&self) -> Option<RequestedAction> {
        self.requested_action
    }

    /// This state as a flat record, one field per column.
    pub fn to_record(&self) -> StateRecord {
        StateRecord::from(self.clone())
    }
}

struct Deltas {
    rows: u64,
    inserted: u64,
    updated: u64,
    skipped: u64,
    errors: u64,
}

/// A [`Batch`] as flat columns, for adapters and serde. Converting it into a [`Batch`] checks every invariant the
/// machine keeps (see [`InvalidBatch`]), so a row read back from a database is parsed again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StateRecord {
    /// `status`.
    pub status: BatchStatus,
    /// `total_rows`.
    pub total_rows: u64,
    /// `success_rows`: must be `inserted_rows + updated_rows`.
    pub success_rows: u64,
    /// `inserted_rows`.
    pub inserted_rows: u64,
    /// `updated_rows`.
    pub updated_rows: u64,
    /// `skipped_rows`.
    pub skipped_rows: u64,
    /// `error_rows`.
    pub error_rows: u64,
    /// `last_processed_row`.
    pub last_processed_row: u64,
    /// `started_at`.
    pub started_at: Option<DateTime<Utc>>,
    /// `completed_at`.
    pub completed_at: Option<DateTime<Utc>>,
    /// `lease_owner`, rendered `host:pid:nonce`.
    pub lease_owner: Option<LeaseOwner>,
    /// `lease_expires_at`.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// `last_error`.
    pub last_error: Option<String>,
    /// `requested_action`.
    pub requested_action: Option<RequestedAction>,
}

/// A [`StateRecord`] that no sequence of events could have produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBatch {
    /// `success_rows != inserted_rows + updated_rows`.
    #[error("success_rows {success} is not inserted_rows {inserted} + updated_rows {updated}")]
    SuccessMismatch {
        /// `success_rows`.
        success: u64,
        /// `inserted_rows`.
        inserted: u64,
        /// `updated_rows`.
        updated: u64,
    },
    /// `success_rows + error_rows + skipped_rows != last_processed_row`.
    #[error(
        "success_rows {success} + error_rows {errors} + skipped_rows {skipped} is not last_processed_row {processed}"
    )]
    ProcessedMismatch {
        /// `success_rows`.
        success: u64,
        /// `error_rows`.
        errors: u64,
        /// `skipped_rows`.
        skipped: u64,
        /// `last_processed_row`.
        processed: u64,
    },
    /// `last_processed_row > total_rows`.
    #[error("last_processed_row {processed} is past total_rows {total}")]
    PastTotal {
        /// `last_processed_row`.
        processed: u64,
        /// `total_rows`.
        total: u64,
    },
    /// One of `lease_owner` and `lease_expires_at` without the other.
    #[error("lease_owner and lease_expires_at must be both set or both empty")]
    HalfLease,
    /// A running batch without a lease, or a lease on a batch that is not running.
    #[error("a {status} batch {}", if *.status == BatchStatus::Running { "must hold a lease" } else { "cannot hold a lease" })]
    Lease {
        /// `status`.
        status: BatchStatus,
    },
    /// A pending batch that has processed rows or has a `started_at`.
    #[error("a pending batch has neither processed rows nor started_at")]
    PendingProgress,
    /// A running, paused or completed batch without `started_at`.
    #[error("a {status} batch must have started_at")]
    NotStarted {
        /// `status`.
        status: BatchStatus,
    },
    /// `completed_at` set on a batch that is not completed, or missing on one that is.
    #[error("completed_at must be set exactly when the batch is completed (status {status})")]
    CompletedAt {
        /// `status`.
        status: BatchStatus,
    },
    /// A completed batch that has not processed every row.
    #[error("a completed batch has processed {processed} of {total} rows")]
    CompletedEarly {
        /// `last_processed_row`.
        processed: u64,
        /// `total_rows`.
        total: u64,
    },
    /// A request recorded on a batch no worker will look at.
    #[error("a {status} batch cannot carry a {action} request")]
    StaleRequest {
        /// `status`.
        status: BatchStatus,
        /// `requested_action`.
        action: RequestedAction,
    },
}

impl From<Batch> for StateRecord {
    fn from(b: Batch) -> Self {
        let success_rows = b.success_rows();
        let (lease_owner, lease_expires_at) = match b.lease {
            Some(Lease { owner, expires_at }) => (Some(owner), Some(expires_at)),
            None => (None, None),
        };
        StateRecord {
            status: b.status,
            total_rows: b.total_rows,
            success_rows,
            inserted_rows: b.inserted_rows,
            updated_rows: b.updated_rows,
            skipped_rows: b.skipped_rows,
            error_rows: b.error_rows,
            last_processed_row: b.last_processed_row,
            started_at: b.started_at,
            completed_at: b.completed_at,
            lease_owner,
            lease_expires_at,
            last_error: b.last_error,
            requested_action: b.requested_action,
        }
    }
}

impl TryFrom<StateRecord> for Batch {
    type Error = InvalidBatch;

    fn try_from(r: StateRecord) -> Result<Self, InvalidBatch> {
        use BatchStatus as S;
        if u128::from(r.success_rows) != u128::from(r.inserted_rows) + u128::from(r.updated_rows) {
            return Err(InvalidBatch::SuccessMismatch {
                success: r.success_rows,
                inserted: r.inserted_rows,
                updated: r.updated_rows,
            });
        }
        if u128::from(r.success_rows) + u128::from(r.error_rows) + u128::from(r.skipped_rows)
            != u128::from(r.last_processed_row)
        {
            return Err(InvalidBatch::ProcessedMismatch {
                success: r.success_rows,
                errors: r.error_rows,
                skipped: r.skipped_rows,
                processed: r.last_processed_row,
            });
        }
        if r.last_processed_row > r.total_rows {
            return Err(InvalidBatch::PastTotal {
                processed: r.last_processed_row,
                total: r.total_rows,
            });
        }
        let lease = match (r.lease_owner, r.lease_expires_at) {
            (Some(owner), Some(expires_at)) => Some(Lease { owner, expires_at }),
            (None, None) => None,
            _ => return Err(InvalidBatch::HalfLease),
        };
        let status = r.status;
        if lease.is_some() != (status == S::Running) {
            return Err(InvalidBatch::Lease { status });
        }
        if status == S::Pending && (r.last_processed_row != 0 || r.started_at.is_some()) {
            return Err(InvalidBatch::PendingProgress);
        }
        if matches!(status, S::Running | S::Paused | S::Completed) && r.started_at.is_none() {
            return Err(InvalidBatch::NotStarted { status });
        }
        if r.completed_at.is_some() != (status == S::Completed) {
            return Err(InvalidBatch::CompletedAt { status });
        }
        if status == S::Completed && r.last_processed_row != r.total_rows {
            return Err(InvalidBatch::CompletedEarly {
                processed: r.last_processed_row,
                total: r.total_rows,
            });
        }
        if let Some(action) = r.requested_action
            && !matches!(status, S::Pending | S::Running)
        {
            return Err(InvalidBatch::StaleRequest { status, action });
        }
        Ok(Batch {
            status,
            total_rows: r.total_rows,
            inserted_rows: r.inserted_rows,
            updated_rows: r.updated_rows,
            skipped_rows: r.skipped_rows,
            error_rows: r.error_rows,
            last_processed_row: r.last_processed_row,
            started_at: r.started_at,
            completed_at: r.completed_at,
            lease,
            last_error: r.last_error,
            requested_action: r.requested_action,
        })
    }
}

#[cfg(test)]
mod tests;
