//! Shared helpers: a server state on a fresh SQLite file or PostgreSQL database with a temporary data directory,
//! requests in-process (`oneshot`), and a small HTTP/1.1 client for real servers.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use bytes::Bytes;
use http_body_util::BodyExt;
use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::BatchRecord;
use kintell_ingest::ingest::Ingestor;
use kintell_ingest::store::Store;
use kintell_ingest_http::{AppState, router};
use sqlx::Connection;
use std::time::{Duration, Instant};
use tower::ServiceExt;

/// The bearer token of every test server.
pub const TOKEN: &str = "t0ken-for-tests";

/// The environment variable naming the PostgreSQL server the tests may use.
pub const PG_ENV: &str = "KINTELL_TEST_DATABASE_URL";

/// A fresh database, its URL, and what keeps it alive.
pub struct Db {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl Drop for Db {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
    }
}

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A fresh database of `backend`; `None` (after printing `skipped: …`) for PostgreSQL without
/// `KINTELL_TEST_DATABASE_URL`.
pub async fn fresh(backend: Backend, test: &str) -> Option<Db> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
            Some(Db {
                url,
                _dir: Some(dir),
                pg: None,
            })
        }
        Backend::Postgres => {
            let Ok(admin) = std::env::var(PG_ENV) else {
                println!("skipped: {test} needs PostgreSQL; set {PG_ENV}");
                return None;
            };
            let name = format!("kintell_test_{}", uuid::Uuid::new_v4().simple());
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .expect("connect to the test server");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create the test database");
            conn.close().await.expect("close");
            let url = match admin.rfind('/') {
                Some(i) if i > admin.find("://").map_or(0, |s| s + 2) => {
                    format!("{}/{name}", &admin[..i])
                }
                _ => format!("{admin}/{name}"),
            };
            Some(Db {
                url,
                _dir: None,
                pg: Some((admin, name)),
            })
        }
    }
}

/// A server's state and what it needs alive.
pub struct Env {
    pub state: AppState,
    pub store: Store,
    pub data: tempfile::TempDir,
    pub db: Db,
}

impl Env {
    /// A state on `db` with the catalogue loaded, the test token and a fresh data directory.
    pub async fn new(db: Db) -> Env {
        let data = tempfile::tempdir().expect("tempdir");
        Env::on(db, data).await
    }

    /// A state on `db` and the data directory `data` (both possibly used before).
    pub async fn on(db: Db, data: tempfile::TempDir) -> Env {
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        CatalogImport::new(store.clone())
            .run_json(&fixture_text("catalog.json"), chrono::Utc::now())
            .await
            .expect("catalogue");
        let state = AppState::new(store.clone())
            .with_token(Some(TOKEN.to_owned()))
            .with_data_dir(data.path());
        Env {
            state,
            store,
            data,
            db,
        }
    }

    /// The same with imports in chunks of `n` rows.
    pub fn chunks(mut self, n: usize) -> Env {
        let ingestor = Ingestor::new(self.store.clone())
            .chunk_size(n)
            .imported_by("kintell-ingest-http");
        self.state = self.state.with_ingestor(ingestor);
        self
    }

    /// Names of the files in the upload directory.
    pub fn spooled(&self) -> Vec<String> {
        match std::fs::read_dir(self.state.uploads_dir()) {
            Ok(entries) => {
                let mut names: Vec<String> = entries
                    .filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names
            }
            Err(_) => Vec::new(),
        }
    }
}

/// Makes a `sqlite` and a `postgres` test of `async fn $name(Env)`.
#[macro_export]
macro_rules! on_both {
    ($name:ident) => {
        mod $name {
            use $crate::support::{Backend, Env, fresh};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let db = fresh(Backend::Sqlite, stringify!($name))
                    .await
                    .expect("sqlite");
                super::$name(Env::new(db).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(db) = fresh(Backend::Postgres, stringify!($name)).await else {
                    return;
                };
                super::$name(Env::new(db).await).await;
            }
        }
    };
}

pub fn fixture_text(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// An answer.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code: {}", self.text()))
            .to_owned()
    }
}

/// Sends `request` through the router in-process.
pub async fn send(state: &AppState, request: Request<Body>) -> Answer {
    send_to(router(state.clone()), request).await
}

/// Sends `request` through `app` (a router, or a part of one) in-process.
pub async fn send_to(app: axum::Router, request: Request<Body>) -> Answer {
    let response = app.oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

/// A request with the test token.
pub fn authed(method: &str, uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {TOKEN}"))
}

pub async fn get(state: &AppState, uri: &str) -> Answer {
    send(
        state,
        authed("GET", uri).body(Body::empty()).expect("request"),
    )
    .await
}

pub async fn post_json(state: &AppState, uri: &str, body: serde_json::Value) -> Answer {
    send(
        state,
        authed("POST", uri)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request"),
    )
    .await
}

pub async fn post_empty(state: &AppState, uri: &str) -> Answer {
    send(
        state,
        authed("POST", uri).body(Body::empty()).expect("request"),
    )
    .await
}

/// Uploads `csv` as `text/csv`.
pub async fn upload(state: &AppState, uri: &str, csv: impl Into<Body>) -> Answer {
    send(
        state,
        authed("POST", uri)
            .header("content-type", "text/csv")
            .body(csv.into())
            .expect("request"),
    )
    .await
}

/// Polls the batch until `done` says so, or panics after `within`.
pub async fn wait_batch(
    store: &Store,
    id: kintell_ingest::domain::BatchId,
    within: Duration,
    done: impl Fn(&BatchRecord) -> bool,
) -> BatchRecord {
    let deadline = Instant::now() + within;
    loop {
        let b = store.get_batch(id).await.expect("read").expect("stored");
        if done(&b) {
            return b;
        }
        assert!(
            Instant::now() < deadline,
            "the batch did not get there in {within:?}: {b:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The batch id of a batch resource.
pub fn batch_id(v: &serde_json::Value) -> kintell_ingest::domain::BatchId {
    kintell_ingest::domain::BatchId(
        uuid::Uuid::parse_str(v["id"].as_str().unwrap_or_else(|| panic!("no id: {v}")))
            .expect("uuid"),
    )
}

/// Polls until `f` holds, or panics after `within`.
pub async fn eventually(within: Duration, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
