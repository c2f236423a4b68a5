//! The one error type of the handlers: every library error maps to a status and a JSON body
//! `{"error": {"code", "message", …}}`, never a stack trace.
//!
//! The mapping, in one place:
//!
//! | error | status | code |
//! |---|---|---|
//! | missing or wrong bearer token | 401 | `unauthorized` |
//! | an unknown id in the path | 404 | `not_found` |
//! | a malformed query, body or option; an unknown company, campaign or instance named | 400 | `invalid_request`, `invalid_option`, `unknown_company`, … |
//! | a file error (bad header, unknown instance, …) | 400 | `file_error`, with the file error's `file_code` and the failed `batch` |
//! | the reject limits refuse the file | 422 | `rejected`, with the failed `batch` |
//! | a re-import of a completed file | 409 | `already_imported`, with the completed `batch` |
//! | a live worker holds the batch or run | 409 | `in_progress`, with `batch`, `owner` and `until` |
//! | an illegal transition | 409 | `illegal_transition`, with `state` and `event` |
//! | a review item no longer waiting, a run not resumable, another file given to a resume | 409 | … |
//! | an upload larger than the limit | 413 | `payload_too_large` |
//! | a media type other than CSV, raw bytes or multipart | 415 | `unsupported_media_type` |
//! | the store failed | 500 | `store_failed` (503 `database_unavailable` from `/ready`) |

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kintell_ingest::backfill::BackfillError;
use kintell_ingest::ingest::{ErrorCsvError, ImportError, ImportReport};
use kintell_ingest::reports::ReportError;
use kintell_ingest::review::ReviewError;
use serde_json::{Map, Value, json};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// More fields of the `error` object (the batch concerned, the state and event of a refused transition, …).
    details: Map<String, Value>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// 400 with the code `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 with the code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401: no bearer token, or not the configured one.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required (Authorization: Bearer <token>)",
        )
    }

    /// 500 for an I/O failure of the server itself (its data directory).
    pub fn internal(what: &str, source: &dyn std::error::Error) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("{what}: {}", one_line(source)),
        )
    }

    /// 503: the database cannot serve requests.
    pub fn unavailable(source: impl std::error::Error) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            one_line(&source),
        )
    }

    /// Adds a field to the `error` object.
    pub fn with(mut self, key: &str, value: impl serde::Serialize) -> Self {
        // Serialising the library's records cannot fail; a value that did would be left out rather than panic.
        if let Ok(v) = serde_json::to_value(value) {
            self.details.insert(key.to_owned(), v);
        }
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn from_source(status: StatusCode, code: &'static str, e: &dyn std::error::Error) -> Self {
        ApiError::new(status, code, one_line(e))
    }

    fn with_report(self, report: Option<&ImportReport>) -> Self {
        match report {
            Some(r) => self.with("batch", &r.batch),
            None => self,
        }
    }
}

/// The error and its sources on one line.
pub(crate) fn one_line(error: &dyn std::error::Error) -> String {
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
        let mut error = Map::new();
        error.insert("code".to_owned(), Value::from(self.code));
        error.insert("message".to_owned(), Value::from(self.message));
        error.extend(self.details);
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<ImportError> for ApiError {
    fn from(e: ImportError) -> Self {
        use StatusCode as S;
        let base = |status, code| ApiError::from_source(status, code, &e);
        match &e {
            ImportError::InvalidOption(_) => base(S::BAD_REQUEST, "invalid_option"),
            ImportError::Open { .. } | ImportError::Read { .. } => {
                base(S::INTERNAL_SERVER_ERROR, "spool_unreadable")
            }
            ImportError::File { error, report } => base(S::BAD_REQUEST, "file_error")
                .with("file_code", error.code)
                .with_report(report.as_deref()),
            ImportError::Rejected { report, .. } => {
                base(S::UNPROCESSABLE_ENTITY, "rejected").with_report(Some(report))
            }
            ImportError::AlreadyImported { batch } => {
                base(S::CONFLICT, "already_imported").with("batch", batch)
            }
            ImportError::InProgress {
                batch,
                owner,
                until,
            } => base(S::CONFLICT, "in_progress")
                .with("batch", batch)
                .with("owner", owner)
                .with("until", until),
            ImportError::LeaseLost { batch } => {
                base(S::CONFLICT, "lease_lost").with("batch_id", batch)
            }
            ImportError::NotFound { .. } => base(S::NOT_FOUND, "not_found"),
            ImportError::DifferentFile { .. } => base(S::CONFLICT, "different_file"),
            ImportError::Transition { batch, source } => base(S::CONFLICT, "illegal_transition")
                .with("batch_id", batch)
                .with("state", source.from_status())
                .with("event", source.event().to_string()),
            ImportError::Store(_) => base(S::INTERNAL_SERVER_ERROR, "store_failed"),
        }
    }
}

impl From<ErrorCsvError> for ApiError {
    fn from(e: ErrorCsvError) -> Self {
        match &e {
            ErrorCsvError::NotFound(_) => {
                ApiError::from_source(StatusCode::NOT_FOUND, "not_found", &e)
            }
            ErrorCsvError::Store(_) => {
                ApiError::from_source(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", &e)
            }
            ErrorCsvError::Write(_) => {
                ApiError::from_source(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", &e)
            }
        }
    }
}

impl From<BackfillError> for ApiError {
    fn from(e: BackfillError) -> Self {
        use StatusCode as S;
        let base = |status, code| ApiError::from_source(status, code, &e);
        match &e {
            BackfillError::InvalidOption(_) => base(S::BAD_REQUEST, "invalid_option"),
            BackfillError::UnknownCompany(_) => base(S::BAD_REQUEST, "unknown_company"),
            BackfillError::NotFound(_) => base(S::NOT_FOUND, "not_found"),
            BackfillError::NotResumable { status, .. } => {
                base(S::CONFLICT, "not_resumable").with("state", status)
            }
            BackfillError::Busy { owner, until, .. } => base(S::CONFLICT, "in_progress")
                .with("owner", owner)
                .with("until", until),
            BackfillError::LeaseLost(_) => base(S::CONFLICT, "lease_lost"),
            BackfillError::Store(_) => base(S::INTERNAL_SERVER_ERROR, "store_failed"),
        }
    }
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> Self {
        use StatusCode as S;
        let base = |status, code| ApiError::from_source(status, code, &e);
        match &e {
            ReviewError::NotFound(_) => base(S::NOT_FOUND, "not_found"),
            ReviewError::NotPending { decision, .. } => {
                base(S::CONFLICT, "not_pending").with("decision", decision)
            }
            ReviewError::InstanceRequired(_) => base(S::BAD_REQUEST, "instance_required"),
            ReviewError::UnknownInstance(_) => base(S::BAD_REQUEST, "unknown_instance"),
            ReviewError::OtherCampaign { .. } => base(S::BAD_REQUEST, "other_campaign"),
            ReviewError::ActivityGone { .. } => base(S::CONFLICT, "activity_gone"),
            ReviewError::UnknownCompany(_) => base(S::BAD_REQUEST, "unknown_company"),
            ReviewError::UnknownCampaign(_) => base(S::BAD_REQUEST, "unknown_campaign"),
            ReviewError::NoDecider => base(S::BAD_REQUEST, "invalid_request"),
            ReviewError::Store(_) => base(S::INTERNAL_SERVER_ERROR, "store_failed"),
        }
    }
}

impl From<ReportError> for ApiError {
    fn from(e: ReportError) -> Self {
        match &e {
            ReportError::UnknownCompany(_) => {
                ApiError::from_source(StatusCode::BAD_REQUEST, "unknown_company", &e)
            }
            ReportError::Store(_) => {
                ApiError::from_source(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", &e)
            }
        }
    }
}

impl From<kintell_ingest::ports::StoreError> for ApiError {
    fn from(e: kintell_ingest::ports::StoreError) -> Self {
        ApiError::from_source(StatusCode::INTERNAL_SERVER_ERROR, "store_failed", &e)
    }
}
