//! `batches list|show|errors|resume|pause|cancel`.

use crate::cli::{BatchesCommand, Global};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use crate::progress::Bar;
use kintell_ingest::domain::{BatchId, BatchRecord, BatchStatus};
use kintell_ingest::ingest::{
    ErrorCsvError, ImportError, ImportSource, Ingestor, write_error_csv, write_error_file,
};
use kintell_ingest::ports::BatchFilter;

pub async fn run(global: &Global, cmd: BatchesCommand) -> anyhow::Result<Exit> {
    match cmd {
        BatchesCommand::List { status, limit } => {
            let status = status
                .as_deref()
                .map(BatchStatus::parse)
                .transpose()
                .map_err(|e| {
                    with_exit(
                        Exit::Failure,
                        anyhow::Error::new(e).context("invalid --status"),
                    )
                })?;
            let store = super::open(global).await?;
            let batches = store
                .list_batches(&BatchFilter {
                    status,
                    entity_kind: None,
                    limit: Some(limit),
                })
                .await?;
            if global.json {
                emit_json(&batches)?;
            } else if batches.is_empty() {
                emit("no batches\n")?;
            } else {
                let mut t = Table::new([
                    "id",
                    "status",
                    "entity",
                    "file",
                    "rows",
                    "inserted",
                    "updated",
                    "unchanged",
                    "rejected",
                    "created",
                ]);
                for b in &batches {
                    t.row([
                        b.id.to_string(),
                        b.status.to_string(),
                        b.entity_kind.to_string(),
                        b.file_name.clone(),
                        format!("{}/{}", b.last_processed_row, b.total_rows),
                        b.inserted_rows.to_string(),
                        b.updated_rows.to_string(),
                        b.skipped_rows.to_string(),
                        b.error_rows.to_string(),
                        b.created_at.format("%Y-%m-%d %H:%M").to_string(),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
        BatchesCommand::Show { id } => {
            let store = super::open(global).await?;
            let batch = found(BatchId(id), store.get_batch(BatchId(id)).await?)?;
            if global.json {
                emit_json(&batch)?;
            } else {
                emit(&show(&batch))?;
            }
            Ok(Exit::Success)
        }
        BatchesCommand::Errors {
            id,
            output,
            no_escape_formulas,
        } => {
            let store = super::open(global).await?;
            let escape = !no_escape_formulas;
            let written = match &output {
                Some(path) => write_error_file(&store, BatchId(id), path, escape)
                    .await
                    .map(|(n, _)| n),
                None => {
                    let mut buffer = Vec::new();
                    let n = write_error_csv(&store, BatchId(id), &mut buffer, escape).await;
                    if n.is_ok() {
                        emit(&String::from_utf8_lossy(&buffer))?;
                    }
                    n
                }
            }
            .map_err(|e| match e {
                ErrorCsvError::NotFound(_) => with_exit(Exit::Failure, e),
                other => anyhow::Error::new(other),
            })?;
            if let Some(path) = &output
                && !global.quiet
            {
                eprintln!("wrote {written} rejected row(s) to {}", path.display());
            }
            Ok(Exit::Success)
        }
        BatchesCommand::Resume { id, file } => {
            std::fs::File::open(&file).map_err(|e| {
                with_exit(
                    Exit::Failure,
                    anyhow::Error::new(e).context(format!("cannot open {}", file.display())),
                )
            })?;
            let store = super::open(global).await?;
            let ingestor = Ingestor::new(store.clone()).imported_by("kintell-ingest-cli");
            let bar = Bar::new(global.quiet || global.json);
            let outcome = ingestor
                .resume(BatchId(id), ImportSource::from_path(&file))
                .with_progress(&bar)
                .await;
            bar.finish();
            super::import::finish(global, &store, outcome, None).await
        }
        BatchesCommand::Pause { id } => {
            let store = super::open(global).await?;
            let batch = Ingestor::new(store)
                .request_pause(BatchId(id))
                .await
                .map_err(refused)?;
            after_request(global, &batch, "pause")
        }
        BatchesCommand::Cancel { id } => {
            let store = super::open(global).await?;
            let batch = Ingestor::new(store)
                .request_cancel(BatchId(id))
                .await
                .map_err(refused)?;
            after_request(global, &batch, "cancel")
        }
    }
}

/// An unknown batch or an illegal transition is the caller's mistake: exit 2 with the state machine's words.
fn refused(e: ImportError) -> anyhow::Error {
    with_exit(Exit::Failure, e)
}

fn found(id: BatchId, batch: Option<BatchRecord>) -> anyhow::Result<BatchRecord> {
    batch.ok_or_else(|| with_exit(Exit::Failure, anyhow::anyhow!("batch {id} does not exist")))
}

fn after_request(global: &Global, batch: &BatchRecord, what: &str) -> anyhow::Result<Exit> {
    if global.json {
        emit_json(batch)?;
    } else if batch.requested_action.is_some() {
        emit(&format!(
            "batch {}: {what} requested; the worker holding it honours it after its current chunk\n",
            batch.id
        ))?;
    } else {
        emit(&format!("batch {} is now {}\n", batch.id, batch.status))?;
    }
    Ok(Exit::Success)
}

fn show(b: &BatchRecord) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    let mut t = Table::new(["field", "value"]);
    let rows: Vec<(&str, String)> = vec![
        ("id", b.id.to_string()),
        ("status", b.status.to_string()),
        ("file", b.file_name.clone()),
        ("sha256", b.file_hash.clone()),
        ("size", opt(b.file_size_bytes.map(|s| format!("{s} bytes")))),
        ("entity", b.entity_kind.to_string()),
        ("format", b.format.clone()),
        ("program type", b.program_type.to_string()),
        (
            "instance",
            opt(b.program_instance_id.map(|i| i.to_string())),
        ),
        ("import method", b.import_method.to_string()),
        (
            "progress",
            format!("{}/{} rows", b.last_processed_row, b.total_rows),
        ),
        ("inserted", b.inserted_rows.to_string()),
        ("updated", b.updated_rows.to_string()),
        ("unchanged", b.skipped_rows.to_string()),
        ("rejected", b.error_rows.to_string()),
        (
            "lease",
            opt(b.lease_owner.clone().map(|o| {
                format!(
                    "{o} until {}",
                    opt(b.lease_expires_at.map(|t| t.to_rfc3339()))
                )
            })),
        ),
        ("requested", opt(b.requested_action.map(|a| a.to_string()))),
        ("last error", opt(b.last_error.clone())),
        ("error file", opt(b.error_file_path.clone())),
        ("created", b.created_at.to_rfc3339()),
        ("started", opt(b.started_at.map(|t| t.to_rfc3339()))),
        ("completed", opt(b.completed_at.map(|t| t.to_rfc3339()))),
    ];
    for (k, v) in rows {
        t.row([k.to_owned(), v]);
    }
    let mut out = t.render();
    if let Some(summary) = &b.error_summary
        && let Some(by_code) = summary
            .get("by_code")
            .and_then(serde_json::Value::as_object)
        && !by_code.is_empty()
    {
        out.push_str("\nrejected rows by code:\n");
        let mut t = Table::new(["code", "rows"]);
        for (code, n) in by_code {
            t.row([code.clone(), n.to_string()]);
        }
        out.push_str(&t.render());
    }
    out
}
