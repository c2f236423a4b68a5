//! The HTTP server driven in-process through its router, and its start-up checks.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use kintell_ingest::store::Store;
use kintell_ingest_http::{AppState, AuthConfigError, check_auth_config, router};
use tower::ServiceExt;

mod webhooks;

async fn get(store: Store, path: &str) -> (StatusCode, serde_json::Value) {
    let response = router(AppState::new(store))
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).expect("a JSON body");
    (status, json)
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

#[tokio::test]
async fn openapi_describes_the_routes_served() {
    let (status, body) = get(Store::memory(), "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["openapi"].as_str().expect("version").starts_with("3."));
    let paths = body["paths"].as_object().expect("paths");
    let mut names: Vec<&str> = paths.keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["/health", "/ready"]);
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
