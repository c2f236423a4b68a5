//! The CLI tested as a user runs it: exit codes, stdout, stderr.

mod associate;
mod batches;
mod catalog;
mod crash;
mod demo;
mod import;
mod lineage;
mod migrate;
mod review;
mod support;
mod usage;
