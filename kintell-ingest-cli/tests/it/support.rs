//! Running the binary against a temporary SQLite file or a fresh PostgreSQL database.

use assert_cmd::Command;
use sqlx::Connection;
use std::path::{Path, PathBuf};

/// A database for one test: a temporary SQLite file, or a fresh PostgreSQL database dropped afterwards.
pub struct Db {
    pub url: String,
    pg: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

impl Db {
    /// A new SQLite database file in a temporary directory.
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
        Db {
            url,
            pg: None,
            _dir: dir,
        }
    }

    /// A fresh PostgreSQL database on `KINTELL_TEST_DATABASE_URL`, or `None` (printing `skipped: …`).
    pub fn postgres(test: &str) -> Option<Db> {
        let Ok(admin) = std::env::var("KINTELL_TEST_DATABASE_URL") else {
            println!("skipped: {test} needs PostgreSQL; set KINTELL_TEST_DATABASE_URL");
            return None;
        };
        let name = format!("kintell_cli_{}", uuid::Uuid::new_v4().simple());
        let (admin_url, create) = (admin.clone(), format!("CREATE DATABASE {name}"));
        block_on(async move {
            let mut c = sqlx::PgConnection::connect(&admin_url)
                .await
                .expect("connect");
            sqlx::query(sqlx::AssertSqlSafe(create))
                .execute(&mut c)
                .await
                .expect("create database");
        });
        let base = admin.split('?').next().unwrap_or(&admin);
        let base = &base[..base.rfind('/').expect("a database URL has a path")];
        Some(Db {
            url: format!("{base}/{name}"),
            pg: Some((admin.clone(), name)),
            _dir: tempfile::tempdir().expect("temporary directory"),
        })
    }

    /// The directory the test may write files to.
    pub fn dir(&self) -> &Path {
        self._dir.path()
    }

    /// The binary with `--database-url` set to this database.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("kintell-ingest").expect("the binary is built");
        c.env_remove("KINTELL_DATABASE_URL")
            .arg("--database-url")
            .arg(&self.url)
            .current_dir(self.dir());
        c
    }

    /// The binary as a plain process (to be spawned and killed), with `--database-url` set to this database.
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_kintell-ingest"));
        c.env_remove("KINTELL_DATABASE_URL")
            .arg("--database-url")
            .arg(&self.url)
            .current_dir(self.dir());
        c
    }

    /// Whether this is the PostgreSQL database.
    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The first column of a query's rows as text (NULL read as empty).
    pub fn scalars(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|r| r.into_iter().next().flatten().unwrap_or_default())
            .collect()
    }

    /// Whether this is the SQLite database.
    pub fn is_sqlite(&self) -> bool {
        self.url.starts_with("sqlite")
    }

    /// An SQL expression rendering the id column `col` as text (SQLite stores ids as 16-byte blobs).
    pub fn id_text(&self, col: &str) -> String {
        if self.is_sqlite() {
            format!("lower(hex({col}))")
        } else {
            format!("replace(CAST({col} AS TEXT), '-', '')")
        }
    }

    /// The rows of a query whose every column is text (or NULL), each row as its cells.
    pub fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// [`Db::rows`], or why the query failed (to poll a database another process writes).
    pub fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, String> {
        type Rows = Vec<Vec<Option<String>>>;
        fn cells<R: sqlx::Row>(rows: Vec<R>) -> Result<Rows, String>
        where
            usize: sqlx::ColumnIndex<R>,
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<Option<String>, _>(i).map_err(|e| e.to_string()))
                        .collect()
                })
                .collect()
        }
        let url = self.url.clone();
        let sql = sql.to_owned();
        let (tx, rx) = std::sync::mpsc::channel();
        block_on(async move {
            let rows = if url.starts_with("sqlite") {
                match sqlx::SqliteConnection::connect(&url).await {
                    Ok(mut c) => sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(cells),
                    Err(e) => Err(e.to_string()),
                }
            } else {
                match sqlx::PgConnection::connect(&url).await {
                    Ok(mut c) => sqlx::query(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&mut c)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(cells),
                    Err(e) => Err(e.to_string()),
                }
            };
            let _ = tx.send(rows);
        });
        rx.recv().map_err(|e| e.to_string())?
    }

    /// The rows of a query as lines of `|`-separated cells (`NULL` for NULL), for comparisons.
    pub fn lines(&self, sql: &str) -> Vec<String> {
        self.rows(sql)
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| c.unwrap_or_else(|| "NULL".to_owned()))
                    .collect::<Vec<_>>()
                    .join("|")
            })
            .collect()
    }

    /// How many rows `table` holds.
    pub fn count(&self, table: &str) -> u64 {
        let rows = self.rows(&format!("SELECT CAST(COUNT(*) AS TEXT) FROM {table}"));
        rows.first()
            .and_then(|r| r.first().cloned().flatten())
            .and_then(|n| n.parse().ok())
            .expect("a count")
    }

    /// The row counts of every table an import writes, for before/after comparisons.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        [
            "ingestion_batches",
            "ingestion_row_errors",
            "users",
            "kintell_sessions",
            "buddy_matches",
            "learning_progress",
            "program_enrollments",
            "program_instances",
            "activity_associations",
        ]
        .into_iter()
        .map(|t| (t, self.count(t)))
        .collect()
    }

    /// Runs one SQL statement against this database.
    pub fn execute(&self, sql: &str) {
        let url = self.url.clone();
        let sql = sql.to_owned();
        block_on(async move {
            if url.starts_with("sqlite") {
                let mut c = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connect");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("execute");
            } else {
                let mut c = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .expect("execute");
            }
        });
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        if let Some((admin, name)) = self.pg.take() {
            block_on(async move {
                if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut c).await;
                }
            });
        }
    }
}

/// Runs a future to completion on a runtime of its own, in its own thread (safe from any context).
pub fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f)
    })
    .join()
    .expect("database helper thread");
}

/// A fixture file of this crate's tests.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Every backend available to this test run: SQLite always, PostgreSQL when configured.
pub fn backends(test: &str) -> Vec<Db> {
    let mut v = vec![Db::sqlite()];
    v.extend(Db::postgres(test));
    v
}

/// A file of `text` in the test's directory.
pub fn write(db: &Db, name: &str, text: &str) -> PathBuf {
    let path = db.dir().join(name);
    std::fs::write(&path, text).expect("write a test file");
    path
}

/// Parses stdout as one JSON document.
pub fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).expect("stdout is one JSON document")
}
