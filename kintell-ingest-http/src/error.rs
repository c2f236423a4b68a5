//! The one error type of the handlers: every library error maps to a status and a JSON body
//! `{"error": {"code", "message"}}`, never a stack trace.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// 503: the database cannot serve requests.
    pub fn unavailable(source: impl std::error::Error) -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "database_unavailable",
            message: one_line(&source),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

/// The error and its sources on one line.
fn one_line(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message.replace(['\n', '\r'], " ")
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}
