//! The CLI tested as a user runs it: exit codes, stdout, stderr.

mod catalog;
mod migrate;
mod support;
mod usage;
