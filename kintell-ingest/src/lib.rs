//! kintell-ingest: ingest CSV exports of volunteer-programme activity into PostgreSQL or SQLite.
#![deny(missing_docs)]

pub mod association;
pub mod batch;
pub mod catalog;
pub mod domain;
pub mod formats;
pub mod ports;
pub mod scoring;
pub mod store;
pub mod synthetic;
