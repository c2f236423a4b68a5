//! The backfill reads and writes of the in-memory store, and its `association_runs` (a child module of `memory`,
//! so it reads the tables directly).
//!
//! A page scans the whole table for the rows above the checkpoint: fine for the sizes this store is for (tests and
//! examples); the SQL stores use their primary-key index.

use super::{
    Activity, ActivityTable, ActivityValues, COMPLETIONS, MATCHES, SESSIONS, Tables, all_rows,
    association_key, invalid, missing, reference, view,
};
use crate::domain::{
    ActivityId, ActivityKind, AssociationState, Enrollment, InstanceId, NewRun, ProgramType,
    RunGuard, RunRecord, UserId,
};
use crate::ports::{BackfillFilter, BackfillRow, StoreError, StoreResult};
use chrono::{DateTime, Utc};

/// The people, time and programme kind of one activity.
struct Facts {
    participant: UserId,
    volunteer: Option<UserId>,
    at: Option<DateTime<Utc>>,
    program: ProgramType,
}

fn session_facts(a: &Activity<super::SessionValues>) -> Facts {
    Facts {
        participant: a.values.participant_id,
        volunteer: Some(a.values.volunteer_id),
        at: Some(a.values.completed_at.unwrap_or(a.values.scheduled_at)),
        program: a.values.session_type.program_type(),
    }
}

fn match_facts(a: &Activity<super::MatchValues>) -> Facts {
    Facts {
        participant: a.values.key.participant_id,
        volunteer: Some(a.values.key.buddy_id),
        at: Some(a.values.key.matched_at),
        program: ProgramType::Buddy,
    }
}

fn completion_facts(a: &Activity<super::CompletionValues>) -> Facts {
    Facts {
        participant: a.values.key.user_id,
        volunteer: None,
        at: Some(a.values.completed_at),
        program: ProgramType::Upskilling,
    }
}

/// The rows of one table that pass `filter` above `after`, by id, with what association needs.
fn rows_of<V: ActivityValues>(
    base: &Tables,
    over: &Tables,
    table: &ActivityTable<V>,
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
    facts: fn(&Activity<V>) -> Facts,
) -> StoreResult<Vec<BackfillRow>> {
    let users = view(&base.users, &over.users);
    let associations = view(&base.associations, &over.associations);
    let mut rows = Vec::new();
    for a in all_rows((table.get)(base), (table.get)(over)) {
        if after.is_some_and(|after| a.id <= after) {
            continue;
        }
        let f = facts(a);
        let in_range = filter
            .from
            .is_none_or(|from| f.at.is_some_and(|at| at >= from))
            && filter
                .until
                .is_none_or(|until| f.at.is_some_and(|at| at < until));
        if !in_range {
            continue;
        }
        let participant = users
            .get(f.participant)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("{}: participant {} does not exist", V::TABLE, f.participant),
            })?;
        let volunteer_company = f
            .volunteer
            .and_then(|v| users.get(v))
            .and_then(|v| v.company_id);
        if filter
            .company
            .is_some_and(|c| volunteer_company.or(participant.company_id) != Some(c))
        {
            continue;
        }
        let stored = associations
            .owner(&association_key(kind, a.id))
            .and_then(|id| associations.get(id));
        if filter.only_unassociated
            && stored.is_some_and(|s| s.decision != crate::domain::Decision::None)
        {
            continue;
        }
        rows.push(BackfillRow {
            kind,
            id: a.id,
            program: f.program,
            at: f.at,
            participant_id: f.participant,
            participant_company: participant.company_id,
            participant_tags: participant.tags.clone(),
            volunteer_id: f.volunteer,
            volunteer_company,
            program_instance_id: a.program_instance_id,
            association: stored.map_or_else(AssociationState::default, |s| AssociationState {
                decision: Some(s.decision),
                campaign: s.campaign_id,
                instance: s.program_instance_id,
            }),
        });
    }
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// Every row of `kind` above `after` passing `filter`, by id.
fn matching(
    base: &Tables,
    over: &Tables,
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
) -> StoreResult<Vec<BackfillRow>> {
    match kind {
        ActivityKind::KintellSession => {
            rows_of(base, over, &SESSIONS, kind, after, filter, session_facts)
        }
        ActivityKind::BuddyMatch => rows_of(base, over, &MATCHES, kind, after, filter, match_facts),
        ActivityKind::CourseCompletion => rows_of(
            base,
            over,
            &COMPLETIONS,
            kind,
            after,
            filter,
            completion_facts,
        ),
    }
}

/// A page of a backfill.
pub(super) fn page(
    base: &Tables,
    over: &Tables,
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
    limit: u32,
) -> StoreResult<Vec<BackfillRow>> {
    let mut rows = matching(base, over, kind, after, filter)?;
    rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(rows)
}

/// How many rows a backfill will read.
pub(super) fn count(
    t: &Tables,
    kind: ActivityKind,
    after: Option<ActivityId>,
    filter: &BackfillFilter,
) -> StoreResult<u64> {
    let empty = Tables::default();
    Ok(matching(t, &empty, kind, after, filter)?.len() as u64)
}

fn link<V: ActivityValues>(
    base: &Tables,
    over: &mut Tables,
    table: &ActivityTable<V>,
    links: &[(ActivityId, InstanceId)],
) -> u64 {
    let mut found = 0;
    for (id, instance) in links {
        let Some(mut row) = view((table.get)(base), (table.get)(over)).get(*id).cloned() else {
            continue;
        };
        found += 1;
        if row.program_instance_id != Some(*instance) {
            row.program_instance_id = Some(*instance);
            (table.get_mut)(over).put(row);
        }
    }
    found
}

/// Links many activities to their instances.
pub(super) fn set_instances(
    base: &Tables,
    over: &mut Tables,
    kind: ActivityKind,
    links: &[(ActivityId, InstanceId)],
) -> StoreResult<u64> {
    let instances = view(&base.instances, &over.instances);
    for (_, instance) in links {
        if !instances.contains(*instance) {
            return Err(missing(&format!(
                "{}_program_instance_id_fkey",
                super::kind_table(kind)
            )));
        }
    }
    // An id given twice: the last link wins, as applying them in order would leave it; count it once.
    let mut last: Vec<(ActivityId, InstanceId)> = Vec::with_capacity(links.len());
    for (id, instance) in links.iter().rev() {
        if !last.iter().any(|(seen, _)| seen == id) {
            last.push((*id, *instance));
        }
    }
    Ok(match kind {
        ActivityKind::KintellSession => link(base, over, &SESSIONS, &last),
        ActivityKind::BuddyMatch => link(base, over, &MATCHES, &last),
        ActivityKind::CourseCompletion => link(base, over, &COMPLETIONS, &last),
    })
}

/// The checks of `association_runs`.
fn check_run(r: &RunRecord) -> StoreResult<()> {
    if r.batch_size < 1 || i32::try_from(r.batch_size).is_err() {
        return Err(invalid("association_runs_batch_size_check"));
    }
    if let (Some(start), Some(end)) = (r.start_date, r.end_date)
        && end < start
    {
        return Err(invalid("association_runs_dates_check"));
    }
    Ok(())
}

/// Creates a run.
pub(super) fn insert_run(base: &Tables, over: &mut Tables, new: &NewRun) -> StoreResult<RunRecord> {
    if view(&base.runs, &over.runs).contains(new.id) {
        return Err(super::duplicate("association_runs_pkey"));
    }
    let record = RunRecord::new(new);
    check_run(&record)?;
    over.runs.put(record.clone());
    Ok(record)
}

/// Overwrites the mutable columns of a run when the guard matches.
pub(super) fn save_run(
    base: &Tables,
    over: &mut Tables,
    run: &RunRecord,
    guard: &RunGuard,
) -> StoreResult<bool> {
    let Some(stored) = view(&base.runs, &over.runs).get(run.id) else {
        return Ok(false);
    };
    if !guard.matches(stored) {
        return Ok(false);
    }
    let row = RunRecord {
        status: run.status,
        checkpoint: run.checkpoint,
        stats: run.stats.clone(),
        lease_owner: run.lease_owner.clone(),
        lease_expires_at: run.lease_expires_at,
        started_at: run.started_at,
        completed_at: run.completed_at,
        updated_at: run.updated_at,
        ..stored.clone()
    };
    over.runs.put(row);
    Ok(true)
}

/// Runs, newest first.
pub(super) fn list_runs(t: &Tables, limit: Option<u32>) -> Vec<RunRecord> {
    let mut runs: Vec<RunRecord> = t.runs.rows.values().cloned().collect();
    runs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id)));
    if let Some(limit) = limit {
        runs.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    }
    runs
}

/// The enrolments of one instance, by user and role.
pub(super) fn enrollments_of(t: &Tables, instance: InstanceId) -> Vec<Enrollment> {
    let mut found: Vec<Enrollment> = t
        .enrollments
        .rows
        .values()
        .filter(|e| e.program_instance_id == instance)
        .map(|e| Enrollment {
            id: e.id,
            user_id: e.user_id,
            program_instance_id: e.program_instance_id,
            program_type: e.program_type,
            role: e.role,
            enrolled_at: e.enrolled_at,
        })
        .collect();
    found.sort_by_key(|e| (e.user_id, e.role));
    found
}

/// Refuses an association naming a run that does not exist.
pub(super) fn check_run_reference(
    base: &Tables,
    over: &Tables,
    run: Option<crate::domain::RunId>,
) -> StoreResult<()> {
    reference(
        &view(&base.runs, &over.runs),
        run,
        "activity_associations_run_id_fkey",
    )
}
