//! Stores: the in-memory store, and the SQLite and PostgreSQL stores behind their features.

#[cfg(feature = "sql")]
pub mod database;
#[cfg(feature = "sql")]
pub mod migrate;

#[cfg(feature = "sql")]
pub use database::{Backend, ConnectError, Database, connect};
#[cfg(feature = "sql")]
pub use migrate::{
    InspectError, MigrateError, MigrationStatus, MigrationStep, VerifyProblem, VerifyReport,
};
