//! Running a backfill: taking the lease, the page loop, and the end of a run (completed, or failed on an error).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};

use super::plan::{Planner, Writes};
use super::{Backfill, BackfillError, BackfillOptions, Prepared};
use crate::association::Associator;
use crate::batch::{BatchEventKind, LeaseOwner, Progress, ProgressMeter, transition_target};
use crate::domain::{
    ActivityKind, BatchStatus, CompanyId, NewRun, RunGuard, RunId, RunRecord, TimeZoneOffset,
};
use crate::ingest::holder_is_dead;
use crate::ports::{BackfillFilter, BackfillRow, CatalogData, StoreError, UnitOfWork};
use crate::scoring::ScoringPolicy;

/// The first instant of `date` in `tz`, in UTC.
fn start_of(date: NaiveDate, tz: TimeZoneOffset) -> Option<DateTime<Utc>> {
    date.and_time(NaiveTime::MIN)
        .and_local_timezone(tz.fixed())
        .single()
        .map(|t| t.to_utc())
}

/// The page filter of a run: its dates become instants in the policy's time zone (the end date inclusive).
fn filter_of(run: &RunRecord, policy: &ScoringPolicy) -> BackfillFilter {
    BackfillFilter {
        company: run.company_id,
        from: run.start_date.and_then(|d| start_of(d, policy.timezone)),
        until: run
            .end_date
            .and_then(|d| d.succ_opt())
            .and_then(|d| start_of(d, policy.timezone)),
        only_unassociated: run.only_unassociated,
    }
}

/// Rolls a unit back, keeping the error that stopped the work (a failed rollback leaves nothing either).
async fn abandon(unit: Box<dyn UnitOfWork>) {
    let _ = unit.rollback().await;
}

impl Backfill {
    /// This invocation's lease owner: host, process id, and a nonce of its own.
    fn owner(&self) -> Result<LeaseOwner, BackfillError> {
        LeaseOwner::new(
            self.host.clone(),
            std::process::id(),
            uuid::Uuid::now_v7().simple().to_string(),
        )
        .map_err(|e| BackfillError::InvalidOption(format!("host name {:?}: {e}", self.host)))
    }

    fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.lease).unwrap_or(now)
    }

    /// The catalogue, loaded once per run, as the index and look-ups the pages need.
    fn prepare(catalog: &CatalogData, policy: ScoringPolicy) -> Prepared {
        Prepared {
            associator: Associator::new(catalog, policy),
            instance_types: catalog
                .instances
                .iter()
                .map(|i| (i.id, i.program_type))
                .collect::<HashMap<_, _>>(),
        }
    }

    pub(super) async fn start(
        &self,
        options: BackfillOptions,
        progress: &dyn Progress,
    ) -> Result<RunRecord, BackfillError> {
        options.check()?;
        let policy = self.policy_for(options.policy_timezone)?;
        let owner = self.owner()?;
        let catalog = self.store.load_catalog().await?;
        let company: Option<CompanyId> = match &options.company {
            Some(slug) => Some(
                catalog
                    .company_id(slug)
                    .ok_or_else(|| BackfillError::UnknownCompany(slug.to_string()))?,
            ),
            None => None,
        };
        let now = self.clock.now();
        let pending = self
            .store
            .insert_run(&NewRun {
                id: RunId(uuid::Uuid::now_v7()),
                dry_run: options.dry_run,
                entity: options.entity,
                company_id: company,
                start_date: options.start_date,
                end_date: options.end_date,
                only_unassociated: options.only_unassociated,
                batch_size: options.batch_size,
                created_at: now,
            })
            .await?;
        let run = self.take(pending, BatchEventKind::Start, &owner).await?;
        self.execute(
            run,
            Self::prepare(&catalog, policy.clone()),
            &policy,
            progress,
        )
        .await
    }

    pub(super) async fn continue_run(
        &self,
        id: RunId,
        progress: &dyn Progress,
    ) -> Result<RunRecord, BackfillError> {
        let policy = self.policy_for(None)?;
        let owner = self.owner()?;
        let stored = self.get(id).await?;
        let now = self.clock.now();
        let event = match stored.status {
            BatchStatus::Completed | BatchStatus::Cancelled => {
                return Err(BackfillError::NotResumable {
                    run: id,
                    status: stored.status,
                });
            }
            BatchStatus::Running => {
                let live = stored.lease_expires_at.is_some_and(|until| now < until);
                let dead = stored
                    .lease_owner
                    .as_deref()
                    .is_some_and(|o| holder_is_dead(o, &self.host));
                if live && !dead {
                    return Err(busy(&stored));
                }
                BatchEventKind::Takeover
            }
            BatchStatus::Pending | BatchStatus::Paused | BatchStatus::Failed => {
                BatchEventKind::Resume
            }
        };
        let run = self.take(stored, event, &owner).await?;
        let catalog = self.store.load_catalog().await?;
        self.execute(
            run,
            Self::prepare(&catalog, policy.clone()),
            &policy,
            progress,
        )
        .await
    }

    /// Takes the lease of `run` by `event` (`Start`, `Resume` or `Takeover`), guarded by the row as it was read:
    /// of two contenders exactly one wins, the other gets [`BackfillError::Busy`].
    async fn take(
        &self,
        run: RunRecord,
        event: BatchEventKind,
        owner: &LeaseOwner,
    ) -> Result<RunRecord, BackfillError> {
        if transition_target(run.status, event) != Some(BatchStatus::Running) {
            return Err(BackfillError::NotResumable {
                run: run.id,
                status: run.status,
            });
        }
        let now = self.clock.now();
        let taken = RunRecord {
            status: BatchStatus::Running,
            lease_owner: Some(owner.to_string()),
            lease_expires_at: Some(self.lease_until(now)),
            started_at: run.started_at.or(Some(now)),
            completed_at: None,
            updated_at: now,
            ..run.clone()
        };
        if self.store.save_run(&taken, &RunGuard::of(&run)).await? {
            return Ok(taken);
        }
        // Someone else moved the run between our read and our write.
        match self.store.get_run(run.id).await? {
            Some(current) if current.status == BatchStatus::Running => Err(busy(&current)),
            Some(current)
                if matches!(
                    current.status,
                    BatchStatus::Completed | BatchStatus::Cancelled
                ) =>
            {
                Err(BackfillError::NotResumable {
                    run: run.id,
                    status: current.status,
                })
            }
            Some(current) => Err(BackfillError::Busy {
                run: run.id,
                owner: format!("another worker (the run is now {})", current.status),
                until: None,
            }),
            None => Err(BackfillError::NotFound(run.id)),
        }
    }

    /// Runs the pages of every entity from the checkpoint, then completes the run. On a store error the run is
    /// marked failed (if the store still answers) and the error returned; a lost lease stops without a write.
    async fn execute(
        &self,
        mut run: RunRecord,
        prepared: Prepared,
        policy: &ScoringPolicy,
        progress: &dyn Progress,
    ) -> Result<RunRecord, BackfillError> {
        let started = self.clock.now();
        let filter = filter_of(&run, policy);
        let result = self
            .pages(&mut run, &prepared, &filter, started, progress)
            .await;
        let result = match result {
            Ok(()) => self.finish(&run, BatchStatus::Completed).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(done) => Ok(done),
            Err(BackfillError::Store(e)) => {
                // Best effort: a store that fails may not answer this either; the lease then expires.
                let _ = self.finish(&run, BatchStatus::Failed).await;
                Err(BackfillError::Store(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Leaves `running` for `status`: the lease is released; `completed_at` is set on completion.
    async fn finish(
        &self,
        run: &RunRecord,
        status: BatchStatus,
    ) -> Result<RunRecord, BackfillError> {
        let now = self.clock.now();
        let done = RunRecord {
            status,
            lease_owner: None,
            lease_expires_at: None,
            completed_at: (status == BatchStatus::Completed).then_some(now),
            updated_at: now,
            ..run.clone()
        };
        if self.store.save_run(&done, &RunGuard::of(run)).await? {
            Ok(done)
        } else {
            Err(BackfillError::LeaseLost(run.id))
        }
    }

    /// How many rows the run will still read, per entity from its checkpoint.
    async fn remaining(&self, run: &RunRecord, filter: &BackfillFilter) -> Result<u64, StoreError> {
        let mut n = 0;
        self.store.prepare_backfill(run.entity.kinds()).await?;
        for &kind in run.entity.kinds() {
            n += self
                .store
                .count_backfill(kind, run.checkpoint.get(kind), filter)
                .await?;
        }
        Ok(n)
    }

    async fn pages(
        &self,
        run: &mut RunRecord,
        prepared: &Prepared,
        filter: &BackfillFilter,
        started: DateTime<Utc>,
        progress: &dyn Progress,
    ) -> Result<(), BackfillError> {
        let done_before = run.stats.scanned;
        let total = done_before + self.remaining(run, filter).await?;
        let meter = ProgressMeter::importing(0, total, done_before);
        let elapsed = |now: DateTime<Utc>| (now - started).to_std().unwrap_or(Duration::ZERO);
        progress.on_progress(&meter.snapshot(0, done_before, Duration::ZERO));
        let planner = Planner {
            associator: &prepared.associator,
            instance_types: &prepared.instance_types,
            run: run.id,
            dry_run: run.dry_run,
        };
        for &kind in run.entity.kinds() {
            loop {
                let read = self.page(run, kind, &planner, filter).await?;
                let now = self.clock.now();
                progress.on_progress(&meter.snapshot(0, run.stats.scanned, elapsed(now)));
                if read < run.batch_size as usize {
                    break;
                }
            }
        }
        Ok(())
    }

    /// One page in one unit of work: read, decide, write, checkpoint. Returns how many rows it read (0: the
    /// entity is done; nothing was written).
    async fn page(
        &self,
        run: &mut RunRecord,
        kind: ActivityKind,
        planner: &Planner<'_>,
        filter: &BackfillFilter,
    ) -> Result<usize, BackfillError> {
        let mut unit = self.store.begin().await?;
        let rows = match unit
            .backfill_page(kind, run.checkpoint.get(kind), filter, run.batch_size)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                abandon(unit).await;
                return Err(e.into());
            }
        };
        let Some(last) = rows.last().map(|r: &BackfillRow| r.id) else {
            abandon(unit).await;
            return Ok(0);
        };
        let now = self.clock.now();
        let mut next = RunRecord {
            stats: run.stats.clone(),
            lease_expires_at: Some(self.lease_until(now)),
            updated_at: now,
            ..run.clone()
        };
        next.checkpoint.set(kind, last);
        let writes = planner.plan(&rows, &mut next.stats, uuid::Uuid::now_v7);
        match write(&mut *unit, kind, &writes, &next, &RunGuard::of(run)).await {
            Ok(true) => {}
            Ok(false) => {
                abandon(unit).await;
                return Err(BackfillError::LeaseLost(run.id));
            }
            Err(e) => {
                abandon(unit).await;
                return Err(e.into());
            }
        }
        unit.commit().await?;
        *run = next;
        Ok(rows.len())
    }
}

/// The writes of one page, set-based (one call per table), then the guarded checkpoint; whether the lease held.
async fn write(
    unit: &mut dyn UnitOfWork,
    kind: ActivityKind,
    writes: &Writes,
    next: &RunRecord,
    guard: &RunGuard,
) -> Result<bool, StoreError> {
    if !writes.associations.is_empty() {
        unit.upsert_decided(&writes.associations).await?;
    }
    if !writes.links.is_empty() {
        unit.set_activity_instances(kind, &writes.links).await?;
    }
    if !writes.enrolments.is_empty() {
        unit.upsert_enrollments(&writes.enrolments).await?;
    }
    unit.save_run(next, guard).await
}

fn busy(run: &RunRecord) -> BackfillError {
    BackfillError::Busy {
        run: run.id,
        owner: run
            .lease_owner
            .clone()
            .unwrap_or_else(|| "another worker".to_owned()),
        until: run.lease_expires_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::BackfillEntity;

    fn run(start: Option<&str>, end: Option<&str>) -> RunRecord {
        RunRecord::new(&NewRun {
            id: RunId(uuid::Uuid::nil()),
            dry_run: false,
            entity: BackfillEntity::All,
            company_id: None,
            start_date: start.map(|s| s.parse().expect("date")),
            end_date: end.map(|s| s.parse().expect("date")),
            only_unassociated: true,
            batch_size: 10,
            created_at: DateTime::UNIX_EPOCH,
        })
    }

    #[test]
    fn dates_become_instants_in_the_policy_time_zone() {
        let tz = TimeZoneOffset::parse("+02:00").expect("offset");
        let f = filter_of(
            &run(Some("2024-10-01"), Some("2024-10-31")),
            &ScoringPolicy::with_timezone(tz),
        );
        let t = |s: &str| DateTime::parse_from_rfc3339(s).expect("time").to_utc();
        assert_eq!(f.from, Some(t("2024-09-30T22:00:00Z")));
        assert_eq!(f.until, Some(t("2024-10-31T22:00:00Z")));
        let open = filter_of(&run(None, None), &ScoringPolicy::default());
        assert_eq!((open.from, open.until), (None, None));
    }

    #[test]
    fn only_dead_processes_of_this_host_are_dead() {
        let me = format!("h:{}:n", std::process::id());
        assert!(!holder_is_dead(&me, "h"));
        assert!(!holder_is_dead("other:1:n", "h"));
        assert!(!holder_is_dead("not an owner", "h"));
    }
}
