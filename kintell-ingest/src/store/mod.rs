//! Stores: the in-memory store, and the SQLite and PostgreSQL stores behind their features.
//!
//! A [`Store`] is a cheap, cloneable handle on one of them; the library's services take it and speak to it only
//! through the traits of [`crate::ports`].

mod memory;
#[cfg(feature = "sql")]
pub mod sql;

pub use memory::MemoryStore;
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
}

impl Store {
    /// Wraps any implementation of the ports, e.g. a store of your own.
    pub fn from_repositories(repos: Arc<dyn Repositories>) -> Self {
        Store { repos }
    }

    /// The repositories and units of work.
    pub fn repositories(&self) -> &dyn Repositories {
        &*self.repos
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
        f.debug_struct("Store").finish_non_exhaustive()
    }
}
