//! Shared test helpers: fresh PostgreSQL databases and temporary SQLite files.

use sqlx::Connection;
use std::path::PathBuf;

/// The environment variable naming the PostgreSQL server the tests may use.
pub const PG_ENV: &str = "KINTELL_TEST_DATABASE_URL";

/// A fresh PostgreSQL database named with a UUID, dropped when this value is dropped.
pub struct PgDb {
    /// URL of the fresh database.
    pub url: String,
    admin_url: String,
    name: String,
}

/// Creates a fresh database on the server of `KINTELL_TEST_DATABASE_URL`; without the variable prints
/// `skipped: …` naming `test` and returns `None`.
pub async fn fresh_pg(test: &str) -> Option<PgDb> {
    let Ok(admin_url) = std::env::var(PG_ENV) else {
        println!("skipped: {test} needs PostgreSQL; set {PG_ENV}");
        return None;
    };
    let name = format!("kintell_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create test database");
    conn.close().await.expect("close admin connection");
    let url = with_database(&admin_url, &name);
    Some(PgDb {
        url,
        admin_url,
        name,
    })
}

/// Replaces the database name of a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // A separate thread with its own runtime, so dropping works inside and outside async tests.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A temporary SQLite database file, deleted with its directory when dropped.
pub struct SqliteDb {
    /// `sqlite://…?mode=rwc` URL of the file.
    pub url: String,
    /// Path of the database file.
    pub path: PathBuf,
    _dir: tempfile::TempDir,
}

/// A new temporary SQLite database.
pub fn fresh_sqlite() -> SqliteDb {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("test.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    SqliteDb {
        url,
        path,
        _dir: dir,
    }
}

#[test]
fn database_name_is_replaced_in_urls() {
    assert_eq!(
        with_database("postgres://u@h:5432/test", "x"),
        "postgres://u@h:5432/x"
    );
    assert_eq!(
        with_database("postgres://u@h/test?sslmode=disable", "x"),
        "postgres://u@h/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

#[tokio::test]
async fn fresh_pg_creates_and_drops_a_database() {
    let Some(db) = fresh_pg("fresh_pg_creates_and_drops_a_database").await else {
        return;
    };
    let name = db.name.clone();
    let admin = db.admin_url.clone();
    let mut conn = sqlx::PgConnection::connect(&db.url)
        .await
        .expect("connect to the fresh database");
    let current: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(current, name);
    conn.close().await.expect("close");
    drop(db);
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("connect to the server");
    let left: i64 = sqlx::query_scalar("select count(*) from pg_database where datname = $1")
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(left, 0);
}
