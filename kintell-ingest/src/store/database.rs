//! Connecting to a database: the backend is chosen by the URL scheme, and every SQLite connection gets the pragmas
//! the stores rely on.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kintell_ingest::store::Database;
//! let db = Database::connect("sqlite://kintell.db?mode=rwc").await?;
//! db.migrate_up(None).await?;
//! assert!(db.migrate_verify().await?.is_ok());
//! # Ok(()) }
//! ```

use std::fmt;
use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
#[cfg(feature = "sqlite")]
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::migrate::{
    self, InspectError, MigrateError, MigrationStatus, MigrationStep, VerifyReport,
};

/// How long a SQLite connection waits for another writer before giving up with "database is locked".
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite's `wal_autocheckpoint` on every connection: the WAL is copied back into the database once it holds this
/// many pages (64 MiB of 4 KiB pages), instead of SQLite's 1,000.
///
/// An import commits one transaction per chunk, and the rows of a chunk land in every index at random places: at
/// 300,000 rows one commit wrote some 14,000 pages to the WAL. With checkpoints every 1,000 pages each commit was
/// followed by a checkpoint (two `fsync`s, and the copy of every page it touched); with this threshold a checkpoint
/// comes every few chunks and copies a page the chunks share once (300,000 rows: about 10 % faster).
pub const SQLITE_WAL_AUTOCHECKPOINT_PAGES: u32 = 16_384;

/// SQLite's `journal_size_limit` on every connection: after a checkpoint the WAL file is cut back to this size
/// (64 MiB) rather than keeping the size of the largest transaction it ever held.
pub const SQLITE_JOURNAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// Connections a pool keeps at most.
const MAX_CONNECTIONS: u32 = 10;

/// An error from a driver, boxed so that no driver type appears in a public signature.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The database engines the library can store into.
///
/// Both names always exist, whatever features are compiled in, so that messages can name a backend that is
/// disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// SQLite (a file, or memory).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// The lower-case name, also the cargo feature's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backend a database URL names by its scheme: `sqlite:`, `postgres:` or `postgresql:` (any case).
    ///
    /// # Errors
    /// [`ConnectError::UnknownScheme`] for any other scheme, or none.
    pub fn from_url(url: &str) -> Result<Backend, ConnectError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            other => Err(ConnectError::UnknownScheme {
                scheme: other.unwrap_or_default().to_owned(),
                url: redact(url),
            }),
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`Database::connect`] failed. URLs in messages have their password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL's scheme names no backend.
    #[error(
        "unsupported database URL {url:?}: scheme {scheme:?} is not one of sqlite:, postgres:, postgresql:"
    )]
    UnknownScheme {
        /// The scheme found (empty when the URL has none).
        scheme: String,
        /// The URL, redacted.
        url: String,
    },
    /// The URL names a backend this build was compiled without.
    #[error("this build has no {backend} support (cargo feature `{backend}`)")]
    BackendDisabled {
        /// The backend the URL names.
        backend: Backend,
    },
    /// The URL has the right scheme but the driver cannot read it.
    #[error("invalid {backend} database URL {url:?}")]
    InvalidUrl {
        /// The backend the URL names.
        backend: Backend,
        /// The URL, redacted.
        url: String,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
    /// The database could not be reached or opened.
    #[error("could not connect to the {backend} database {url:?}")]
    Connect {
        /// The backend the URL names.
        backend: Backend,
        /// The URL, redacted.
        url: String,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
}

/// A connection pool to one database, of either backend.
///
/// Cloning is cheap and shares the pool.
#[derive(Debug, Clone)]
pub enum Database {
    /// A SQLite database. Every connection has `foreign_keys = ON`, `journal_mode = WAL`,
    /// `synchronous = NORMAL`, a [`SQLITE_BUSY_TIMEOUT`], [`SQLITE_WAL_AUTOCHECKPOINT_PAGES`] and
    /// [`SQLITE_JOURNAL_SIZE_LIMIT_BYTES`].
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    #[cfg(feature = "postgres")]
    Postgres(PgPool),
}

impl Database {
    /// Connects to the database a URL names, choosing the backend by its scheme.
    ///
    /// `sqlite://PATH` opens an existing file; `sqlite://PATH?mode=rwc` also creates it; `sqlite::memory:` is a
    /// private in-memory database shared by the pool's connections (kept open while the pool lives).
    /// `postgres://…` and `postgresql://…` take the usual libpq URL.
    ///
    /// # Errors
    /// [`ConnectError`]: an unknown scheme, a backend compiled out, an unreadable URL, or a database that cannot be
    /// reached.
    pub async fn connect(url: &str) -> Result<Database, ConnectError> {
        match Backend::from_url(url)? {
            Backend::Sqlite => connect_sqlite(url).await,
            Backend::Postgres => connect_postgres(url).await,
        }
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => Backend::Sqlite,
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => Backend::Postgres,
        }
    }

    /// The SQLite pool, when this is SQLite.
    #[cfg(feature = "sqlite")]
    pub fn as_sqlite(&self) -> Option<&SqlitePool> {
        match self {
            Database::Sqlite(pool) => Some(pool),
            #[cfg(feature = "postgres")]
            Database::Postgres(_) => None,
        }
    }

    /// The PostgreSQL pool, when this is PostgreSQL.
    #[cfg(feature = "postgres")]
    pub fn as_postgres(&self) -> Option<&PgPool> {
        match self {
            Database::Postgres(pool) => Some(pool),
            #[cfg(feature = "sqlite")]
            Database::Sqlite(_) => None,
        }
    }

    /// Closes every connection of the pool, waiting for those in use to be returned.
    pub async fn close(&self) {
        match self {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => pool.close().await,
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => pool.close().await,
        }
    }

    /// Applies every pending migration (`migrate up`); the same as `migrate_up(None)`.
    ///
    /// # Errors
    /// See [`Database::migrate_up`].
    pub async fn migrate(&self) -> Result<Vec<MigrationStep>, MigrateError> {
        self.migrate_up(None).await
    }

    /// Applies pending migrations in version order, each in its own transaction: all of them, or at most `steps`.
    /// Returns those applied, in order; none when the schema is up to date. Safe to run from several processes at
    /// once: each migration is applied exactly once.
    ///
    /// # Errors
    /// [`MigrateError`]: the database records a migration this build does not know, or one whose script has
    /// changed since it was applied, or a pending migration older than an applied one (nothing is applied then);
    /// or a migration's SQL failed (that migration is rolled back; those before it stay applied).
    pub async fn migrate_up(
        &self,
        steps: Option<usize>,
    ) -> Result<Vec<MigrationStep>, MigrateError> {
        migrate::up(self, steps).await
    }

    /// Reverts the latest applied migration, or with `all` every applied migration, newest first, each in its
    /// own transaction. Returns those reverted, in the order they were reverted. Once nothing is applied the
    /// bookkeeping table is dropped too, so the database holds nothing of ours.
    ///
    /// # Errors
    /// [`MigrateError`]: the latest applied migration is unknown to this build, or its down SQL failed (it stays
    /// applied).
    pub async fn migrate_down(&self, all: bool) -> Result<Vec<MigrationStep>, MigrateError> {
        migrate::down(self, all).await
    }

    /// Every migration this build knows, applied or not, and any the database records that this build does not
    /// know, in version order (`migrate status`).
    ///
    /// # Errors
    /// [`InspectError`] when the bookkeeping table cannot be read.
    pub async fn migrate_status(&self) -> Result<Vec<MigrationStatus>, InspectError> {
        migrate::status(self).await
    }

    /// Checks the schema against what the applied migrations should have made (`migrate verify`): every table,
    /// column, index (with its uniqueness) and foreign key (with its `ON DELETE`), that no object of an unapplied
    /// migration is present, that every migration is applied, and that no applied script has changed.
    ///
    /// # Errors
    /// [`InspectError`] when the schema cannot be read; problems found are in the report, not errors.
    pub async fn migrate_verify(&self) -> Result<VerifyReport, InspectError> {
        migrate::verify(self).await
    }
}

/// Connects to `url` (see [`Database::connect`]).
///
/// # Errors
/// See [`Database::connect`].
pub async fn connect(url: &str) -> Result<Database, ConnectError> {
    Database::connect(url).await
}

#[cfg(feature = "sqlite")]
async fn connect_sqlite(url: &str) -> Result<Database, ConnectError> {
    use std::str::FromStr;
    let backend = Backend::Sqlite;
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| ConnectError::InvalidUrl {
            backend,
            url: redact(url),
            source: Box::new(e),
        })?
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(SQLITE_BUSY_TIMEOUT)
        .pragma(
            "wal_autocheckpoint",
            SQLITE_WAL_AUTOCHECKPOINT_PAGES.to_string(),
        )
        .pragma(
            "journal_size_limit",
            SQLITE_JOURNAL_SIZE_LIMIT_BYTES.to_string(),
        );
    let mut pool = SqlitePoolOptions::new().max_connections(MAX_CONNECTIONS);
    if is_sqlite_memory(url) {
        // An in-memory database lives as long as one connection to it does.
        pool = pool
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    pool.connect_with(options)
        .await
        .map(Database::Sqlite)
        .map_err(|e| ConnectError::Connect {
            backend,
            url: redact(url),
            source: Box::new(e),
        })
}

#[cfg(not(feature = "sqlite"))]
async fn connect_sqlite(_url: &str) -> Result<Database, ConnectError> {
    Err(ConnectError::BackendDisabled {
        backend: Backend::Sqlite,
    })
}

#[cfg(feature = "postgres")]
async fn connect_postgres(url: &str) -> Result<Database, ConnectError> {
    use sqlx::{ConnectOptions, Connection};
    use std::str::FromStr;
    let backend = Backend::Postgres;
    let options = PgConnectOptions::from_str(url).map_err(|e| ConnectError::InvalidUrl {
        backend,
        url: redact(url),
        source: Box::new(e),
    })?;
    let failed = |e: sqlx::Error| ConnectError::Connect {
        backend,
        url: redact(url),
        source: Box::new(e),
    };
    // The pool retries a refused connection until its acquire timeout and then reports only the timeout; one
    // direct attempt first reports an unreachable server at once, with the reason.
    let probe = options.connect().await.map_err(failed)?;
    // The probe only proves the server answers; failing to say goodbye changes nothing.
    let _ = probe.close().await;
    PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect_with(options)
        .await
        .map(Database::Postgres)
        .map_err(failed)
}

#[cfg(not(feature = "postgres"))]
async fn connect_postgres(_url: &str) -> Result<Database, ConnectError> {
    Err(ConnectError::BackendDisabled {
        backend: Backend::Postgres,
    })
}

/// Whether a SQLite URL names an in-memory database.
#[cfg(feature = "sqlite")]
fn is_sqlite_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

/// The URL with the password of its user-info, if any, replaced by `***`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_owned();
    };
    let user_info = &authority[..at];
    match user_info.split_once(':') {
        Some((user, _password)) => format!("{}{user}:***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_pick_the_backend() {
        let backend = |u| Backend::from_url(u).map_err(|e| e.to_string());
        assert_eq!(backend("sqlite://x.db?mode=rwc"), Ok(Backend::Sqlite));
        assert_eq!(backend("sqlite::memory:"), Ok(Backend::Sqlite));
        assert_eq!(backend("SQLite:x.db"), Ok(Backend::Sqlite));
        assert_eq!(backend("postgres://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(backend("postgresql://u@h/db"), Ok(Backend::Postgres));
        assert_eq!(
            backend("mysql://u:secret@h/db"),
            Err(
                "unsupported database URL \"mysql://u:***@h/db\": scheme \"mysql\" is not one of sqlite:, \
                 postgres:, postgresql:"
                    .to_owned()
            )
        );
        assert!(matches!(
            Backend::from_url("kintell.db"),
            Err(ConnectError::UnknownScheme { scheme, .. }) if scheme.is_empty()
        ));
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://user:pa:ss@host:5432/db?x=1"),
            "postgres://user:***@host:5432/db?x=1"
        );
        assert_eq!(redact("postgres://user@host/db"), "postgres://user@host/db");
        assert_eq!(
            redact("postgres://host/db?u=a@b"),
            "postgres://host/db?u=a@b"
        );
        assert_eq!(redact("sqlite://a.db?mode=rwc"), "sqlite://a.db?mode=rwc");
        assert_eq!(redact("sqlite::memory:"), "sqlite::memory:");
    }
}
