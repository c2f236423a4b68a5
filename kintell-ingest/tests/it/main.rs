//! The library's integration tests: one binary, one module per area.

mod architecture;
mod backfill;
mod batch;
mod catalog;
mod faulty;
mod formats;
mod migrations;
mod review;
mod scoring;
mod stores;
mod support;
