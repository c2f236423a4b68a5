//! Imports running in the background: started by an upload or a resume, stopped between chunks when the server
//! shuts down, resumed at start-up.
//!
//! **Answering 202 with a stored batch.** A job runs [`Ingestor::import`] (or [`Ingestor::resume`]) with
//! [`ImportCall::on_start`](kintell_ingest::ingest::ImportCall::on_start): the library calls it once the run holds
//! its batch (stored, `running`, before the first chunk). The handler waits for whichever comes first, that call
//! or the end of the run: the first answers 202 with the batch, which is then in the ledger for every reader; the
//! second is a refusal, a file error or a reject limit (mapped by [`crate::ApiError`]), or a dry run's report. So
//! the answer waits for the pre-pass (hash, count and validation of the spooled file), never for the chunks. No
//! polling, and no second code path for the ledger's creation.
//!
//! An import reads its source with blocking I/O, so each job runs on a blocking thread of the runtime.
//!
//! **Spooled files** (`DATA_DIR/uploads/<sha256>`) are deleted when a run leaves its batch `completed` or
//! `cancelled`, when a cancel request cancels a batch no worker holds, and when an upload is refused — each time
//! only if no batch of the same bytes may still need them (one `pending`, `running` or `paused`, or `failed`
//! after it started: those are resumable).
//!
//! **Shutdown** raises the [`StopSignal`] of every job: each pauses its batch before its next chunk with
//! [`kintell_ingest::ingest::STOPPED_REASON`] (lease released, checkpoint kept) and [`Jobs::wait`] waits for them.
//! **Start-up** ([`crate::resume_spooled`]) resumes, from their spooled files, the batches stopped that way, and
//! the `running` batches whose lease has expired or whose holder is a dead process of this host (the library
//! refuses a live holder). Batches paused on a person's request, failed or `pending` ones are left for an explicit
//! resume (or a re-upload), since a `pending` batch may be one another worker is just starting.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kintell_ingest::batch::{Progress, ProgressSnapshot};
use kintell_ingest::domain::{BatchId, BatchRecord, BatchStatus, EntityKind};
use kintell_ingest::ingest::{
    ImportError, ImportReport, ImportRequest, ImportSource, Ingestor, StopSignal,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::AppState;

/// What a job runs.
pub(crate) enum Job {
    /// A new import of a spooled upload.
    Import(ImportRequest),
    /// A resume of a batch from its spooled file.
    Resume(BatchId, ImportSource),
}

/// How a job's start went.
pub(crate) enum Started {
    /// The run holds this batch and goes on in the background.
    Running(Box<BatchRecord>),
    /// The run ended before holding a batch (a refusal, a file error, a reject limit), or was a dry run.
    Ended(Box<Result<ImportReport, ImportError>>),
}

/// The jobs of one server.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    stop: StopSignal,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    live: Mutex<HashMap<BatchId, ProgressSnapshot>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Jobs {
    /// The latest progress of a batch a job of this server is running.
    pub(crate) fn progress(&self, batch: BatchId) -> Option<ProgressSnapshot> {
        lock(&self.live).get(&batch).copied()
    }

    /// Asks every job to stop before its next chunk.
    pub(crate) fn stop(&self) {
        self.stop.stop();
    }

    /// Waits until every job has ended.
    pub(crate) async fn wait(&self) {
        loop {
            let tasks = std::mem::take(&mut *lock(&self.tasks));
            if tasks.is_empty() {
                return;
            }
            for task in tasks {
                // A job that panicked has ended too; its batch's lease expires and it is resumed.
                let _ended = task.await;
            }
        }
    }
}

/// The progress observer of one job: keeps the latest snapshot once the batch is known.
struct Live {
    jobs: Arc<Jobs>,
    batch: Mutex<Option<BatchId>>,
}

impl Progress for Live {
    fn on_progress(&self, p: &ProgressSnapshot) {
        if let Some(id) = *lock(&self.batch) {
            lock(&self.jobs.live).insert(id, *p);
        }
    }
}

/// Starts `job` in the background and waits until it holds its batch or ends.
pub(crate) async fn start(state: &AppState, ingestor: Ingestor, job: Job) -> Started {
    let (tx, rx) = oneshot::channel::<Started>();
    let tx = Arc::new(Mutex::new(Some(tx)));
    let runtime = tokio::runtime::Handle::current();
    let state2 = state.clone();
    let task = tokio::task::spawn_blocking(move || {
        runtime.block_on(run(state2, ingestor, job, tx));
    });
    {
        let mut tasks = lock(&state.jobs.tasks);
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "an import job panicked");
            }
        }));
    }
    match rx.await {
        Ok(started) => started,
        // The job always answers before it ends; a panic is the only way here.
        Err(_) => Started::Ended(Box::new(Err(ImportError::InvalidOption(
            "the import job ended without an answer".to_owned(),
        )))),
    }
}

async fn run(
    state: AppState,
    ingestor: Ingestor,
    job: Job,
    tx: Arc<Mutex<Option<oneshot::Sender<Started>>>>,
) {
    let live = Live {
        jobs: Arc::clone(&state.jobs),
        batch: Mutex::new(None),
    };
    let taken: Mutex<Option<BatchRecord>> = Mutex::new(None);
    let on_start = |b: &BatchRecord| {
        *lock(&live.batch) = Some(b.id);
        *lock(&taken) = Some(b.clone());
        if let Some(tx) = lock(&tx).take() {
            // The client may have gone away; the import goes on regardless.
            let _ = tx.send(Started::Running(Box::new(b.clone())));
        }
    };
    let (call, spool) = match job {
        Job::Import(request) => {
            let spool = request.source().path().map(PathBuf::from);
            (ingestor.import(request), spool)
        }
        Job::Resume(id, source) => {
            let spool = source.path().map(PathBuf::from);
            (ingestor.resume(id, source), spool)
        }
    };
    let outcome = call
        .with_progress(&live)
        .with_stop(&state.jobs.stop)
        .on_start(&on_start)
        .await;
    let taken = lock(&taken).take();
    if let Some(batch) = &taken {
        lock(&state.jobs.live).remove(&batch.id);
    }
    let ended = match &outcome {
        Ok(report) => Some(report),
        Err(e) => e.report(),
    };
    if let Some(report) = ended.filter(|r| !r.dry_run) {
        state.metrics.observe_import(taken.as_ref(), report);
    }
    match &outcome {
        Ok(r) => {
            tracing::info!(batch = %r.batch.id, status = %r.batch.status, rows = r.batch.last_processed_row, "import run ended")
        }
        Err(e) => {
            tracing::warn!(error = %crate::error::one_line(e), "import run ended with an error")
        }
    }
    if let Some(spool) = &spool {
        let batch = ended.map(|r| (r.batch.entity_kind, r.batch.file_hash.clone()));
        let dry = ended.is_some_and(|r| r.dry_run);
        if taken.is_none()
            || dry
            || ended.is_some_and(|r| kintell_ingest::batch::is_terminal(r.batch.status))
        {
            release_spool(&state, spool, batch).await;
        }
    }
    if let Some(tx) = lock(&tx).take() {
        let _ = tx.send(Started::Ended(Box::new(outcome)));
    }
}

/// Deletes a spooled file unless a batch of its bytes may still need it (see the module docs). `batch`: the entity
/// and hash of the batch concerned, when known (the file's name is its hash).
pub(crate) async fn release_spool(
    state: &AppState,
    spool: &std::path::Path,
    batch: Option<(EntityKind, String)>,
) {
    let hash = match batch {
        Some((_, h)) => h,
        None => match spool.file_name().and_then(|n| n.to_str()) {
            Some(n) => n.to_owned(),
            None => return,
        },
    };
    for entity in EntityKind::ALL {
        match state.store.batches_by_hash(*entity, &hash).await {
            Ok(batches) if batches.iter().any(needs_spool) => return,
            Ok(_) => {}
            // Keeping a file is the safe side of not knowing.
            Err(_) => return,
        }
    }
    if let Err(e) = tokio::fs::remove_file(spool).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %spool.display(), error = %e, "cannot delete a spooled upload");
    }
}

/// Whether a batch may be resumed and so needs its spooled input.
fn needs_spool(b: &BatchRecord) -> bool {
    match b.status {
        BatchStatus::Pending | BatchStatus::Running | BatchStatus::Paused => true,
        BatchStatus::Failed => b.started_at.is_some(),
        BatchStatus::Completed | BatchStatus::Cancelled => false,
    }
}
