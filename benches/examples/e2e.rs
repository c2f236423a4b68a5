//! The end-to-end import benchmark: load the bench catalogue (one process), then import a sessions file (another
//! process) and print the wall time, the rows per second and the process's peak RSS.
//!
//! ```text
//! python3 ../shared/bench/gen_catalog.py cat.json
//! python3 ../shared/bench/gen_sessions.py 1000000 s1m.csv
//! cargo build --release -p kintell-ingest-benches --example e2e
//! target/release/examples/e2e catalog cat.json 'sqlite://bench.db?mode=rwc'
//! target/release/examples/e2e import s1m.csv 'sqlite://bench.db?mode=rwc' [CHUNK_SIZE]
//! ```
//!
//! (or a `postgres://…/empty_db` URL). The database must be new (an empty file or an empty PostgreSQL database): the
//! import must insert every row. The import's last line is machine-readable (`e2e backend=… rows=… import_s=…
//! rows_per_s=… peak_rss_kb=…`) for `benches/e2e.sh`, which runs both steps and goes on to measure the schema limit
//! of the rows this import wrote.
//!
//! Peak RSS is the import process's high-water mark (`VmHWM`): the catalogue is loaded by a process of its own, so
//! that its JSON document does not count as the import's memory.

use std::time::Instant;

use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportRequest, Ingestor};
use kintell_ingest::store::Store;

type Error = Box<dyn std::error::Error>;

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

async fn catalog(catalogue: &str, url: &str) -> Result<(), Error> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let catalogue = std::fs::read_to_string(catalogue)?;
    let started = Instant::now();
    CatalogImport::new(store.clone())
        .run_json(&catalogue, chrono::Utc::now())
        .await?;
    println!(
        "catalogue loaded in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn import(csv: &str, url: &str, chunk: Option<usize>) -> Result<(), Error> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let mut request = ImportRequest::from_path(csv).entity(EntityKind::KintellSessions);
    if let Some(n) = chunk {
        request = request.chunk_size(n);
    }
    let started = Instant::now();
    let report = Ingestor::new(store.clone()).import(request).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let rows = report.batch.total_rows;
    if report.inserted + report.errors != u64::try_from(rows)? {
        return Err(format!(
            "{} inserted and {} rejected of {rows} rows: the database was not empty",
            report.inserted, report.errors
        )
        .into());
    }
    let backend = store.database().map_or("memory", |d| d.backend().as_str());
    let rss = peak_rss_kb().unwrap_or(0);
    let a = &report.associations;
    println!(
        "{backend}: {rows} rows in {elapsed:.2} s ({:.0} rows/s), {} inserted, {} rejected; \
         associations auto {} review {} none {}; peak RSS {:.1} MB",
        rows as f64 / elapsed,
        report.inserted,
        report.errors,
        a.auto,
        a.review,
        a.none,
        rss as f64 / 1024.0,
    );
    println!(
        "e2e backend={backend} rows={rows} import_s={elapsed:.3} rows_per_s={:.0} peak_rss_kb={rss}",
        rows as f64 / elapsed
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match args.as_slice() {
        [command, catalogue, url] if command == "catalog" => runtime.block_on(catalog(catalogue, url)),
        [command, csv, url, rest @ ..] if command == "import" && rest.len() <= 1 => {
            let chunk = rest.first().map(|n| n.parse()).transpose()?;
            runtime.block_on(import(csv, url, chunk))
        }
        _ => Err("usage: e2e catalog CATALOG.json DATABASE_URL | e2e import SESSIONS.csv DATABASE_URL [CHUNK_SIZE]".into()),
    }
}
