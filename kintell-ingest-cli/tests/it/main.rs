//! The CLI tested as a user runs it: exit codes, stdout, stderr.

mod associate;
mod catalog;
mod migrate;
mod support;
mod usage;
