//! One import from start to end: pre-pass, re-import check, file errors and reject limits, the batch's start,
//! its chunks, pause and cancel requests, completion; resume; and the requests themselves.

use std::collections::HashSet;
use std::io::Read;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::batch::{BatchEvent, ErrorSummary, LeaseOwner, ProgressMeter};
use crate::domain::{
    BatchId, BatchRecord, BatchStatus, EntityKind, ImportMethod, InstanceStatus, Name, NewBatch,
    ProgramInstance, ProgramSlug, ProgramType,
};
use crate::formats::{
    FileError, FileErrorCode, FormatId, OpenError, ParseOptions, Parser, instance_from_file_name,
};
use crate::ports::{BatchGuard, StoreError, UnitOfWork};

use super::chunk::{self, BatchInstance, ChunkContext, Item, Scoring};
use super::ledger::{Ledger, apply, machine, only_request_differs};
use super::metadata::{self, InstanceSource, RunOptions};
use super::prepass::{self, HashingReader, PrePass, Scanned, elapsed};
use super::reimport::{self, Verdict, holder_is_dead};
use super::request::{ImportOptions, ImportRequest, ImportSource};
use super::{Hooks, ImportError, ImportReport, Ingestor, STOPPED_REASON, StopSignal};

/// A chunk also ends once it has read this many bytes, so a file of huge records does not make a huge chunk.
const MAX_CHUNK_BYTES: u64 = 32 * 1024 * 1024;

/// How many times an import decides again after losing a race for the ledger (each loss means another import of
/// the same bytes moved the ledger on, so the next decision sees it).
const RACE_ATTEMPTS: usize = 4;

/// The index that allows one in-flight batch per entity and file content.
const IN_FLIGHT_INDEX: &str = "ingestion_batches_in_flight_uq";

/// Why an attempt at an import stopped.
#[derive(Debug)]
enum Stop {
    /// It failed or was refused.
    Error(ImportError),
    /// Another import of the same bytes got to the ledger between this one's decision and its write (it created a
    /// batch, or took the batch this one meant to resume): decide again. The error is what it was.
    Raced(ImportError),
}

impl Stop {
    fn into_error(self) -> ImportError {
        match self {
            Stop::Error(e) | Stop::Raced(e) => e,
        }
    }
}

impl From<ImportError> for Stop {
    fn from(e: ImportError) -> Self {
        match &e {
            ImportError::Store(StoreError::Duplicate { constraint })
                if constraint == IN_FLIGHT_INDEX =>
            {
                Stop::Raced(e)
            }
            _ => Stop::Error(e),
        }
    }
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::from(ImportError::Store(e))
    }
}

/// How a run takes its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// A `pending` batch this run created.
    Start,
    /// A `pending` (orphaned), `paused` or `failed` batch.
    Resume,
    /// A `running` batch whose lease expired or whose holder is dead.
    Takeover { holder_dead: bool },
}

impl Entry {
    fn of(batch: &BatchRecord, holder_dead: bool) -> Self {
        match batch.status {
            BatchStatus::Running => Entry::Takeover { holder_dead },
            _ => Entry::Resume,
        }
    }
}

/// Everything the batch's run needs besides the batch.
struct Plan<'a> {
    source: &'a ImportSource,
    parse: ParseOptions,
    instance: Option<BatchInstance>,
    options: RunOptions,
    chunk_size: usize,
    notices: Vec<String>,
    size: u64,
}

/// The fields a batch that never wrote a row takes from the latest pre-pass when it is attempted again.
struct Refresh {
    format: String,
    program_type: ProgramType,
    program_instance_id: Option<crate::domain::InstanceId>,
    total_rows: i64,
    csv_metadata: serde_json::Value,
    file_size_bytes: Option<i64>,
}

impl Refresh {
    fn onto(self, mut b: BatchRecord) -> BatchRecord {
        b.format = self.format;
        b.program_type = self.program_type;
        b.program_instance_id = self.program_instance_id;
        b.total_rows = self.total_rows;
        b.csv_metadata = self.csv_metadata;
        b.file_size_bytes = self.file_size_bytes;
        b
    }
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The entity's default programme type, for a batch whose format is unknown.
fn entity_program_type(entity: EntityKind) -> ProgramType {
    match entity {
        EntityKind::KintellSessions | EntityKind::KintellUsers => ProgramType::Kintell,
        EntityKind::BuddyMatches => ProgramType::Buddy,
        EntityKind::CourseCompletions => ProgramType::Upskilling,
    }
}

/// The canonical name of the volunteer column of a format.
fn volunteer_field(format: FormatId) -> &'static str {
    match format {
        FormatId::MentorsV1 => "mentor_email",
        _ => "volunteer_email",
    }
}

fn check_options(o: &ImportOptions) -> Result<(), ImportError> {
    if o.chunk_size == Some(0) {
        return Err(ImportError::InvalidOption(
            "the chunk size must be at least 1".to_owned(),
        ));
    }
    if let Some(r) = o.max_error_ratio
        && !(0.0..=1.0).contains(&r)
    {
        return Err(ImportError::InvalidOption(format!(
            "the maximum error ratio must be between 0 and 1, not {r}"
        )));
    }
    Ok(())
}

/// Whether the pre-pass's invalid rows break a limit, and how.
fn over_limits(o: &ImportOptions, scanned: &Scanned) -> Option<String> {
    let invalid = scanned.invalid_rows();
    let total = scanned.total_rows;
    if let Some(max) = o.max_errors
        && invalid > max
    {
        return Some(format!(
            "{invalid} of {total} rows are invalid, more than the {max} allowed (max_errors)"
        ));
    }
    if let Some(ratio) = o.max_error_ratio
        && total > 0
        && (invalid as f64) / (total as f64) > ratio
    {
        return Some(format!(
            "{invalid} of {total} rows are invalid, a larger share than the {ratio} allowed (max_error_ratio)"
        ));
    }
    None
}

impl Ingestor {
    /// This run's lease owner: host, process id, and a nonce of its own.
    pub(crate) fn owner(&self) -> Result<LeaseOwner, ImportError> {
        LeaseOwner::new(
            self.host.clone(),
            std::process::id(),
            uuid::Uuid::now_v7().simple().to_string(),
        )
        .map_err(|e| ImportError::InvalidOption(format!("host name {:?}: {e}", self.host)))
    }

    pub(crate) fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now.checked_add_signed(self.lease).unwrap_or(now)
    }

    fn is_dead(&self) -> impl Fn(&str) -> bool + '_ {
        |owner: &str| holder_is_dead(owner, &self.host)
    }

    pub(crate) async fn run_import(
        &self,
        request: ImportRequest,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, ImportError> {
        let (source, opts) = request.into_parts();
        check_options(&opts)?;
        let now = self.clock.now();
        let parse = ParseOptions {
            entity: opts.entity,
            format: opts.format,
            delimiter: opts.delimiter,
            time_zone: opts.timezone.unwrap_or_default(),
            program_type: opts.program_type,
            ingest_time: now,
        };
        let pre = prepass::run(&source, &parse, hooks.progress, &*self.clock)?;
        let entity = opts
            .entity
            .or_else(|| pre.outcome.as_ref().ok().map(|s| s.header.format.entity()))
            .unwrap_or(EntityKind::KintellSessions);
        let mut attempt = 1;
        loop {
            match self
                .attempt(&source, &opts, entity, &parse, &pre, hooks)
                .await
            {
                Ok(report) => return Ok(report),
                Err(Stop::Raced(_)) if attempt < RACE_ATTEMPTS => attempt += 1,
                Err(stop) => return Err(stop.into_error()),
            }
        }
    }

    /// The re-import decision on the ledger as it is now, and the run it leads to.
    async fn attempt(
        &self,
        source: &ImportSource,
        opts: &ImportOptions,
        entity: EntityKind,
        parse: &ParseOptions,
        pre: &PrePass,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, Stop> {
        let now = self.clock.now();
        let by_hash = self.store.batches_by_hash(entity, &pre.hash).await?;
        let by_name = self
            .store
            .batches_by_file_name(entity, source.file_name())
            .await?;
        let verdict = reimport::decide(&by_hash, opts.force, now, self.lease, &self.is_dead());
        let target = match verdict {
            Verdict::AlreadyImported(batch) => {
                return Err(ImportError::AlreadyImported {
                    batch: Box::new(batch),
                }
                .into());
            }
            Verdict::InProgress {
                batch,
                owner,
                until,
            } => {
                return Err(ImportError::InProgress {
                    batch: Box::new(batch),
                    owner,
                    until,
                }
                .into());
            }
            Verdict::Resume { batch, holder_dead } => Some((batch, holder_dead)),
            Verdict::New => None,
        };
        let mut notices = reimport::notices(
            source.file_name(),
            &pre.hash,
            &by_hash,
            &by_name,
            target.as_ref().map(|(b, _)| b.id),
        );
        if let Some((b, _)) = &target {
            notices.push(format!(
                "resuming batch {} ({}, {} of {} rows processed)",
                b.id, b.status, b.last_processed_row, b.total_rows
            ));
        }
        let mut ledger = if opts.dry_run {
            Ledger::Dry(self.store.begin().await?)
        } else {
            Ledger::Real(&self.store)
        };
        let result = match target {
            Some((batch, holder_dead)) if batch.last_processed_row > 0 => {
                self.continue_batch(
                    &mut ledger,
                    batch,
                    holder_dead,
                    source,
                    pre.size,
                    opts.chunk_size.unwrap_or(self.chunk_size),
                    notices,
                    hooks,
                )
                .await
            }
            target => {
                self.start_fresh(
                    &mut ledger,
                    source,
                    opts,
                    entity,
                    parse.clone(),
                    pre.clone(),
                    &by_hash,
                    target,
                    notices,
                    hooks,
                )
                .await
            }
        };
        ledger.finish().await;
        result
    }

    pub(crate) async fn run_resume(
        &self,
        id: BatchId,
        source: ImportSource,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, ImportError> {
        let batch = self
            .store
            .get_batch(id)
            .await?
            .ok_or(ImportError::NotFound { batch: id })?;
        let now = self.clock.now();
        let holder_dead = match batch.status {
            BatchStatus::Pending | BatchStatus::Paused | BatchStatus::Failed => false,
            BatchStatus::Running => {
                let dead = batch.lease_owner.as_deref().is_some_and(self.is_dead());
                if let (Some(owner), Some(until)) = (&batch.lease_owner, batch.lease_expires_at)
                    && now < until
                    && !dead
                {
                    return Err(ImportError::InProgress {
                        owner: owner.clone(),
                        until,
                        batch: Box::new(batch),
                    });
                }
                dead
            }
            status @ (BatchStatus::Completed | BatchStatus::Cancelled) => {
                return Err(ImportError::Transition {
                    batch: id,
                    source: crate::batch::TransitionError::Illegal {
                        from: status,
                        event: crate::batch::BatchEventKind::Resume,
                    },
                });
            }
        };
        let stored = metadata::options(&batch.csv_metadata);
        let explicit = match (
            batch.program_instance_id,
            metadata::instance_source(&batch.csv_metadata),
        ) {
            (Some(i), Some(InstanceSource::Explicit)) => self
                .store
                .instance_by_id(i)
                .await?
                .map(|i| i.slug.as_str().to_owned()),
            _ => None,
        };
        let opts = ImportOptions {
            entity: Some(batch.entity_kind),
            program_instance: explicit,
            program_type: None,
            format: FormatId::parse(&batch.format).ok(),
            delimiter: metadata::delimiter(&batch.csv_metadata),
            timezone: stored.map(|o| o.timezone),
            create_missing_users: stored.is_some_and(|o| o.create_missing_users),
            ..ImportOptions::default()
        };
        let parse = ParseOptions {
            entity: opts.entity,
            format: opts.format,
            delimiter: opts.delimiter,
            time_zone: opts.timezone.unwrap_or_default(),
            program_type: Some(batch.program_type),
            ingest_time: batch.created_at,
        };
        let pre = prepass::run(&source, &parse, hooks.progress, &*self.clock)?;
        if pre.hash != batch.file_hash {
            return Err(ImportError::DifferentFile {
                batch: id,
                expected: batch.file_hash,
                found: pre.hash,
            });
        }
        let notices = vec![format!(
            "resuming batch {} ({}, {} of {} rows processed)",
            batch.id, batch.status, batch.last_processed_row, batch.total_rows
        )];
        let mut ledger = Ledger::Real(&self.store);
        let result = if batch.last_processed_row > 0 {
            self.continue_batch(
                &mut ledger,
                batch,
                holder_dead,
                &source,
                pre.size,
                self.chunk_size,
                notices,
                hooks,
            )
            .await
        } else {
            let entity = batch.entity_kind;
            self.start_fresh(
                &mut ledger,
                &source,
                &opts,
                entity,
                parse,
                pre,
                &[],
                Some((batch, holder_dead)),
                notices,
                hooks,
            )
            .await
        };
        // An explicit resume does not decide again: a lost race is the batch taken by another worker.
        result.map_err(Stop::into_error)
    }

    /// A batch that has written rows goes on with the options it was started with.
    #[allow(clippy::too_many_arguments)]
    async fn continue_batch(
        &self,
        ledger: &mut Ledger<'_>,
        batch: BatchRecord,
        holder_dead: bool,
        source: &ImportSource,
        size: u64,
        chunk_size: usize,
        notices: Vec<String>,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, Stop> {
        let meta = &batch.csv_metadata;
        let options = metadata::options(meta).unwrap_or(RunOptions {
            timezone: Default::default(),
            create_missing_users: false,
        });
        let format = FormatId::parse(&batch.format).map_err(|e| StoreError::Corrupt {
            what: format!("ingestion_batches {}: format: {e}", batch.id),
        })?;
        let instance = match batch.program_instance_id {
            Some(id) => self
                .store
                .instance_by_id(id)
                .await?
                .map(|instance| BatchInstance {
                    instance,
                    source: metadata::instance_source(meta).unwrap_or(InstanceSource::Explicit),
                }),
            None => None,
        };
        let plan = Plan {
            source,
            parse: ParseOptions {
                entity: Some(batch.entity_kind),
                format: Some(format),
                delimiter: metadata::delimiter(meta),
                time_zone: options.timezone,
                program_type: Some(batch.program_type),
                ingest_time: batch.created_at,
            },
            instance,
            options,
            chunk_size,
            notices,
            size,
        };
        let entry = Entry::of(&batch, holder_dead);
        self.run_batch(ledger, batch, None, entry, plan, hooks)
            .await
    }

    /// A batch that has not written a row yet (new, or attempted before): file errors, the explicit instance,
    /// the reject limits, the file name's instance, then the run.
    #[allow(clippy::too_many_arguments)]
    async fn start_fresh(
        &self,
        ledger: &mut Ledger<'_>,
        source: &ImportSource,
        opts: &ImportOptions,
        entity: EntityKind,
        parse: ParseOptions,
        pre: PrePass,
        seen: &[BatchRecord],
        target: Option<(BatchRecord, bool)>,
        notices: Vec<String>,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, Stop> {
        let options = RunOptions {
            timezone: parse.time_zone,
            create_missing_users: opts.create_missing_users,
        };
        let scanned = match pre.outcome {
            Err(error) => {
                let meta = metadata::refused(&error, options);
                let program_type = opts
                    .program_type
                    .unwrap_or_else(|| entity_program_type(entity));
                let fields = Refresh {
                    format: "unknown".to_owned(),
                    program_type,
                    program_instance_id: None,
                    total_rows: 0,
                    csv_metadata: meta,
                    file_size_bytes: Some(as_i64(pre.size)),
                };
                return self
                    .refuse(
                        ledger, source, entity, &pre.hash, seen, fields, target, error, notices,
                    )
                    .await;
            }
            Ok(s) => s,
        };
        let format = scanned.header.format;
        let total_rows = as_i64(scanned.total_rows);

        // The explicit instance must exist; otherwise the file name may name one (found now, created only when
        // the batch goes on to write rows).
        let mut file_instance = None;
        let instance = match &opts.program_instance {
            Some(slug) => {
                let found = match ProgramSlug::parse(slug) {
                    Ok(s) => self.store.instance_by_slug(&s).await?,
                    Err(_) => None,
                };
                match found {
                    Some(instance) => Some(BatchInstance {
                        instance,
                        source: InstanceSource::Explicit,
                    }),
                    None => {
                        let error = FileError::new(
                            FileErrorCode::UnknownProgramInstance,
                            format!("no programme instance has the slug {slug:?}"),
                        );
                        let fields = Refresh {
                            format: format.as_str().to_owned(),
                            program_type: opts
                                .program_type
                                .unwrap_or_else(|| format.default_program_type()),
                            program_instance_id: None,
                            total_rows,
                            csv_metadata: metadata::build(&scanned.header, None, options),
                            file_size_bytes: Some(as_i64(pre.size)),
                        };
                        return self
                            .refuse(
                                ledger, source, entity, &pre.hash, seen, fields, target, error,
                                notices,
                            )
                            .await;
                    }
                }
            }
            None => match instance_from_file_name(source.file_name()) {
                Some(named) => match self.store.instance_by_slug(&named.slug).await? {
                    Some(instance) => Some(BatchInstance {
                        instance,
                        source: InstanceSource::FileName,
                    }),
                    None => {
                        let instance = ProgramInstance {
                            id: crate::domain::InstanceId::stable(&named.slug),
                            program_name: Name::parse(&named.name).map_err(|e| {
                                ImportError::InvalidOption(format!("file name instance: {e}"))
                            })?,
                            slug: named.slug,
                            program_type: named.program_type,
                            company_id: None,
                            campaign_id: None,
                            start_date: named.start_date,
                            end_date: Some(named.end_date),
                            status: InstanceStatus::Active,
                            external_system: Some("kintell".to_owned()),
                            created_at: self.clock.now(),
                        };
                        file_instance = Some(instance.clone());
                        Some(BatchInstance {
                            instance,
                            source: InstanceSource::FileName,
                        })
                    }
                },
                None => None,
            },
        };
        let program_type = opts
            .program_type
            .or(instance.as_ref().map(|i| i.instance.program_type))
            .unwrap_or_else(|| format.default_program_type());
        let slug = instance.as_ref().map(|i| (&i.instance.slug, i.source));
        let csv_metadata = metadata::build(&scanned.header, slug, options);

        // The limits decide whether a file may start: a paused or running batch of it already started.
        let may_be_refused = target
            .as_ref()
            .is_none_or(|(b, _)| matches!(b.status, BatchStatus::Pending | BatchStatus::Failed));
        if let Some(reason) = over_limits(opts, &scanned).filter(|_| may_be_refused) {
            let fields = Refresh {
                format: format.as_str().to_owned(),
                program_type,
                // An instance the file name would create is not created for a refused file.
                program_instance_id: instance
                    .as_ref()
                    .filter(|_| file_instance.is_none())
                    .map(|i| i.instance.id),
                total_rows,
                csv_metadata,
                file_size_bytes: Some(as_i64(pre.size)),
            };
            return self
                .reject(
                    ledger, source, entity, &pre.hash, seen, fields, target, &parse, &scanned,
                    reason, notices,
                )
                .await;
        }

        if let Some(new) = file_instance {
            let mut unit = ledger.begin().await?;
            let created = create_instance(unit.get(), new).await;
            match created {
                Ok(()) => unit.commit().await?,
                Err(e) => {
                    unit.rollback().await;
                    return Err(e.into());
                }
            }
        }
        let fields = Refresh {
            format: format.as_str().to_owned(),
            program_type,
            program_instance_id: instance.as_ref().map(|i| i.instance.id),
            total_rows,
            csv_metadata,
            file_size_bytes: Some(as_i64(pre.size)),
        };
        let (batch, refresh, entry) = match target {
            Some((batch, dead)) => {
                let entry = Entry::of(&batch, dead);
                (batch, Some(fields), entry)
            }
            None => {
                let new = self.new_batch(source, entity, &pre.hash, fields);
                (self.create(ledger, &new, seen).await?, None, Entry::Start)
            }
        };
        let plan = Plan {
            source,
            parse: ParseOptions {
                entity: Some(entity),
                format: Some(format),
                delimiter: Some(scanned.header.delimiter),
                ..parse
            },
            instance,
            options,
            chunk_size: opts.chunk_size.unwrap_or(self.chunk_size),
            notices,
            size: pre.size,
        };
        self.run_batch(ledger, batch, refresh, entry, plan, hooks)
            .await
    }

    fn new_batch(
        &self,
        source: &ImportSource,
        entity: EntityKind,
        hash: &str,
        fields: Refresh,
    ) -> NewBatch {
        NewBatch {
            id: BatchId(uuid::Uuid::now_v7()),
            file_name: source.file_name().to_owned(),
            file_hash: hash.to_owned(),
            file_size_bytes: fields.file_size_bytes,
            entity_kind: entity,
            format: fields.format,
            program_type: fields.program_type,
            program_instance_id: fields.program_instance_id,
            source_system: "kintell".to_owned(),
            import_method: ImportMethod::CsvUpload,
            total_rows: fields.total_rows,
            csv_metadata: fields.csv_metadata,
            imported_by_service: self.imported_by.clone(),
            created_at: self.clock.now(),
        }
    }

    /// Creates a batch the re-import decision asked for, having read `seen` (every batch of the same entity and
    /// bytes). A real import inserts it in a unit of work and reads the ledger again in that unit, after the
    /// insert: if another import of the same bytes created, finished or moved a batch since the decision, the
    /// insert is rolled back and the import decides again ([`Stop::Raced`]); so is an insert refused by the
    /// in-flight index. Without this second look, an import that completed between this one's decision and its
    /// insert would leave two batches.
    async fn create(
        &self,
        ledger: &mut Ledger<'_>,
        new: &NewBatch,
        seen: &[BatchRecord],
    ) -> Result<BatchRecord, Stop> {
        let Ledger::Real(store) = ledger else {
            // A dry run's batch is seen by nobody and outlives nothing.
            return Ok(ledger.insert_batch(new).await?);
        };
        let mut unit = store.begin().await?;
        let created = match unit.insert_batch(new).await {
            Ok(b) => b,
            Err(e) => {
                let _discarded = unit.rollback().await;
                return Err(e.into());
            }
        };
        let current = match unit.batches_by_hash(new.entity_kind, &new.file_hash).await {
            Ok(current) => current,
            Err(e) => {
                let _discarded = unit.rollback().await;
                return Err(e.into());
            }
        };
        let key = |b: &BatchRecord| (b.id, b.status, b.last_processed_row);
        let before: HashSet<_> = seen.iter().map(key).collect();
        let moved = current
            .iter()
            .filter(|b| b.id != created.id)
            .any(|b| !before.contains(&key(b)));
        if moved {
            let _discarded = unit.rollback().await;
            return Err(Stop::Raced(ImportError::LeaseLost { batch: new.id }));
        }
        unit.commit().await?;
        Ok(created)
    }

    /// The batch a refused file is recorded in: the earlier attempt of these bytes when it never wrote a row
    /// (pending or failed), else a new one. `None` when a batch of these bytes has progress (it is left alone).
    #[allow(clippy::too_many_arguments)]
    async fn refused_batch(
        &self,
        ledger: &mut Ledger<'_>,
        source: &ImportSource,
        entity: EntityKind,
        hash: &str,
        seen: &[BatchRecord],
        fields: Refresh,
        target: Option<(BatchRecord, bool)>,
    ) -> Result<Option<(BatchRecord, BatchRecord)>, Stop> {
        match target {
            Some((b, _))
                if b.last_processed_row == 0
                    && matches!(b.status, BatchStatus::Pending | BatchStatus::Failed) =>
            {
                let refreshed = fields.onto(b.clone());
                Ok(Some((b, refreshed)))
            }
            Some(_) => Ok(None),
            None => {
                let new = self.new_batch(source, entity, hash, fields);
                let b = self.create(ledger, &new, seen).await?;
                Ok(Some((b.clone(), b)))
            }
        }
    }

    /// Fails `stored` (written as `next`, which carries any refreshed fields) with `error`: `pending → failed`,
    /// or, for a batch already failed, its `last_error` and summary rewritten (the machine has no failed → failed
    /// event; nothing else changes).
    async fn fail_unstarted(
        &self,
        ledger: &mut Ledger<'_>,
        stored: &BatchRecord,
        next: BatchRecord,
        error: String,
        summary: Option<serde_json::Value>,
    ) -> Result<Option<BatchRecord>, ImportError> {
        let now = self.clock.now();
        let mut failed = if next.status == BatchStatus::Failed {
            BatchRecord {
                last_error: Some(error),
                updated_at: now,
                ..next
            }
        } else {
            apply(&next, &BatchEvent::Fail { error, now }, now)
                .map_err(|e| ImportError::moving(next.id, e))?
        };
        failed.error_summary = summary;
        if ledger.save_batch(&failed, &BatchGuard::of(stored)).await? {
            Ok(Some(failed))
        } else {
            Ok(None)
        }
    }

    /// Records a file error and returns it.
    #[allow(clippy::too_many_arguments)]
    async fn refuse(
        &self,
        ledger: &mut Ledger<'_>,
        source: &ImportSource,
        entity: EntityKind,
        hash: &str,
        seen: &[BatchRecord],
        fields: Refresh,
        target: Option<(BatchRecord, bool)>,
        error: FileError,
        notices: Vec<String>,
    ) -> Result<ImportReport, Stop> {
        let report = match self
            .refused_batch(ledger, source, entity, hash, seen, fields, target)
            .await?
        {
            Some((stored, next)) => self
                .fail_unstarted(ledger, &stored, next, error.to_string(), None)
                .await?
                .map(|b| Box::new(ImportReport::of_batch(b, notices, ledger.is_dry()))),
            None => None,
        };
        Err(ImportError::File { error, report }.into())
    }

    /// Fails a batch on the reject limits: its pre-pass row errors recorded, counters 0, no data row.
    #[allow(clippy::too_many_arguments)]
    async fn reject(
        &self,
        ledger: &mut Ledger<'_>,
        source: &ImportSource,
        entity: EntityKind,
        hash: &str,
        seen: &[BatchRecord],
        fields: Refresh,
        target: Option<(BatchRecord, bool)>,
        parse: &ParseOptions,
        scanned: &Scanned,
        reason: String,
        notices: Vec<String>,
    ) -> Result<ImportReport, Stop> {
        let Some((stored, next)) = self
            .refused_batch(ledger, source, entity, hash, seen, fields, target)
            .await?
        else {
            return Err(ImportError::InvalidOption(format!(
                "{reason}; a batch of this file has already written rows, resume it instead"
            ))
            .into());
        };
        self.record_prepass_errors(ledger, source, parse, stored.id)
            .await?;
        let failed = self
            .fail_unstarted(
                ledger,
                &stored,
                next,
                format!("refused: {reason}"),
                Some(scanned.summary.to_json()),
            )
            .await?
            .ok_or(ImportError::LeaseLost { batch: stored.id })?;
        Err(ImportError::Rejected {
            reason,
            report: Box::new(ImportReport::of_batch(failed, notices, ledger.is_dry())),
        }
        .into())
    }

    /// Reads the file again and records the parser's row errors, a chunk per unit of work.
    async fn record_prepass_errors(
        &self,
        ledger: &mut Ledger<'_>,
        source: &ImportSource,
        parse: &ParseOptions,
        batch: BatchId,
    ) -> Result<(), ImportError> {
        let (reader, _) = source.open().map_err(|e| ImportError::open(source, e))?;
        let mut parser = match Parser::open(reader, parse) {
            Ok(p) => p,
            Err(OpenError::Io(e)) => return Err(ImportError::read(source, e)),
            Err(OpenError::File(e)) => {
                return Err(ImportError::File {
                    error: e,
                    report: None,
                });
            }
        };
        let mut done = false;
        while !done {
            let mut errors = Vec::new();
            while errors.len() < self.chunk_size {
                match parser
                    .next_record()
                    .map_err(|e| ImportError::read(source, e.source))?
                {
                    None => {
                        done = true;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => errors.push(e),
                }
            }
            if errors.is_empty() {
                continue;
            }
            let ctx = ChunkContext {
                batch_id: batch,
                same_content: HashSet::new(),
                instance: None,
                create_missing_users: false,
                columns: Vec::new(),
                volunteer_field: "volunteer_email",
                policy_version: self.policy.version.clone(),
                scoring: None,
                association_unavailable: None,
                now: self.clock.now(),
            };
            let items = errors.into_iter().map(Item::Invalid).collect();
            let mut unit = ledger.begin().await?;
            match chunk::write(unit.get(), &ctx, items).await {
                Ok(_) => unit.commit().await?,
                Err(e) => {
                    unit.rollback().await;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Takes the batch (start, resume or takeover), then writes its chunks until it is done, paused or cancelled.
    async fn run_batch(
        &self,
        ledger: &mut Ledger<'_>,
        stored: BatchRecord,
        refresh: Option<Refresh>,
        entry: Entry,
        plan: Plan<'_>,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, Stop> {
        let owner = self.owner()?;
        let now = self.clock.now();
        let lease_until = self.lease_until(now);
        let event = match entry {
            Entry::Start => BatchEvent::Start {
                owner: owner.clone(),
                lease_until,
                now,
            },
            Entry::Resume => BatchEvent::Resume {
                owner: owner.clone(),
                lease_until,
                now,
            },
            Entry::Takeover { holder_dead } => BatchEvent::Takeover {
                owner: owner.clone(),
                lease_until,
                holder_dead,
                now,
            },
        };
        let id = stored.id;
        // Every pass that writes this batch's rows judges dates against the same instant.
        let mut plan = plan;
        plan.parse.ingest_time = stored.created_at;
        let refreshed = match refresh {
            Some(r) => r.onto(stored.clone()),
            None => stored.clone(),
        };
        let taken = apply(&refreshed, &event, now).map_err(|e| ImportError::moving(id, e))?;
        if !ledger.save_batch(&taken, &BatchGuard::of(&stored)).await? {
            let lost = ImportError::LeaseLost { batch: id };
            // A batch found by the decision was moved on by someone else since: decide again. A batch this run
            // created is nobody else's to start, so whoever moved it (a cancel) has the last word.
            return Err(match entry {
                Entry::Start => Stop::Error(lost),
                Entry::Resume | Entry::Takeover { .. } => Stop::Raced(lost),
            });
        }
        if !ledger.is_dry()
            && let Some(on_start) = hooks.on_start
        {
            on_start(&taken);
        }
        let mut worker = Worker {
            ingestor: self,
            batch: taken,
            summary: stored_summary(&refreshed),
            plan,
        };
        let result = worker.run(ledger, hooks).await;
        match result {
            Ok(report) => Ok(report),
            Err(
                e @ (ImportError::Store(_) | ImportError::Read { .. } | ImportError::Open { .. }),
            ) => {
                worker.fail(ledger, &e).await;
                Err(Stop::Error(e))
            }
            Err(e) => Err(Stop::Error(e)),
        }
    }

    /// Asks the worker holding `batch` to pause after its current chunk. A pending or running batch records the
    /// request; a running batch whose lease has expired (nobody is working on it) is paused at once.
    ///
    /// # Errors
    /// [`ImportError::NotFound`]; [`ImportError::Transition`] when the batch cannot be paused (paused, failed,
    /// completed, cancelled); [`ImportError::Store`].
    pub async fn request_pause(&self, batch: BatchId) -> Result<BatchRecord, ImportError> {
        self.request(batch, false).await
    }

    /// Asks the worker holding `batch` to cancel after its current chunk. A running batch records the request (one
    /// whose lease has expired is cancelled at once); a pending, paused or failed batch is cancelled at once (no
    /// worker holds it; one about to start it finds it moved on). Rows already committed stay, with their
    /// lineage.
    ///
    /// # Errors
    /// [`ImportError::NotFound`]; [`ImportError::Transition`] for a completed or cancelled batch;
    /// [`ImportError::Store`].
    pub async fn request_cancel(&self, batch: BatchId) -> Result<BatchRecord, ImportError> {
        self.request(batch, true).await
    }

    async fn request(&self, id: BatchId, cancel: bool) -> Result<BatchRecord, ImportError> {
        // A worker may checkpoint between the read and the write; the guard then refuses and we read again.
        for _ in 0..16 {
            let b = self
                .store
                .get_batch(id)
                .await?
                .ok_or(ImportError::NotFound { batch: id })?;
            let now = self.clock.now();
            let abandoned = b.status == BatchStatus::Running
                && b.lease_expires_at.is_none_or(|until| until <= now);
            let event = match (b.status, cancel) {
                (BatchStatus::Running, false) if abandoned => BatchEvent::Pause {
                    reason: crate::batch::PAUSE_REQUESTED_REASON.to_owned(),
                    now,
                },
                (BatchStatus::Running, true) if abandoned => BatchEvent::Cancel { now },
                (BatchStatus::Pending | BatchStatus::Paused | BatchStatus::Failed, true) => {
                    BatchEvent::Cancel { now }
                }
                (_, false) => BatchEvent::RequestPause { now },
                (_, true) => BatchEvent::RequestCancel { now },
            };
            let next = apply(&b, &event, now).map_err(|e| ImportError::moving(id, e))?;
            if next
                == (BatchRecord {
                    updated_at: next.updated_at,
                    ..b.clone()
                })
            {
                return Ok(b);
            }
            if self.store.save_batch(&next, &BatchGuard::of(&b)).await? {
                return Ok(next);
            }
        }
        Err(ImportError::LeaseLost { batch: id })
    }
}

/// The summary a batch carries so far.
fn stored_summary(b: &BatchRecord) -> ErrorSummary {
    b.error_summary
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Writes (or re-reads) a programme instance a file name announces.
async fn create_instance(
    unit: &mut dyn UnitOfWork,
    instance: ProgramInstance,
) -> Result<(), StoreError> {
    unit.upsert_instances(&[instance]).await.map(|_| ())
}

/// The run of one batch that this worker holds.
struct Worker<'i, 'p> {
    ingestor: &'i Ingestor,
    /// The batch as last saved by this worker.
    batch: BatchRecord,
    summary: ErrorSummary,
    plan: Plan<'p>,
}

impl Worker<'_, '_> {
    async fn run(
        &mut self,
        ledger: &mut Ledger<'_>,
        hooks: &Hooks<'_>,
    ) -> Result<ImportReport, ImportError> {
        let clock = &*self.ingestor.clock;
        let started = clock.now();
        if let Some(report) = self.honour_request(ledger, None).await? {
            return Ok(report);
        }
        let source = self.plan.source;
        let (reader, _) = source.open().map_err(|e| ImportError::open(source, e))?;
        let mut reader = HashingReader::new(reader);
        let mut parser = match Parser::open(&mut reader, &self.plan.parse) {
            Ok(p) => p,
            Err(OpenError::Io(e)) => return Err(ImportError::read(source, e)),
            Err(OpenError::File(e)) => {
                return self
                    .changed(ledger, format!("the file changed since it was read: {e}"))
                    .await;
            }
        };
        let header = parser.header().clone();
        let total = u64::try_from(self.batch.total_rows).unwrap_or(0);
        let start_row = u64::try_from(self.batch.last_processed_row).unwrap_or(0);
        let skipped = parser
            .skip_records(start_row)
            .map_err(|e| ImportError::read(source, e.source))?;
        if skipped < start_row {
            return self
                .changed(
                    ledger,
                    "the file has fewer records than the batch processed".to_owned(),
                )
                .await;
        }
        let mut same_content: HashSet<BatchId> = self
            .ingestor
            .store
            .batches_by_hash(self.batch.entity_kind, &self.batch.file_hash)
            .await?
            .into_iter()
            .map(|b| b.id)
            .collect();
        same_content.insert(self.batch.id);
        // The campaign index is built once per run. Without a catalogue the rows are still stored, unassociated,
        // and the batch says so; a backfill associates them later.
        let mut unavailable = None;
        let scoring = match self.ingestor.store.load_catalog().await {
            Ok(catalog) => Some(Arc::new(Scoring::new(
                &catalog,
                self.ingestor.policy.clone(),
            ))),
            Err(e) => {
                unavailable = Some(metadata::one_line(&e));
                None
            }
        };
        let mut ctx = ChunkContext {
            batch_id: self.batch.id,
            same_content,
            instance: self.plan.instance.clone(),
            create_missing_users: self.plan.options.create_missing_users,
            columns: header.columns.clone(),
            volunteer_field: volunteer_field(header.format),
            policy_version: self.ingestor.policy.version.clone(),
            scoring,
            association_unavailable: unavailable,
            now: clock.now(),
        };
        let meter = ProgressMeter::importing(self.plan.size, total, start_row);
        loop {
            let done = u64::try_from(self.batch.last_processed_row).unwrap_or(0);
            if done >= total {
                break;
            }
            if let Some(fresh) = ledger.reread(&self.batch).await?
                && let Some(report) = self.honour_request(ledger, Some(fresh)).await?
            {
                return Ok(report);
            }
            if hooks.stop.is_some_and(StopSignal::is_stopped) && !ledger.is_dry() {
                return self.stop(ledger).await;
            }
            let want = (total - done).min(self.plan.chunk_size as u64);
            let items =
                read_chunk(&mut parser, want).map_err(|e| ImportError::read(source, e.source))?;
            if items.is_empty() {
                return self
                    .changed(
                        ledger,
                        "the file has fewer records than the pre-pass counted".to_owned(),
                    )
                    .await;
            }
            ctx.now = clock.now();
            if let Some(report) = self.write_chunk(ledger, &ctx, items).await? {
                return Ok(report);
            }
            let rows = u64::try_from(self.batch.last_processed_row).unwrap_or(0);
            hooks.progress.on_progress(&meter.snapshot(
                parser.bytes_consumed(),
                rows,
                elapsed(started, clock),
            ));
        }
        drop(parser);
        let (hash, _) = reader.finish().map_err(|e| ImportError::read(source, e))?;
        if hash != self.batch.file_hash {
            return self
                .changed(ledger, "the file changed while it was imported".to_owned())
                .await;
        }
        self.complete(ledger).await
    }

    /// One chunk in one unit of work, the checkpoint included. `Some(report)` when the worker stopped on a
    /// request that arrived during the chunk (whose writes were then rolled back).
    async fn write_chunk(
        &mut self,
        ledger: &mut Ledger<'_>,
        ctx: &ChunkContext,
        items: Vec<Item>,
    ) -> Result<Option<ImportReport>, ImportError> {
        let now = ctx.now;
        let mut unit = ledger.begin().await?;
        let outcome = match chunk::write(unit.get(), ctx, items).await {
            Ok(o) => o,
            Err(e) => {
                unit.rollback().await;
                return Err(e.into());
            }
        };
        let mut summary = self.summary.clone();
        summary.merge(&outcome.summary);
        let event = BatchEvent::Checkpoint {
            rows: outcome.rows,
            inserted: outcome.inserted,
            updated: outcome.updated,
            skipped: outcome.skipped,
            errors: outcome.errors,
            lease_until: self.ingestor.lease_until(now),
            now,
        };
        let mut next = match apply(&self.batch, &event, now) {
            Ok(n) => n,
            Err(e) => {
                unit.rollback().await;
                return Err(ImportError::moving(self.batch.id, e));
            }
        };
        next.error_summary = Some(summary.to_json());
        if let Some(why) = &ctx.association_unavailable {
            metadata::set_association_unavailable(&mut next.csv_metadata, why);
        }
        let mut associations = metadata::associations(&next.csv_metadata);
        associations.add(outcome.associations);
        metadata::set_associations(&mut next.csv_metadata, associations);
        match unit
            .get()
            .save_batch(&next, &BatchGuard::of(&self.batch))
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                unit.rollback().await;
                return self.lost_or_requested(ledger).await.map(Some);
            }
            Err(e) => {
                unit.rollback().await;
                return Err(e.into());
            }
        }
        unit.commit().await?;
        self.batch = next;
        self.summary = summary;
        Ok(None)
    }

    /// After a guarded write found the batch changed: a request that arrived meanwhile is honoured; anything
    /// else means another worker has the batch.
    async fn lost_or_requested(
        &mut self,
        ledger: &mut Ledger<'_>,
    ) -> Result<ImportReport, ImportError> {
        let fresh = ledger.reread(&self.batch).await?;
        match fresh {
            Some(fresh) if only_request_differs(&self.batch, &fresh) => {
                match self.honour_request(ledger, Some(fresh)).await? {
                    Some(report) => Ok(report),
                    None => Err(ImportError::LeaseLost {
                        batch: self.batch.id,
                    }),
                }
            }
            _ => Err(ImportError::LeaseLost {
                batch: self.batch.id,
            }),
        }
    }

    /// Honours a pause or cancel request recorded on `fresh` (the batch as just read; `None`: as this worker
    /// last saved it). Fails with [`ImportError::LeaseLost`] when `fresh` shows another worker has the batch.
    async fn honour_request(
        &mut self,
        ledger: &mut Ledger<'_>,
        fresh: Option<BatchRecord>,
    ) -> Result<Option<ImportReport>, ImportError> {
        let current = match fresh {
            Some(f) => {
                let mine = f.lease_owner == self.batch.lease_owner
                    && f.status == self.batch.status
                    && f.last_processed_row == self.batch.last_processed_row;
                if !mine {
                    return Err(ImportError::LeaseLost {
                        batch: self.batch.id,
                    });
                }
                f
            }
            None => self.batch.clone(),
        };
        let now = self.ingestor.clock.now();
        let Some(event) = machine(&current)?.requested_event(now) else {
            self.batch = current;
            return Ok(None);
        };
        let next = apply(&current, &event, now).map_err(|e| ImportError::moving(current.id, e))?;
        if !ledger.save_batch(&next, &BatchGuard::of(&current)).await? {
            return Err(ImportError::LeaseLost {
                batch: self.batch.id,
            });
        }
        self.batch = next;
        Ok(Some(self.report(ledger).await))
    }

    async fn complete(&mut self, ledger: &mut Ledger<'_>) -> Result<ImportReport, ImportError> {
        for _ in 0..2 {
            let now = self.ingestor.clock.now();
            let mut next = apply(&self.batch, &BatchEvent::Complete { now }, now)
                .map_err(|e| ImportError::moving(self.batch.id, e))?;
            next.error_summary = Some(self.summary.to_json());
            if ledger
                .save_batch(&next, &BatchGuard::of(&self.batch))
                .await?
            {
                self.batch = next;
                return Ok(self.report(ledger).await);
            }
            // A request that arrived after the last chunk is moot: the batch is done.
            match ledger.reread(&self.batch).await? {
                Some(fresh) if only_request_differs(&self.batch, &fresh) => self.batch = fresh,
                _ => break,
            }
        }
        Err(ImportError::LeaseLost {
            batch: self.batch.id,
        })
    }

    /// The caller asked the run to stop (its process is shutting down): the batch is paused with
    /// [`STOPPED_REASON`], which releases the lease and keeps the checkpoint, so any worker resumes it at once.
    async fn stop(&mut self, ledger: &mut Ledger<'_>) -> Result<ImportReport, ImportError> {
        let now = self.ingestor.clock.now();
        let event = BatchEvent::Pause {
            reason: STOPPED_REASON.to_owned(),
            now,
        };
        self.end_with(ledger, event, now).await
    }

    /// Applies `event` to the batch, saves it under the run's lease and reports the batch as it ends.
    async fn end_with(
        &mut self,
        ledger: &mut Ledger<'_>,
        event: BatchEvent,
        now: DateTime<Utc>,
    ) -> Result<ImportReport, ImportError> {
        let next =
            apply(&self.batch, &event, now).map_err(|e| ImportError::moving(self.batch.id, e))?;
        if !ledger
            .save_batch(&next, &BatchGuard::of(&self.batch))
            .await?
        {
            return Err(ImportError::LeaseLost {
                batch: self.batch.id,
            });
        }
        self.batch = next;
        Ok(self.report(ledger).await)
    }

    /// The bytes are not those the pre-pass read: the batch fails (resumable with the right file).
    async fn changed(
        &mut self,
        ledger: &mut Ledger<'_>,
        why: String,
    ) -> Result<ImportReport, ImportError> {
        let now = self.ingestor.clock.now();
        self.end_with(ledger, BatchEvent::Fail { error: why, now }, now)
            .await
    }

    /// Marks the batch failed after an error, so that a later attempt resumes it at once; best effort (the store
    /// may be what failed, and a dry run's unit is gone).
    async fn fail(&mut self, ledger: &mut Ledger<'_>, error: &ImportError) {
        if ledger.is_dry() {
            return;
        }
        let now = self.ingestor.clock.now();
        let mut why = error.to_string();
        let mut source = std::error::Error::source(error);
        while let Some(s) = source {
            why.push_str(": ");
            why.push_str(&s.to_string());
            source = s.source();
        }
        if let Ok(next) = apply(&self.batch, &BatchEvent::Fail { error: why, now }, now)
            && let Ok(true) = ledger.save_batch(&next, &BatchGuard::of(&self.batch)).await
        {
            self.batch = next;
        }
    }

    /// The report of the batch as stored now (a dry run's, or when reading it back fails: as this worker last
    /// saved it; the work is done either way).
    async fn report(&self, ledger: &mut Ledger<'_>) -> ImportReport {
        let stored = ledger.reread(&self.batch).await.ok().flatten();
        ImportReport::of_batch(
            stored.unwrap_or_else(|| self.batch.clone()),
            self.plan.notices.clone(),
            ledger.is_dry(),
        )
    }
}

/// Reads up to `rows` records (fewer at the end of the file, or once [`MAX_CHUNK_BYTES`] have been read).
fn read_chunk<R: Read>(
    parser: &mut Parser<R>,
    rows: u64,
) -> Result<Vec<Item>, crate::formats::ReadError> {
    let start = parser.bytes_consumed();
    let mut items = Vec::with_capacity(usize::try_from(rows).unwrap_or(0).min(65_536));
    while (items.len() as u64) < rows && parser.bytes_consumed() - start < MAX_CHUNK_BYTES {
        match parser.next_record()? {
            None => break,
            Some(Ok(record)) => items.push(Item::Valid {
                row_number: record.row_number,
                line_number: record.line_number,
                row: record.row,
                raw: parser.raw_record().to_owned_record(),
            }),
            Some(Err(e)) => items.push(Item::Invalid(e)),
        }
    }
    Ok(items)
}
