//! The chunk writer: one chunk of records, written through one unit of work with one look-up and one upsert per
//! table, never one per row.
//!
//! For each chunk: the people of every row are resolved in one query (and, with "create missing users", the
//! missing ones planned with stable ids); the programme instances rows name in one query; the rows stored earlier
//! under the chunk's keys in one query, for `duplicate_in_file`. Then every record is judged in file order (the
//! checks that need the database, in header order, the first problem deciding the code), and the chunk's writes
//! follow: users to create, the activity rows with their lineage, the `explicit` associations and enrolments of
//! linked rows, and the row errors. The caller saves the batch's checkpoint in the same unit. Associations
//! are the one exception to "one upsert per table": they are written [`ASSOCIATIONS_PER_WRITE`] at a time, because
//! their explanations, held for a whole chunk, would weigh more than the rest of it.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::association::{Associator, DecidedAssociation, DecidedBy};
use crate::batch::ErrorSummary;
use crate::domain::{
    ActivityId, ActivityKind, AssociationId, BatchId, CompletionKey, CompletionRow,
    CompletionWrite, DomainRow, Email, Enrollment, EnrollmentRole, InstanceId, Key, MatchKey,
    MatchRow, MatchWrite, PersonName, ProgramInstance, ProgramSlug, RowErrorRecord, RowOutcome,
    RowSource, SessionId, SessionRow, SessionWrite, StoredRow, Tags, User, UserId, UserRole,
    UserRow, UserWrite, Written,
};
use crate::domain::{CompanyId, Decision, ProgramType};
use crate::formats::{ErrorCode, Problem, RawRecord, RowError};
use crate::ports::{StoreResult, UnitOfWork};
use crate::scoring::{ActivityFacts, Outcome, resolve_company};
use std::sync::Arc;

use super::metadata::InstanceSource;
use super::prepass::sample;
use super::report::AssociationCounts;

/// One record of a chunk, as the parser gave it.
// Nearly every record is valid: boxing the large variant would cost an allocation per row.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Item {
    /// A record that passed every check the parser makes.
    Valid {
        /// 1-based data record number.
        row_number: u64,
        /// Physical line where it starts.
        line_number: u64,
        /// The typed row.
        row: DomainRow,
        /// Its values, kept in case a check of the database rejects it.
        raw: RawRecord,
    },
    /// A record the parser rejected.
    Invalid(Box<RowError>),
}

/// The batch's programme instance and how it was found.
#[derive(Debug, Clone)]
pub(crate) struct BatchInstance {
    /// The instance.
    pub(crate) instance: ProgramInstance,
    /// Explicit (rows' `program_ref` ignored) or from the file name (a `program_ref` wins).
    pub(crate) source: InstanceSource,
}

/// What every chunk of a batch shares.
#[derive(Debug, Clone)]
pub(crate) struct ChunkContext {
    /// The batch writing.
    pub(crate) batch_id: BatchId,
    /// This batch and every batch of the same entity whose file had the same bytes: their record numbers are
    /// this file's, so a stored row whose lineage names one of them at an earlier record was stored from an
    /// earlier record of this file.
    pub(crate) same_content: HashSet<BatchId>,
    /// The batch's programme instance.
    pub(crate) instance: Option<BatchInstance>,
    /// Create users for unknown emails.
    pub(crate) create_missing_users: bool,
    /// The canonical column at each header position (for ordering problems).
    pub(crate) columns: Vec<Option<String>>,
    /// The canonical name of the volunteer column (`volunteer_email`, or `mentor_email` in `mentors-v1`).
    pub(crate) volunteer_field: &'static str,
    /// `policy_version` of the associations written.
    pub(crate) policy_version: String,
    /// The campaign index rows without an instance are associated with; `None` when the catalogue could not be
    /// loaded (the rows are then stored unassociated).
    pub(crate) scoring: Option<Arc<Scoring>>,
    /// Why the catalogue could not be loaded, when it could not (recorded in the batch's `csv_metadata`).
    pub(crate) association_unavailable: Option<String>,
    /// `updated_at` of the rows written.
    pub(crate) now: DateTime<Utc>,
}

/// Association by scoring, loaded once per batch: the campaign index and the programme type of every instance
/// (for the enrolments of automatically linked rows).
#[derive(Debug)]
pub(crate) struct Scoring {
    associator: Associator,
    instance_types: HashMap<InstanceId, ProgramType>,
}

impl Scoring {
    /// The index of `catalog`, scoring by `policy`.
    pub(crate) fn new(
        catalog: &crate::ports::CatalogData,
        policy: crate::scoring::ScoringPolicy,
    ) -> Self {
        Scoring {
            associator: Associator::new(catalog, policy),
            instance_types: catalog
                .instances
                .iter()
                .map(|i| (i.id, i.program_type))
                .collect(),
        }
    }
}

/// What a chunk did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ChunkOutcome {
    /// Records in the chunk.
    pub(crate) rows: u64,
    /// Rows inserted.
    pub(crate) inserted: u64,
    /// Rows changed.
    pub(crate) updated: u64,
    /// Rows found unchanged.
    pub(crate) skipped: u64,
    /// Rows rejected, by the parser or by the checks of the database.
    pub(crate) errors: u64,
    /// The rejected rows.
    pub(crate) summary: ErrorSummary,
    /// Stored activities by association decision.
    pub(crate) associations: AssociationCounts,
}

impl ChunkOutcome {
    fn count(&mut self, w: &Written) {
        match w.outcome {
            RowOutcome::Inserted => self.inserted += 1,
            RowOutcome::Updated => self.updated += 1,
            RowOutcome::Unchanged => self.skipped += 1,
        }
    }
}

/// Writes one chunk through `unit` (everything but the batch's checkpoint).
///
/// # Errors
/// The store's errors; the caller rolls the unit back.
pub(crate) async fn write(
    unit: &mut dyn UnitOfWork,
    ctx: &ChunkContext,
    items: Vec<Item>,
) -> StoreResult<ChunkOutcome> {
    let mut judge = Judge::new(ctx, items.len());
    let mut sessions = Vec::new();
    let mut users = Vec::new();
    let mut matches = Vec::new();
    let mut completions = Vec::new();
    for item in items {
        match item {
            Item::Invalid(e) => judge.reject(*e),
            Item::Valid {
                row_number,
                line_number,
                row,
                raw,
            } => {
                let at = At {
                    row_number,
                    line_number,
                    raw,
                };
                match row {
                    DomainRow::Session(r) => sessions.push((at, r)),
                    DomainRow::User(r) => users.push((at, r)),
                    DomainRow::Match(r) => matches.push((at, r)),
                    DomainRow::Completion(r) => completions.push((at, r)),
                }
            }
        }
    }
    if !sessions.is_empty() {
        write_sessions(unit, &mut judge, sessions).await?;
    }
    if !users.is_empty() {
        write_users(unit, &mut judge, users).await?;
    }
    if !matches.is_empty() {
        write_matches(unit, &mut judge, matches).await?;
    }
    if !completions.is_empty() {
        write_completions(unit, &mut judge, completions).await?;
    }
    if !judge.errors.is_empty() {
        unit.put_row_errors(&judge.errors).await?;
    }
    Ok(judge.outcome)
}

/// Where a valid record came from.
#[derive(Debug)]
struct At {
    row_number: u64,
    line_number: u64,
    raw: RawRecord,
}

impl At {
    fn source(&self, batch_id: BatchId) -> RowSource {
        RowSource {
            batch_id,
            source_row_number: i64::try_from(self.row_number).unwrap_or(i64::MAX),
        }
    }
}

/// Judges a chunk's records and collects its outcome and row errors.
struct Judge<'c> {
    ctx: &'c ChunkContext,
    outcome: ChunkOutcome,
    errors: Vec<RowErrorRecord>,
}

impl<'c> Judge<'c> {
    fn new(ctx: &'c ChunkContext, rows: usize) -> Self {
        Judge {
            ctx,
            outcome: ChunkOutcome {
                rows: rows as u64,
                ..ChunkOutcome::default()
            },
            errors: Vec::new(),
        }
    }

    fn reject(&mut self, e: RowError) {
        self.outcome.errors += 1;
        self.outcome.summary.record(sample(&e));
        self.errors.push(RowErrorRecord {
            batch_id: self.ctx.batch_id,
            row_number: i64::try_from(e.row_number).unwrap_or(i64::MAX),
            line_number: i64::try_from(e.line_number).unwrap_or(i64::MAX),
            code: e.code.as_str().to_owned(),
            field: e.field.as_deref().map(str::to_owned),
            message: e.message.clone(),
            details: Some(e.details_json()),
            raw_record: e.raw_record.to_json(),
        });
    }

    /// Rejects a valid record for the problems only the database shows, ordered by their fields' header positions.
    fn reject_problems(&mut self, at: At, mut problems: Vec<Problem>) {
        problems.sort_by_key(|p| self.position(p.field.as_deref()));
        let e = RowError::from_problems(at.row_number, at.line_number, problems, at.raw);
        self.reject(e);
    }

    fn position(&self, field: Option<&str>) -> usize {
        match field {
            None => 0,
            Some(f) => self
                .ctx
                .columns
                .iter()
                .position(|c| c.as_deref() == Some(f))
                .map_or(usize::MAX, |i| i + 1),
        }
    }

    /// Whether a stored row was stored from an earlier record of this file.
    fn stored_earlier(&self, stored: Option<&StoredRow>, row_number: u64) -> Option<i64> {
        let s = stored?;
        let batch = s.batch_id?;
        let n = s.source_row_number?;
        (self.ctx.same_content.contains(&batch)
            && n < i64::try_from(row_number).unwrap_or(i64::MAX))
        .then_some(n)
    }

    /// The duplicate problem of a key seen earlier in this chunk or stored from an earlier record.
    fn duplicate<K: Eq + Hash>(
        &self,
        seen: &HashMap<K, u64>,
        key: &K,
        stored: Option<&StoredRow>,
        row_number: u64,
        field: &'static str,
        what: &str,
    ) -> Option<Problem> {
        let earlier = seen
            .get(key)
            .map(|r| i64::try_from(*r).unwrap_or(i64::MAX))
            .or_else(|| self.stored_earlier(stored, row_number))?;
        Some(Problem::new(
            ErrorCode::DuplicateInFile,
            Some(field),
            format!("{what} as row {earlier}, which was stored"),
        ))
    }

    /// The instance a row is linked to: the explicit one; else the one its `program_ref` names (unknown → a
    /// problem); else the file name's.
    fn instance<'a>(
        &'a self,
        program_ref: Option<&ProgramSlug>,
        named: &'a HashMap<ProgramSlug, ProgramInstance>,
        problems: &mut Vec<Problem>,
    ) -> Option<&'a ProgramInstance> {
        let batch = self.ctx.instance.as_ref();
        if let Some(b) = batch
            && b.source == InstanceSource::Explicit
        {
            return Some(&b.instance);
        }
        match program_ref {
            Some(slug) => {
                let found = named.get(slug);
                if found.is_none() {
                    problems.push(Problem::new(
                        ErrorCode::UnknownProgramInstance,
                        Some("program_ref"),
                        format!("no programme instance has the slug \"{slug}\""),
                    ));
                }
                found
            }
            None => batch.map(|b| &b.instance),
        }
    }
}

/// The people of a chunk: users found by email, and the users "create missing users" will create.
struct People {
    known: HashMap<Email, UserId>,
    users: HashMap<UserId, User>,
    create: bool,
    planned: Vec<User>,
    planned_emails: HashSet<Email>,
    /// The tags of a person without any.
    no_tags: Tags,
}

impl People {
    async fn look_up(
        unit: &mut dyn UnitOfWork,
        emails: HashSet<Email>,
        create: bool,
    ) -> StoreResult<Self> {
        let emails: Vec<Email> = emails.into_iter().collect();
        let found = if emails.is_empty() {
            Vec::new()
        } else {
            unit.users_by_email(&emails).await?
        };
        Ok(People {
            known: found.iter().map(|u| (u.email.clone(), u.id)).collect(),
            users: found.into_iter().map(|u| (u.id, u)).collect(),
            create,
            planned: Vec::new(),
            planned_emails: HashSet::new(),
            no_tags: Tags::default(),
        })
    }

    /// The id of the user with `email`: stored, or the stable id of a user to create; `None` (and a problem) when
    /// unknown and not to be created.
    fn id(
        &self,
        email: &Email,
        field: &'static str,
        problems: &mut Vec<Problem>,
    ) -> Option<UserId> {
        if let Some(id) = self.known.get(email) {
            return Some(*id);
        }
        if self.create {
            return Some(UserId::stable(email));
        }
        problems.push(Problem::new(
            ErrorCode::UnknownUser,
            Some(field),
            format!("no user has the email {email}"),
        ));
        None
    }

    /// Plans the creation of `email`'s user (the first role planned wins) unless it exists.
    fn need(&mut self, email: &Email, role: UserRole) {
        if self.known.contains_key(email) || !self.planned_emails.insert(email.clone()) {
            return;
        }
        self.planned.push(User {
            id: UserId::stable(email),
            email: email.clone(),
            role,
            first_name: None,
            last_name: None,
            company_id: None,
            tags: Tags::default(),
            journey_flags: serde_json::Map::new(),
        });
    }

    /// The company and tags of a person (a user to be created has neither).
    fn profile(&self, id: UserId) -> (Option<CompanyId>, &Tags) {
        self.users
            .get(&id)
            .map_or((None, &self.no_tags), |u| (u.company_id, &u.tags))
    }

    async fn create(&self, unit: &mut dyn UnitOfWork) -> StoreResult<()> {
        if !self.planned.is_empty() {
            unit.upsert_users(&self.planned).await?;
        }
        Ok(())
    }
}

/// The links of a chunk's stored rows: `explicit` associations and enrolments.
#[derive(Default)]
struct Links {
    associations: Vec<DecidedAssociation>,
    enrollments: HashMap<(UserId, InstanceId, EnrollmentRole), Enrollment>,
}

impl Links {
    /// Links one stored activity to `instance`, enrolling `people` at `at`.
    fn link(
        &mut self,
        judge: &mut Judge<'_>,
        kind: ActivityKind,
        activity: &Written,
        instance: &ProgramInstance,
        people: &[(UserId, EnrollmentRole)],
        at: DateTime<Utc>,
    ) {
        let outcome = Outcome::explicit(instance.id, instance.campaign_id);
        judge.outcome.associations.record(outcome.decision);
        self.associations.push(DecidedAssociation {
            id: AssociationId(uuid::Uuid::now_v7()),
            activity_kind: kind,
            activity_id: ActivityId(activity.id),
            outcome,
            policy_version: judge.ctx.policy_version.clone(),
            decided_by: DecidedBy::Batch(judge.ctx.batch_id),
        });
        self.enrol(instance.id, instance.program_type, people, at);
    }

    /// Records the scored association of one stored activity, enrolling `people` when it links the activity.
    fn scored(
        &mut self,
        judge: &mut Judge<'_>,
        kind: ActivityKind,
        activity: &Written,
        scored: Scored,
    ) {
        let Some(scoring) = judge.ctx.scoring.as_deref() else {
            return;
        };
        judge.outcome.associations.record(scored.outcome.decision);
        if let Some(instance) = scored.links()
            && let Some(program_type) = scoring.instance_types.get(&instance)
        {
            self.enrol(instance, *program_type, &scored.people, scored.at);
        }
        self.associations.push(scoring.associator.decided(
            AssociationId(uuid::Uuid::now_v7()),
            kind,
            ActivityId(activity.id),
            scored.outcome,
            DecidedBy::Batch(judge.ctx.batch_id),
        ));
    }

    fn enrol(
        &mut self,
        instance: InstanceId,
        program_type: ProgramType,
        people: &[(UserId, EnrollmentRole)],
        at: DateTime<Utc>,
    ) {
        for (user, role) in people {
            self.enrollments
                .entry((*user, instance, *role))
                .and_modify(|e| e.enrolled_at = e.enrolled_at.min(at))
                .or_insert(Enrollment {
                    id: uuid::Uuid::now_v7(),
                    user_id: *user,
                    program_instance_id: instance,
                    program_type,
                    role: *role,
                    enrolled_at: at,
                });
        }
    }

    async fn write(self, unit: &mut dyn UnitOfWork) -> StoreResult<()> {
        if !self.associations.is_empty() {
            unit.upsert_decided(&self.associations).await?;
        }
        if !self.enrollments.is_empty() {
            let mut rows: Vec<Enrollment> = self.enrollments.into_values().collect();
            rows.sort_by_key(|e| (e.user_id, e.program_instance_id, e.role.as_str()));
            unit.upsert_enrollments(&rows).await?;
        }
        Ok(())
    }
}

/// The scored association of a row no instance links.
struct Scored {
    outcome: Outcome,
    people: Vec<(UserId, EnrollmentRole)>,
    at: DateTime<Utc>,
}

impl Scored {
    /// The instance the row is linked to: the proposal's, for an `auto` decision.
    fn links(&self) -> Option<InstanceId> {
        (self.outcome.decision == Decision::Auto)
            .then_some(self.outcome.instance)
            .flatten()
    }
}

/// How a stored row is associated.
enum Link {
    /// Linked to an instance the batch or the row named.
    Explicit(
        ProgramInstance,
        Vec<(UserId, EnrollmentRole)>,
        DateTime<Utc>,
    ),
    /// Scored against the campaign index.
    Scored(Scored),
    /// Left as it is: no catalogue, or a stored human or explicit decision that an import must not change.
    Kept,
}

/// Scores a row no instance links, unless its stored association is sticky (a human decision, or an explicit one)
/// or there is no catalogue.
fn score(
    ctx: &ChunkContext,
    sticky: bool,
    facts: &ActivityFacts<'_>,
    people: Vec<(UserId, EnrollmentRole)>,
) -> Link {
    match ctx.scoring.as_deref() {
        Some(scoring) if !sticky => Link::Scored(Scored {
            outcome: scoring.associator.associate(facts),
            people,
            at: facts.at,
        }),
        _ => Link::Kept,
    }
}

/// The stored activities (among `ids`) whose association an import must not change: human decisions and explicit
/// ones (one query; none when there is nothing to score with).
async fn sticky_of(
    unit: &mut dyn UnitOfWork,
    ctx: &ChunkContext,
    kind: ActivityKind,
    ids: Vec<ActivityId>,
) -> StoreResult<HashSet<ActivityId>> {
    if ids.is_empty() || ctx.scoring.is_none() {
        return Ok(HashSet::new());
    }
    Ok(unit
        .associations_of(kind, &ids)
        .await?
        .into_iter()
        .filter(|a| a.decision.stays_over(Decision::Auto))
        .map(|a| a.activity_id)
        .collect())
}

async fn write_sessions(
    unit: &mut dyn UnitOfWork,
    judge: &mut Judge<'_>,
    rows: Vec<(At, SessionRow)>,
) -> StoreResult<()> {
    let ctx = judge.ctx;
    let emails = rows
        .iter()
        .flat_map(|(_, r)| [r.participant_email.clone(), r.volunteer_email.clone()])
        .collect();
    let mut people = People::look_up(unit, emails, ctx.create_missing_users).await?;
    let named = named_instances(
        unit,
        ctx,
        rows.iter().filter_map(|(_, r)| r.program_ref.as_ref()),
    )
    .await?;
    let ids: Vec<SessionId> = distinct(rows.iter().map(|(_, r)| r.session_id.clone()));
    let stored: HashMap<SessionId, StoredRow> =
        unit.stored_sessions(&ids).await?.into_iter().collect();
    let sticky = sticky_of(
        unit,
        ctx,
        ActivityKind::KintellSession,
        stored.values().map(|s| ActivityId(s.id)).collect(),
    )
    .await?;

    let mut seen: HashMap<SessionId, u64> = HashMap::new();
    let mut writes = Vec::new();
    let mut linked = Vec::new();
    for (at, row) in rows {
        let mut problems = Vec::new();
        let participant = people.id(&row.participant_email, "participant_email", &mut problems);
        let volunteer = people.id(&row.volunteer_email, ctx.volunteer_field, &mut problems);
        let instance = judge
            .instance(row.program_ref.as_ref(), &named, &mut problems)
            .cloned();
        problems.extend(judge.duplicate(
            &seen,
            &row.session_id,
            stored.get(&row.session_id),
            at.row_number,
            "session_id",
            "the same session_id",
        ));
        let (Some(participant), Some(volunteer), true) =
            (participant, volunteer, problems.is_empty())
        else {
            judge.reject_problems(at, problems);
            continue;
        };
        people.need(&row.participant_email, UserRole::Participant);
        people.need(&row.volunteer_email, UserRole::Volunteer);
        seen.insert(row.session_id.clone(), at.row_number);
        let when = row.completed_at.unwrap_or(row.scheduled_at);
        let roles = vec![
            (participant, EnrollmentRole::Participant),
            (volunteer, EnrollmentRole::Volunteer),
        ];
        let link = match instance {
            Some(i) => Link::Explicit(i, roles, when),
            None => {
                let (participant_company, tags) = people.profile(participant);
                let (volunteer_company, _) = people.profile(volunteer);
                let facts = ActivityFacts::session(
                    row.session_type,
                    row.scheduled_at,
                    row.completed_at,
                    resolve_company(volunteer_company, participant_company),
                    tags,
                );
                let kept = stored
                    .get(&row.session_id)
                    .is_some_and(|s| sticky.contains(&ActivityId(s.id)));
                score(ctx, kept, &facts, roles)
            }
        };
        let program_instance_id = link.instance();
        linked.push(link);
        writes.push(SessionWrite {
            id: ActivityId(uuid::Uuid::now_v7()),
            program_instance_id,
            row,
            participant_id: participant,
            volunteer_id: volunteer,
            source: at.source(ctx.batch_id),
            now: ctx.now,
        });
    }
    people.create(unit).await?;
    let written = if writes.is_empty() {
        Vec::new()
    } else {
        unit.upsert_sessions(&writes).await?
    };
    finish(unit, judge, ActivityKind::KintellSession, &written, linked).await
}

async fn write_matches(
    unit: &mut dyn UnitOfWork,
    judge: &mut Judge<'_>,
    rows: Vec<(At, MatchRow)>,
) -> StoreResult<()> {
    let ctx = judge.ctx;
    let emails = rows
        .iter()
        .flat_map(|(_, r)| [r.participant_email.clone(), r.buddy_email.clone()])
        .collect();
    let mut people = People::look_up(unit, emails, ctx.create_missing_users).await?;
    let key_of = |people: &People, r: &MatchRow| {
        let mut ignored = Vec::new();
        Some(MatchKey {
            participant_id: people.id(&r.participant_email, "participant_email", &mut ignored)?,
            buddy_id: people.id(&r.buddy_email, "buddy_email", &mut ignored)?,
            matched_at: r.matched_at,
        })
    };
    let keys: Vec<MatchKey> = distinct(rows.iter().filter_map(|(_, r)| key_of(&people, r)));
    let stored: HashMap<MatchKey, StoredRow> = if keys.is_empty() {
        HashMap::new()
    } else {
        unit.stored_matches(&keys).await?.into_iter().collect()
    };
    let sticky = sticky_of(
        unit,
        ctx,
        ActivityKind::BuddyMatch,
        stored.values().map(|s| ActivityId(s.id)).collect(),
    )
    .await?;

    let mut seen: HashMap<MatchKey, u64> = HashMap::new();
    let mut writes = Vec::new();
    let mut linked = Vec::new();
    let named = HashMap::new();
    for (at, row) in rows {
        let mut problems = Vec::new();
        let participant = people.id(&row.participant_email, "participant_email", &mut problems);
        let buddy = people.id(&row.buddy_email, "buddy_email", &mut problems);
        let instance = judge.instance(None, &named, &mut problems).cloned();
        let (Some(participant_id), Some(buddy_id)) = (participant, buddy) else {
            judge.reject_problems(at, problems);
            continue;
        };
        let key = MatchKey {
            participant_id,
            buddy_id,
            matched_at: row.matched_at,
        };
        problems.extend(judge.duplicate(
            &seen,
            &key,
            stored.get(&key),
            at.row_number,
            "participant_email",
            "the same participant, buddy and matched_at",
        ));
        if !problems.is_empty() {
            judge.reject_problems(at, problems);
            continue;
        }
        people.need(&row.participant_email, UserRole::Participant);
        people.need(&row.buddy_email, UserRole::Volunteer);
        seen.insert(key, at.row_number);
        let roles = vec![
            (participant_id, EnrollmentRole::Participant),
            (buddy_id, EnrollmentRole::Volunteer),
        ];
        let link = match instance {
            Some(i) => Link::Explicit(i, roles, row.matched_at),
            None => {
                let (participant_company, tags) = people.profile(participant_id);
                let (buddy_company, _) = people.profile(buddy_id);
                let facts = ActivityFacts::buddy_match(
                    row.matched_at,
                    resolve_company(buddy_company, participant_company),
                    tags,
                );
                let kept = stored
                    .get(&key)
                    .is_some_and(|s| sticky.contains(&ActivityId(s.id)));
                score(ctx, kept, &facts, roles)
            }
        };
        let program_instance_id = link.instance();
        linked.push(link);
        writes.push(MatchWrite {
            id: ActivityId(uuid::Uuid::now_v7()),
            program_instance_id,
            row,
            key,
            source: at.source(ctx.batch_id),
            now: ctx.now,
        });
    }
    people.create(unit).await?;
    let written = if writes.is_empty() {
        Vec::new()
    } else {
        unit.upsert_matches(&writes).await?
    };
    finish(unit, judge, ActivityKind::BuddyMatch, &written, linked).await
}

async fn write_completions(
    unit: &mut dyn UnitOfWork,
    judge: &mut Judge<'_>,
    rows: Vec<(At, CompletionRow)>,
) -> StoreResult<()> {
    let ctx = judge.ctx;
    let emails = rows.iter().map(|(_, r)| r.user_email.clone()).collect();
    let mut people = People::look_up(unit, emails, ctx.create_missing_users).await?;
    let key_of = |people: &People, r: &CompletionRow| {
        let mut ignored = Vec::new();
        Some(CompletionKey {
            user_id: people.id(&r.user_email, "user_email", &mut ignored)?,
            provider: r.provider.clone(),
            course_id: r.course_id.clone(),
        })
    };
    let keys: Vec<CompletionKey> = distinct(rows.iter().filter_map(|(_, r)| key_of(&people, r)));
    let stored: HashMap<CompletionKey, StoredRow> = if keys.is_empty() {
        HashMap::new()
    } else {
        unit.stored_completions(&keys).await?.into_iter().collect()
    };
    let sticky = sticky_of(
        unit,
        ctx,
        ActivityKind::CourseCompletion,
        stored.values().map(|s| ActivityId(s.id)).collect(),
    )
    .await?;

    let mut seen: HashMap<CompletionKey, u64> = HashMap::new();
    let mut writes = Vec::new();
    let mut linked = Vec::new();
    let named = HashMap::new();
    for (at, row) in rows {
        let mut problems = Vec::new();
        let user = people.id(&row.user_email, "user_email", &mut problems);
        let instance = judge.instance(None, &named, &mut problems).cloned();
        let Some(user_id) = user else {
            judge.reject_problems(at, problems);
            continue;
        };
        let key = CompletionKey {
            user_id,
            provider: row.provider.clone(),
            course_id: row.course_id.clone(),
        };
        problems.extend(judge.duplicate(
            &seen,
            &key,
            stored.get(&key),
            at.row_number,
            "user_email",
            "the same user, provider and course_id",
        ));
        if !problems.is_empty() {
            judge.reject_problems(at, problems);
            continue;
        }
        people.need(&row.user_email, UserRole::Participant);
        let roles = vec![(user_id, EnrollmentRole::Participant)];
        let link = match instance {
            Some(i) => Link::Explicit(i, roles, row.completed_at),
            None => {
                let (company, tags) = people.profile(user_id);
                let facts = ActivityFacts::course_completion(row.completed_at, company, tags);
                let kept = stored
                    .get(&key)
                    .is_some_and(|s| sticky.contains(&ActivityId(s.id)));
                score(ctx, kept, &facts, roles)
            }
        };
        let program_instance_id = link.instance();
        linked.push(link);
        writes.push(CompletionWrite {
            id: ActivityId(uuid::Uuid::now_v7()),
            program_instance_id,
            row,
            key: key.clone(),
            source: at.source(ctx.batch_id),
            now: ctx.now,
        });
        seen.insert(key, at.row_number);
    }
    people.create(unit).await?;
    let written = if writes.is_empty() {
        Vec::new()
    } else {
        unit.upsert_completions(&writes).await?
    };
    finish(
        unit,
        judge,
        ActivityKind::CourseCompletion,
        &written,
        linked,
    )
    .await
}

impl Link {
    /// The instance the activity row is written with (`None` leaves a stored link as it is).
    fn instance(&self) -> Option<InstanceId> {
        match self {
            Link::Explicit(i, _, _) => Some(i.id),
            Link::Scored(s) => s.links(),
            Link::Kept => None,
        }
    }
}

/// Counts the written rows and writes their associations and enrolments.
async fn finish(
    unit: &mut dyn UnitOfWork,
    judge: &mut Judge<'_>,
    kind: ActivityKind,
    written: &[Written],
    linked: Vec<Link>,
) -> StoreResult<()> {
    let mut links = Links::default();
    for (w, link) in written.iter().zip(linked) {
        judge.outcome.count(w);
        match link {
            Link::Explicit(instance, people, at) => {
                links.link(judge, kind, w, &instance, &people, at);
            }
            Link::Scored(scored) => links.scored(judge, kind, w, scored),
            Link::Kept => {}
        }
        if links.associations.len() >= ASSOCIATIONS_PER_WRITE {
            unit.upsert_decided(&links.associations).await?;
            links.associations.clear();
        }
    }
    links.write(unit).await
}

/// The most associations a chunk holds before writing them: each carries its outcome's reasons and candidates
/// (about a kilobyte), which for a whole chunk would weigh more than the rest of it.
const ASSOCIATIONS_PER_WRITE: usize = 2_500;

/// The instances the rows name (one query), plus the batch's own; none when the batch's instance is explicit.
async fn named_instances<'a>(
    unit: &mut dyn UnitOfWork,
    ctx: &ChunkContext,
    refs: impl Iterator<Item = &'a ProgramSlug>,
) -> StoreResult<HashMap<ProgramSlug, ProgramInstance>> {
    let mut named = HashMap::new();
    if let Some(b) = &ctx.instance {
        if b.source == InstanceSource::Explicit {
            return Ok(named);
        }
        named.insert(b.instance.slug.clone(), b.instance.clone());
    }
    let wanted: Vec<ProgramSlug> = distinct(refs.filter(|s| !named.contains_key(*s)).cloned());
    if !wanted.is_empty() {
        for i in unit.instances_by_slug(&wanted).await? {
            named.insert(i.slug.clone(), i);
        }
    }
    Ok(named)
}

/// The distinct values, in first-seen order.
fn distinct<T: Eq + Hash + Clone>(values: impl Iterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    values.filter(|v| seen.insert(v.clone())).collect()
}

/// The users export: each row merged with the stored user (an empty value keeps the stored one).
async fn write_users(
    unit: &mut dyn UnitOfWork,
    judge: &mut Judge<'_>,
    rows: Vec<(At, UserRow)>,
) -> StoreResult<()> {
    let ctx = judge.ctx;
    let emails: Vec<Email> = distinct(rows.iter().map(|(_, r)| r.email.clone()));
    let stored_users: HashMap<Email, User> = unit
        .users_by_email(&emails)
        .await?
        .into_iter()
        .map(|u| (u.email.clone(), u))
        .collect();
    let slugs: Vec<Key> = distinct(rows.iter().filter_map(|(_, r)| r.company.clone()));
    let companies: HashMap<Key, crate::domain::CompanyId> = if slugs.is_empty() {
        HashMap::new()
    } else {
        unit.companies_by_slug(&slugs)
            .await?
            .into_iter()
            .map(|c| (c.slug, c.id))
            .collect()
    };
    let stored: HashMap<Email, StoredRow> = unit
        .stored_user_sources(&emails)
        .await?
        .into_iter()
        .collect();

    let mut seen: HashMap<Email, u64> = HashMap::new();
    let mut writes = Vec::new();
    for (at, row) in rows {
        let mut problems = Vec::new();
        let company = match &row.company {
            Some(slug) => match companies.get(slug) {
                Some(id) => Some(*id),
                None => {
                    problems.push(Problem::new(
                        ErrorCode::UnknownCompany,
                        Some("company"),
                        format!("no company has the slug \"{slug}\""),
                    ));
                    None
                }
            },
            None => None,
        };
        problems.extend(judge.duplicate(
            &seen,
            &row.email,
            stored.get(&row.email),
            at.row_number,
            "email",
            "the same email",
        ));
        if !problems.is_empty() {
            judge.reject_problems(at, problems);
            continue;
        }
        seen.insert(row.email.clone(), at.row_number);
        let previous = stored_users.get(&row.email);
        writes.push(UserWrite {
            created_at: row.joined_kg_at.unwrap_or(ctx.now),
            user: merge_user(&row, previous, company),
            source: at.source(ctx.batch_id),
            now: ctx.now,
        });
    }
    let written = if writes.is_empty() {
        Vec::new()
    } else {
        unit.upsert_user_rows(&writes).await?
    };
    for w in &written {
        judge.outcome.count(w);
    }
    Ok(())
}

/// A users-export row over the stored user: every value the row gives replaces the stored one, every empty one
/// keeps it (a new user gets role `participant`, `grant_access` false, no company, no tags); a given name
/// replaces both parts. `kintell_source` is always set.
pub(crate) fn merge_user(
    row: &UserRow,
    stored: Option<&User>,
    company: Option<crate::domain::CompanyId>,
) -> User {
    let mut flags = stored.map(|u| u.journey_flags.clone()).unwrap_or_default();
    flags.insert("kintell_source".to_owned(), Value::Bool(true));
    let mut set = |key: &str, value: Option<Value>| {
        if let Some(v) = value {
            flags.insert(key.to_owned(), v);
        }
    };
    set(
        "verification_status",
        row.verification_status.clone().map(Value::String),
    );
    set("linkedin_url", row.linkedin_url.clone().map(Value::String));
    set(
        "role_when_joined",
        row.role_when_joined.clone().map(Value::String),
    );
    set(
        "joined_kg_at",
        row.joined_kg_at
            .map(|t| Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))),
    );
    set("grant_access", row.grant_access.map(Value::Bool));
    flags
        .entry("grant_access".to_owned())
        .or_insert(Value::Bool(false));
    let (first_name, last_name) = match &row.name {
        Some(name) => (
            PersonName::parse(&name.first).ok(),
            name.last.as_deref().and_then(|l| PersonName::parse(l).ok()),
        ),
        None => (
            stored.and_then(|u| u.first_name.clone()),
            stored.and_then(|u| u.last_name.clone()),
        ),
    };
    User {
        id: stored.map_or_else(|| UserId::stable(&row.email), |u| u.id),
        email: row.email.clone(),
        role: row
            .role
            .or(stored.map(|u| u.role))
            .unwrap_or(UserRole::Participant),
        first_name,
        last_name,
        company_id: company.or_else(|| stored.and_then(|u| u.company_id)),
        tags: match &row.tags {
            Some(tags) => Tags::from_raw(tags),
            None => stored.map(|u| u.tags.clone()).unwrap_or_default(),
        },
        journey_flags: flags,
    }
}
