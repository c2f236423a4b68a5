//! Bearer-token authentication of the `/v1` routes.
//!
//! Every path under `/v1` needs `Authorization: Bearer <token>` equal to the configured token, except those under
//! `/v1/webhooks/`, which authenticate by their signature. The middleware decides by path, so a route merged into
//! the router later is protected by default. Tokens are compared in constant time (`subtle`); only their lengths
//! can be told apart by timing. Without a configured token (allowed by [`crate::check_auth_config`] only with
//! `--insecure-no-auth` on loopback) every request passes.

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// The path prefix whose routes authenticate themselves (by signature) instead of by token.
pub const SELF_AUTHENTICATED_PREFIX: &str = "/v1/webhooks/";

/// Whether a request for `path` needs the bearer token.
pub fn requires_token(path: &str) -> bool {
    (path == "/v1" || path.starts_with("/v1/")) && !path.starts_with(SELF_AUTHENTICATED_PREFIX)
}

/// Whether `presented` is the `expected` token, in time independent of where they differ.
fn token_matches(presented: &[u8], expected: &[u8]) -> bool {
    presented.len() == expected.len() && bool::from(presented.ct_eq(expected))
}

/// The middleware: 401 with a JSON error for a protected path without the right token.
pub(crate) async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = state.config.token.as_deref() else {
        return next.run(request).await;
    };
    if !requires_token(request.uri().path()) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if token_matches(token.as_bytes(), expected.as_bytes()) => {
            next.run(request).await
        }
        _ => ApiError::unauthorized().into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_v1_routes_other_than_webhooks_need_the_token() {
        assert!(requires_token("/v1/batches"));
        assert!(requires_token("/v1"));
        assert!(requires_token("/v1/webhooksx"));
        assert!(!requires_token("/v1/webhooks/kintell/session-completed"));
        assert!(!requires_token("/health"));
        assert!(!requires_token("/metrics"));
        assert!(!requires_token("/v10/batches"));
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches(b"s3cret", b"s3cret"));
        assert!(!token_matches(b"s3cre", b"s3cret"));
        assert!(!token_matches(b"s3cret!", b"s3cret"));
        assert!(!token_matches(b"S3cret", b"s3cret"));
        assert!(!token_matches(b"", b"s3cret"));
    }
}
