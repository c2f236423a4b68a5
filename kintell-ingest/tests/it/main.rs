//! The library's integration tests: one binary, one module per area.

mod architecture;
mod backfill;
mod batch;
mod catalog;
mod formats;
mod ingest;
mod migrations;
mod review;
mod scoring;
mod stores;
mod support;
mod webhooks;
