//! `POST /v1/imports/{entity}`: spool the upload, start the import in the background, answer with its batch.
//!
//! Choices where the specification is silent:
//! - The batch's file name is the query's `file_name`, else the multipart part's file name, else `upload.csv`.
//!   (It matters: a file name can name a programme instance, as in the CLI.)
//! - Unknown query parameters are refused (400), so a misspelt option is not silently ignored.
//! - A dry run runs within the request and answers 200 with the import report (`import --json`'s document):
//!   nothing is stored, so there is no batch to follow.
//! - The reject limits (`max_errors`, `max_error_ratio`) refusing the file answer 422 with the failed batch.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kintell_ingest::domain::{EntityKind, ProgramType, TimeZoneOffset};
use kintell_ingest::formats::{Delimiter, FormatId};
use kintell_ingest::ingest::{ImportOptions, ImportRequest, ImportSource};
use kintell_ingest::scoring::ScoringPolicy;
use serde::Deserialize;

use super::{batch_json, option, rejected};
use crate::jobs::{self, Job, Started};
use crate::upload;
use crate::{ApiError, AppState};

/// The import options, named as the CLI's long options with `_`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ImportQuery {
    /// Link every row to this programme instance (slug).
    program_instance: Option<String>,
    /// The batch's programme type (mentors_ukraine, language_ukraine, buddy, upskilling, kintell).
    program_type: Option<String>,
    /// The format instead of detecting it.
    format: Option<String>,
    /// The delimiter instead of sniffing it: `,`, `;` or `tab`.
    delimiter: Option<String>,
    /// The zone of timestamps written without one, ±HH:MM.
    timezone: Option<String>,
    /// The zone of the dates association compares with campaign windows, ±HH:MM.
    policy_timezone: Option<String>,
    /// Import even a file a completed batch already imported.
    force: Option<bool>,
    /// Run everything and roll it back; answers 200 with the report.
    dry_run: Option<bool>,
    /// Rows per transaction.
    chunk_size: Option<usize>,
    /// Refuse the file when more rows than this are invalid.
    max_errors: Option<u64>,
    /// Refuse the file when a larger share of rows than this (0 to 1) is invalid.
    max_error_ratio: Option<f64>,
    /// Create users for unknown emails instead of rejecting their rows.
    create_missing_users: Option<bool>,
    /// The file name recorded on the batch.
    file_name: Option<String>,
}

/// The entity words of the path (those of the CLI).
fn entity(word: &str) -> Result<EntityKind, ApiError> {
    match word {
        "sessions" => Ok(EntityKind::KintellSessions),
        "users" => Ok(EntityKind::KintellUsers),
        "buddy-matches" => Ok(EntityKind::BuddyMatches),
        "course-completions" => Ok(EntityKind::CourseCompletions),
        other => Err(ApiError::not_found(format!(
            "unknown entity {other:?}: expected sessions, users, buddy-matches or course-completions"
        ))),
    }
}

fn options(entity: EntityKind, q: &ImportQuery) -> Result<ImportOptions, ApiError> {
    Ok(ImportOptions {
        entity: Some(entity),
        program_instance: q.program_instance.clone(),
        program_type: q
            .program_type
            .as_deref()
            .map(|t| option("program_type", ProgramType::parse(t)))
            .transpose()?,
        format: q
            .format
            .as_deref()
            .map(|f| option("format", FormatId::parse(f)))
            .transpose()?,
        delimiter: q
            .delimiter
            .as_deref()
            .map(|d| option("delimiter", Delimiter::parse(d)))
            .transpose()?,
        timezone: q
            .timezone
            .as_deref()
            .map(|z| option("timezone", TimeZoneOffset::parse(z)))
            .transpose()?,
        force: q.force.unwrap_or(false),
        dry_run: q.dry_run.unwrap_or(false),
        chunk_size: q.chunk_size,
        max_errors: q.max_errors,
        max_error_ratio: q.max_error_ratio,
        create_missing_users: q.create_missing_users.unwrap_or(false),
    })
}

/// Upload a CSV export and import it in the background.
#[utoipa::path(
    post,
    path = "/v1/imports/{entity}",
    params(("entity" = String, Path, description = "sessions, users, buddy-matches or course-completions"), ImportQuery),
    request_body(content = Vec<u8>, description = "the CSV file (text/csv, application/csv, application/octet-stream), or multipart/form-data with a part `file`", content_type = "text/csv"),
    responses(
        (status = 202, description = "the batch, stored and running; follow it at /v1/batches/{id}"),
        (status = 200, description = "a dry run's report (nothing stored)"),
        (status = 400, description = "a bad option, or a file error (bad header, …) with the failed batch", body = super::ErrorBody),
        (status = 401, description = "no valid bearer token", body = super::ErrorBody),
        (status = 409, description = "a re-import of a completed file (naming its batch), or a live worker imports it", body = super::ErrorBody),
        (status = 413, description = "larger than the upload limit", body = super::ErrorBody),
        (status = 415, description = "not a CSV, raw bytes or multipart body", body = super::ErrorBody),
        (status = 422, description = "the reject limits refused the file (failed batch, no row stored)", body = super::ErrorBody),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn import(
    State(state): State<AppState>,
    Path(word): Path<String>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let entity = entity(&word)?;
    let Query(q) = query.map_err(rejected)?;
    let opts = options(entity, &q)?;
    let mut ingestor = state.config.ingestor.clone();
    if let Some(z) = &q.policy_timezone {
        ingestor = ingestor.policy(ScoringPolicy::with_timezone(option(
            "policy_timezone",
            TimeZoneOffset::parse(z),
        )?));
    }
    upload::precheck(&request, state.config.max_upload_bytes)?;
    let spooled = upload::spool(&state, request).await?;
    let name = q
        .file_name
        .clone()
        .or(spooled.file_name)
        .unwrap_or_else(|| "upload.csv".to_owned());
    let source = ImportSource::from_path(&spooled.path).with_file_name(name);
    let request = ImportRequest::new(source).with_options(opts);
    match jobs::start(&state, ingestor, Job::Import(request)).await {
        Started::Running(batch) => Ok((
            StatusCode::ACCEPTED,
            [(header::LOCATION, format!("/v1/batches/{}", batch.id))],
            Json(batch_json(&state, &batch)),
        )
            .into_response()),
        Started::Ended(outcome) => match *outcome {
            Ok(report) => Ok((StatusCode::OK, Json(report.to_json())).into_response()),
            Err(e) => Err(e.into()),
        },
    }
}
