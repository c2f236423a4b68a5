//! Kintell webhooks over HTTP: `POST /v1/webhooks/kintell/{event}`, authenticated by the HMAC signature of the
//! body instead of the bearer token.
//!
//! [`routes`] serves them over a [`WebhookState`]; the library's [`WebhookHandler`] does the work (see
//! `kintell_ingest::webhooks` for what each event writes and why). Statuses:
//!
//! | status | when | `error.code` |
//! |---|---|---|
//! | 404 | no `KINTELL_WEBHOOK_SECRET`: the routes are disabled | `webhooks_disabled` |
//! | 401 | missing, malformed or wrong `X-Kintell-Signature`, or its `t` more than 300 s from now (each counted in `signature_failures`) | `missing_signature`, `invalid_signature`, `stale_signature` |
//! | 404 | an event other than `session-completed`, `booking-confirmed`, `rating-created` | `unknown_event` |
//! | 400 | no usable `X-Delivery-Id` | `missing_delivery_id` |
//! | 422 | an invalid body | the row error code a CSV row would get (`invalid_email`, `unknown_user`, `invalid_json`, …) |
//! | 404 | a rating of a session that is not stored | `unknown_session` |
//! | 200 | the delivery was applied: `{"delivery_id", "event", "batch_id", "session_id", "row", "association", "replayed": false}` | — |
//! | 200 | a delivery id seen before: the recorded body with `"replayed": true`, nothing processed | — |
//! | 500 | the store failed (nothing was written) | `store_error` |
//!
//! An applied delivery answers 200, not 201, so that a first delivery and its replay look alike to a sender that
//! only checks for success; `replayed` tells them apart. Errors are `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use kintell_ingest::domain::{DeliveryId, WebhookEvent};
use kintell_ingest::ingest::{Clock, SystemClock};
use kintell_ingest::webhooks::{
    DELIVERY_ID_HEADER, Delivery, SIGNATURE_HEADER, SignatureError, WebhookHandler,
    verify_signature,
};
use serde_json::json;

/// The environment variable holding the shared secret; without it the webhook routes answer 404.
pub const SECRET_ENV: &str = "KINTELL_WEBHOOK_SECRET";

/// What the webhook routes share.
#[derive(Clone)]
pub struct WebhookState {
    /// Applies deliveries to the store.
    pub handler: WebhookHandler,
    /// The shared secret; `None` disables the routes.
    pub secret: Option<Arc<[u8]>>,
    /// Requests refused for their signature (the `webhook_signature_failures_total` metric).
    pub signature_failures: Arc<AtomicU64>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("handler", &self.handler)
            .field("enabled", &self.secret.is_some())
            .field("signature_failures", &self.signature_failures)
            .finish()
    }
}

impl WebhookState {
    /// State with `secret` (an empty secret counts as none) and a fresh failure counter.
    pub fn new(handler: WebhookHandler, secret: Option<&[u8]>) -> Self {
        WebhookState {
            handler,
            secret: secret.filter(|s| !s.is_empty()).map(Arc::from),
            signature_failures: Arc::new(AtomicU64::new(0)),
        }
    }

    /// State with the secret of [`SECRET_ENV`], if set and not empty.
    pub fn from_env(handler: WebhookHandler) -> Self {
        let secret = std::env::var(SECRET_ENV).ok();
        Self::new(handler, secret.as_deref().map(str::as_bytes))
    }
}

/// The webhook routes over `state`, state already applied, ready to be merged into any router.
pub fn routes<S: Clone + Send + Sync + 'static>(state: WebhookState) -> Router<S> {
    Router::new()
        .route("/v1/webhooks/kintell/{event}", post(receive))
        .with_state(state)
}

/// The OpenAPI description of the webhook routes, to merge into the server's document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(receive))]
pub struct WebhookApi;

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"code": code, "message": message.into()}});
    (status, Json(body)).into_response()
}

/// Receives one Kintell webhook delivery.
#[utoipa::path(
    post,
    path = "/v1/webhooks/kintell/{event}",
    params(
        ("event" = String, Path, description = "session-completed, booking-confirmed or rating-created"),
        ("X-Kintell-Signature" = String, Header, description = "t=<unix>,v1=<hex HMAC-SHA256 of t + \".\" + body>"),
        ("X-Delivery-Id" = String, Header, description = "the delivery's id, deduplicated"),
    ),
    request_body(content = String, content_type = "application/json", description = "the event's JSON body, exactly as signed"),
    responses(
        (status = 200, description = "applied, or a replay of the recorded answer (`replayed`)"),
        (status = 400, description = "no X-Delivery-Id"),
        (status = 401, description = "missing or invalid signature, or a stale timestamp"),
        (status = 404, description = "webhooks disabled, unknown event, or a rating of an unknown session"),
        (status = 422, description = "an invalid body, with the CSV row error code"),
        (status = 500, description = "the store failed; nothing was written"),
    )
)]
pub async fn receive(
    State(state): State<WebhookState>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(secret) = &state.secret else {
        return error(
            StatusCode::NOT_FOUND,
            "webhooks_disabled",
            format!("webhooks are disabled: {SECRET_ENV} is not set"),
        );
    };
    let signature = headers.get(SIGNATURE_HEADER).map(|v| {
        v.to_str()
            .map_err(|_| SignatureError::Malformed("not text"))
    });
    let checked = match signature {
        None => Err(SignatureError::Missing),
        Some(Err(e)) => Err(e),
        Some(Ok(header)) => verify_signature(secret, Some(header), &body, SystemClock.now()),
    };
    if let Err(e) = checked {
        state.signature_failures.fetch_add(1, Ordering::Relaxed);
        let code = match e {
            SignatureError::Missing => "missing_signature",
            SignatureError::Stale { .. } => "stale_signature",
            _ => "invalid_signature",
        };
        return error(StatusCode::UNAUTHORIZED, code, e.to_string());
    }
    let Ok(event) = WebhookEvent::parse(&event) else {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_event",
            format!(
                "no webhook event {event:?} (expected session-completed, booking-confirmed or rating-created)"
            ),
        );
    };
    let id = headers
        .get(DELIVERY_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| DeliveryId::parse(v).ok());
    let Some(id) = id else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing_delivery_id",
            format!("the {DELIVERY_ID_HEADER} header is missing or empty (1 to 255 characters)"),
        );
    };
    let delivery = Delivery {
        id,
        event,
        body: body.to_vec(),
    };
    match state.handler.handle(&delivery).await {
        Ok(outcome) => {
            let status = StatusCode::from_u16(outcome.status).unwrap_or(StatusCode::OK);
            (status, Json(outcome.body)).into_response()
        }
        Err(e) => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut message = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            error(status, e.code(), message.replace(['\n', '\r'], " "))
        }
    }
}
