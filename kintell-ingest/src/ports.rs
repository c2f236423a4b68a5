//! Repository ports: the traits the library speaks to, in domain types only; stores implement them.
//!
//! Every store (in-memory, SQLite, PostgreSQL) implements the same traits and passes the same contract suite. A
//! store of your own implements all six (together they are [`Repositories`]) and becomes a [`crate::store::Store`]
//! with [`crate::store::Store::from_repositories`]; the `custom_store` example of the `kintell-ingest-examples`
//! crate does so.
//! Signatures hold no driver type: a store translates its driver's errors into [`StoreError`], so a unique
//! violation is [`StoreError::Duplicate`], a check violation [`StoreError::Invalid`] and a foreign-key violation
//! [`StoreError::MissingReference`] on every backend.
//!
//! Writes that must be all-or-nothing go through a [`UnitOfWork`]: the store hands one out with
//! [`UnitOfWorkFactory::begin`], the caller does its look-ups and writes, then commits or rolls back. Dropping a unit
//! of work without committing rolls it back.

use crate::association::DecidedAssociation;
use crate::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, AssociationState,
    BatchId, BatchRecord, BatchStatus, BeneficiaryGroup, Campaign, CampaignId, Company, CompanyId,
    CompletionKey, CompletionWrite, DeliveryId, DeliveryRecord, Email, Enrollment, EntityKind,
    InstanceId, Key, MatchKey, MatchWrite, NewBatch, NewRun, ProgramInstance, ProgramSlug,
    ProgramType, RequestedAction, RowErrorRecord, RunGuard, RunId, RunRecord, SessionId,
    SessionWrite, StoredRow, StoredSession, Tags, User, UserId, UserWrite, Written,
};
use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

/// A boxed error from a driver, kept as the source of a [`StoreError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What a store operation can fail with, the same on every store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write; `constraint` names it (index or constraint name, or the columns).
    #[error("duplicate: {constraint} already holds this value")]
    Duplicate {
        /// The constraint that refused the write.
        constraint: String,
    },
    /// A check constraint refused the write.
    #[error("invalid value: {constraint} refused it")]
    Invalid {
        /// The constraint that refused the write.
        constraint: String,
    },
    /// A foreign key refused the write: the referenced row does not exist (or is still referenced).
    #[error("missing reference: {constraint}")]
    MissingReference {
        /// The constraint that refused the write.
        constraint: String,
    },
    /// A stored value could not be parsed back into its domain type.
    #[error("stored data is not valid: {what}")]
    Corrupt {
        /// What was wrong, naming table and column.
        what: String,
    },
    /// The database could not be reached or answered with an error of its own.
    #[error("database error: {message}")]
    Backend {
        /// What was being done.
        message: String,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

/// Shorthand for results of store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// How an upsert of many rows went: each row is counted in exactly one field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpsertCounts {
    /// Rows that did not exist.
    pub inserted: u64,
    /// Rows that existed with other values and were changed.
    pub updated: u64,
    /// Rows that existed with the same values and were left as they were.
    pub unchanged: u64,
}

impl UpsertCounts {
    /// Adds another count to this one.
    pub fn add(&mut self, other: UpsertCounts) {
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.unchanged += other.unchanged;
    }
}

/// The condition under which a batch row may be overwritten: what the writer last saw.
///
/// A write whose guard does not match the stored row changes nothing (the lease was lost, another worker moved
/// the batch on, or someone recorded a pause or cancel request the writer has not seen: a worker's checkpoint must
/// not overwrite a request it never read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchGuard {
    /// The lease owner the row must still have (`None`: no owner).
    pub lease_owner: Option<String>,
    /// The status the row must still have.
    pub status: BatchStatus,
    /// The resume point the row must still have.
    pub last_processed_row: i64,
    /// The pending request the row must still have (`None`: none).
    pub requested_action: Option<RequestedAction>,
}

impl BatchGuard {
    /// The guard matching `batch` as it is now.
    pub fn of(batch: &BatchRecord) -> Self {
        BatchGuard {
            lease_owner: batch.lease_owner.clone(),
            status: batch.status,
            last_processed_row: batch.last_processed_row,
            requested_action: batch.requested_action,
        }
    }

    /// Whether a stored row satisfies the guard.
    pub fn matches(&self, stored: &BatchRecord) -> bool {
        stored.lease_owner == self.lease_owner
            && stored.status == self.status
            && stored.last_processed_row == self.last_processed_row
            && stored.requested_action == self.requested_action
    }
}

/// Filter for [`BatchRepository::list_batches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFilter {
    /// Only batches in this status.
    pub status: Option<BatchStatus>,
    /// Only batches of this entity.
    pub entity_kind: Option<EntityKind>,
    /// At most this many (newest first); `None` for all.
    pub limit: Option<u32>,
}

/// Filter for [`AssociationRepository::list_reviews`]; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewFilter {
    /// Only proposals of campaigns of this company.
    pub company: Option<CompanyId>,
    /// Only proposals of this campaign.
    pub campaign: Option<CampaignId>,
    /// Only activities of this kind.
    pub kind: Option<ActivityKind>,
    /// Only activities on or after this date (UTC calendar date of the activity time).
    pub from: Option<NaiveDate>,
    /// Only activities on or before this date.
    pub to: Option<NaiveDate>,
    /// At most this many.
    pub limit: Option<u32>,
}

/// The people, time and link of one stored activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivitySummary {
    /// The participant (the match's participant, the course's learner).
    pub participant_id: crate::domain::UserId,
    /// The volunteer (the session's volunteer, the match's buddy); `None` for completions.
    pub volunteer_id: Option<crate::domain::UserId>,
    /// The activity time: a session's `completed_at`, else its `scheduled_at`; a match's `matched_at`; a
    /// completion's `completed_at`.
    pub at: Option<DateTime<Utc>>,
    /// The instance it is linked to.
    pub program_instance_id: Option<InstanceId>,
}

/// One item of the review queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    /// The association (its id is the item's id).
    pub association: Association,
    /// The activity's people, time and link.
    pub activity: ActivitySummary,
}

/// Activity counts of one campaign or instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ActivityCounts {
    /// Linked sessions.
    pub sessions: u64,
    /// Linked buddy matches.
    pub matches: u64,
    /// Linked course completions.
    pub completions: u64,
    /// Sum of the linked sessions' `duration_minutes`.
    pub session_minutes: u64,
    /// Distinct participants over all linked activities.
    pub participants: u64,
    /// Distinct volunteers over all linked activities.
    pub volunteers: u64,
}

/// What [`AssociationRepository::campaign_counts`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CampaignCounts {
    /// Per campaign: its counts (over all its instances) and the pending reviews proposing it.
    pub campaigns: Vec<(CampaignId, ActivityCounts, u64)>,
    /// Per instance that has a campaign: its counts.
    pub instances: Vec<(InstanceId, ActivityCounts)>,
}

/// The catalogue as association needs it: loaded once per batch or backfill run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogData {
    /// Every company.
    pub companies: Vec<Company>,
    /// Every beneficiary group.
    pub groups: Vec<BeneficiaryGroup>,
    /// Every campaign.
    pub campaigns: Vec<Campaign>,
    /// Every programme instance.
    pub instances: Vec<ProgramInstance>,
}

/// Which stored activities a backfill page reads (see [`UnitOfWork::backfill_page`]); every field narrows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BackfillFilter {
    /// Only activities of this company: the volunteer's company if set, otherwise the participant's.
    pub company: Option<CompanyId>,
    /// Only activities whose time is at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only activities whose time is before this instant.
    pub until: Option<DateTime<Utc>>,
    /// Skip activities with an association other than `none`.
    pub only_unassociated: bool,
}

/// One stored activity with everything association needs, as a backfill page reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRow {
    /// Its kind.
    pub kind: ActivityKind,
    /// Its id.
    pub id: ActivityId,
    /// Its programme kind (a session's from its type).
    pub program: ProgramType,
    /// The activity time (see [`ActivitySummary::at`]); `None` when the row has none.
    pub at: Option<DateTime<Utc>>,
    /// The participant.
    pub participant_id: UserId,
    /// The participant's company.
    pub participant_company: Option<CompanyId>,
    /// The participant's tags.
    pub participant_tags: Tags,
    /// The volunteer (`None` for completions).
    pub volunteer_id: Option<UserId>,
    /// The volunteer's company.
    pub volunteer_company: Option<CompanyId>,
    /// The instance the activity is linked to.
    pub program_instance_id: Option<InstanceId>,
    /// Its stored association (decision `None` when it has none).
    pub association: AssociationState,
}

impl CatalogData {
    /// The id of the company with `slug`, if any.
    pub fn company_id(&self, slug: &Key) -> Option<CompanyId> {
        self.companies
            .iter()
            .find(|c| &c.slug == slug)
            .map(|c| c.id)
    }
}

/// The writes of one transaction: a chunk of an import, a catalogue import, a page of a backfill.
///
/// Nothing is visible to others before [`UnitOfWork::commit`]; [`UnitOfWork::rollback`], an error the caller does
/// not recover from, or dropping the unit of work, leaves the store as it was. Look-ups see the unit's own writes.
///
/// # Errors
/// Every method returns [`StoreError::Backend`] when the database fails; writes also return the constraint errors
/// named on each method. After an error the unit of work must be rolled back (on PostgreSQL the transaction is
/// aborted).
#[async_trait]
pub trait UnitOfWork: Send {
    /// The users with these emails, in no particular order (one query however many emails).
    ///
    /// # Errors
    /// [`StoreError::Backend`], or [`StoreError::Corrupt`] for a stored row that does not parse.
    async fn users_by_email(&mut self, emails: &[Email]) -> StoreResult<Vec<User>>;

    /// The companies with these slugs, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn companies_by_slug(&mut self, slugs: &[Key]) -> StoreResult<Vec<Company>>;

    /// The beneficiary groups with these keys, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn groups_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<BeneficiaryGroup>>;

    /// The campaigns with these keys, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn campaigns_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<Campaign>>;

    /// The programme instances with these slugs, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn instances_by_slug(
        &mut self,
        slugs: &[ProgramSlug],
    ) -> StoreResult<Vec<ProgramInstance>>;

    /// Inserts or updates companies by id, changing only rows whose values differ.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when another company has the slug.
    async fn upsert_companies(&mut self, rows: &[Company]) -> StoreResult<UpsertCounts>;

    /// Inserts or updates beneficiary groups by id, changing only rows whose values differ.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when another group has the key.
    async fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> StoreResult<UpsertCounts>;

    /// Inserts or updates campaigns by id, changing only rows whose values differ.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when another campaign has the key; [`StoreError::MissingReference`] for an
    /// unknown company or group; [`StoreError::Invalid`] when `end_date < start_date`.
    async fn upsert_campaigns(&mut self, rows: &[Campaign]) -> StoreResult<UpsertCounts>;

    /// Inserts or updates programme instances by id, changing only rows whose values differ; an update keeps the
    /// stored `created_at`.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when another instance has the slug; [`StoreError::MissingReference`] for an
    /// unknown company or campaign; [`StoreError::Invalid`] when `end_date < start_date`.
    async fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> StoreResult<UpsertCounts>;

    /// Inserts or updates users by id, changing only rows whose values differ.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when another user has the email; [`StoreError::MissingReference`] for an unknown
    /// company.
    async fn upsert_users(&mut self, rows: &[User]) -> StoreResult<UpsertCounts>;

    /// Inserts or updates associations by (`activity_kind`, `activity_id`), changing only rows whose values differ.
    /// A stored human decision (`accepted`, `rejected`) is never changed, and a stored `explicit` decision is
    /// changed only by another `explicit` one; such rows count as unchanged. The id of an existing row is kept.
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown campaign, instance, batch or run.
    async fn upsert_associations(&mut self, rows: &[Association]) -> StoreResult<UpsertCounts>;

    /// Stores the associations an import or a backfill decided, exactly as [`Self::upsert_associations`] stores
    /// their records ([`DecidedAssociation::to_record`]), which is what this provided method does. The SQL stores
    /// write the explanations as JSON text straight from the outcomes instead of building the records' documents.
    ///
    /// # Errors
    /// As [`Self::upsert_associations`].
    async fn upsert_decided(&mut self, rows: &[DecidedAssociation]) -> StoreResult<UpsertCounts> {
        let records: Vec<Association> = rows.iter().map(DecidedAssociation::to_record).collect();
        self.upsert_associations(&records).await
    }

    /// Creates a batch in status `pending`, counters 0, as part of this unit (a dry run creates its batch here, so
    /// that nothing of it outlives the rollback); returns it as stored.
    ///
    /// # Errors
    /// As [`BatchRepository::insert_batch`].
    async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord>;

    /// Every batch of this entity whose file has this hash, newest first, as this unit sees them (its own writes
    /// included): an import creating a batch reads the ledger again here before committing, so that nothing
    /// another import committed since its decision escapes it.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn batches_by_hash(
        &mut self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>>;

    /// Overwrites the mutable columns of a batch if the stored row still satisfies `guard`; returns whether it did.
    /// `false` means the lease was lost or the batch moved on: the caller rolls back and stops.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] when the counters break the table's checks; [`StoreError::Duplicate`] when the
    /// status change collides with another in-flight batch of the same file.
    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool>;

    /// The stored sessions (source system `kintell`) with these external ids, with their lineage, in no particular
    /// order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn stored_sessions(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, StoredRow)>>;

    /// The stored buddy matches with these keys, with their lineage, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn stored_matches(
        &mut self,
        keys: &[MatchKey],
    ) -> StoreResult<Vec<(MatchKey, StoredRow)>>;

    /// The stored course completions with these keys, with their lineage, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn stored_completions(
        &mut self,
        keys: &[CompletionKey],
    ) -> StoreResult<Vec<(CompletionKey, StoredRow)>>;

    /// The users with these emails that have a `kintell` external id, with the lineage kept in its metadata (see
    /// [`UserWrite`]), in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn stored_user_sources(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<Vec<(Email, StoredRow)>>;

    /// Upserts sessions on (`kintell`, `external_session_id`), changing only rows whose values differ (the values
    /// of [`SessionWrite::row`], the people, and the instance when given), with the lineage rules of
    /// [`crate::domain::RowSource`]. Returns one [`Written`] per input row, in input order. The keys of one call
    /// are distinct (the caller removes duplicates first).
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown user, instance or batch; [`StoreError::Invalid`] for a
    /// value a check refuses.
    async fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> StoreResult<Vec<Written>>;

    /// Upserts buddy matches on their key, as [`UnitOfWork::upsert_sessions`] does.
    ///
    /// # Errors
    /// As [`UnitOfWork::upsert_sessions`].
    async fn upsert_matches(&mut self, rows: &[MatchWrite]) -> StoreResult<Vec<Written>>;

    /// Upserts course completions on their key, as [`UnitOfWork::upsert_sessions`] does.
    ///
    /// # Errors
    /// As [`UnitOfWork::upsert_sessions`].
    async fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> StoreResult<Vec<Written>>;

    /// Upserts users of the users export by email, changing only rows whose values differ, and ensures each one's
    /// `kintell` external id with the write's lineage in its metadata (rewritten only when the user row is
    /// inserted or changed). Returns one [`Written`] per input row, in input order; emails are distinct.
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown company; [`StoreError::Duplicate`] when the external id is
    /// held by another user.
    async fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> StoreResult<Vec<Written>>;

    /// Inserts enrolments that do not exist yet on (`user_id`, `program_instance_id`, `role`); an existing one
    /// keeps its id and gets the earlier `enrolled_at`. Counts inserted, updated (an earlier `enrolled_at`) and
    /// unchanged.
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown user or instance.
    async fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> StoreResult<UpsertCounts>;

    /// The programme instances with these ids, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn instances_by_id(&mut self, ids: &[InstanceId]) -> StoreResult<Vec<ProgramInstance>>;

    /// The associations of these activities of one kind, in no particular order (one query).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn associations_of(
        &mut self,
        kind: ActivityKind,
        activities: &[ActivityId],
    ) -> StoreResult<Vec<Association>>;

    /// One association by id, as this unit sees it.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn association_by_id(&mut self, id: AssociationId) -> StoreResult<Option<Association>>;

    /// The people, time and linked instance of one stored activity.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn activity_summary(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivitySummary>>;

    /// Sets (or with `None` clears) the `program_instance_id` of one activity; returns whether the row exists.
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown instance.
    async fn set_activity_instance(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
        instance: Option<InstanceId>,
    ) -> StoreResult<bool>;

    /// A page of a backfill: the activities of `kind` with an id above `after` (all when `None`) that pass
    /// `filter`, by id, at most `limit` of them, each with its people's companies, the participant's tags, its
    /// link and its stored association. One query per call (keyset pagination: never an offset).
    ///
    /// # Errors
    /// [`StoreError::Backend`], or [`StoreError::Corrupt`] for a stored row that does not parse.
    async fn backfill_page(
        &mut self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
        limit: u32,
    ) -> StoreResult<Vec<BackfillRow>>;

    /// Sets the `program_instance_id` of many activities of `kind` (set-based: one statement per call, as the bind
    /// limit allows); returns how many rows exist among them. An id given twice takes its last instance.
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown instance.
    async fn set_activity_instances(
        &mut self,
        kind: ActivityKind,
        links: &[(ActivityId, InstanceId)],
    ) -> StoreResult<u64>;

    /// Overwrites the mutable columns of a backfill run (status, checkpoint, statistics, lease, times) if the stored
    /// row still satisfies `guard`; returns whether it did. `false` means the lease was lost: roll back and stop.
    ///
    /// # Errors
    /// [`StoreError::Invalid`] for a value the table's checks refuse.
    async fn save_run(&mut self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool>;

    /// Writes row errors, rewriting a stored error of the same (`batch_id`, `row_number`).
    ///
    /// # Errors
    /// [`StoreError::MissingReference`] for an unknown batch; [`StoreError::Invalid`] for a row number below 1.
    async fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> StoreResult<()>;

    /// The stored sessions (source system `kintell`) with these external ids, with their values and their people's
    /// emails, in no particular order (one query): what a webhook event about a session merges with.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn sessions_by_external_id(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<StoredSession>>;

    /// The recorded webhook delivery with this id, as this unit sees it.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn delivery(&mut self, id: &DeliveryId) -> StoreResult<Option<DeliveryRecord>>;

    /// Records a webhook delivery, to be committed with the rows it wrote.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when a delivery with this id is recorded — on PostgreSQL also one recorded by
    /// another transaction still open, once it commits (the insert waits for it); [`StoreError::MissingReference`]
    /// for an unknown batch; [`StoreError::Invalid`] for a value the table's checks refuse (a status outside
    /// 100..=599, a hash that is not 64 lower-case hex digits).
    async fn insert_delivery(&mut self, delivery: &DeliveryRecord) -> StoreResult<()>;

    /// Makes every write of this unit visible at once.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; then nothing was written.
    async fn commit(self: Box<Self>) -> StoreResult<()>;

    /// Discards every write of this unit.
    ///
    /// # Errors
    /// [`StoreError::Backend`]; nothing was written either way.
    async fn rollback(self: Box<Self>) -> StoreResult<()>;
}

/// Hands out units of work.
#[async_trait]
pub trait UnitOfWorkFactory: Send + Sync {
    /// Starts a transaction.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached.
    async fn begin(&self) -> StoreResult<Box<dyn UnitOfWork>>;
}

/// The batch ledger. Each method is its own transaction.
#[async_trait]
pub trait BatchRepository: Send + Sync {
    /// Creates a batch in status `pending`, counters 0; returns it as stored.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when a batch with the same id exists, or another batch of the same entity and file
    /// hash is in flight (`pending`, `running` or `paused`: index `ingestion_batches_in_flight_uq`);
    /// [`StoreError::MissingReference`] for an unknown programme instance.
    async fn insert_batch(&self, batch: &NewBatch) -> StoreResult<BatchRecord>;

    /// One batch.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn get_batch(&self, id: BatchId) -> StoreResult<Option<BatchRecord>>;

    /// Batches, newest first (by `created_at`, then id).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Vec<BatchRecord>>;

    /// Every batch of this entity whose file has this hash, newest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn batches_by_hash(
        &self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>>;

    /// Every batch of this entity with this file name, newest first.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn batches_by_file_name(
        &self,
        entity: EntityKind,
        file_name: &str,
    ) -> StoreResult<Vec<BatchRecord>>;

    /// [`UnitOfWork::save_batch`] in a transaction of its own.
    ///
    /// # Errors
    /// As [`UnitOfWork::save_batch`].
    async fn save_batch(&self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool>;

    /// The row errors of a batch with `row_number > after_row`, by row number, at most `limit` of them (keyset
    /// pagination for the error CSV).
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn row_errors(
        &self,
        batch: BatchId,
        after_row: i64,
        limit: u32,
    ) -> StoreResult<Vec<RowErrorRecord>>;

    /// Links every row of `kind` whose `batch_id` is NULL to the legacy batch of that table (`file_name =
    /// 'legacy_import'`, `import_method = 'legacy'`, `format = 'legacy'`, status `completed`), creating it from
    /// `batch` when there is none and otherwise adding the rows to the existing one (its counters grow by the rows
    /// adopted), all in one transaction. Returns the legacy batch as stored and the number of rows adopted now.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn adopt_legacy(
        &self,
        kind: ActivityKind,
        batch: &NewBatch,
    ) -> StoreResult<(BatchRecord, u64)>;
}

/// Backfill runs (`association_runs`). Each method is its own transaction.
#[async_trait]
pub trait RunRepository: Send + Sync {
    /// Creates a run in status `pending` with an empty checkpoint and zeroed statistics; returns it as stored.
    ///
    /// # Errors
    /// [`StoreError::Duplicate`] when a run with the same id exists; [`StoreError::Invalid`] for a batch size or
    /// dates the table's checks refuse.
    async fn insert_run(&self, run: &NewRun) -> StoreResult<RunRecord>;

    /// One run.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn get_run(&self, id: RunId) -> StoreResult<Option<RunRecord>>;

    /// Runs, newest first (by `created_at`, then id); at most `limit` when given.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn list_runs(&self, limit: Option<u32>) -> StoreResult<Vec<RunRecord>>;

    /// [`UnitOfWork::save_run`] in a transaction of its own.
    ///
    /// # Errors
    /// As [`UnitOfWork::save_run`].
    async fn save_run(&self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool>;
}

/// Stored activities (sessions, matches, completions).
#[async_trait]
pub trait ActivityRepository: Send + Sync {
    /// Readies the store for the pages of a backfill of `kinds`, once per execution of a run. A store with a
    /// cost-based planner refreshes the statistics of the tables the pages read (PostgreSQL: `ANALYZE`), so that a
    /// page is planned as a walk of the primary key from the checkpoint even right after a bulk import on a server
    /// whose autovacuum has not run; planned from no statistics, each page scanned the whole table. The default does
    /// nothing.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn prepare_backfill(&self, kinds: &[ActivityKind]) -> StoreResult<()> {
        let _ = kinds;
        Ok(())
    }

    /// How many activities of `kind` with an id above `after` pass `filter`: what the pages of a backfill will
    /// read (one aggregate query).
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn count_backfill(
        &self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
    ) -> StoreResult<u64>;

    /// The enrolments in one programme instance, by user and role.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn enrollments_of(&self, instance: InstanceId) -> StoreResult<Vec<Enrollment>>;

    /// How many rows of this kind are stored.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn count_activities(&self, kind: ActivityKind) -> StoreResult<u64>;

    /// Where one activity came from and what it is linked to.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn activity_lineage(
        &self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivityLineage>>;
}

/// The catalogue: companies, beneficiary groups, campaigns, programme instances and users.
#[async_trait]
pub trait CatalogRepository: Send + Sync {
    /// Everything association needs, in one read.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn load_catalog(&self) -> StoreResult<CatalogData>;

    /// One programme instance by slug.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn instance_by_slug(&self, slug: &ProgramSlug) -> StoreResult<Option<ProgramInstance>>;

    /// One programme instance by id.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn instance_by_id(&self, id: InstanceId) -> StoreResult<Option<ProgramInstance>>;

    /// One user by email.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// How many users are stored.
    ///
    /// # Errors
    /// [`StoreError::Backend`].
    async fn count_users(&self) -> StoreResult<u64>;
}

/// Association records (one per activity) and the review queue built on them.
#[async_trait]
pub trait AssociationRepository: Send + Sync {
    /// One association by id.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn get_association(&self, id: AssociationId) -> StoreResult<Option<Association>>;

    /// The association of one activity.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn association_for(
        &self,
        kind: ActivityKind,
        activity_id: ActivityId,
    ) -> StoreResult<Option<Association>>;

    /// The review queue: associations with decision `review` that pass `filter`, oldest activity first (then by
    /// association id), each with the activity's date and people.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn list_reviews(&self, filter: &ReviewFilter) -> StoreResult<Vec<ReviewItem>>;

    /// Counts per campaign and per programme instance of the activities linked to them (through the activities'
    /// `program_instance_id`), with pending reviews per proposed campaign; only campaigns of `company` when given.
    /// Campaigns and instances with nothing to count may be left out. Aggregate queries, never one per campaign.
    ///
    /// # Errors
    /// [`StoreError::Backend`], [`StoreError::Corrupt`].
    async fn campaign_counts(&self, company: Option<CompanyId>) -> StoreResult<CampaignCounts>;
}

/// Everything a store provides: the five repositories and units of work.
pub trait Repositories:
    UnitOfWorkFactory
    + BatchRepository
    + RunRepository
    + ActivityRepository
    + CatalogRepository
    + AssociationRepository
{
}

impl<T> Repositories for T where
    T: UnitOfWorkFactory
        + BatchRepository
        + RunRepository
        + ActivityRepository
        + CatalogRepository
        + AssociationRepository
{
}
