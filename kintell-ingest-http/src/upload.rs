//! Spooling an upload to `DATA_DIR/uploads/`: the body is written to a temporary file while it is hashed, then
//! renamed to its lower-case hex SHA-256. The body is never held in memory: it is read frame by frame (for
//! `multipart/form-data`, chunk by chunk of the `file` part) and written in pieces of at most [`WRITE_BUFFER`]
//! bytes.
//!
//! Accepted media types: `text/csv`, `application/csv`, `application/octet-stream` (the body is the file) and
//! `multipart/form-data` (the first part named `file` is the file; its file name is the batch's unless the query
//! names one). Anything else, or no `Content-Type`, is 415. A body larger than the limit is 413: refused before
//! reading when `Content-Length` announces it, else as soon as the count passes it (the partial file is deleted).

use std::path::{Path, PathBuf};

use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{StatusCode, header};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{ApiError, AppState};

/// Bytes gathered before each write to the spool file.
pub const WRITE_BUFFER: usize = 256 * 1024;

/// The prefix of spool files still being written (they are renamed to their hash when complete).
pub const PARTIAL_PREFIX: &str = ".upload-";

/// A complete spooled upload.
#[derive(Debug)]
pub(crate) struct Spooled {
    /// `DATA_DIR/uploads/<sha256>`.
    pub path: PathBuf,
    /// The file name the multipart part gave, if any.
    pub file_name: Option<String>,
}

/// The media types accepted, for messages.
const ACCEPTED: &str = "text/csv, application/csv, application/octet-stream or multipart/form-data";

enum Kind {
    Raw,
    Multipart,
}

fn kind(request: &Request) -> Result<Kind, ApiError> {
    let media = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        });
    match media.as_deref() {
        Some("text/csv" | "application/csv" | "application/octet-stream") => Ok(Kind::Raw),
        Some("multipart/form-data") => Ok(Kind::Multipart),
        Some(other) => Err(unsupported(&format!("the media type {other:?}"))),
        None => Err(unsupported("a body without Content-Type")),
    }
}

fn unsupported(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("{what} is not accepted: send {ACCEPTED}"),
    )
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the upload is larger than the limit of {limit} bytes"),
    )
}

/// Checks the media type and announced size without reading the body.
pub(crate) fn precheck(request: &Request, limit: u64) -> Result<(), ApiError> {
    kind(request)?;
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match announced {
        Some(n) if n > limit => Err(too_large(limit)),
        _ => Ok(()),
    }
}

/// Spools the body of `request`.
pub(crate) async fn spool(state: &AppState, request: Request) -> Result<Spooled, ApiError> {
    let limit = state.config.max_upload_bytes;
    precheck(&request, limit)?;
    let dir = state.config.data_dir.join("uploads");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| ApiError::internal("cannot create the upload directory", &e))?;
    let mut writer = SpoolWriter::create(&dir, limit).await?;
    let filled = match kind(&request)? {
        Kind::Raw => fill_raw(&mut writer, request).await.map(|()| None),
        Kind::Multipart => fill_multipart(&mut writer, state, request).await.map(Some),
    };
    match filled {
        Ok(file_name) => {
            let path = writer.finish(&dir).await?;
            Ok(Spooled {
                path,
                file_name: file_name.flatten(),
            })
        }
        Err(e) => {
            writer.discard().await;
            Err(e)
        }
    }
}

async fn fill_raw(writer: &mut SpoolWriter, request: Request) -> Result<(), ApiError> {
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| unreadable(&e))?;
        if let Some(data) = frame.data_ref() {
            writer.write(data).await?;
        }
    }
    Ok(())
}

/// Spools the first part named `file`; returns its file name.
async fn fill_multipart(
    writer: &mut SpoolWriter,
    state: &AppState,
    request: Request,
) -> Result<Option<String>, ApiError> {
    let mut multipart = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().map(str::to_owned);
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::bad_request(format!("invalid multipart body: {e}")))?
        {
            writer.write(&chunk).await?;
        }
        return Ok(name);
    }
    Err(ApiError::bad_request(
        "the multipart body has no part named \"file\"",
    ))
}

fn unreadable(e: &dyn std::error::Error) -> ApiError {
    ApiError::bad_request(format!(
        "the request body could not be read: {}",
        crate::error::one_line(e)
    ))
}

/// A spool file being written.
struct SpoolWriter {
    file: tokio::fs::File,
    tmp: PathBuf,
    hasher: Sha256,
    size: u64,
    limit: u64,
    buffer: Vec<u8>,
}

impl SpoolWriter {
    async fn create(dir: &Path, limit: u64) -> Result<Self, ApiError> {
        let tmp = dir.join(format!("{PARTIAL_PREFIX}{}", uuid::Uuid::now_v7().simple()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| ApiError::internal("cannot create a spool file", &e))?;
        Ok(SpoolWriter {
            file,
            tmp,
            hasher: Sha256::new(),
            size: 0,
            limit,
            buffer: Vec::with_capacity(WRITE_BUFFER),
        })
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), ApiError> {
        self.size += data.len() as u64;
        if self.size > self.limit {
            return Err(too_large(self.limit));
        }
        self.hasher.update(data);
        self.buffer.extend_from_slice(data);
        if self.buffer.len() >= WRITE_BUFFER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ApiError> {
        self.file
            .write_all(&self.buffer)
            .await
            .map_err(|e| ApiError::internal("cannot write the spool file", &e))?;
        self.buffer.clear();
        Ok(())
    }

    /// Writes what is left, syncs and renames the file to its hash.
    async fn finish(mut self, dir: &Path) -> Result<PathBuf, ApiError> {
        let done = async {
            self.flush().await?;
            self.file
                .sync_all()
                .await
                .map_err(|e| ApiError::internal("cannot write the spool file", &e))?;
            let hash = hex::encode(self.hasher.clone().finalize());
            let path = dir.join(hash);
            tokio::fs::rename(&self.tmp, &path)
                .await
                .map_err(|e| ApiError::internal("cannot rename the spool file", &e))?;
            Ok::<_, ApiError>(path)
        }
        .await;
        if done.is_err() {
            let _ = tokio::fs::remove_file(&self.tmp).await;
        }
        done
    }

    async fn discard(self) {
        drop(self.file);
        // Best effort: a partial file left behind is only disk space, and is named as partial.
        let _ = tokio::fs::remove_file(&self.tmp).await;
    }
}
