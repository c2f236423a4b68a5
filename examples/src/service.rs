//! What a service embedding the library does once it holds a [`Store`]: the walk-through of the `sqlite_service`
//! and `postgres` examples, which differ only in the URL they connect to.
//!
//! Every step is one call of the library's public API: [`Store::migrate`], [`CatalogImport`], [`Ingestor::import`],
//! [`row_errors`](kintell_ingest::ports::BatchRepository::row_errors) and
//! [`list_batches`](kintell_ingest::ports::BatchRepository::list_batches) (the ledger, through the store's ports),
//! [`ReviewQueue::list_by`] and [`Reports::campaigns`].

use std::io::Write;
use std::path::Path;

use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportError, ImportReport, ImportRequest, Ingestor};
use kintell_ingest::ports::BatchFilter;
use kintell_ingest::reports::{CampaignMetrics, Reports};
use kintell_ingest::review::{ReviewQuery, ReviewQueue, ReviewView};
use kintell_ingest::store::Store;

use crate::sample;

/// Any error of the walk-through.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the walk-through found, for callers (and tests) that want more than the printed text.
#[derive(Debug)]
pub struct Walkthrough {
    /// The import's report; `None` when the file had already been imported into this database (a second run
    /// against the same PostgreSQL database), which the walk-through reports and carries on from.
    pub report: Option<ImportReport>,
    /// How many batches the ledger lists (at most 10).
    pub batches: usize,
    /// The review queue.
    pub reviews: Vec<ReviewView>,
    /// The campaign report.
    pub campaigns: Vec<CampaignMetrics>,
}

/// Migrates `store`, writes the sample files into `dir`, loads the catalogue, imports the sessions file and
/// prints, to `out`, the import report, the ledger, the review queue and the campaign report.
///
/// # Errors
/// The first step that failed: the schema, writing the sample files, the catalogue, the import (except a refusal
/// as already imported), the store, or writing to `out`.
pub async fn walkthrough(
    store: &Store,
    dir: &Path,
    out: &mut dyn Write,
) -> Result<Walkthrough, Error> {
    // 1. The schema: `migrate` applies what is pending (nothing the second time) and is a no-op in memory.
    let applied = store.migrate().await?;
    writeln!(out, "migrate: {} migration(s) applied", applied.len())?;

    // 2. The catalogue: companies, beneficiary groups, campaigns, programme instances and users, with stable ids,
    //    upserted (a second load changes nothing).
    let files = sample::write_files(dir)?;
    let catalogue = CatalogImport::new(store.clone())
        .run_reader(std::fs::File::open(&files.catalogue)?, chrono::Utc::now())
        .await?;
    let c = catalogue.total();
    writeln!(
        out,
        "catalogue: {} inserted, {} updated, {} unchanged",
        c.inserted, c.updated, c.unchanged
    )?;

    // 3. The import. `imported_by` is recorded in the ledger; the entity could be left to detection, naming it
    //    is clearer. Rejected rows do not fail the import: they are counted and recorded with the batch.
    let ingestor = Ingestor::new(store.clone()).imported_by("kintell-example-service");
    let request = ImportRequest::from_path(&files.sessions).entity(EntityKind::KintellSessions);
    let report = match ingestor.import(request).await {
        Ok(report) => Some(report),
        // Importing the same bytes twice is refused, never doubled: a service reports it and goes on.
        Err(ImportError::AlreadyImported { batch }) => {
            writeln!(
                out,
                "import: already imported by batch {} ({}); nothing imported again",
                batch.id, batch.status
            )?;
            None
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(r) = &report {
        let a = &r.associations;
        writeln!(
            out,
            "import: batch {} {}: {} rows, {} inserted, {} updated, {} unchanged, {} rejected",
            r.batch.id,
            r.batch.status,
            r.batch.total_rows,
            r.inserted,
            r.updated,
            r.skipped,
            r.errors
        )?;
        writeln!(
            out,
            "  associations: {} explicit, {} auto, {} review, {} ignored, {} none",
            a.explicit, a.auto, a.review, a.ignored, a.none
        )?;
        for notice in &r.notices {
            writeln!(out, "  notice: {notice}")?;
        }
        // The rejected rows, read back from the ledger a page at a time (here one page is enough).
        for e in store.row_errors(r.batch.id, 0, 100).await? {
            writeln!(
                out,
                "  rejected row {} (line {}): {} {}",
                e.row_number, e.line_number, e.code, e.message
            )?;
        }
    }

    // 4. The ledger: every batch, newest first.
    let batches = store
        .list_batches(&BatchFilter {
            limit: Some(10),
            ..BatchFilter::default()
        })
        .await?;
    writeln!(out, "batches:")?;
    for b in &batches {
        writeln!(
            out,
            "  {} {} {} {} rows ({} rejected)",
            b.id, b.entity_kind, b.file_name, b.total_rows, b.error_rows
        )?;
    }

    // 5. The review queue: what scoring was not sure enough about, with its reasons.
    let reviews = ReviewQueue::new(store.clone())
        .list_by(&ReviewQuery::default())
        .await?;
    writeln!(out, "review queue: {} item(s)", reviews.len())?;
    for r in &reviews {
        let codes: Vec<&str> = r
            .reasons
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|reason| reason.get("code")?.as_str())
            .collect();
        writeln!(
            out,
            "  {} {} on {}: campaign {}, instance {}, confidence {} ({})",
            r.id,
            r.activity_kind,
            r.activity_at
                .map(|t| t.date_naive().to_string())
                .unwrap_or_default(),
            r.campaign
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            r.instance
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            r.confidence,
            codes.join(", ")
        )?;
    }

    // 6. The campaign report: what is linked to each campaign, pending reviews, capacity.
    let campaigns = Reports::new(store.clone()).campaigns(None).await?;
    writeln!(out, "campaigns:")?;
    for m in &campaigns {
        let capacity = m.capacity.map_or_else(
            || "no limit".to_owned(),
            |c| format!("{}/{} ({:.0}%)", c.used, c.limit, c.fraction() * 100.0),
        );
        writeln!(
            out,
            "  {}: {} session(s), {} minute(s), {} participant(s), {} pending review(s), capacity {}",
            m.key,
            m.counts.sessions,
            m.counts.session_minutes,
            m.counts.participants,
            m.pending_reviews,
            capacity
        )?;
    }

    Ok(Walkthrough {
        report,
        batches: batches.len(),
        reviews,
        campaigns,
    })
}
