//! The association backfill against the import of the same rows, on SQLite and PostgreSQL: the target is that the
//! backfill of N stored sessions takes no longer than their import, same backend, same run.
//!
//! ```text
//! python3 ../shared/bench/gen_catalog.py catalog-bench.json
//! python3 ../shared/bench/gen_sessions.py 1000000 s1m.csv
//! cargo run --release -p kintell-ingest-benches --example backfill -- catalog-bench.json s1m.csv sqlite postgres://…/empty_db
//! ```
//!
//! `BACKFILL_BATCH_SIZE=N` sets the page size (default: the library's, 1,000). The second argument is a sessions file or a number of rows to generate with `kintell_ingest::synthetic` (whose
//! people are named like those of the bench catalogue).
//!
//! For each database (`sqlite` is a new file in a temporary directory; a `postgres://` URL must name an empty
//! database): load the catalogue without its campaigns and instances, import N generated sessions (so every row is
//! stored with the association `none`), load the full catalogue, then backfill (default options: the rows without an
//! association other than `none`, pages of 1,000). Prints both wall times and their ratio.

use std::time::Instant;

use kintell_ingest::backfill::{Backfill, BackfillOptions};
use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportRequest, Ingestor};
use kintell_ingest::store::Store;
use kintell_ingest::synthetic::{SessionsSpec, write_sessions};

type Error = Box<dyn std::error::Error>;

/// The catalogue document without campaigns and programme instances.
fn without_campaigns(catalogue: &str) -> Result<String, Error> {
    let mut doc: serde_json::Value = serde_json::from_str(catalogue)?;
    for key in ["campaigns", "program_instances"] {
        if let Some(v) = doc.get_mut(key) {
            *v = serde_json::Value::Array(Vec::new());
        }
    }
    Ok(doc.to_string())
}

async fn measure(url: &str, catalogue: &str, csv: &std::path::Path) -> Result<(), Error> {
    let store = Store::connect(url).await?;
    store.migrate().await?;
    let now = chrono::Utc::now();
    CatalogImport::new(store.clone())
        .run_json(&without_campaigns(catalogue)?, now)
        .await?;

    let started = Instant::now();
    let report = Ingestor::new(store.clone())
        .import(ImportRequest::from_path(csv).entity(EntityKind::KintellSessions))
        .await?;
    let import = started.elapsed();
    let rows = report.inserted;
    if rows + report.errors != u64::try_from(report.batch.total_rows)? {
        return Err(format!(
            "{rows} of {} rows inserted: the database was not empty",
            report.batch.total_rows
        )
        .into());
    }

    CatalogImport::new(store.clone())
        .run_json(catalogue, chrono::Utc::now())
        .await?;
    let started = Instant::now();
    let mut options = BackfillOptions::default();
    if let Ok(n) = std::env::var("BACKFILL_BATCH_SIZE") {
        options = options.batch_size(n.parse()?);
    }
    let run = Backfill::new(store.clone()).run(options).await?;
    let backfill = started.elapsed();

    let s = &run.stats;
    println!(
        "{}: import {rows} rows {:.2} s ({:.0} rows/s); backfill {:.2} s ({:.0} rows/s); backfill / import = {:.2}",
        store.database().map_or("memory", |d| d.backend().as_str()),
        import.as_secs_f64(),
        rows as f64 / import.as_secs_f64(),
        backfill.as_secs_f64(),
        s.scanned as f64 / backfill.as_secs_f64(),
        backfill.as_secs_f64() / import.as_secs_f64(),
    );
    println!(
        "  scanned {} unchanged {} auto {} review {} ignored {} none {} + {} errors {}",
        s.scanned,
        s.unchanged,
        s.auto,
        s.review,
        s.ignored,
        s.none_no_company,
        s.none_no_candidates,
        s.errors
    );
    Ok(())
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let Some(catalogue_path) = args.next() else {
        return Err(
            "usage: backfill CATALOG.json [SESSIONS.csv|ROWS] [sqlite|postgres://URL …]".into(),
        );
    };
    let catalogue = std::fs::read_to_string(&catalogue_path)?;
    let source = args.next().unwrap_or_else(|| "1000000".to_owned());
    let mut targets: Vec<String> = args.collect();
    if targets.is_empty() {
        targets.push("sqlite".to_owned());
    }
    let dir = tempfile::tempdir()?;
    let csv = match source.parse::<u64>() {
        Ok(rows) => {
            let csv = dir.path().join("sessions.csv");
            write_sessions(
                SessionsSpec::new(rows),
                std::io::BufWriter::new(std::fs::File::create(&csv)?),
            )?;
            csv
        }
        Err(_) => std::path::PathBuf::from(source),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (i, target) in targets.iter().enumerate() {
        let url = if target == "sqlite" {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join(format!("bench-{i}.db")).display()
            )
        } else {
            target.clone()
        };
        runtime.block_on(measure(&url, &catalogue, &csv))?;
    }
    Ok(())
}
