//! kintell-ingest: ingest CSV exports of volunteer-programme activity (Kintell sessions and users, buddy matches,
//! course completions) into PostgreSQL or SQLite, with a batch ledger, row lineage and campaign association.
//!
//! The main types:
//!
//! - [`store::Store`]: a handle on a store — [`store::Store::memory`], or [`store::Store::connect`] with a
//!   `sqlite://…` or `postgres://…` URL (features `sqlite` and `postgres`, both on by default) — speaking through
//!   the traits of [`ports`]. [`store::Store::migrate`] brings a database's schema up to date.
//! - [`ingest::Ingestor`]: imports a CSV file ([`ingest::ImportRequest`]) into a batch of the ledger, resumable
//!   and idempotent, and reports it ([`ingest::ImportReport`]); [`ingest::write_error_csv`] exports the rejected
//!   rows.
//! - [`catalog::CatalogImport`]: loads companies, beneficiary groups, campaigns, programme instances and users from
//!   a JSON document, with stable ids.
//! - [`formats::Parser`]: the pure, streaming CSV parser; [`formats::instance_from_file_name`].
//! - [`batch::Batch`] and [`batch::BatchEvent`]: the ingestion batch state machine.
//! - [`scoring::ScoringPolicy`] with [`scoring::score`] and [`scoring::choose`], and [`association::CampaignIndex`]:
//!   how an activity is associated with a campaign and programme instance.
//! - [`webhooks::WebhookHandler`] and [`webhooks::verify_signature`]: Kintell webhook deliveries, applied once
//!   each as one-row batches.
//! - [`domain`]: the validated values everything above speaks in (`Email`, `Rating`, `ProgramSlug`, …).
//!
//! An example on the in-memory store:
//!
//! ```
//! use kintell_ingest::{catalog::CatalogImport, ports::CatalogRepository, store::Store};
//! use kintell_ingest::domain::ProgramSlug;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let store = Store::memory();
//! let catalogue = r#"{
//!   "companies": [{"key": "acme", "name": "Acme AS"}],
//!   "beneficiary_groups": [{"key": "ua", "name": "Ukrainian refugees", "group_type": "refugees",
//!                           "tags": ["refugees", "ukrainian"]}],
//!   "campaigns": [{"key": "acme-2024", "name": "Acme mentors 2024", "company": "acme",
//!                  "beneficiary_group": "ua", "start_date": "2024-01-01", "end_date": "2024-12-31",
//!                  "status": "active"}],
//!   "program_instances": [{"slug": "mentors-ukraine-2024-q4", "campaign": "acme-2024",
//!                          "program_type": "mentors_ukraine", "program_name": "Mentors for Ukraine - Q4 2024",
//!                          "start_date": "2024-10-01", "end_date": "2024-12-31"}]
//! }"#;
//! let report = CatalogImport::new(store.clone()).run_json(catalogue, chrono::Utc::now()).await?;
//! assert_eq!(report.campaigns.inserted, 1);
//!
//! let slug = ProgramSlug::parse("mentors-ukraine-2024-q4")?;
//! let instance = store.instance_by_slug(&slug).await?.expect("imported");
//! assert_eq!(instance.program_name.as_str(), "Mentors for Ukraine - Q4 2024");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod association;
pub mod backfill;
pub mod batch;
pub mod catalog;
pub mod domain;
pub mod formats;
pub mod ingest;
pub mod ports;
pub mod reports;
pub mod review;
pub mod scoring;
pub mod store;
pub mod synthetic;
pub mod webhooks;
