//! Where the pipeline's writes go: each step in a transaction of its own (a real import), or every step in one
//! unit of work rolled back at the end (a dry run); and batch records moved through the state machine.

use chrono::{DateTime, Utc};

use crate::batch::{Batch, BatchEvent, InvalidBatch, LeaseOwner, StateRecord, TransitionError};
use crate::domain::{BatchRecord, NewBatch};
use crate::ports::{BatchGuard, StoreError, StoreResult, UnitOfWork};
use crate::store::Store;

/// The destination of an import's writes.
pub(crate) enum Ledger<'s> {
    /// Every step commits on its own: batch writes through the batch repository, chunks in units of their own.
    Real(&'s Store),
    /// Everything in this one unit, never committed.
    Dry(Box<dyn UnitOfWork>),
}

/// A unit of work for one chunk (or one step): owned by a real import, borrowed from a dry run's single unit.
pub(crate) enum Unit<'l> {
    /// Committed or rolled back when the chunk ends.
    Own(Box<dyn UnitOfWork>),
    /// The dry run's unit: ending the chunk does nothing.
    Shared(&'l mut dyn UnitOfWork),
}

impl Unit<'_> {
    /// The unit to read and write through.
    pub(crate) fn get(&mut self) -> &mut dyn UnitOfWork {
        match self {
            Unit::Own(u) => u.as_mut(),
            Unit::Shared(u) => &mut **u,
        }
    }

    /// Makes the chunk's writes visible (a dry run's stay pending in its unit).
    pub(crate) async fn commit(self) -> StoreResult<()> {
        match self {
            Unit::Own(u) => u.commit().await,
            Unit::Shared(_) => Ok(()),
        }
    }

    /// Discards the chunk's writes. A dry run cannot discard part of its unit; it only ever rolls back after an
    /// error that ends it, and then discards everything.
    pub(crate) async fn rollback(self) {
        if let Unit::Own(u) = self {
            // The error that led here is what the caller reports; a failed rollback discards the writes too.
            let _discarded = u.rollback().await;
        }
    }
}

impl<'s> Ledger<'s> {
    /// Whether this is a dry run.
    pub(crate) fn is_dry(&self) -> bool {
        matches!(self, Ledger::Dry(_))
    }

    /// A unit for one chunk or step.
    pub(crate) async fn begin(&mut self) -> StoreResult<Unit<'_>> {
        match self {
            Ledger::Real(store) => Ok(Unit::Own(store.begin().await?)),
            Ledger::Dry(u) => Ok(Unit::Shared(u.as_mut())),
        }
    }

    /// Creates a batch in status `pending`.
    pub(crate) async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        match self {
            Ledger::Real(store) => store.insert_batch(batch).await,
            Ledger::Dry(u) => u.insert_batch(batch).await,
        }
    }

    /// Overwrites a batch if the stored row still satisfies `guard`.
    pub(crate) async fn save_batch(
        &mut self,
        batch: &BatchRecord,
        guard: &BatchGuard,
    ) -> StoreResult<bool> {
        match self {
            Ledger::Real(store) => store.save_batch(batch, guard).await,
            Ledger::Dry(u) => u.save_batch(batch, guard).await,
        }
    }

    /// The batch as stored now; a dry run's batch is seen by nobody else, so it has no news (`None`). (`&mut`:
    /// a dry run's unit is not `Sync`, so a shared borrow of the ledger could not be held across an await.)
    pub(crate) async fn reread(&mut self, batch: &BatchRecord) -> StoreResult<Option<BatchRecord>> {
        match self {
            Ledger::Real(store) => store.get_batch(batch.id).await,
            Ledger::Dry(_) => Ok(None),
        }
    }

    /// Ends a dry run, discarding everything.
    pub(crate) async fn finish(self) {
        if let Ledger::Dry(u) = self {
            let _discarded = u.rollback().await;
        }
    }
}

/// Why a batch record could not be moved on.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MoveError {
    /// The machine refused the event.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// The stored record is not one the machine could have produced.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The machine's view of a stored batch.
///
/// # Errors
/// [`StoreError::Corrupt`] when the record breaks the machine's invariants or its lease owner does not parse.
pub(crate) fn machine(r: &BatchRecord) -> Result<Batch, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt {
        what: format!("ingestion_batches {}: {what}", r.id),
    };
    let count = |name: &str, v: i64| {
        u64::try_from(v).map_err(|_| corrupt(format!("{name} {v} is negative")))
    };
    let lease_owner = r
        .lease_owner
        .as_deref()
        .map(LeaseOwner::parse)
        .transpose()
        .map_err(|e| corrupt(format!("lease_owner: {e}")))?;
    let record = StateRecord {
        status: r.status,
        total_rows: count("total_rows", r.total_rows)?,
        success_rows: count("success_rows", r.success_rows)?,
        inserted_rows: count("inserted_rows", r.inserted_rows)?,
        updated_rows: count("updated_rows", r.updated_rows)?,
        skipped_rows: count("skipped_rows", r.skipped_rows)?,
        error_rows: count("error_rows", r.error_rows)?,
        last_processed_row: count("last_processed_row", r.last_processed_row)?,
        started_at: r.started_at,
        completed_at: r.completed_at,
        lease_owner,
        lease_expires_at: r.lease_expires_at,
        last_error: r.last_error.clone(),
        requested_action: r.requested_action,
    };
    Batch::try_from(record).map_err(|e: InvalidBatch| corrupt(e.to_string()))
}

/// `r` after `event`, with `updated_at = now`.
///
/// # Errors
/// [`MoveError::Transition`] when the machine refuses; [`MoveError::Store`] for a corrupt record.
pub(crate) fn apply(
    r: &BatchRecord,
    event: &BatchEvent,
    now: DateTime<Utc>,
) -> Result<BatchRecord, MoveError> {
    let next = machine(r)?.apply(event)?;
    Ok(with_state(r, &next, now))
}

/// `r` carrying the machine state `s`.
pub(crate) fn with_state(r: &BatchRecord, s: &Batch, now: DateTime<Utc>) -> BatchRecord {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    BatchRecord {
        status: s.status(),
        total_rows: n(s.total_rows()),
        success_rows: n(s.success_rows()),
        inserted_rows: n(s.inserted_rows()),
        updated_rows: n(s.updated_rows()),
        skipped_rows: n(s.skipped_rows()),
        error_rows: n(s.error_rows()),
        last_processed_row: n(s.last_processed_row()),
        started_at: s.started_at(),
        completed_at: s.completed_at(),
        lease_owner: s.lease_owner().map(ToString::to_string),
        lease_expires_at: s.lease_expires_at(),
        last_error: s.last_error().map(str::to_owned),
        requested_action: s.requested_action(),
        updated_at: now,
        ..r.clone()
    }
}

/// Whether `fresh` is `mine` with nothing changed but a pause or cancel request: the worker still holds it.
pub(crate) fn only_request_differs(mine: &BatchRecord, fresh: &BatchRecord) -> bool {
    fresh.lease_owner == mine.lease_owner
        && fresh.status == mine.status
        && fresh.last_processed_row == mine.last_processed_row
        && fresh.requested_action != mine.requested_action
}
