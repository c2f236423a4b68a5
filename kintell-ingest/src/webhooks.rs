//! Kintell webhooks: signature verification, the three events' bodies, and deliveries applied exactly once.
//!
//! The contract is the `POST /v1/webhooks/kintell/{event}` row of `../shared/spec/interfaces.md` and "Webhook
//! batches" in `../shared/spec/batches.md`:
//!
//! - [`verify_signature`] checks `X-Kintell-Signature: t=<unix>,v1=<hex>`: HMAC-SHA256 with the shared secret over
//!   `t + "." + raw body`, compared in constant time, with `t` within [`SIGNATURE_TOLERANCE`] of now. [`sign`]
//!   makes such a header (for senders and tests).
//! - [`WebhookHandler::handle`] applies one [`Delivery`]. A delivery id already recorded answers its recorded
//!   response, marked `"replayed": true`, without any processing. Otherwise the body is validated with the rules
//!   (and the error codes) of the CSV columns of the same names, and the event is written as a one-row batch
//!   (`file_name = webhook:<event>:<delivery id>`, `file_hash` = SHA-256 of the raw body, `import_method =
//!   webhook`, entity `kintell_sessions`, format `webhook`, never refused as a re-import) through the import's
//!   chunk writer: the same identity resolution, idempotency key (`kintell`, `session_id`), lineage, association
//!   and enrolments as a file row. The delivery row (`webhook_deliveries`) is written in the same unit of work as
//!   the session row and the batch, so either all of them are committed or none.
//!
//! The events:
//! - `session-completed` stores the session like a CSV row of it;
//! - `booking-confirmed` stores a session with `external_session_id = booking_id` and no completion; a later
//!   `session-completed` with that id completes the same row;
//! - `rating-created` sets the rating (1–5, normalised to 0–1 as the `kintell-sessions` CSV does) and the feedback
//!   of the session, whose `batch_id` becomes the webhook's batch; an unknown session is
//!   [`WebhookError::UnknownSession`] (HTTP 404).
//!
//! Choices where the specification is silent:
//! - **Only applied deliveries are recorded.** A body refused as invalid ([`WebhookError::Invalid`], 422) or a
//!   rating of an unknown session (404) writes nothing, not even a delivery row, so a retry of the same delivery
//!   id is judged again: a rating that arrived before its session is accepted once the session exists. A signature
//!   failure or a missing delivery id never reaches the library.
//! - **Responses.** An applied delivery answers status 200 with `{"delivery_id", "event", "batch_id",
//!   "session_id", "row" (inserted / updated / unchanged), "association" (the decision, or null), "replayed":
//!   false}`; that status and body are what is recorded and replayed (with `"replayed": true`), also when the
//!   replay carries another body (the recorded `body_sha256` tells them apart).
//! - **Fields an event does not carry keep their stored values.** A booking never clears a stored completion,
//!   duration, rating, feedback, level, topics or metadata (a late booking does not undo a completion); a
//!   completion keeps the stored rating, feedback and metadata, and the stored level and topics when it has none.
//! - **Ratings.** The session has one rating: the last rating wins whichever role gave it; `rating_id`,
//!   `from_role` and `created_at` are validated, not stored. A rating without `feedback_text` clears the stored
//!   feedback (the feedback belongs to the rating it came with). A rating equal to what is stored leaves the row
//!   unchanged, lineage included, as a re-imported identical row does; its batch counts it as skipped.
//! - **People.** Unknown emails are `unknown_user` (422) as in an import, unless the handler creates missing users
//!   ([`WebhookHandler::create_missing_users`]).
//! - **No instance from the name.** A webhook batch names no programme instance (its file name is never read as
//!   one); the row is associated by scoring, as a file row without an instance is.
//! - **Times** without a zone are UTC; a time that records something that happened (`completed_at`,
//!   `created_at`) may be at most a day after the delivery is received.
//! - **Concurrency.** Two deliveries with the same id at once: one applies, the other answers the replay. (On
//!   PostgreSQL the second insert of the delivery id waits for the first transaction and fails once it commits;
//!   the second unit is rolled back and the recorded response read.)

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::domain::{BatchId, DeliveryId, DeliveryRecord, SessionRow, StoredSession, WebhookEvent};
use crate::formats::webhook::{EventRow, parse_event};
use crate::ingest::{ImportError, Ingestor, WebhookBatch, WebhookRow, hex};
use crate::ports::{StoreError, UnitOfWork};

/// How far the signature's timestamp may be from now, either way.
pub const SIGNATURE_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(300);

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Kintell-Signature";

/// The header carrying the delivery id.
pub const DELIVERY_ID_HEADER: &str = "X-Delivery-Id";

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("the request has no X-Kintell-Signature header")]
    Missing,
    /// The header is not `t=<unix>,v1=<hex>`.
    #[error("the X-Kintell-Signature header is malformed: {0}")]
    Malformed(&'static str),
    /// No `v1` signature matches the body.
    #[error("the signature does not match the body")]
    Mismatch,
    /// The secret cannot key HMAC-SHA256.
    #[error("the webhook secret cannot be used as an HMAC-SHA256 key")]
    Key,
    /// The signature matches but its timestamp is outside the tolerance.
    #[error(
        "the signature's timestamp {timestamp} is more than {tolerance} s away from now ({now})"
    )]
    Stale {
        /// The header's `t`.
        timestamp: i64,
        /// Now, as a Unix time.
        now: i64,
        /// The tolerance in seconds.
        tolerance: u64,
    },
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Result<HmacSha256, SignatureError> {
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::Key)?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The `X-Kintell-Signature` value for `body` sent at Unix time `timestamp`.
///
/// # Errors
/// [`SignatureError::Key`] if the secret cannot key HMAC-SHA256 (HMAC takes keys of any length, so in practice
/// never).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> Result<String, SignatureError> {
    let t = timestamp.to_string();
    let tag = mac(secret, &t, body)?.finalize().into_bytes();
    Ok(format!("t={t},v1={}", hex(&tag)))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Verifies a signature header (`None`: the header is missing) against the raw body at `now`.
///
/// The header is `t=<unix>,v1=<hex>`; several `v1` entries are allowed (a sender rotating secrets) and any one
/// matching is enough; other keys are ignored. Each comparison is constant-time.
///
/// # Errors
/// [`SignatureError`]: missing, malformed, no match, or a timestamp more than [`SIGNATURE_TOLERANCE`] away.
pub fn verify_signature(
    secret: &[u8],
    header: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("an entry is not key=value"));
        };
        match key.trim() {
            "t" => timestamp = Some(value.trim()),
            "v1" => signatures.push(
                unhex(value.trim()).ok_or(SignatureError::Malformed("v1 is not hexadecimal"))?,
            ),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed("no t= timestamp"))?;
    let seconds: i64 = t
        .parse()
        .map_err(|_| SignatureError::Malformed("t is not a Unix time"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1= signature"));
    }
    let expected = mac(secret, t, body)?;
    if !signatures
        .iter()
        .any(|sig| expected.clone().verify_slice(sig).is_ok())
    {
        return Err(SignatureError::Mismatch);
    }
    let tolerance = SIGNATURE_TOLERANCE.as_secs();
    let now_s = now.timestamp();
    if now_s.abs_diff(seconds) > tolerance {
        return Err(SignatureError::Stale {
            timestamp: seconds,
            now: now_s,
            tolerance,
        });
    }
    Ok(())
}

/// One webhook delivery as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// `X-Delivery-Id`.
    pub id: DeliveryId,
    /// The event of the route.
    pub event: WebhookEvent,
    /// The raw body.
    pub body: Vec<u8>,
}

/// The answer to a delivery: applied now, or the recorded answer to an earlier delivery with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryOutcome {
    /// The HTTP status (200 for an applied delivery and for every replay).
    pub status: u16,
    /// The JSON body (with `"replayed"`).
    pub body: serde_json::Value,
    /// Whether this is a replay of a recorded delivery (nothing was processed).
    pub replayed: bool,
    /// The batch the delivery wrote.
    pub batch_id: Option<BatchId>,
}

/// Why a delivery was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is invalid; the code is the one a CSV row with these values would get (HTTP 422).
    #[error("{message}")]
    Invalid {
        /// The row error code (`missing_field`, `invalid_email`, `unknown_user`, `invalid_json`, …).
        code: String,
        /// The field, when the problem is about one.
        field: Option<String>,
        /// One line.
        message: String,
    },
    /// A rating names a session that is not stored (HTTP 404).
    #[error("no session has the id {session_id}")]
    UnknownSession {
        /// The rating's `session_id`.
        session_id: String,
    },
    /// The store failed; nothing was written (HTTP 500).
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The handler is misconfigured (an unusable host name in its lease owner).
    #[error("the webhook handler is misconfigured: {0}")]
    Config(String),
}

impl WebhookError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Invalid { .. } => 422,
            WebhookError::UnknownSession { .. } => 404,
            WebhookError::Store(_) | WebhookError::Config(_) => 500,
        }
    }

    /// A stable machine-readable code: the row error code of an invalid body, else `unknown_session`,
    /// `store_error` or `internal`.
    pub fn code(&self) -> &str {
        match self {
            WebhookError::Invalid { code, .. } => code,
            WebhookError::UnknownSession { .. } => "unknown_session",
            WebhookError::Store(_) => "store_error",
            WebhookError::Config(_) => "internal",
        }
    }

    fn from_import(e: ImportError) -> Self {
        match e {
            ImportError::Store(s) => WebhookError::Store(s),
            other => WebhookError::Config(other.to_string()),
        }
    }
}

/// How a delivery went inside its unit.
enum Step {
    /// Recorded earlier: answer it again.
    Replay(DeliveryRecord),
    /// Applied in the unit: commit, then answer.
    Applied(DeliveryOutcome),
    /// Refused: roll back.
    Refused(WebhookError),
}

/// Applies webhook deliveries to a store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebhookHandler {
    ingestor: Ingestor,
    create_missing_users: bool,
}

impl WebhookHandler {
    /// A handler writing through `ingestor` (its store, clock, scoring policy, host and `imported_by`).
    pub fn new(ingestor: Ingestor) -> Self {
        WebhookHandler {
            ingestor,
            create_missing_users: false,
        }
    }

    /// Whether a session naming unknown emails creates those users (as an import's "create missing users"
    /// does) instead of being refused with `unknown_user`. Off by default.
    pub fn create_missing_users(mut self, yes: bool) -> Self {
        self.create_missing_users = yes;
        self
    }

    /// The ingestor.
    pub fn ingestor(&self) -> &Ingestor {
        &self.ingestor
    }

    /// Applies one delivery, or answers the recorded outcome of its id (see the module documentation).
    ///
    /// # Errors
    /// [`WebhookError::Invalid`] (422), [`WebhookError::UnknownSession`] (404), [`WebhookError::Store`] (500):
    /// in each case nothing was written.
    pub async fn handle(&self, delivery: &Delivery) -> Result<DeliveryOutcome, WebhookError> {
        let store = self.ingestor.store();
        // The catalogue is read before the unit, to keep the write transaction short.
        let scoring = self.ingestor.webhook_scoring().await;
        let mut unit = store.begin().await?;
        let step = self.apply(unit.as_mut(), delivery, scoring).await;
        match step {
            Ok(Step::Applied(outcome)) => {
                unit.commit().await?;
                Ok(outcome)
            }
            Ok(Step::Replay(record)) => {
                let _read_only = unit.rollback().await;
                Ok(replay(record))
            }
            Ok(Step::Refused(e)) => {
                let _nothing_written = unit.rollback().await;
                Err(e)
            }
            Err(WebhookError::Store(StoreError::Duplicate { constraint }))
                if constraint.contains("webhook_deliveries") =>
            {
                // Another unit recorded this delivery id since this one looked: answer what it recorded.
                let _discarded = unit.rollback().await;
                let mut again = store.begin().await?;
                let found = again.delivery(&delivery.id).await;
                let _read_only = again.rollback().await;
                match found? {
                    Some(record) => Ok(replay(record)),
                    None => Err(WebhookError::Store(StoreError::Duplicate { constraint })),
                }
            }
            Err(e) => {
                let _discarded = unit.rollback().await;
                Err(e)
            }
        }
    }

    async fn apply(
        &self,
        unit: &mut dyn UnitOfWork,
        delivery: &Delivery,
        scoring: Result<Arc<crate::ingest::WebhookScoring>, String>,
    ) -> Result<Step, WebhookError> {
        if let Some(record) = unit.delivery(&delivery.id).await? {
            return Ok(Step::Replay(record));
        }
        let now = self.ingestor.clock_now();
        let event = match parse_event(delivery.event, &delivery.body, now) {
            Ok(e) => e,
            Err(row_error) => {
                return Ok(Step::Refused(WebhookError::Invalid {
                    code: row_error.code.as_str().to_owned(),
                    field: row_error.field.map(|f| f.into_owned()),
                    message: row_error.message,
                }));
            }
        };
        let key = match &event {
            EventRow::Session(row) => row.session_id.clone(),
            EventRow::Rating(r) => r.session_id.clone(),
        };
        let stored = unit
            .sessions_by_external_id(std::slice::from_ref(&key))
            .await?
            .into_iter()
            .next();
        let row = match (event, stored) {
            (EventRow::Session(row), stored) => merge(delivery.event, row, stored),
            (EventRow::Rating(r), Some(stored)) => SessionRow {
                rating: Some(r.rating),
                feedback_text: r.feedback_text,
                ..stored.row
            },
            (EventRow::Rating(r), None) => {
                return Ok(Step::Refused(WebhookError::UnknownSession {
                    session_id: r.session_id.as_str().to_owned(),
                }));
            }
        };
        let raw = crate::formats::RawRecord::from_values(raw_values(&row));
        let body_sha256 = hex(&Sha256::digest(&delivery.body));
        let spec = WebhookBatch {
            file_name: format!("webhook:{}:{}", delivery.event, delivery.id),
            file_hash: body_sha256.clone(),
            size: delivery.body.len() as u64,
            metadata: serde_json::json!({
                "event": delivery.event.as_str(),
                "delivery_id": delivery.id.as_str(),
            }),
            create_missing_users: self.create_missing_users,
            now,
        };
        let written = self
            .ingestor
            .webhook_row(unit, spec, row, raw, scoring)
            .await
            .map_err(WebhookError::from_import)?;
        let (batch, outcome) = match written {
            WebhookRow::Written { batch, outcome } => (batch, outcome),
            WebhookRow::Rejected(sample) => {
                return Ok(Step::Refused(WebhookError::Invalid {
                    code: sample.code,
                    field: sample.field,
                    message: sample.message,
                }));
            }
        };
        let row_outcome = if outcome.inserted > 0 {
            "inserted"
        } else if outcome.updated > 0 {
            "updated"
        } else {
            "unchanged"
        };
        let a = outcome.associations;
        let association = [
            ("explicit", a.explicit),
            ("auto", a.auto),
            ("review", a.review),
            ("ignored", a.ignored),
            ("none", a.none),
        ]
        .into_iter()
        .find(|(_, n)| *n > 0)
        .map(|(d, _)| d);
        let body = serde_json::json!({
            "delivery_id": delivery.id.as_str(),
            "event": delivery.event.as_str(),
            "batch_id": batch.id,
            "session_id": key.as_str(),
            "row": row_outcome,
            "association": association,
            "replayed": false,
        });
        let record = DeliveryRecord {
            delivery_id: delivery.id.clone(),
            event: delivery.event,
            received_at: now,
            body_sha256,
            response_status: 200,
            response_body: body.clone(),
            batch_id: Some(batch.id),
        };
        unit.insert_delivery(&record).await?;
        Ok(Step::Applied(DeliveryOutcome {
            status: 200,
            body,
            replayed: false,
            batch_id: Some(batch.id),
        }))
    }
}

/// The recorded answer, marked as a replay.
fn replay(record: DeliveryRecord) -> DeliveryOutcome {
    let mut body = record.response_body;
    if let Some(object) = body.as_object_mut() {
        object.insert("replayed".to_owned(), serde_json::Value::Bool(true));
    }
    DeliveryOutcome {
        status: record.response_status,
        body,
        replayed: true,
        batch_id: record.batch_id,
    }
}

/// A session event's row, with what the event does not carry taken from the stored session.
fn merge(event: WebhookEvent, row: SessionRow, stored: Option<StoredSession>) -> SessionRow {
    let Some(stored) = stored.map(|s| s.row) else {
        return row;
    };
    match event {
        WebhookEvent::BookingConfirmed => SessionRow {
            completed_at: stored.completed_at,
            duration_minutes: stored.duration_minutes,
            rating: stored.rating,
            feedback_text: stored.feedback_text,
            language_level: stored.language_level,
            topics: stored.topics,
            metadata: stored.metadata,
            ..row
        },
        _ => SessionRow {
            rating: stored.rating,
            feedback_text: stored.feedback_text,
            metadata: stored.metadata,
            language_level: row.language_level.or(stored.language_level),
            topics: row.topics.or(stored.topics),
            ..row
        },
    }
}

/// The values of a session row in the order of a webhook body's fields (kept if the row is refused).
fn raw_values(row: &SessionRow) -> Vec<String> {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    vec![
        row.session_id.as_str().to_owned(),
        row.session_type.as_str().to_owned(),
        row.participant_email.as_str().to_owned(),
        row.volunteer_email.as_str().to_owned(),
        time(row.scheduled_at),
        row.completed_at.map(time).unwrap_or_default(),
        row.duration_minutes
            .map(|d| d.get().to_string())
            .unwrap_or_default(),
        row.topics
            .as_ref()
            .map(|t| t.join(", "))
            .unwrap_or_default(),
        row.language_level
            .map(|l| l.as_str().to_owned())
            .unwrap_or_default(),
    ]
}
