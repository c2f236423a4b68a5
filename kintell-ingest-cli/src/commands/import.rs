//! `import [ENTITY] FILE`.

use crate::cli::{Global, ImportArgs};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use crate::progress::Bar;
use anyhow::Context;
use kintell_ingest::domain::{BatchRecord, BatchStatus, EntityKind, ProgramType, TimeZoneOffset};
use kintell_ingest::formats::{Delimiter, FormatId};
use kintell_ingest::ingest::{
    ImportError, ImportReport, ImportRequest, Ingestor, write_error_file,
};
use kintell_ingest::scoring::ScoringPolicy;
use std::path::PathBuf;

/// The entity words of the command line.
pub fn entity(word: &str) -> anyhow::Result<EntityKind> {
    match word {
        "sessions" => Ok(EntityKind::KintellSessions),
        "users" => Ok(EntityKind::KintellUsers),
        "buddy-matches" => Ok(EntityKind::BuddyMatches),
        "course-completions" => Ok(EntityKind::CourseCompletions),
        other => Err(with_exit(
            Exit::Failure,
            anyhow::anyhow!(
                "unknown entity {other:?}: expected sessions, users, buddy-matches or course-completions"
            ),
        )),
    }
}

fn usage<T, E: std::error::Error + Send + Sync + 'static>(
    option: &str,
    r: Result<T, E>,
) -> anyhow::Result<T> {
    r.map_err(|e| {
        with_exit(
            Exit::Failure,
            anyhow::Error::new(e).context(format!("invalid {option}")),
        )
    })
}

/// The request the options describe.
fn request(args: &ImportArgs) -> anyhow::Result<(ImportRequest, PathBuf)> {
    let (entity, file) = match args.args.as_slice() {
        [file] => (None, PathBuf::from(file)),
        [word, file] => (Some(entity(word)?), PathBuf::from(file)),
        _ => {
            return Err(with_exit(
                Exit::Failure,
                anyhow::anyhow!("expected [ENTITY] FILE"),
            ));
        }
    };
    let mut request = ImportRequest::from_path(&file)
        .force(args.force)
        .dry_run(args.dry_run)
        .create_missing_users(args.create_missing_users);
    if let Some(entity) = entity {
        request = request.entity(entity);
    }
    if let Some(slug) = &args.program_instance {
        request = request.program_instance(slug.clone());
    }
    if let Some(t) = &args.program_type {
        request = request.program_type(usage("--program-type", ProgramType::parse(t))?);
    }
    if let Some(f) = &args.format {
        request = request.format(usage("--format", FormatId::parse(f))?);
    }
    if let Some(d) = &args.delimiter {
        request = request.delimiter(usage("--delimiter", Delimiter::parse(d))?);
    }
    if let Some(z) = &args.timezone {
        request = request.timezone(usage("--timezone", TimeZoneOffset::parse(z))?);
    }
    if let Some(n) = args.chunk_size {
        request = request.chunk_size(n);
    }
    if let Some(n) = args.max_errors {
        request = request.max_errors(n);
    }
    if let Some(r) = args.max_error_ratio {
        request = request.max_error_ratio(r);
    }
    Ok((request, file))
}

pub async fn run(global: &Global, args: ImportArgs) -> anyhow::Result<Exit> {
    let (request, file) = request(&args)?;
    let policy = match &args.policy_timezone {
        Some(z) => {
            ScoringPolicy::with_timezone(usage("--policy-timezone", TimeZoneOffset::parse(z))?)
        }
        None => ScoringPolicy::default(),
    };
    // A file that cannot be opened is a usage error before anything touches the database.
    std::fs::File::open(&file).map_err(|e| {
        with_exit(
            Exit::Failure,
            anyhow::Error::new(e).context(format!("cannot open {}", file.display())),
        )
    })?;
    let store = super::open(global).await?;
    let ingestor = Ingestor::new(store.clone())
        .policy(policy)
        .imported_by("kintell-ingest-cli");
    let bar = Bar::new(global.quiet || global.json);
    let outcome = ingestor.import(request).with_progress(&bar).await;
    bar.finish();
    finish(global, &store, outcome, args.errors_out.as_deref()).await
}

/// Renders the outcome of an import or a resume and chooses the exit code.
pub async fn finish(
    global: &Global,
    store: &kintell_ingest::store::Store,
    outcome: Result<ImportReport, ImportError>,
    errors_out: Option<&std::path::Path>,
) -> anyhow::Result<Exit> {
    match outcome {
        Ok(report) => {
            render(global, &report)?;
            if let Some(path) = errors_out
                && !report.dry_run
            {
                write_errors(global, store, &report.batch, path).await?;
            }
            match report.batch.status {
                BatchStatus::Completed if report.errors == 0 => Ok(Exit::Success),
                BatchStatus::Completed => Ok(Exit::Rejected),
                BatchStatus::Paused => Err(with_exit(
                    Exit::Failure,
                    anyhow::anyhow!(
                        "batch {} was paused on request after row {}; resume it with `kintell-ingest batches resume {} FILE`",
                        report.batch.id,
                        report.batch.last_processed_row,
                        report.batch.id
                    ),
                )),
                status => Err(with_exit(
                    Exit::Failure,
                    anyhow::anyhow!("batch {} ended {status}", report.batch.id),
                )),
            }
        }
        Err(e) => {
            let exit = match &e {
                ImportError::File { .. } | ImportError::Rejected { .. } => Exit::Rejected,
                ImportError::AlreadyImported { .. } => Exit::ReimportRefused,
                ImportError::InProgress { .. } => Exit::Busy,
                _ => Exit::Failure,
            };
            if let Some(report) = e.report() {
                render(global, report)?;
                if let Some(path) = errors_out {
                    write_errors(global, store, &report.batch, path).await?;
                }
            }
            Err(with_exit(exit, e))
        }
    }
}

async fn write_errors(
    global: &Global,
    store: &kintell_ingest::store::Store,
    batch: &BatchRecord,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let (rows, _) = write_error_file(store, batch.id, path, true)
        .await
        .with_context(|| format!("cannot write the rejected rows to {}", path.display()))?;
    if !global.quiet && !global.json {
        eprintln!("wrote {rows} rejected row(s) to {}", path.display());
    }
    Ok(())
}

/// The report: one JSON document, or a summary for people.
pub fn render(global: &Global, report: &ImportReport) -> anyhow::Result<()> {
    if global.json {
        return emit_json(&report.to_json());
    }
    if !global.quiet {
        for notice in &report.notices {
            eprintln!("notice: {notice}");
        }
    }
    emit(&summary(report))?;
    Ok(())
}

/// The human summary of a report.
pub fn summary(report: &ImportReport) -> String {
    let b = &report.batch;
    let mut out = String::new();
    let dry = if report.dry_run {
        " (dry run: nothing stored)"
    } else {
        ""
    };
    out.push_str(&format!(
        "batch {}  {}  {} ({})  {}{dry}\n",
        b.id, b.status, b.entity_kind, b.format, b.file_name
    ));
    let mut t = Table::new(["rows", "inserted", "updated", "unchanged", "rejected"]);
    t.row([
        b.total_rows.to_string(),
        report.inserted.to_string(),
        report.updated.to_string(),
        report.skipped.to_string(),
        report.errors.to_string(),
    ]);
    out.push_str(&t.render());
    let a = &report.associations;
    out.push_str(&format!(
        "associations: explicit {}, auto {}, review {}, ignored {}, none {}\n",
        a.explicit, a.auto, a.review, a.ignored, a.none
    ));
    if let Some(error) = &b.last_error {
        out.push_str(&format!("last error: {error}\n"));
    }
    let first = b
        .error_summary
        .as_ref()
        .and_then(|s| s.get("first"))
        .and_then(serde_json::Value::as_array);
    if let Some(first) = first.filter(|f| !f.is_empty()) {
        out.push_str("first rejected rows:\n");
        let mut t = Table::new(["row", "line", "code", "field", "message"]);
        for e in first {
            let cell = |k: &str| match e.get(k) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            t.row([
                cell("row"),
                cell("line"),
                cell("code"),
                cell("field"),
                cell("message"),
            ]);
        }
        out.push_str(&t.render());
    }
    out
}
