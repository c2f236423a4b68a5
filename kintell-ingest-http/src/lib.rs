//! The kintell-ingest HTTP server as a library: [`router`] builds the axum [`Router`] over an [`AppState`], so a
//! host service can mount it and tests can drive it in-process. Handlers parse, call the library and map results
//! (through [`ApiError`]); nothing else.
//!
//! Routes: `GET /health`, `GET /ready`, `GET /openapi.json`, `GET /metrics`, and under `/v1` (bearer token):
//! imports (`POST /v1/imports/{entity}`), the batch ledger (`/v1/batches…`), backfill runs
//! (`/v1/associations/…`), the review queue (`/v1/reviews…`) and the campaign report (`/v1/campaigns/metrics`).
//! [`ApiDoc`] describes them all. See the modules for the decisions where the specification is silent.
//!
//! A server process: build the state ([`AppState::new`] and its `with_…` methods), call [`resume_spooled`], serve
//! [`router`] with graceful shutdown, then [`AppState::shutdown`] so running imports stop between chunks.
#![deny(missing_docs)]

mod auth;
mod error;
mod jobs;
pub mod metrics;
mod routes;
mod upload;
pub mod webhooks;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use axum::http::header;
use axum::response::IntoResponse;
use axum::{Json, Router, extract::State, middleware, routing::get};
use kintell_ingest::domain::BatchStatus;
use kintell_ingest::ingest::{ImportSource, Ingestor, stopped_by_signal};
use kintell_ingest::ports::BatchFilter;
use kintell_ingest::store::Store;
use serde::Serialize;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;

pub use auth::{SELF_AUTHENTICATED_PREFIX, requires_token};
pub use error::ApiError;
pub use metrics::Metrics;

/// The upload limit unless configured: 1 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1024 * 1024 * 1024;

/// The settings handlers read.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) token: Option<String>,
    pub(crate) data_dir: PathBuf,
    pub(crate) max_upload_bytes: u64,
    pub(crate) ingestor: Ingestor,
    pub(crate) webhook_secret: Option<Arc<[u8]>>,
}

/// What every handler shares. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The store the server works on.
    pub store: Store,
    /// Webhook deliveries refused for their signature (exported as `webhook_signature_failures_total`).
    pub webhook_signature_failures: Arc<AtomicU64>,
    /// Request and ingestion counters (exported by `GET /metrics`).
    pub metrics: Arc<Metrics>,
    pub(crate) config: Arc<Config>,
    pub(crate) jobs: Arc<jobs::Jobs>,
}

impl AppState {
    /// State over `store`: no token (see [`check_auth_config`]), uploads spooled under `data`, the
    /// [`DEFAULT_MAX_UPLOAD_BYTES`] limit, a default [`Ingestor`] recording `kintell-ingest-http` as the importer.
    pub fn new(store: Store) -> Self {
        let ingestor = Ingestor::new(store.clone()).imported_by("kintell-ingest-http");
        AppState {
            store,
            webhook_signature_failures: Arc::new(AtomicU64::new(0)),
            metrics: Arc::new(Metrics::default()),
            config: Arc::new(Config {
                token: None,
                data_dir: PathBuf::from("data"),
                max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
                ingestor,
                webhook_secret: None,
            }),
            jobs: Arc::new(jobs::Jobs::default()),
        }
    }

    fn configure(mut self, f: impl FnOnce(&mut Config)) -> Self {
        f(Arc::make_mut(&mut self.config));
        self
    }

    /// Requires `Authorization: Bearer <token>` on the `/v1` routes (`None`: no authentication).
    pub fn with_token(self, token: Option<String>) -> Self {
        self.configure(|c| c.token = token)
    }

    /// Serves the Kintell webhooks, checking their signatures with `secret` (`None` or empty: the webhook routes
    /// answer 404). The `main` binary reads it from [`webhooks::SECRET_ENV`].
    pub fn with_webhook_secret(self, secret: Option<&[u8]>) -> Self {
        let secret = secret.filter(|s| !s.is_empty()).map(Arc::from);
        self.configure(|c| c.webhook_secret = secret)
    }

    /// Spools uploads under `dir/uploads/`.
    pub fn with_data_dir(self, dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        self.configure(|c| c.data_dir = dir)
    }

    /// Refuses uploads larger than `bytes` (413).
    pub fn with_max_upload_bytes(self, bytes: u64) -> Self {
        self.configure(|c| c.max_upload_bytes = bytes)
    }

    /// Runs imports and resumes with `ingestor` (its chunk size, lease, policy, host); it should write to the
    /// same store.
    pub fn with_ingestor(self, ingestor: Ingestor) -> Self {
        self.configure(|c| c.ingestor = ingestor)
    }

    /// Where uploads are spooled: `DATA_DIR/uploads`.
    pub fn uploads_dir(&self) -> PathBuf {
        self.config.data_dir.join("uploads")
    }

    /// Stops the imports this server runs before their next chunk (each batch paused with the stop reason, its
    /// lease released) and waits for them. Call it after the server stopped accepting requests.
    pub async fn shutdown(&self) {
        self.jobs.stop();
        self.jobs.wait().await;
    }
}

/// The OpenAPI document of every route served. A route is added by one line in `paths(…)`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "kintell-ingest",
        description = "Ingestion of volunteer-programme activity exports: uploads, the batch ledger, backfills, \
                       the review queue, campaign metrics. Every /v1 route except the webhooks needs \
                       `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    paths(
        health,
        ready,
        metrics_text,
        routes::imports::import,
        routes::batches::list,
        routes::batches::show,
        routes::batches::errors,
        routes::batches::resume,
        routes::batches::pause,
        routes::batches::cancel,
        routes::associations::backfill,
        routes::associations::runs,
        routes::associations::show,
        routes::associations::resume,
        routes::reviews::list,
        routes::reviews::show,
        routes::reviews::accept,
        routes::reviews::reject,
        routes::campaigns::metrics,
        openapi,
        webhooks::receive,
    ),
    components(schemas(Status, routes::ErrorBody, routes::ErrorDetail, routes::reviews::AcceptBody, routes::reviews::RejectBody))
)]
pub struct ApiDoc;

/// Declares the bearer scheme of the `/v1` routes.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The webhook handler writes through the server's ingestor (its store, clock, policy and host).
fn webhooks_handler(state: &AppState) -> kintell_ingest::webhooks::WebhookHandler {
    kintell_ingest::webhooks::WebhookHandler::new(state.config.ingestor.clone())
}

/// The server's routes over `state`.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics_text))
        .merge(routes::v1())
        // The webhook routes are authenticated by their signature, not the bearer token (their paths are under
        // `SELF_AUTHENTICATED_PREFIX`); merged before the layers below, they are timed and traced like every route.
        .merge(webhooks::routes(webhooks::WebhookState {
            handler: webhooks_handler(&state),
            secret: state.config.webhook_secret.clone(),
            signature_failures: state.webhook_signature_failures.clone(),
        }));
    // The layers wrap every route assembled above (axum applies `layer` to the routes present when it is called,
    // after routing, so the metrics see the matched route template): innermost first.
    routes
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Resumes, in the background, the batches whose spooled input this server holds and which no live worker holds:
/// those a stopping server paused ([`kintell_ingest::ingest::STOPPED_REASON`]), and `running` ones whose lease
/// expired or whose holder is a dead process of this host (the library refuses a live holder; such a batch is
/// skipped). Returns the ids of the batches resumed.
///
/// # Errors
/// [`ApiError`] when the ledger cannot be read.
pub async fn resume_spooled(
    state: &AppState,
) -> Result<Vec<kintell_ingest::domain::BatchId>, ApiError> {
    let mut candidates = Vec::new();
    for status in [BatchStatus::Paused, BatchStatus::Running] {
        let batches = state
            .store
            .list_batches(&BatchFilter {
                status: Some(status),
                entity_kind: None,
                limit: None,
            })
            .await?;
        candidates.extend(
            batches
                .into_iter()
                .filter(|b| b.status == BatchStatus::Running || stopped_by_signal(b)),
        );
    }
    let mut resumed = Vec::new();
    for batch in candidates {
        let spool = state.uploads_dir().join(&batch.file_hash);
        if !tokio::fs::try_exists(&spool).await.unwrap_or(false) {
            continue;
        }
        let source = ImportSource::from_path(spool).with_file_name(batch.file_name.clone());
        let ingestor = state.config.ingestor.clone();
        match jobs::start(state, ingestor, jobs::Job::Resume(batch.id, source)).await {
            jobs::Started::Running(b) => {
                tracing::info!(batch = %b.id, from_row = b.last_processed_row, "resumed a spooled batch");
                resumed.push(b.id);
            }
            jobs::Started::Ended(outcome) => match *outcome {
                Ok(r) => {
                    tracing::info!(batch = %r.batch.id, status = %r.batch.status, "a spooled batch ended at once");
                }
                Err(e) => {
                    tracing::info!(batch = %batch.id, reason = %error::one_line(&e), "a spooled batch was not resumed");
                }
            },
        }
    }
    Ok(resumed)
}

/// Why the server refuses to start with this authentication set-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthConfigError {
    /// No token and no `--insecure-no-auth`.
    #[error(
        "KINTELL_API_TOKEN is not set: set it, or pass --insecure-no-auth on a loopback address"
    )]
    NoToken,
    /// `--insecure-no-auth` on an address other machines can reach.
    #[error("--insecure-no-auth is only allowed on a loopback address, not {0}")]
    NotLoopback(SocketAddr),
    /// An empty token would let anyone in.
    #[error("KINTELL_API_TOKEN is empty")]
    EmptyToken,
}

/// Checks the authentication set-up before the server binds: a bearer token is required, unless
/// `insecure_no_auth` is given and the bind address is loopback.
///
/// # Errors
/// [`AuthConfigError`] naming what is wrong.
pub fn check_auth_config(
    token: Option<&str>,
    insecure_no_auth: bool,
    bind: SocketAddr,
) -> Result<(), AuthConfigError> {
    match token {
        Some("") => Err(AuthConfigError::EmptyToken),
        Some(_) => Ok(()),
        None if !insecure_no_auth => Err(AuthConfigError::NoToken),
        None if !bind.ip().is_loopback() => Err(AuthConfigError::NotLoopback(bind)),
        None => Ok(()),
    }
}

/// The body of `/health` and `/ready`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Status {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", responses((status = 200, description = "the server is alive", body = Status)))]
async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: the database answers a query on the schema.
#[utoipa::path(
    get,
    path = "/ready",
    responses(
        (status = 200, description = "the database answers", body = Status),
        (status = 503, description = "the database does not answer or has no schema", body = routes::ErrorBody)
    )
)]
async fn ready(State(state): State<AppState>) -> Result<Json<Status>, ApiError> {
    state
        .store
        .count_users()
        .await
        .map_err(ApiError::unavailable)?;
    Ok(Json(Status { status: "ok" }))
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "the OpenAPI 3 document of the server")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "the metrics", content_type = "text/plain")))]
async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.webhook_signature_failures),
    )
}
