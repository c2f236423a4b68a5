//! The in-memory store: every port on plain maps, for tests, examples and dry runs without a database.
//!
//! It honours the constraints of the SQL schema for everything the ports write, with the same named errors: unique
//! keys and the in-flight batch index are [`StoreError::Duplicate`], checks [`StoreError::Invalid`], foreign keys
//! [`StoreError::MissingReference`].
//!
//! # One writer at a time
//!
//! A unit of work holds the store's single writer permit from [`UnitOfWorkFactory::begin`] until it is committed,
//! rolled back or dropped; `begin` (and the batch ledger's own writes, which are units of their own) wait for it
//! asynchronously. So units are serialised, not merely isolated: a task that holds a unit and then begins another
//! one, or calls [`BatchRepository::insert_batch`] / [`BatchRepository::save_batch`], waits forever. Reads outside a
//! unit never wait for the permit and see only committed data.
//!
//! A unit keeps its writes in a private overlay on top of the committed tables, so its cost is proportional to what
//! it writes, not to the size of the store; commit folds the overlay in under the data lock, at once.
//!
//! Like a PostgreSQL transaction, a unit whose operation failed is aborted: every later operation fails with
//! [`StoreError::Backend`], and commit discards its writes and reports the same error.

use crate::domain::{
    ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId, BatchRecord,
    BatchStatus, BeneficiaryGroup, Campaign, CampaignId, Company, CompanyId, CompletionKey,
    CompletionWrite, DeliveryId, DeliveryRecord, DurationMinutes, Email, EndReason, Enrollment,
    EnrollmentRole, EntityKind, FinalScore, GroupId, InstanceId, Key, LanguageLevel, MatchKey,
    MatchStatus, MatchWrite, NewBatch, NewRun, ProgramInstance, ProgramSlug, ProgramType, Rating,
    RowErrorRecord, RowOutcome, RowSource, RunGuard, RunId, RunRecord, SessionId, SessionType,
    SessionWrite, StoredRow, StoredSession, User, UserId, UserWrite, Written,
};
use crate::ports::{
    ActivityRepository, ActivitySummary, AssociationRepository, BackfillFilter, BackfillRow,
    BatchFilter, BatchGuard, BatchRepository, CampaignCounts, CatalogData, CatalogRepository,
    ReviewFilter, ReviewItem, RunRepository, StoreError, StoreResult, UnitOfWork,
    UnitOfWorkFactory, UpsertCounts,
};
use crate::store::Store;
use crate::store::lineage;
#[path = "memory_backfill.rs"]
mod backfill;
#[path = "memory_review.rs"]
mod review;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A store that lives in memory and disappears with its last handle.
///
/// Clones share the same data. See the module documentation for how units of work are serialised.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// Waits for the writer permit and starts a unit of work on it.
    async fn unit(&self) -> MemoryUnit {
        let permit = Acquire {
            shared: Arc::clone(&self.shared),
        }
        .await;
        MemoryUnit {
            permit,
            overlay: Tables::default(),
            aborted: false,
        }
    }

    /// Runs `f` on the committed tables.
    fn read<T>(&self, f: impl FnOnce(&Tables) -> T) -> T {
        f(&lock(&self.shared.data))
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let data = lock(&self.shared.data);
        f.debug_struct("MemoryStore")
            .field("companies", &data.companies.rows.len())
            .field("campaigns", &data.campaigns.rows.len())
            .field("users", &data.users.rows.len())
            .field("batches", &data.batches.rows.len())
            .field("associations", &data.associations.rows.len())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A handle on a new, empty [`MemoryStore`].
    pub fn memory() -> Store {
        Store::from_repositories(Arc::new(MemoryStore::new()))
    }
}

/// What every handle and unit of a store shares.
#[derive(Default)]
struct Shared {
    /// The committed tables; held only for the span of one synchronous operation, never across an `.await`.
    data: Mutex<Tables>,
    /// The single writer permit.
    gate: Mutex<Gate>,
}

/// Locks a mutex; a panic while it was held cannot leave the tables half-changed (every change is a single
/// `put` or a fold of an overlay built beforehand), so a poisoned lock is still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Gate {
    held: bool,
    waiting: Vec<Waker>,
}

/// The future of the writer permit. Without tokio in the pure build, this is a minimal async lock: waiters are
/// all woken on release and race for the permit, so a cancelled waiter never swallows a wake-up.
struct Acquire {
    shared: Arc<Shared>,
}

impl Future for Acquire {
    type Output = Permit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Permit> {
        let mut gate = lock(&self.shared.gate);
        if gate.held {
            if !gate.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                gate.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        } else {
            gate.held = true;
            Poll::Ready(Permit {
                shared: Arc::clone(&self.shared),
            })
        }
    }
}

/// The writer permit; released on drop.
struct Permit {
    shared: Arc<Shared>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let waiting = {
            let mut gate = lock(&self.shared.gate);
            gate.held = false;
            std::mem::take(&mut gate.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }
}

/// A row of a table: its primary key and its one secondary unique key, if any.
trait Row: Clone + PartialEq {
    type Id: Copy + Eq + Hash;
    /// The name of the secondary unique index, as the SQL schema names it.
    const UNIQUE: &'static str;
    fn id(&self) -> Self::Id;
    /// The row's entry in the secondary unique index (`None`: the row is not in it, as with a partial index).
    fn unique_key(&self) -> Option<String>;
}

/// Rows by primary key, plus the secondary unique index.
struct Table<R: Row> {
    rows: HashMap<R::Id, R>,
    by_key: HashMap<String, R::Id>,
}

impl<R: Row> Default for Table<R> {
    fn default() -> Self {
        Table {
            rows: HashMap::new(),
            by_key: HashMap::new(),
        }
    }
}

impl<R: Row> Table<R> {
    fn put(&mut self, row: R) {
        let id = row.id();
        if let Some(old_key) = self.rows.get(&id).and_then(Row::unique_key)
            && self.by_key.get(&old_key) == Some(&id)
        {
            self.by_key.remove(&old_key);
        }
        if let Some(key) = row.unique_key() {
            self.by_key.insert(key, id);
        }
        self.rows.insert(id, row);
    }

    /// Folds an overlay in; the order of its rows does not matter, since `put` only drops an index entry that
    /// still points at the row being replaced.
    fn merge(&mut self, overlay: Table<R>) {
        for (_, row) in overlay.rows {
            self.put(row);
        }
    }
}

/// A unit's picture of one table: its overlay over the committed rows.
struct View<'a, R: Row> {
    base: &'a Table<R>,
    over: &'a Table<R>,
}

fn view<'a, R: Row>(base: &'a Table<R>, over: &'a Table<R>) -> View<'a, R> {
    View { base, over }
}

impl<'a, R: Row> View<'a, R> {
    fn get(&self, id: R::Id) -> Option<&'a R> {
        self.over.rows.get(&id).or_else(|| self.base.rows.get(&id))
    }

    fn contains(&self, id: R::Id) -> bool {
        self.get(id).is_some()
    }

    /// The row holding `key` in the unique index.
    fn owner(&self, key: &str) -> Option<R::Id> {
        if let Some(id) = self.over.by_key.get(key) {
            return Some(*id);
        }
        // A committed owner that the overlay rewrote no longer holds the key (else the overlay's index had it).
        self.base
            .by_key
            .get(key)
            .copied()
            .filter(|id| !self.over.rows.contains_key(id))
    }
}

/// Every table the ports write.
#[derive(Default)]
struct Tables {
    companies: Table<Company>,
    groups: Table<BeneficiaryGroup>,
    campaigns: Table<Campaign>,
    instances: Table<ProgramInstance>,
    users: Table<User>,
    batches: Table<BatchRecord>,
    runs: Table<RunRecord>,
    associations: Table<Association>,
    sessions: Table<Activity<SessionValues>>,
    matches: Table<Activity<MatchValues>>,
    completions: Table<Activity<CompletionValues>>,
    external_ids: Table<ExternalId>,
    enrollments: Table<EnrollmentRow>,
    row_errors: Table<RowErrorRecord>,
    /// Webhook deliveries by id (never rewritten, so a plain map: an overlay only adds).
    deliveries: HashMap<DeliveryId, DeliveryRecord>,
}

impl Tables {
    fn merge(&mut self, overlay: Tables) {
        let Tables {
            companies,
            groups,
            campaigns,
            instances,
            users,
            batches,
            runs,
            associations,
            sessions,
            matches,
            completions,
            external_ids,
            enrollments,
            row_errors,
            deliveries,
        } = overlay;
        self.companies.merge(companies);
        self.groups.merge(groups);
        self.campaigns.merge(campaigns);
        self.instances.merge(instances);
        self.users.merge(users);
        self.batches.merge(batches);
        self.runs.merge(runs);
        self.associations.merge(associations);
        self.sessions.merge(sessions);
        self.matches.merge(matches);
        self.completions.merge(completions);
        self.external_ids.merge(external_ids);
        self.enrollments.merge(enrollments);
        self.row_errors.merge(row_errors);
        self.deliveries.extend(deliveries);
    }
}

impl Row for Company {
    type Id = CompanyId;
    const UNIQUE: &'static str = "companies_slug_key";
    fn id(&self) -> CompanyId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.slug.as_str().to_owned())
    }
}

impl Row for BeneficiaryGroup {
    type Id = GroupId;
    const UNIQUE: &'static str = "beneficiary_groups_key_key";
    fn id(&self) -> GroupId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.key.as_str().to_owned())
    }
}

impl Row for Campaign {
    type Id = CampaignId;
    const UNIQUE: &'static str = "campaigns_key_key";
    fn id(&self) -> CampaignId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.key.as_str().to_owned())
    }
}

impl Row for ProgramInstance {
    type Id = InstanceId;
    const UNIQUE: &'static str = "program_instances_program_slug_key";
    fn id(&self) -> InstanceId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.slug.as_str().to_owned())
    }
}

impl Row for User {
    type Id = UserId;
    const UNIQUE: &'static str = "users_email_key";
    fn id(&self) -> UserId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.email.as_str().to_owned())
    }
}

/// Whether a batch is in the partial index `ingestion_batches_in_flight_uq`.
fn in_flight(status: BatchStatus) -> bool {
    matches!(
        status,
        BatchStatus::Pending | BatchStatus::Running | BatchStatus::Paused
    )
}

fn in_flight_key(entity: EntityKind, file_hash: &str) -> String {
    format!("{}\u{1f}{file_hash}", entity.as_str())
}

impl Row for BatchRecord {
    type Id = BatchId;
    const UNIQUE: &'static str = "ingestion_batches_in_flight_uq";
    fn id(&self) -> BatchId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        in_flight(self.status).then(|| in_flight_key(self.entity_kind, &self.file_hash))
    }
}

impl Row for RunRecord {
    type Id = RunId;
    const UNIQUE: &'static str = "association_runs_pkey";
    fn id(&self) -> RunId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        None
    }
}

fn association_key(kind: ActivityKind, activity: ActivityId) -> String {
    format!("{}/{activity}", kind.as_str())
}

impl Row for Association {
    type Id = AssociationId;
    const UNIQUE: &'static str = "activity_associations_activity_kind_activity_id_key";
    fn id(&self) -> AssociationId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(association_key(self.activity_kind, self.activity_id))
    }
}

/// The stored columns of a `kintell_sessions` row that an import writes and compares.
#[derive(Debug, Clone, PartialEq)]
struct SessionValues {
    external_session_id: SessionId,
    session_type: SessionType,
    participant_id: UserId,
    volunteer_id: UserId,
    scheduled_at: DateTime<Utc>,
    completed_at: Option<DateTime<Utc>>,
    duration_minutes: Option<DurationMinutes>,
    rating: Option<Rating>,
    feedback_text: Option<String>,
    language_level: Option<LanguageLevel>,
    topics: Option<Vec<String>>,
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The stored columns of a `buddy_matches` row that an import writes and compares.
#[derive(Debug, Clone, PartialEq)]
struct MatchValues {
    key: MatchKey,
    external_match_id: Option<String>,
    status: MatchStatus,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<EndReason>,
    language: Option<String>,
    interests: Option<Vec<String>>,
    location: Option<String>,
}

/// The stored columns of a `learning_progress` row that an import writes and compares (`status` is always
/// `completed` and `progress_percent` 100).
#[derive(Debug, Clone, PartialEq)]
struct CompletionValues {
    key: CompletionKey,
    course_name: Option<String>,
    completed_at: DateTime<Utc>,
    final_score: Option<FinalScore>,
    credential_ref: Option<String>,
}

/// What tells the three activity tables apart.
trait ActivityValues: Clone + PartialEq {
    /// The table, as the SQL schema names it (constraint names start with it).
    const TABLE: &'static str;
    /// The name of the idempotency index.
    const UNIQUE: &'static str;
    /// The idempotency key, as an index entry.
    fn key(&self) -> String;
    /// The people the row references, with the foreign key each goes through.
    fn people(&self) -> Vec<(UserId, &'static str)>;
}

fn session_key(id: &SessionId) -> String {
    id.as_str().to_owned()
}

fn match_key(k: &MatchKey) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        k.participant_id,
        k.buddy_id,
        k.matched_at
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

fn completion_key(k: &CompletionKey) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        k.user_id,
        k.provider.as_str(),
        k.course_id.as_str()
    )
}

impl ActivityValues for SessionValues {
    const TABLE: &'static str = "kintell_sessions";
    const UNIQUE: &'static str = "kintell_sessions_external_session_id_idx";
    fn key(&self) -> String {
        session_key(&self.external_session_id)
    }
    fn people(&self) -> Vec<(UserId, &'static str)> {
        vec![
            (self.participant_id, "kintell_sessions_participant_id_fkey"),
            (self.volunteer_id, "kintell_sessions_volunteer_id_fkey"),
        ]
    }
}

impl ActivityValues for MatchValues {
    const TABLE: &'static str = "buddy_matches";
    const UNIQUE: &'static str = "buddy_matches_participant_id_buddy_id_matched_at_key";
    fn key(&self) -> String {
        match_key(&self.key)
    }
    fn people(&self) -> Vec<(UserId, &'static str)> {
        vec![
            (self.key.participant_id, "buddy_matches_participant_id_fkey"),
            (self.key.buddy_id, "buddy_matches_buddy_id_fkey"),
        ]
    }
}

impl ActivityValues for CompletionValues {
    const TABLE: &'static str = "learning_progress";
    const UNIQUE: &'static str = "learning_progress_user_id_provider_course_id_key";
    fn key(&self) -> String {
        completion_key(&self.key)
    }
    fn people(&self) -> Vec<(UserId, &'static str)> {
        vec![(self.key.user_id, "learning_progress_user_id_fkey")]
    }
}

/// A row of one of the activity tables.
#[derive(Debug, Clone, PartialEq)]
struct Activity<V> {
    id: ActivityId,
    values: V,
    program_instance_id: Option<InstanceId>,
    batch_id: Option<BatchId>,
    first_batch_id: Option<BatchId>,
    source_row_number: Option<i64>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl<V: ActivityValues> Row for Activity<V> {
    type Id = ActivityId;
    const UNIQUE: &'static str = V::UNIQUE;
    fn id(&self) -> ActivityId {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(self.values.key())
    }
}

impl<V> Activity<V> {
    fn stored_row(&self) -> StoredRow {
        StoredRow {
            id: self.id.uuid(),
            batch_id: self.batch_id,
            source_row_number: self.source_row_number,
        }
    }

    fn lineage(&self) -> ActivityLineage {
        ActivityLineage {
            batch_id: self.batch_id,
            first_batch_id: self.first_batch_id,
            source_row_number: self.source_row_number,
            program_instance_id: self.program_instance_id,
        }
    }
}

/// A row of `user_external_ids`.
#[derive(Debug, Clone, PartialEq)]
struct ExternalId {
    id: uuid::Uuid,
    user_id: UserId,
    provider: String,
    external_id: String,
    metadata: Option<serde_json::Value>,
}

fn external_key(provider: &str, external_id: &str) -> String {
    format!("{provider}\u{1f}{external_id}")
}

impl Row for ExternalId {
    type Id = uuid::Uuid;
    const UNIQUE: &'static str = "user_external_ids_provider_external_id_key";
    fn id(&self) -> uuid::Uuid {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(external_key(&self.provider, &self.external_id))
    }
}

/// A row of `program_enrollments` (status `active` unless someone changed it elsewhere).
#[derive(Debug, Clone, PartialEq)]
struct EnrollmentRow {
    id: uuid::Uuid,
    user_id: UserId,
    program_instance_id: InstanceId,
    program_type: ProgramType,
    role: EnrollmentRole,
    enrolled_at: DateTime<Utc>,
}

fn enrollment_key(user: UserId, instance: InstanceId, role: EnrollmentRole) -> String {
    format!("{user}\u{1f}{instance}\u{1f}{}", role.as_str())
}

impl Row for EnrollmentRow {
    type Id = uuid::Uuid;
    const UNIQUE: &'static str = "program_enrollments_user_id_program_instance_id_role_key";
    fn id(&self) -> uuid::Uuid {
        self.id
    }
    fn unique_key(&self) -> Option<String> {
        Some(enrollment_key(
            self.user_id,
            self.program_instance_id,
            self.role,
        ))
    }
}

/// Row errors are keyed by (`batch_id`, `row_number`), their unique key; the serial id plays no part.
impl Row for RowErrorRecord {
    type Id = (BatchId, i64);
    const UNIQUE: &'static str = "ingestion_row_errors_batch_id_row_number_key";
    fn id(&self) -> (BatchId, i64) {
        (self.batch_id, self.row_number)
    }
    fn unique_key(&self) -> Option<String> {
        None
    }
}

fn duplicate(constraint: &str) -> StoreError {
    StoreError::Duplicate {
        constraint: constraint.to_owned(),
    }
}

fn invalid(constraint: &str) -> StoreError {
    StoreError::Invalid {
        constraint: constraint.to_owned(),
    }
}

fn missing(constraint: &str) -> StoreError {
    StoreError::MissingReference {
        constraint: constraint.to_owned(),
    }
}

fn aborted() -> StoreError {
    StoreError::Backend {
        message: "the unit of work was aborted by an earlier error; roll it back".to_owned(),
        source: "an earlier operation of this unit of work failed".into(),
    }
}

/// Refuses an optional reference to a row that does not exist.
fn reference<R: Row>(view: &View<'_, R>, id: Option<R::Id>, constraint: &str) -> StoreResult<()> {
    match id {
        Some(id) if !view.contains(id) => Err(missing(constraint)),
        _ => Ok(()),
    }
}

/// Upserts rows by primary key, in order (a repeated id sees the earlier row). `keep` carries stored values an
/// update must not change into the new row; `check` applies the check constraints, then the unique index is
/// checked, then `refs` the foreign keys — the order in which PostgreSQL reports them. Unchanged rows are not
/// checked, as an `ON CONFLICT … DO UPDATE … WHERE` that changes nothing checks nothing.
fn upsert<R: Row>(
    base: &Table<R>,
    over: &mut Table<R>,
    rows: &[R],
    keep: impl Fn(R, &R) -> R,
    check: impl Fn(&R) -> StoreResult<()>,
    refs: impl Fn(&R) -> StoreResult<()>,
) -> StoreResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    for row in rows {
        let view = View { base, over };
        let stored = view.get(row.id());
        let new = match stored {
            Some(s) => keep(row.clone(), s),
            None => row.clone(),
        };
        if stored == Some(&new) {
            counts.unchanged += 1;
            continue;
        }
        check(&new)?;
        if let Some(key) = new.unique_key()
            && view.owner(&key).is_some_and(|owner| owner != new.id())
        {
            return Err(duplicate(R::UNIQUE));
        }
        refs(&new)?;
        if stored.is_some() {
            counts.updated += 1;
        } else {
            counts.inserted += 1;
        }
        over.put(new);
    }
    Ok(counts)
}

fn upsert_companies(
    base: &Tables,
    over: &mut Tables,
    rows: &[Company],
) -> StoreResult<UpsertCounts> {
    upsert(
        &base.companies,
        &mut over.companies,
        rows,
        |new, _| new,
        |_| Ok(()),
        |_| Ok(()),
    )
}

fn upsert_groups(
    base: &Tables,
    over: &mut Tables,
    rows: &[BeneficiaryGroup],
) -> StoreResult<UpsertCounts> {
    upsert(
        &base.groups,
        &mut over.groups,
        rows,
        |new, _| new,
        |_| Ok(()),
        |_| Ok(()),
    )
}

fn upsert_campaigns(
    base: &Tables,
    over: &mut Tables,
    rows: &[Campaign],
) -> StoreResult<UpsertCounts> {
    let companies = view(&base.companies, &over.companies);
    let groups = view(&base.groups, &over.groups);
    upsert(
        &base.campaigns,
        &mut over.campaigns,
        rows,
        |new, _| new,
        |c| {
            if c.end_date < c.start_date {
                return Err(invalid("campaigns_check"));
            }
            Ok(())
        },
        |c| {
            reference(&companies, Some(c.company_id), "campaigns_company_id_fkey")?;
            reference(
                &groups,
                Some(c.beneficiary_group_id),
                "campaigns_beneficiary_group_id_fkey",
            )
        },
    )
}

fn upsert_instances(
    base: &Tables,
    over: &mut Tables,
    rows: &[ProgramInstance],
) -> StoreResult<UpsertCounts> {
    let companies = view(&base.companies, &over.companies);
    let campaigns = view(&base.campaigns, &over.campaigns);
    upsert(
        &base.instances,
        &mut over.instances,
        rows,
        |new, stored| ProgramInstance {
            created_at: stored.created_at,
            ..new
        },
        |i| match i.end_date {
            Some(end) if end < i.start_date => Err(invalid("program_instances_check")),
            _ => Ok(()),
        },
        |i| {
            reference(
                &companies,
                i.company_id,
                "program_instances_company_id_fkey",
            )?;
            reference(
                &campaigns,
                i.campaign_id,
                "program_instances_campaign_id_fkey",
            )
        },
    )
}

fn upsert_users(base: &Tables, over: &mut Tables, rows: &[User]) -> StoreResult<UpsertCounts> {
    let companies = view(&base.companies, &over.companies);
    upsert(
        &base.users,
        &mut over.users,
        rows,
        |new, _| new,
        |_| Ok(()),
        |u| reference(&companies, u.company_id, "users_company_id_fkey"),
    )
}

/// Upserts associations by (kind, activity), keeping the stored id and the sticky decisions.
fn upsert_associations(
    base: &Tables,
    over: &mut Tables,
    rows: &[Association],
) -> StoreResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    for row in rows {
        let associations = view(&base.associations, &over.associations);
        let key = association_key(row.activity_kind, row.activity_id);
        let stored = associations.owner(&key).and_then(|id| associations.get(id));
        let new = match stored {
            Some(s) => {
                let sticky = s.decision.stays_over(row.decision);
                let new = Association {
                    id: s.id,
                    ..row.clone()
                };
                if sticky || *s == new {
                    counts.unchanged += 1;
                    continue;
                }
                new
            }
            None => {
                if associations.contains(row.id) {
                    return Err(duplicate("activity_associations_pkey"));
                }
                row.clone()
            }
        };
        let campaigns = view(&base.campaigns, &over.campaigns);
        let instances = view(&base.instances, &over.instances);
        let batches = view(&base.batches, &over.batches);
        reference(
            &campaigns,
            new.campaign_id,
            "activity_associations_campaign_id_fkey",
        )?;
        reference(
            &instances,
            new.program_instance_id,
            "activity_associations_program_instance_id_fkey",
        )?;
        reference(
            &batches,
            new.batch_id,
            "activity_associations_batch_id_fkey",
        )?;
        backfill::check_run_reference(base, over, new.run_id)?;
        if stored.is_some() {
            counts.updated += 1;
        } else {
            counts.inserted += 1;
        }
        over.associations.put(new);
    }
    Ok(counts)
}

/// The checks of `ingestion_batches` on its counters.
fn check_counters(b: &BatchRecord) -> StoreResult<()> {
    let processed = b
        .success_rows
        .checked_add(b.error_rows)
        .and_then(|s| s.checked_add(b.skipped_rows));
    if processed != Some(b.last_processed_row) {
        return Err(invalid("ingestion_batches_processed_rows_check"));
    }
    if b.last_processed_row > b.total_rows {
        return Err(invalid("ingestion_batches_total_rows_check"));
    }
    if b.inserted_rows.checked_add(b.updated_rows) != Some(b.success_rows) {
        return Err(invalid("ingestion_batches_success_rows_check"));
    }
    Ok(())
}

/// Checks a batch row against the table's constraints and writes it.
fn put_batch(base: &Tables, over: &mut Tables, batch: BatchRecord) -> StoreResult<()> {
    check_counters(&batch)?;
    let batches = view(&base.batches, &over.batches);
    if let Some(key) = batch.unique_key()
        && batches.owner(&key).is_some_and(|owner| owner != batch.id)
    {
        return Err(duplicate(BatchRecord::UNIQUE));
    }
    let instances = view(&base.instances, &over.instances);
    reference(
        &instances,
        batch.program_instance_id,
        "ingestion_batches_program_instance_id_fkey",
    )?;
    over.batches.put(batch);
    Ok(())
}

fn insert_batch(base: &Tables, over: &mut Tables, new: &NewBatch) -> StoreResult<BatchRecord> {
    let batches = view(&base.batches, &over.batches);
    if batches.contains(new.id) {
        return Err(duplicate("ingestion_batches_pkey"));
    }
    let record = BatchRecord {
        id: new.id,
        file_name: new.file_name.clone(),
        file_hash: new.file_hash.clone(),
        file_size_bytes: new.file_size_bytes,
        entity_kind: new.entity_kind,
        format: new.format.clone(),
        program_type: new.program_type,
        program_instance_id: new.program_instance_id,
        source_system: new.source_system.clone(),
        import_method: new.import_method,
        status: BatchStatus::Pending,
        total_rows: new.total_rows,
        success_rows: 0,
        inserted_rows: 0,
        updated_rows: 0,
        skipped_rows: 0,
        error_rows: 0,
        last_processed_row: 0,
        error_file_path: None,
        csv_metadata: new.csv_metadata.clone(),
        imported_by_service: new.imported_by_service.clone(),
        error_summary: None,
        lease_owner: None,
        lease_expires_at: None,
        last_error: None,
        requested_action: None,
        started_at: None,
        completed_at: None,
        created_at: new.created_at,
        updated_at: new.created_at,
    };
    put_batch(base, over, record.clone())?;
    Ok(record)
}

/// Overwrites every column but `id` and `created_at` when the guard matches.
fn save_batch(
    base: &Tables,
    over: &mut Tables,
    batch: &BatchRecord,
    guard: &BatchGuard,
) -> StoreResult<bool> {
    let batches = view(&base.batches, &over.batches);
    let Some(stored) = batches.get(batch.id) else {
        return Ok(false);
    };
    if !guard.matches(stored) {
        return Ok(false);
    }
    let row = BatchRecord {
        created_at: stored.created_at,
        ..batch.clone()
    };
    put_batch(base, over, row)?;
    Ok(true)
}

/// Every row of a table as a unit sees it: the overlay's, then the committed rows it did not rewrite.
fn all_rows<'a, R: Row>(base: &'a Table<R>, over: &'a Table<R>) -> impl Iterator<Item = &'a R> {
    over.rows.values().chain(
        base.rows
            .iter()
            .filter(|(id, _)| !over.rows.contains_key(id))
            .map(|(_, row)| row),
    )
}

/// One activity to upsert, in the memory tables' terms.
struct ActivityWrite<V> {
    id: ActivityId,
    values: V,
    program_instance_id: Option<InstanceId>,
    source: RowSource,
    now: DateTime<Utc>,
}

/// The accessors of one activity table in [`Tables`].
struct ActivityTable<V: ActivityValues> {
    get: fn(&Tables) -> &Table<Activity<V>>,
    get_mut: fn(&mut Tables) -> &mut Table<Activity<V>>,
}

const SESSIONS: ActivityTable<SessionValues> = ActivityTable {
    get: |t| &t.sessions,
    get_mut: |t| &mut t.sessions,
};

const MATCHES: ActivityTable<MatchValues> = ActivityTable {
    get: |t| &t.matches,
    get_mut: |t| &mut t.matches,
};

const COMPLETIONS: ActivityTable<CompletionValues> = ActivityTable {
    get: |t| &t.completions,
    get_mut: |t| &mut t.completions,
};

/// The stored rows of an activity table with these keys, with their lineage.
fn stored_activities<V: ActivityValues, K: Clone>(
    base: &Tables,
    over: &Tables,
    table: &ActivityTable<V>,
    keys: &[K],
    key: impl Fn(&K) -> String,
) -> Vec<(K, StoredRow)> {
    let rows = view((table.get)(base), (table.get)(over));
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|k| seen.insert(key(k)))
        .filter_map(|k| {
            let row = rows.owner(&key(k)).and_then(|id| rows.get(id))?;
            Some((k.clone(), row.stored_row()))
        })
        .collect()
}

/// The sessions with these external ids, with their people's emails.
fn stored_sessions(
    base: &Tables,
    over: &Tables,
    ids: &[SessionId],
) -> StoreResult<Vec<StoredSession>> {
    let rows = view(&base.sessions, &over.sessions);
    let users = view(&base.users, &over.users);
    let email = |id: UserId| {
        users
            .get(id)
            .map(|u| u.email.clone())
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("kintell_sessions: user {id} does not exist"),
            })
    };
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for id in ids.iter().filter(|id| seen.insert(session_key(id))) {
        let Some(row) = rows.owner(&session_key(id)).and_then(|i| rows.get(i)) else {
            continue;
        };
        let v = &row.values;
        found.push(StoredSession {
            id: row.id,
            row: crate::domain::SessionRow {
                session_id: v.external_session_id.clone(),
                session_type: v.session_type,
                participant_email: email(v.participant_id)?,
                volunteer_email: email(v.volunteer_id)?,
                scheduled_at: v.scheduled_at,
                completed_at: v.completed_at,
                duration_minutes: v.duration_minutes,
                rating: v.rating,
                feedback_text: v.feedback_text.clone(),
                language_level: v.language_level,
                topics: v.topics.clone(),
                metadata: v.metadata.clone(),
                program_ref: None,
            },
        });
    }
    Ok(found)
}

/// Records a webhook delivery, with the checks of `webhook_deliveries`.
fn insert_delivery(base: &Tables, over: &mut Tables, d: &DeliveryRecord) -> StoreResult<()> {
    if over.deliveries.contains_key(&d.delivery_id) || base.deliveries.contains_key(&d.delivery_id)
    {
        return Err(duplicate("webhook_deliveries_pkey"));
    }
    if !(100..=599).contains(&d.response_status) {
        return Err(invalid("webhook_deliveries_response_status_check"));
    }
    let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if d.body_sha256.len() != 64 || !d.body_sha256.chars().all(hex) {
        return Err(invalid("webhook_deliveries_body_sha256_check"));
    }
    if let Some(batch) = d.batch_id
        && !view(&base.batches, &over.batches).contains(batch)
    {
        return Err(missing("webhook_deliveries_batch_id_fkey"));
    }
    over.deliveries.insert(d.delivery_id.clone(), d.clone());
    Ok(())
}

/// Upserts activities on their key with the lineage rules of [`RowSource`]: an unchanged row (same values, and the
/// same instance when one is given) keeps everything; a changed one keeps its id, `first_batch_id` and
/// `created_at`; a `None` instance never clears a stored one.
fn upsert_activities<V: ActivityValues>(
    base: &Tables,
    over: &mut Tables,
    table: &ActivityTable<V>,
    writes: Vec<ActivityWrite<V>>,
) -> StoreResult<Vec<Written>> {
    let mut written = Vec::with_capacity(writes.len());
    for w in writes {
        let rows = view((table.get)(base), (table.get)(over));
        let stored = rows.owner(&w.values.key()).and_then(|id| rows.get(id));
        let (new, outcome) = match stored {
            Some(s) => {
                let instance = w.program_instance_id.or(s.program_instance_id);
                if s.values == w.values && s.program_instance_id == instance {
                    written.push(Written {
                        id: s.id.uuid(),
                        outcome: RowOutcome::Unchanged,
                    });
                    continue;
                }
                let new = Activity {
                    id: s.id,
                    values: w.values,
                    program_instance_id: instance,
                    batch_id: Some(w.source.batch_id),
                    first_batch_id: s.first_batch_id,
                    source_row_number: Some(w.source.source_row_number),
                    created_at: s.created_at,
                    updated_at: w.now,
                };
                (new, RowOutcome::Updated)
            }
            None => {
                if rows.contains(w.id) {
                    return Err(duplicate(&format!("{}_pkey", V::TABLE)));
                }
                let new = Activity {
                    id: w.id,
                    values: w.values,
                    program_instance_id: w.program_instance_id,
                    batch_id: Some(w.source.batch_id),
                    first_batch_id: Some(w.source.batch_id),
                    source_row_number: Some(w.source.source_row_number),
                    created_at: w.now,
                    updated_at: w.now,
                };
                (new, RowOutcome::Inserted)
            }
        };
        if w.source.source_row_number < 1 {
            return Err(invalid(&format!("{}_source_row_number_check", V::TABLE)));
        }
        let users = view(&base.users, &over.users);
        for (person, constraint) in new.values.people() {
            reference(&users, Some(person), constraint)?;
        }
        let instances = view(&base.instances, &over.instances);
        reference(
            &instances,
            new.program_instance_id,
            &format!("{}_program_instance_id_fkey", V::TABLE),
        )?;
        let batches = view(&base.batches, &over.batches);
        reference(
            &batches,
            new.batch_id,
            &format!("{}_batch_id_fkey", V::TABLE),
        )?;
        written.push(Written {
            id: new.id.uuid(),
            outcome,
        });
        (table.get_mut)(over).put(new);
    }
    Ok(written)
}

fn session_write(w: &SessionWrite) -> ActivityWrite<SessionValues> {
    let r = &w.row;
    ActivityWrite {
        id: w.id,
        values: SessionValues {
            external_session_id: r.session_id.clone(),
            session_type: r.session_type,
            participant_id: w.participant_id,
            volunteer_id: w.volunteer_id,
            scheduled_at: r.scheduled_at,
            completed_at: r.completed_at,
            duration_minutes: r.duration_minutes,
            rating: r.rating,
            feedback_text: r.feedback_text.clone(),
            language_level: r.language_level,
            topics: r.topics.clone(),
            metadata: r.metadata.clone(),
        },
        program_instance_id: w.program_instance_id,
        source: w.source,
        now: w.now,
    }
}

fn match_write(w: &MatchWrite) -> ActivityWrite<MatchValues> {
    let r = &w.row;
    ActivityWrite {
        id: w.id,
        values: MatchValues {
            key: w.key,
            external_match_id: r.external_match_id.clone(),
            status: r.status,
            ended_at: r.ended_at,
            end_reason: r.end_reason,
            language: r.language.clone(),
            interests: r.interests.clone(),
            location: r.location.clone(),
        },
        program_instance_id: w.program_instance_id,
        source: w.source,
        now: w.now,
    }
}

fn completion_write(w: &CompletionWrite) -> ActivityWrite<CompletionValues> {
    let r = &w.row;
    ActivityWrite {
        id: w.id,
        values: CompletionValues {
            key: w.key.clone(),
            course_name: r.course_name.clone(),
            completed_at: r.completed_at,
            final_score: r.final_score,
            credential_ref: r.credential_ref.clone(),
        },
        program_instance_id: w.program_instance_id,
        source: w.source,
        now: w.now,
    }
}

/// The users of the users export with a `kintell` external id, and the lineage in its metadata.
fn stored_user_sources(
    base: &Tables,
    over: &Tables,
    emails: &[Email],
) -> StoreResult<Vec<(Email, StoredRow)>> {
    let users = view(&base.users, &over.users);
    let external = view(&base.external_ids, &over.external_ids);
    let mut seen = HashSet::new();
    let mut found = Vec::new();
    for email in emails.iter().filter(|e| seen.insert(e.as_str())) {
        let Some(user) = users.owner(email.as_str()).and_then(|id| users.get(id)) else {
            continue;
        };
        let key = external_key(lineage::KINTELL_PROVIDER, email.as_str());
        let Some(ext) = external.owner(&key).and_then(|id| external.get(id)) else {
            continue;
        };
        if ext.user_id != user.id {
            continue;
        }
        let (batch_id, source_row_number) = lineage::metadata_source(ext.metadata.as_ref())
            .map_err(|why| StoreError::Corrupt {
                what: format!("user_external_ids.metadata: {why}"),
            })?;
        found.push((
            email.clone(),
            StoredRow {
                id: user.id.uuid(),
                batch_id,
                source_row_number,
            },
        ));
    }
    Ok(found)
}

/// Upserts users by email (an existing user keeps its id) and ensures their `kintell` external id, whose metadata
/// is rewritten only when the user is inserted or changed. Users carry no timestamps here (no port reads them), so
/// `created_at` and `now` play no part.
fn upsert_user_rows(
    base: &Tables,
    over: &mut Tables,
    rows: &[UserWrite],
) -> StoreResult<Vec<Written>> {
    let mut written = Vec::with_capacity(rows.len());
    for w in rows {
        let users = view(&base.users, &over.users);
        let email = w.user.email.as_str();
        let stored = users.owner(email).and_then(|id| users.get(id));
        let new = User {
            id: stored.map_or(w.user.id, |s| s.id),
            ..w.user.clone()
        };
        let outcome = match stored {
            Some(s) if *s == new => RowOutcome::Unchanged,
            Some(_) => RowOutcome::Updated,
            None => RowOutcome::Inserted,
        };
        if outcome == RowOutcome::Inserted && users.contains(new.id) {
            return Err(duplicate("users_pkey"));
        }
        if outcome != RowOutcome::Unchanged {
            let companies = view(&base.companies, &over.companies);
            reference(&companies, new.company_id, "users_company_id_fkey")?;
        }
        let external = view(&base.external_ids, &over.external_ids);
        let key = external_key(lineage::KINTELL_PROVIDER, email);
        let ext = match external.owner(&key).and_then(|id| external.get(id)) {
            Some(e) if e.user_id != new.id => return Err(duplicate(ExternalId::UNIQUE)),
            Some(_) if outcome == RowOutcome::Unchanged => None,
            Some(e) => Some(ExternalId {
                metadata: Some(lineage::source_metadata(&w.source)),
                ..e.clone()
            }),
            None => Some(ExternalId {
                id: lineage::external_id_row_id(lineage::KINTELL_PROVIDER, email),
                user_id: new.id,
                provider: lineage::KINTELL_PROVIDER.to_owned(),
                external_id: email.to_owned(),
                metadata: Some(lineage::source_metadata(&w.source)),
            }),
        };
        written.push(Written {
            id: new.id.uuid(),
            outcome,
        });
        if outcome != RowOutcome::Unchanged {
            over.users.put(new);
        }
        if let Some(ext) = ext {
            over.external_ids.put(ext);
        }
    }
    Ok(written)
}

/// Inserts new enrolments; an existing one keeps its id and takes an earlier `enrolled_at`.
fn upsert_enrollments(
    base: &Tables,
    over: &mut Tables,
    rows: &[Enrollment],
) -> StoreResult<UpsertCounts> {
    let mut counts = UpsertCounts::default();
    for e in rows {
        let enrollments = view(&base.enrollments, &over.enrollments);
        let key = enrollment_key(e.user_id, e.program_instance_id, e.role);
        let new = match enrollments.owner(&key).and_then(|id| enrollments.get(id)) {
            Some(s) if e.enrolled_at < s.enrolled_at => {
                counts.updated += 1;
                EnrollmentRow {
                    enrolled_at: e.enrolled_at,
                    ..s.clone()
                }
            }
            Some(_) => {
                counts.unchanged += 1;
                continue;
            }
            None => {
                if enrollments.contains(e.id) {
                    return Err(duplicate("program_enrollments_pkey"));
                }
                let users = view(&base.users, &over.users);
                reference(&users, Some(e.user_id), "program_enrollments_user_id_fkey")?;
                let instances = view(&base.instances, &over.instances);
                reference(
                    &instances,
                    Some(e.program_instance_id),
                    "program_enrollments_program_instance_id_fkey",
                )?;
                counts.inserted += 1;
                EnrollmentRow {
                    id: e.id,
                    user_id: e.user_id,
                    program_instance_id: e.program_instance_id,
                    program_type: e.program_type,
                    role: e.role,
                    enrolled_at: e.enrolled_at,
                }
            }
        };
        over.enrollments.put(new);
    }
    Ok(counts)
}

/// Writes row errors, a stored one of the same (batch, row) rewritten.
fn put_row_errors(base: &Tables, over: &mut Tables, rows: &[RowErrorRecord]) -> StoreResult<()> {
    for r in rows {
        if r.row_number < 1 || r.line_number < 1 {
            return Err(invalid("ingestion_row_errors_numbers_check"));
        }
        let batches = view(&base.batches, &over.batches);
        reference(
            &batches,
            Some(r.batch_id),
            "ingestion_row_errors_batch_id_fkey",
        )?;
        over.row_errors.put(r.clone());
    }
    Ok(())
}

/// Links the rows of an activity table that have no batch to `batch`; returns how many.
fn adopt_rows<V: ActivityValues>(
    base: &Tables,
    over: &mut Tables,
    table: &ActivityTable<V>,
    batch: BatchId,
) -> usize {
    let adopted: Vec<Activity<V>> = all_rows((table.get)(base), (table.get)(over))
        .filter(|a| a.batch_id.is_none())
        .map(|a| Activity {
            batch_id: Some(batch),
            first_batch_id: a.first_batch_id.or(Some(batch)),
            ..a.clone()
        })
        .collect();
    let n = adopted.len();
    for row in adopted {
        (table.get_mut)(over).put(row);
    }
    n
}

/// How many rows of an activity table have no batch.
fn unlinked<V: ActivityValues>(base: &Tables, over: &Tables, table: &ActivityTable<V>) -> usize {
    all_rows((table.get)(base), (table.get)(over))
        .filter(|a| a.batch_id.is_none())
        .count()
}

/// Links every row of `kind` without a batch to the legacy batch of its table, creating it from `new` if needed.
fn adopt_legacy(
    base: &Tables,
    over: &mut Tables,
    kind: ActivityKind,
    new: &NewBatch,
) -> StoreResult<(BatchRecord, u64)> {
    let count = match kind {
        ActivityKind::KintellSession => unlinked(base, over, &SESSIONS),
        ActivityKind::BuddyMatch => unlinked(base, over, &MATCHES),
        ActivityKind::CourseCompletion => unlinked(base, over, &COMPLETIONS),
    };
    let adopted = i64::try_from(count).unwrap_or(i64::MAX);
    let existing = lineage::oldest_legacy(all_rows(&base.batches, &over.batches), kind).cloned();
    let batch = match existing {
        Some(b) => lineage::grown_legacy_batch(b, adopted, new.created_at),
        None => {
            if view(&base.batches, &over.batches).contains(new.id) {
                return Err(duplicate("ingestion_batches_pkey"));
            }
            lineage::new_legacy_batch(new, kind, adopted)
        }
    };
    put_batch(base, over, batch.clone())?;
    match kind {
        ActivityKind::KintellSession => adopt_rows(base, over, &SESSIONS, batch.id),
        ActivityKind::BuddyMatch => adopt_rows(base, over, &MATCHES, batch.id),
        ActivityKind::CourseCompletion => adopt_rows(base, over, &COMPLETIONS, batch.id),
    };
    Ok((batch, count as u64))
}

/// Sorts batches newest first: by `created_at`, then by id (UUIDv7 ids grow with time).
fn newest_first(batches: &mut [BatchRecord]) {
    batches.sort_by_key(|b| std::cmp::Reverse((b.created_at, b.id)));
}

/// A unit of work of the memory store: an overlay of writes, published on commit.
struct MemoryUnit {
    permit: Permit,
    overlay: Tables,
    aborted: bool,
}

impl MemoryUnit {
    /// Runs one operation on the unit's picture of the tables; a failure aborts the unit.
    fn run<T>(&mut self, f: impl FnOnce(&Tables, &mut Tables) -> StoreResult<T>) -> StoreResult<T> {
        if self.aborted {
            return Err(aborted());
        }
        let base = lock(&self.permit.shared.data);
        let result = f(&base, &mut self.overlay);
        self.aborted = result.is_err();
        result
    }

    /// Publishes the overlay; the permit is released only afterwards, when `self` is dropped.
    fn publish(self) -> StoreResult<()> {
        if self.aborted {
            return Err(aborted());
        }
        lock(&self.permit.shared.data).merge(self.overlay);
        Ok(())
    }
}

#[async_trait]
impl UnitOfWork for MemoryUnit {
    async fn users_by_email(&mut self, emails: &[Email]) -> StoreResult<Vec<User>> {
        self.run(|base, over| {
            let users = view(&base.users, &over.users);
            let wanted: HashSet<&str> = emails.iter().map(Email::as_str).collect();
            Ok(wanted
                .into_iter()
                .filter_map(|e| users.owner(e).and_then(|id| users.get(id)).cloned())
                .collect())
        })
    }

    async fn companies_by_slug(&mut self, slugs: &[Key]) -> StoreResult<Vec<Company>> {
        self.run(|base, over| {
            let companies = view(&base.companies, &over.companies);
            let wanted: HashSet<&str> = slugs.iter().map(Key::as_str).collect();
            Ok(wanted
                .into_iter()
                .filter_map(|s| companies.owner(s).and_then(|id| companies.get(id)).cloned())
                .collect())
        })
    }

    async fn groups_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<BeneficiaryGroup>> {
        self.run(|base, over| {
            let groups = view(&base.groups, &over.groups);
            let wanted: HashSet<&str> = keys.iter().map(Key::as_str).collect();
            Ok(wanted
                .into_iter()
                .filter_map(|k| groups.owner(k).and_then(|id| groups.get(id)).cloned())
                .collect())
        })
    }

    async fn campaigns_by_key(&mut self, keys: &[Key]) -> StoreResult<Vec<Campaign>> {
        self.run(|base, over| {
            let campaigns = view(&base.campaigns, &over.campaigns);
            let wanted: HashSet<&str> = keys.iter().map(Key::as_str).collect();
            Ok(wanted
                .into_iter()
                .filter_map(|k| campaigns.owner(k).and_then(|id| campaigns.get(id)).cloned())
                .collect())
        })
    }

    async fn instances_by_slug(
        &mut self,
        slugs: &[ProgramSlug],
    ) -> StoreResult<Vec<ProgramInstance>> {
        self.run(|base, over| {
            let instances = view(&base.instances, &over.instances);
            let wanted: HashSet<&str> = slugs.iter().map(ProgramSlug::as_str).collect();
            Ok(wanted
                .into_iter()
                .filter_map(|s| instances.owner(s).and_then(|id| instances.get(id)).cloned())
                .collect())
        })
    }

    async fn upsert_companies(&mut self, rows: &[Company]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_companies(base, over, rows))
    }

    async fn upsert_groups(&mut self, rows: &[BeneficiaryGroup]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_groups(base, over, rows))
    }

    async fn upsert_campaigns(&mut self, rows: &[Campaign]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_campaigns(base, over, rows))
    }

    async fn upsert_instances(&mut self, rows: &[ProgramInstance]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_instances(base, over, rows))
    }

    async fn upsert_users(&mut self, rows: &[User]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_users(base, over, rows))
    }

    async fn upsert_associations(&mut self, rows: &[Association]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_associations(base, over, rows))
    }

    async fn insert_batch(&mut self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        self.run(|base, over| insert_batch(base, over, batch))
    }

    async fn batches_by_hash(
        &mut self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        self.run(|base, over| {
            let mut found: Vec<BatchRecord> = over
                .batches
                .rows
                .values()
                .chain(
                    base.batches
                        .rows
                        .values()
                        .filter(|b| !over.batches.rows.contains_key(&b.id)),
                )
                .filter(|b| b.entity_kind == entity && b.file_hash == file_hash)
                .cloned()
                .collect();
            newest_first(&mut found);
            Ok(found)
        })
    }

    async fn save_batch(&mut self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        self.run(|base, over| save_batch(base, over, batch, guard))
    }

    async fn stored_sessions(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<(SessionId, StoredRow)>> {
        self.run(|base, over| Ok(stored_activities(base, over, &SESSIONS, ids, session_key)))
    }

    async fn stored_matches(
        &mut self,
        keys: &[MatchKey],
    ) -> StoreResult<Vec<(MatchKey, StoredRow)>> {
        self.run(|base, over| Ok(stored_activities(base, over, &MATCHES, keys, match_key)))
    }

    async fn stored_completions(
        &mut self,
        keys: &[CompletionKey],
    ) -> StoreResult<Vec<(CompletionKey, StoredRow)>> {
        self.run(|base, over| {
            Ok(stored_activities(
                base,
                over,
                &COMPLETIONS,
                keys,
                completion_key,
            ))
        })
    }

    async fn stored_user_sources(
        &mut self,
        emails: &[Email],
    ) -> StoreResult<Vec<(Email, StoredRow)>> {
        self.run(|base, over| stored_user_sources(base, over, emails))
    }

    async fn upsert_sessions(&mut self, rows: &[SessionWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows.iter().map(session_write).collect();
        self.run(|base, over| upsert_activities(base, over, &SESSIONS, writes))
    }

    async fn upsert_matches(&mut self, rows: &[MatchWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows.iter().map(match_write).collect();
        self.run(|base, over| upsert_activities(base, over, &MATCHES, writes))
    }

    async fn upsert_completions(&mut self, rows: &[CompletionWrite]) -> StoreResult<Vec<Written>> {
        let writes = rows.iter().map(completion_write).collect();
        self.run(|base, over| upsert_activities(base, over, &COMPLETIONS, writes))
    }

    async fn upsert_user_rows(&mut self, rows: &[UserWrite]) -> StoreResult<Vec<Written>> {
        self.run(|base, over| upsert_user_rows(base, over, rows))
    }

    async fn upsert_enrollments(&mut self, rows: &[Enrollment]) -> StoreResult<UpsertCounts> {
        self.run(|base, over| upsert_enrollments(base, over, rows))
    }

    async fn put_row_errors(&mut self, rows: &[RowErrorRecord]) -> StoreResult<()> {
        self.run(|base, over| put_row_errors(base, over, rows))
    }

    async fn instances_by_id(&mut self, ids: &[InstanceId]) -> StoreResult<Vec<ProgramInstance>> {
        self.run(|base, over| {
            let instances = view(&base.instances, &over.instances);
            let wanted: HashSet<InstanceId> = ids.iter().copied().collect();
            Ok(wanted
                .into_iter()
                .filter_map(|id| instances.get(id).cloned())
                .collect())
        })
    }

    async fn associations_of(
        &mut self,
        kind: ActivityKind,
        activities: &[ActivityId],
    ) -> StoreResult<Vec<Association>> {
        self.run(|base, over| {
            let associations = view(&base.associations, &over.associations);
            let wanted: HashSet<ActivityId> = activities.iter().copied().collect();
            Ok(wanted
                .into_iter()
                .filter_map(|a| {
                    associations
                        .owner(&association_key(kind, a))
                        .and_then(|id| associations.get(id))
                        .cloned()
                })
                .collect())
        })
    }

    async fn association_by_id(&mut self, id: AssociationId) -> StoreResult<Option<Association>> {
        self.run(|base, over| {
            Ok(view(&base.associations, &over.associations)
                .get(id)
                .cloned())
        })
    }

    async fn activity_summary(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivitySummary>> {
        self.run(|base, over| Ok(review::summary(base, over, kind, id)))
    }

    async fn set_activity_instance(
        &mut self,
        kind: ActivityKind,
        id: ActivityId,
        instance: Option<InstanceId>,
    ) -> StoreResult<bool> {
        self.run(|base, over| {
            if let Some(instance) = instance
                && !view(&base.instances, &over.instances).contains(instance)
            {
                return Err(missing(&format!(
                    "{}_program_instance_id_fkey",
                    kind_table(kind)
                )));
            }
            Ok(match kind {
                ActivityKind::KintellSession => {
                    set_instance(&base.sessions, &mut over.sessions, id, instance)
                }
                ActivityKind::BuddyMatch => {
                    set_instance(&base.matches, &mut over.matches, id, instance)
                }
                ActivityKind::CourseCompletion => {
                    set_instance(&base.completions, &mut over.completions, id, instance)
                }
            })
        })
    }

    async fn backfill_page(
        &mut self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
        limit: u32,
    ) -> StoreResult<Vec<BackfillRow>> {
        self.run(|base, over| backfill::page(base, over, kind, after, filter, limit))
    }

    async fn set_activity_instances(
        &mut self,
        kind: ActivityKind,
        links: &[(ActivityId, InstanceId)],
    ) -> StoreResult<u64> {
        self.run(|base, over| backfill::set_instances(base, over, kind, links))
    }

    async fn save_run(&mut self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        self.run(|base, over| backfill::save_run(base, over, run, guard))
    }

    async fn sessions_by_external_id(
        &mut self,
        ids: &[SessionId],
    ) -> StoreResult<Vec<StoredSession>> {
        self.run(|base, over| stored_sessions(base, over, ids))
    }

    async fn delivery(&mut self, id: &DeliveryId) -> StoreResult<Option<DeliveryRecord>> {
        self.run(|base, over| {
            Ok(over
                .deliveries
                .get(id)
                .or_else(|| base.deliveries.get(id))
                .cloned())
        })
    }

    async fn insert_delivery(&mut self, delivery: &DeliveryRecord) -> StoreResult<()> {
        self.run(|base, over| insert_delivery(base, over, delivery))
    }

    async fn commit(self: Box<Self>) -> StoreResult<()> {
        (*self).publish()
    }

    async fn rollback(self: Box<Self>) -> StoreResult<()> {
        Ok(())
    }
}

#[async_trait]
impl UnitOfWorkFactory for MemoryStore {
    async fn begin(&self) -> StoreResult<Box<dyn UnitOfWork>> {
        Ok(Box::new(self.unit().await))
    }
}

#[async_trait]
impl BatchRepository for MemoryStore {
    async fn insert_batch(&self, batch: &NewBatch) -> StoreResult<BatchRecord> {
        let mut unit = self.unit().await;
        let record = unit.run(|base, over| insert_batch(base, over, batch))?;
        unit.publish()?;
        Ok(record)
    }

    async fn get_batch(&self, id: BatchId) -> StoreResult<Option<BatchRecord>> {
        Ok(self.read(|t| t.batches.rows.get(&id).cloned()))
    }

    async fn list_batches(&self, filter: &BatchFilter) -> StoreResult<Vec<BatchRecord>> {
        let mut found: Vec<BatchRecord> = self.read(|t| {
            t.batches
                .rows
                .values()
                .filter(|b| filter.status.is_none_or(|s| b.status == s))
                .filter(|b| filter.entity_kind.is_none_or(|e| b.entity_kind == e))
                .cloned()
                .collect()
        });
        newest_first(&mut found);
        if let Some(limit) = filter.limit {
            found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        Ok(found)
    }

    async fn batches_by_hash(
        &self,
        entity: EntityKind,
        file_hash: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        let mut found: Vec<BatchRecord> = self.read(|t| {
            t.batches
                .rows
                .values()
                .filter(|b| b.entity_kind == entity && b.file_hash == file_hash)
                .cloned()
                .collect()
        });
        newest_first(&mut found);
        Ok(found)
    }

    async fn batches_by_file_name(
        &self,
        entity: EntityKind,
        file_name: &str,
    ) -> StoreResult<Vec<BatchRecord>> {
        let mut found: Vec<BatchRecord> = self.read(|t| {
            t.batches
                .rows
                .values()
                .filter(|b| b.entity_kind == entity && b.file_name == file_name)
                .cloned()
                .collect()
        });
        newest_first(&mut found);
        Ok(found)
    }

    async fn save_batch(&self, batch: &BatchRecord, guard: &BatchGuard) -> StoreResult<bool> {
        let mut unit = self.unit().await;
        let saved = unit.run(|base, over| save_batch(base, over, batch, guard))?;
        unit.publish()?;
        Ok(saved)
    }

    async fn row_errors(
        &self,
        batch: BatchId,
        after_row: i64,
        limit: u32,
    ) -> StoreResult<Vec<RowErrorRecord>> {
        let mut found: Vec<RowErrorRecord> = self.read(|t| {
            t.row_errors
                .rows
                .values()
                .filter(|r| r.batch_id == batch && r.row_number > after_row)
                .cloned()
                .collect()
        });
        found.sort_by_key(|r| r.row_number);
        found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(found)
    }

    async fn adopt_legacy(
        &self,
        kind: ActivityKind,
        batch: &NewBatch,
    ) -> StoreResult<(BatchRecord, u64)> {
        let mut unit = self.unit().await;
        let adopted = unit.run(|base, over| adopt_legacy(base, over, kind, batch))?;
        unit.publish()?;
        Ok(adopted)
    }
}

#[async_trait]
impl RunRepository for MemoryStore {
    async fn insert_run(&self, run: &NewRun) -> StoreResult<RunRecord> {
        let mut unit = self.unit().await;
        let record = unit.run(|base, over| backfill::insert_run(base, over, run))?;
        unit.publish()?;
        Ok(record)
    }

    async fn get_run(&self, id: RunId) -> StoreResult<Option<RunRecord>> {
        Ok(self.read(|t| t.runs.rows.get(&id).cloned()))
    }

    async fn list_runs(&self, limit: Option<u32>) -> StoreResult<Vec<RunRecord>> {
        Ok(self.read(|t| backfill::list_runs(t, limit)))
    }

    async fn save_run(&self, run: &RunRecord, guard: &RunGuard) -> StoreResult<bool> {
        let mut unit = self.unit().await;
        let saved = unit.run(|base, over| backfill::save_run(base, over, run, guard))?;
        unit.publish()?;
        Ok(saved)
    }
}

#[async_trait]
impl ActivityRepository for MemoryStore {
    async fn count_backfill(
        &self,
        kind: ActivityKind,
        after: Option<ActivityId>,
        filter: &BackfillFilter,
    ) -> StoreResult<u64> {
        self.read(|t| backfill::count(t, kind, after, filter))
    }

    async fn enrollments_of(&self, instance: InstanceId) -> StoreResult<Vec<Enrollment>> {
        Ok(self.read(|t| backfill::enrollments_of(t, instance)))
    }

    async fn count_activities(&self, kind: ActivityKind) -> StoreResult<u64> {
        Ok(self.read(|t| match kind {
            ActivityKind::KintellSession => t.sessions.rows.len(),
            ActivityKind::BuddyMatch => t.matches.rows.len(),
            ActivityKind::CourseCompletion => t.completions.rows.len(),
        }) as u64)
    }

    async fn activity_lineage(
        &self,
        kind: ActivityKind,
        id: ActivityId,
    ) -> StoreResult<Option<ActivityLineage>> {
        Ok(self.read(|t| match kind {
            ActivityKind::KintellSession => t.sessions.rows.get(&id).map(Activity::lineage),
            ActivityKind::BuddyMatch => t.matches.rows.get(&id).map(Activity::lineage),
            ActivityKind::CourseCompletion => t.completions.rows.get(&id).map(Activity::lineage),
        }))
    }
}

/// Sorted by id, so that a load is reproducible (the SQL stores read in primary-key order too).
fn sorted_by_id<R: Row>(table: &Table<R>) -> Vec<R>
where
    R::Id: Ord,
{
    let mut rows: Vec<R> = table.rows.values().cloned().collect();
    rows.sort_by_key(Row::id);
    rows
}

#[async_trait]
impl CatalogRepository for MemoryStore {
    async fn load_catalog(&self) -> StoreResult<CatalogData> {
        Ok(self.read(|t| CatalogData {
            companies: sorted_by_id(&t.companies),
            groups: sorted_by_id(&t.groups),
            campaigns: sorted_by_id(&t.campaigns),
            instances: sorted_by_id(&t.instances),
        }))
    }

    async fn instance_by_slug(&self, slug: &ProgramSlug) -> StoreResult<Option<ProgramInstance>> {
        Ok(self.read(|t| {
            t.instances
                .by_key
                .get(slug.as_str())
                .and_then(|id| t.instances.rows.get(id))
                .cloned()
        }))
    }

    async fn instance_by_id(&self, id: InstanceId) -> StoreResult<Option<ProgramInstance>> {
        Ok(self.read(|t| t.instances.rows.get(&id).cloned()))
    }

    async fn user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        Ok(self.read(|t| {
            t.users
                .by_key
                .get(email.as_str())
                .and_then(|id| t.users.rows.get(id))
                .cloned()
        }))
    }

    async fn count_users(&self) -> StoreResult<u64> {
        Ok(self.read(|t| t.users.rows.len() as u64))
    }
}

/// The table of an activity kind, as the SQL schema names it.
fn kind_table(kind: ActivityKind) -> &'static str {
    match kind {
        ActivityKind::KintellSession => "kintell_sessions",
        ActivityKind::BuddyMatch => "buddy_matches",
        ActivityKind::CourseCompletion => "learning_progress",
    }
}

/// Sets one activity's instance in the overlay; whether the row exists.
fn set_instance<V: ActivityValues>(
    base: &Table<Activity<V>>,
    over: &mut Table<Activity<V>>,
    id: ActivityId,
    instance: Option<InstanceId>,
) -> bool {
    let Some(mut row) = view(base, over).get(id).cloned() else {
        return false;
    };
    row.program_instance_id = instance;
    over.put(row);
    true
}

#[async_trait]
impl AssociationRepository for MemoryStore {
    async fn get_association(&self, id: AssociationId) -> StoreResult<Option<Association>> {
        Ok(self.read(|t| t.associations.rows.get(&id).cloned()))
    }

    async fn association_for(
        &self,
        kind: ActivityKind,
        activity_id: ActivityId,
    ) -> StoreResult<Option<Association>> {
        Ok(self.read(|t| {
            t.associations
                .by_key
                .get(&association_key(kind, activity_id))
                .and_then(|id| t.associations.rows.get(id))
                .cloned()
        }))
    }

    async fn list_reviews(&self, filter: &ReviewFilter) -> StoreResult<Vec<ReviewItem>> {
        Ok(self.read(|t| review::list_reviews(t, filter)))
    }

    async fn campaign_counts(&self, company: Option<CompanyId>) -> StoreResult<CampaignCounts> {
        Ok(self.read(|t| review::campaign_counts(t, company)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Name, ProgramType};
    use proptest::prelude::*;
    use std::task::Waker;

    fn company(slug: &str) -> Company {
        Company {
            id: CompanyId::stable(slug),
            slug: Key::parse(slug).expect("slug"),
            name: Name::parse(slug).expect("name"),
        }
    }

    fn poll_once<F: Future>(f: Pin<&mut F>) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(Waker::noop()))
    }

    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match poll_once(f.as_mut()) {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("the memory store never waits when nobody holds the permit"),
        }
    }

    #[test]
    fn a_second_unit_waits_until_the_first_ends() {
        let store = MemoryStore::new();
        let mut first = ready(store.begin()).expect("begin");
        ready(first.upsert_companies(&[company("acme")])).expect("write");

        let mut second = std::pin::pin!(store.begin());
        assert!(poll_once(second.as_mut()).is_pending());
        // The batch ledger's own writes are units too.
        let batch = new_batch();
        let mut save = std::pin::pin!(store.insert_batch(&batch));
        assert!(poll_once(save.as_mut()).is_pending());

        ready(first.commit()).expect("commit");
        let Poll::Ready(Ok(mut second)) = poll_once(second.as_mut()) else {
            panic!("the permit was released by the commit");
        };
        let seen =
            ready(second.companies_by_slug(&[Key::parse("acme").expect("key")])).expect("look-up");
        assert_eq!(seen, vec![company("acme")]);
        assert!(poll_once(save.as_mut()).is_pending());
        drop(second);
        assert!(matches!(poll_once(save.as_mut()), Poll::Ready(Ok(_))));
    }

    #[test]
    fn uncommitted_writes_are_seen_only_by_their_unit() {
        let store = MemoryStore::new();
        let mut unit = ready(store.begin()).expect("begin");
        ready(unit.upsert_companies(&[company("acme")])).expect("write");
        assert!(
            ready(store.load_catalog())
                .expect("load")
                .companies
                .is_empty()
        );
        ready(unit.rollback()).expect("rollback");
        assert!(
            ready(store.load_catalog())
                .expect("load")
                .companies
                .is_empty()
        );
    }

    #[test]
    fn a_failed_operation_aborts_the_unit() {
        let store = MemoryStore::new();
        let mut unit = ready(store.begin()).expect("begin");
        ready(unit.upsert_companies(&[company("acme")])).expect("write");
        let mut clash = company("beta");
        clash.slug = Key::parse("acme").expect("key");
        assert!(matches!(
            ready(unit.upsert_companies(&[clash])),
            Err(StoreError::Duplicate { .. })
        ));
        assert!(matches!(
            ready(unit.upsert_companies(&[company("gamma")])),
            Err(StoreError::Backend { .. })
        ));
        assert!(matches!(
            ready(unit.commit()),
            Err(StoreError::Backend { .. })
        ));
        assert!(
            ready(store.load_catalog())
                .expect("load")
                .companies
                .is_empty()
        );
    }

    #[test]
    fn a_key_freed_inside_a_unit_can_be_taken_again() {
        let store = MemoryStore::new();
        let mut unit = ready(store.begin()).expect("begin");
        ready(unit.upsert_companies(&[company("acme")])).expect("write");
        ready(unit.commit()).expect("commit");

        let mut unit = ready(store.begin()).expect("begin");
        let mut renamed = company("acme");
        renamed.slug = Key::parse("acme-old").expect("key");
        let mut newcomer = company("newcomer");
        newcomer.slug = Key::parse("acme").expect("key");
        ready(unit.upsert_companies(&[renamed.clone(), newcomer.clone()])).expect("swap");
        ready(unit.commit()).expect("commit");

        let mut companies = ready(store.load_catalog()).expect("load").companies;
        companies.sort_by(|a, b| a.slug.cmp(&b.slug));
        assert_eq!(companies, vec![newcomer, renamed]);
    }

    fn new_batch() -> NewBatch {
        NewBatch {
            id: BatchId(uuid::Uuid::nil()),
            file_name: "a.csv".into(),
            file_hash: "00".into(),
            file_size_bytes: None,
            entity_kind: EntityKind::KintellSessions,
            format: "unknown".into(),
            program_type: ProgramType::Kintell,
            program_instance_id: None,
            source_system: "kintell".into(),
            import_method: crate::domain::ImportMethod::CsvUpload,
            total_rows: 0,
            csv_metadata: serde_json::json!({}),
            imported_by_service: None,
            created_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    /// One upsert of a unit: company `id` (from a small pool) with slug `slug` (from a small pool).
    #[derive(Debug, Clone)]
    struct Op {
        id: u8,
        slug: u8,
        name: u8,
    }

    fn row(op: &Op) -> Company {
        Company {
            id: CompanyId(uuid::Uuid::from_u128(u128::from(op.id))),
            slug: Key::parse(&format!("s{}", op.slug)).expect("slug"),
            name: Name::parse(&format!("n{}", op.name)).expect("name"),
        }
    }

    /// The model: rows by id, applied one by one; a slug held by another id refuses the write and aborts.
    fn model_apply(rows: &mut HashMap<CompanyId, Company>, op: &Op) -> Result<(), ()> {
        let new = row(op);
        if rows.values().any(|r| r.slug == new.slug && r.id != new.id) {
            return Err(());
        }
        rows.insert(new.id, new);
        Ok(())
    }

    proptest! {
        /// Units of random upserts, committed or rolled back, leave the store as a plain sequential model would;
        /// look-ups inside a unit see the model's in-unit state.
        #[test]
        fn units_behave_like_a_sequential_model(
            units in prop::collection::vec(
                (
                    prop::collection::vec((0u8..5, 0u8..4, 0u8..2).prop_map(|(id, slug, name)| Op { id, slug, name }), 1..6),
                    any::<bool>(),
                ),
                1..12,
            )
        ) {
            let store = MemoryStore::new();
            let mut committed: HashMap<CompanyId, Company> = HashMap::new();
            for (ops, commit) in &units {
                let mut unit = ready(store.begin()).expect("begin");
                let mut model = committed.clone();
                let mut aborted = false;
                for op in ops {
                    let expected = model_apply(&mut model, op);
                    let got = ready(unit.upsert_companies(&[row(op)]));
                    prop_assert_eq!(expected.is_ok(), got.is_ok(), "{:?}", got);
                    if expected.is_err() {
                        aborted = true;
                        break;
                    }
                    let slugs: Vec<Key> = (0..4).map(|s| Key::parse(&format!("s{s}")).expect("slug")).collect();
                    let mut seen = ready(unit.companies_by_slug(&slugs)).expect("look-up");
                    seen.sort_by_key(|c| c.id);
                    let mut want: Vec<Company> = model.values().cloned().collect();
                    want.sort_by_key(|c| c.id);
                    prop_assert_eq!(seen, want);
                }
                if *commit && !aborted {
                    ready(unit.commit()).expect("commit");
                    committed = model;
                } else {
                    ready(unit.rollback()).expect("rollback");
                }
                let mut want: Vec<Company> = committed.values().cloned().collect();
                want.sort_by_key(|c| c.id);
                prop_assert_eq!(ready(store.load_catalog()).expect("load").companies, want);
            }
        }
    }
}
