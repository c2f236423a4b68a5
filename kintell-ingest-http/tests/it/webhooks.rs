//! The webhook routes in-process: signatures, delivery ids, replays, the three events, disabled routes; on SQLite,
//! and on PostgreSQL when `KINTELL_TEST_DATABASE_URL` is set.

use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kintell_ingest::domain::ImportMethod;
use kintell_ingest::ingest::Ingestor;
use kintell_ingest::ports::BatchFilter;
use kintell_ingest::store::Store;
use kintell_ingest::webhooks::{WebhookHandler, sign};
use kintell_ingest_http::webhooks::{WebhookState, routes};

use crate::support::{self, Backend};

const SECRET: &[u8] = b"whsec_test";

const COMPLETED: &str = r#"{"session_id": "S-1", "session_type": "language",
  "participant_email": "anna@example.com", "volunteer_email": "olga@volunteer.org",
  "scheduled_at": "2025-10-01T10:00:00Z", "completed_at": "2025-10-01T11:00:00Z", "duration_minutes": 60}"#;

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970");
    i64::try_from(since.as_secs()).expect("fits")
}

fn state(store: &Store, secret: Option<&[u8]>) -> WebhookState {
    let handler = WebhookHandler::new(Ingestor::new(store.clone())).create_missing_users(true);
    WebhookState::new(handler, secret)
}

/// Sends one delivery; `signature` and `delivery` are the header values (`None`: header left out).
async fn send(
    app: &Router,
    event: &str,
    body: &str,
    signature: Option<String>,
    delivery: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::post(format!("/v1/webhooks/kintell/{event}"))
        .header("content-type", "application/json");
    if let Some(s) = signature {
        request = request.header("X-Kintell-Signature", s);
    }
    if let Some(d) = delivery {
        request = request.header("X-Delivery-Id", d);
    }
    let answer = support::send_to(
        app.clone(),
        request.body(Body::from(body.to_owned())).expect("request"),
    )
    .await;
    (answer.status, answer.json())
}

fn signed(body: &str) -> Option<String> {
    Some(sign(SECRET, now(), body.as_bytes()).expect("sign"))
}

async fn webhook_batches(store: &Store) -> usize {
    store
        .list_batches(&BatchFilter::default())
        .await
        .expect("batches")
        .iter()
        .filter(|b| b.import_method == ImportMethod::Webhook)
        .count()
}

/// Every check, on one migrated store.
async fn check_all(store: Store) {
    let st = state(&store, Some(SECRET));
    let failures = st.signature_failures.clone();
    let app = routes(st);

    // Signatures.
    let (status, body) = send(&app, "session-completed", COMPLETED, None, Some("D-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("missing_signature"))
    );
    let wrong = Some(sign(b"another secret", now(), COMPLETED.as_bytes()).expect("sign"));
    let (status, body) = send(&app, "session-completed", COMPLETED, wrong, Some("D-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_signature"))
    );
    let tampered = signed(COMPLETED);
    let (status, _) = send(
        &app,
        "session-completed",
        &COMPLETED.replace("60", "61"),
        tampered,
        Some("D-1"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let stale = Some(sign(SECRET, now() - 400, COMPLETED.as_bytes()).expect("sign"));
    let (status, body) = send(&app, "session-completed", COMPLETED, stale, Some("D-1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("stale_signature"))
    );
    let future = Some(sign(SECRET, now() + 400, COMPLETED.as_bytes()).expect("sign"));
    let (status, _) = send(&app, "session-completed", COMPLETED, future, Some("D-1")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(failures.load(Ordering::Relaxed), 5);
    assert_eq!(webhook_batches(&store).await, 0);

    // The delivery id is required; unknown events are not found.
    let (status, body) = send(
        &app,
        "session-completed",
        COMPLETED,
        signed(COMPLETED),
        None,
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("missing_delivery_id"))
    );
    let (status, body) = send(
        &app,
        "session-cancelled",
        COMPLETED,
        signed(COMPLETED),
        Some("D-1"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_event"))
    );

    // A booking, then its completion, then a rating.
    let booking = r#"{"booking_id": "S-1", "session_type": "language", "participant_email": "anna@example.com",
        "volunteer_email": "olga@volunteer.org", "scheduled_at": "2025-10-01T10:00:00Z"}"#;
    let (status, booked) = send(
        &app,
        "booking-confirmed",
        booking,
        signed(booking),
        Some("D-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{booked}");
    assert_eq!(
        (booked["row"].as_str(), booked["replayed"].as_bool()),
        (Some("inserted"), Some(false))
    );
    let (status, done) = send(
        &app,
        "session-completed",
        COMPLETED,
        signed(COMPLETED),
        Some("D-2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["row"], "updated");
    assert_eq!(done["event"], "session-completed");
    let rating = r#"{"rating_id": "R-1", "session_id": "S-1", "from_role": "participant", "rating": 5,
        "feedback_text": "Great", "created_at": "2025-10-02T09:00:00Z"}"#;
    let (status, rated) = send(&app, "rating-created", rating, signed(rating), Some("D-3")).await;
    assert_eq!(status, StatusCode::OK, "{rated}");
    assert_eq!(rated["row"], "updated");
    assert_eq!(webhook_batches(&store).await, 3);

    // A replay: 200 with the recorded outcome, nothing processed.
    let (status, again) = send(
        &app,
        "session-completed",
        COMPLETED,
        signed(COMPLETED),
        Some("D-2"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["batch_id"], done["batch_id"]);
    assert_eq!(again["row"], "updated");
    assert_eq!(webhook_batches(&store).await, 3, "no batch for a replay");
    assert_eq!(
        store
            .count_activities(kintell_ingest::domain::ActivityKind::KintellSession)
            .await
            .expect("count"),
        1
    );

    // A rating of an unknown session; an invalid body.
    let unknown = rating.replace("S-1", "S-404");
    let (status, body) = send(
        &app,
        "rating-created",
        &unknown,
        signed(&unknown),
        Some("D-4"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_session"))
    );
    let invalid = COMPLETED.replace("anna@example.com", "anna-at-example");
    let (status, body) = send(
        &app,
        "session-completed",
        &invalid,
        signed(&invalid),
        Some("D-5"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_email"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains("participant_email")
    );
    assert_eq!(webhook_batches(&store).await, 3);
}

/// `check_all` on a fresh, migrated database of `backend` (skipped without PostgreSQL).
async fn check_on(backend: Backend, test: &str) {
    let Some(db) = support::fresh(backend, test).await else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    check_all(store.clone()).await;
    if let Some(pool) = store.database() {
        pool.close().await;
    }
}

#[tokio::test]
async fn webhooks_on_sqlite() {
    check_on(Backend::Sqlite, "webhooks_on_sqlite").await;
}

#[tokio::test]
async fn webhooks_on_postgres() {
    check_on(Backend::Postgres, "webhooks_on_postgres").await;
}

#[tokio::test]
async fn webhooks_are_disabled_without_a_secret() {
    let store = Store::memory();
    for secret in [None, Some(&b""[..])] {
        let app = routes(state(&store, secret));
        let (status, body) = send(
            &app,
            "session-completed",
            COMPLETED,
            signed(COMPLETED),
            Some("D-1"),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "webhooks_disabled");
    }
    assert_eq!(webhook_batches(&store).await, 0);
}

#[test]
fn the_webhook_route_is_in_its_openapi_document() {
    use utoipa::OpenApi;
    let doc = kintell_ingest_http::webhooks::WebhookApi::openapi();
    assert!(doc.paths.paths.contains_key("/v1/webhooks/kintell/{event}"));
}
