//! An import that reports its progress through `batch::Progress`.
//!
//! ```text
//! cargo run -p kintell-ingest-examples --example progress
//! ```
//!
//! The pipeline calls the observer given to `ImportCall::with_progress` while its pre-pass reads the file (phase
//! `scanning`: bytes read, records seen) and after every chunk it commits (phase `importing`: records handled of
//! the total). An observer must be cheap and must not block: this one prints a line and keeps the snapshot, where a
//! server would store the latest one and a CLI would draw a bar. Any `Fn(&ProgressSnapshot) + Send + Sync` closure
//! is an observer too.
//!
//! The file is a synthetic Kintell sessions export (`kintell_ingest::synthetic`) of 2,000 rows with one bad row in
//! 100, imported into SQLite in chunks of 250 rows; its people are created as they are met.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use kintell_ingest::batch::{Progress, ProgressPhase, ProgressSnapshot};
use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportReport, ImportRequest, Ingestor};
use kintell_ingest::store::Store;
use kintell_ingest::synthetic::{SessionsSpec, write_sessions};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Rows in the generated file.
pub const ROWS: u64 = 2_000;
/// Rows per chunk: each chunk is one transaction and one progress report.
pub const CHUNK_SIZE: usize = 250;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    kintell_ingest_examples::exit_code(main_inner().await)
}

async fn main_inner() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let (report, _) = run(dir.path(), Box::new(std::io::stdout())).await?;
    println!(
        "done: batch {} {}, {} inserted, {} rejected",
        report.batch.id, report.batch.status, report.inserted, report.errors
    );
    Ok(())
}

/// Prints every report to its writer and keeps the snapshots.
///
/// `on_progress` takes `&self` and the observer is shared with the import, so the mutable parts sit behind a
/// mutex (`Progress` requires `Send + Sync`).
pub struct Printer {
    out: Mutex<Box<dyn Write + Send>>,
    seen: Mutex<Vec<ProgressSnapshot>>,
}

impl Printer {
    /// A printer writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Printer {
            out: Mutex::new(out),
            seen: Mutex::new(Vec::new()),
        }
    }

    /// Every snapshot received so far.
    pub fn snapshots(&self) -> Vec<ProgressSnapshot> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Progress for Printer {
    fn on_progress(&self, p: &ProgressSnapshot) {
        let line = match p.phase {
            ProgressPhase::Scanning => format!(
                "scanning  {:>6.1}%  {} of {} bytes, {} records seen",
                p.fraction() * 100.0,
                p.bytes_done,
                p.bytes_total,
                p.rows_done
            ),
            ProgressPhase::Importing => format!(
                "importing {:>6.1}%  {} of {} records{}{}",
                p.fraction() * 100.0,
                p.rows_done,
                p.rows_total,
                p.rows_per_second()
                    .map_or_else(String::new, |r| format!(", {r:.0} records/s")),
                p.eta().map_or_else(String::new, |t| format!(
                    ", about {:.1} s left",
                    t.as_secs_f64()
                )),
            ),
        };
        // A progress observer has no way to fail the import: a line that cannot be printed is dropped.
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(*p);
        }
    }
}

/// Generates the file in `dir`, imports it into a new SQLite database there with a [`Printer`] on `out`, and
/// returns the report and every snapshot the printer received.
pub async fn run(
    dir: &Path,
    out: Box<dyn Write + Send>,
) -> Result<(ImportReport, Vec<ProgressSnapshot>), Error> {
    // The file: streamed to disk, never held in memory (the generator writes 1M rows the same way).
    let path = dir.join("kintell-sessions-synthetic.csv");
    let spec = SessionsSpec::new(ROWS).bad_every(100);
    write_sessions(spec, std::io::BufWriter::new(std::fs::File::create(&path)?))?;

    let url = format!("sqlite://{}?mode=rwc", dir.join("kintell.db").display());
    let store = Store::connect(&url).await?;
    store.migrate().await?;

    let printer = Printer::new(out);
    let report = Ingestor::new(store)
        .chunk_size(CHUNK_SIZE)
        .import(
            ImportRequest::from_path(&path)
                .entity(EntityKind::KintellSessions)
                // No catalogue here: the people of the file are created as users when first met.
                .create_missing_users(true),
        )
        .with_progress(&printer)
        .await?;
    Ok((report, printer.snapshots()))
}
