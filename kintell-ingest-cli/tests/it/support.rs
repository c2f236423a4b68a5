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
fn block_on<F: std::future::Future<Output = ()> + Send + 'static>(f: F) {
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

/// Parses stdout as one JSON document.
pub fn json(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).expect("stdout is one JSON document")
}
