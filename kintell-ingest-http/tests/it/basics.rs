//! Liveness, readiness and the start-up checks.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kintell_ingest::store::Store;
use kintell_ingest_http::{AppState, AuthConfigError, check_auth_config};

async fn get(store: Store, path: &str) -> (StatusCode, serde_json::Value) {
    let answer = crate::support::send(
        &AppState::new(store),
        Request::get(path).body(Body::empty()).expect("request"),
    )
    .await;
    (answer.status, answer.json())
}

#[tokio::test]
async fn health_and_ready_answer_on_a_working_store() {
    let (status, body) = get(Store::memory(), "/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    let (status, body) = get(Store::memory(), "/ready").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, serde_json::json!({"status": "ok"}));
}

#[tokio::test]
async fn ready_is_503_with_a_json_error_when_the_schema_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("empty.db").display()
    );
    let store = Store::connect(&url).await.expect("connect");
    let (status, body) = get(store, "/ready").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], "database_unavailable");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("users"), "names what failed: {message}");
}

#[test]
fn the_server_refuses_to_start_without_a_token_unless_insecure_on_loopback() {
    let loopback = "127.0.0.1:8080".parse().expect("addr");
    let v6_loopback = "[::1]:8080".parse().expect("addr");
    let public = "0.0.0.0:8080".parse().expect("addr");
    assert_eq!(check_auth_config(Some("t0ken"), false, public), Ok(()));
    assert_eq!(
        check_auth_config(None, false, loopback),
        Err(AuthConfigError::NoToken)
    );
    assert_eq!(check_auth_config(None, true, loopback), Ok(()));
    assert_eq!(check_auth_config(None, true, v6_loopback), Ok(()));
    assert_eq!(
        check_auth_config(None, true, public),
        Err(AuthConfigError::NotLoopback(public))
    );
    assert_eq!(
        check_auth_config(Some(""), true, loopback),
        Err(AuthConfigError::EmptyToken)
    );
}
