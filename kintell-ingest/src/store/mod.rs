//! Stores: the in-memory store, and the SQLite and PostgreSQL stores behind their features.
//!
//! A [`Store`] is a cheap, cloneable handle on one of them; the library's services take it and speak to it only
//! through the traits of [`crate::ports`].

#[cfg(feature = "sql")]
pub mod database;
mod lineage;
mod memory;
#[cfg(feature = "sql")]
pub mod migrate;
#[cfg(feature = "sql")]
pub mod sql;

#[cfg(feature = "sql")]
pub use database::{Backend, ConnectError, Database, connect};
pub use memory::MemoryStore;
#[cfg(feature = "sql")]
pub use migrate::{
    InspectError, MigrateError, MigrationStatus, MigrationStep, VerifyProblem, VerifyReport,
};
#[cfg(feature = "postgres")]
pub use sql::PostgresStore;
#[cfg(feature = "sqlite")]
pub use sql::SqliteStore;

use crate::ports::Repositories;
use std::sync::Arc;

/// A handle on a store: the in-memory one, or a database.
#[derive(Clone)]
pub struct Store {
    repos: Arc<dyn Repositories>,
    /// The database behind the repositories, for schema management; `None` for other stores.
    #[cfg(feature = "sql")]
    database: Option<Database>,
}

impl Store {
    /// Wraps any implementation of the ports, e.g. a store of your own (the `custom_store` example of the
    /// `kintell-ingest-examples` crate shows one). Such a store has no schema: `Store::migrate` applies nothing
    /// and the other schema operations answer `SchemaError::NoSchema` (with the SQL features).
    pub fn from_repositories(repos: Arc<dyn Repositories>) -> Self {
        Store {
            repos,
            #[cfg(feature = "sql")]
            database: None,
        }
    }

    /// The repositories and units of work.
    pub fn repositories(&self) -> &dyn Repositories {
        &*self.repos
    }
}

/// Why a schema operation of a [`Store`] failed.
#[cfg(feature = "sql")]
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The store is not a database (the in-memory store): it has no schema to revert, report or verify.
    #[error("the in-memory store has no schema")]
    NoSchema,
    /// Applying or reverting a migration failed.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    /// The schema could not be read.
    #[error(transparent)]
    Inspect(#[from] InspectError),
}

#[cfg(feature = "sql")]
impl Store {
    /// Connects to the database a URL names (`sqlite://…` or `postgres://…`, see [`Database::connect`]) and
    /// serves the ports from it. The schema is not touched: call [`Store::migrate`].
    ///
    /// # Errors
    /// [`ConnectError`]: an unknown scheme, a backend compiled out, an unreadable URL, or a database that cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Store, ConnectError> {
        Database::connect(url).await.map(Store::from_database)
    }

    /// Serves the ports from a connected database.
    pub fn from_database(database: Database) -> Store {
        let repos: Arc<dyn Repositories> = match &database {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
        };
        Store {
            repos,
            database: Some(database),
        }
    }

    /// The database behind this store; `None` for the in-memory store.
    pub fn database(&self) -> Option<&Database> {
        self.database.as_ref()
    }

    /// Applies every pending migration and returns those applied; on the in-memory store, which needs none,
    /// returns none.
    ///
    /// # Errors
    /// [`SchemaError::Migrate`], see [`Database::migrate_up`].
    pub async fn migrate(&self) -> Result<Vec<MigrationStep>, SchemaError> {
        match &self.database {
            Some(db) => Ok(db.migrate_up(None).await?),
            None => Ok(Vec::new()),
        }
    }

    /// Reverts the latest migration, or with `all` every one (see [`Database::migrate_down`]).
    ///
    /// # Errors
    /// [`SchemaError::NoSchema`] on the in-memory store; [`SchemaError::Migrate`].
    pub async fn migrate_down(&self, all: bool) -> Result<Vec<MigrationStep>, SchemaError> {
        Ok(self.db()?.migrate_down(all).await?)
    }

    /// Every migration and whether it is applied (see [`Database::migrate_status`]).
    ///
    /// # Errors
    /// [`SchemaError::NoSchema`] on the in-memory store; [`SchemaError::Inspect`].
    pub async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, SchemaError> {
        Ok(self.db()?.migrate_status().await?)
    }

    /// Checks the schema against the applied migrations (see [`Database::migrate_verify`]).
    ///
    /// # Errors
    /// [`SchemaError::NoSchema`] on the in-memory store; [`SchemaError::Inspect`].
    pub async fn migrate_verify(&self) -> Result<VerifyReport, SchemaError> {
        Ok(self.db()?.migrate_verify().await?)
    }

    fn db(&self) -> Result<&Database, SchemaError> {
        self.database.as_ref().ok_or(SchemaError::NoSchema)
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Repositories;

    fn deref(&self) -> &Self::Target {
        &*self.repos
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Store");
        #[cfg(feature = "sql")]
        d.field(
            "backend",
            &self.database.as_ref().map(|db| db.backend().as_str()),
        );
        d.finish_non_exhaustive()
    }
}
