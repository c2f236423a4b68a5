//! Webhook bodies: a Kintell event's JSON, validated by the rules of the CSV columns of the same names, into a
//! domain row, or a row error with the codes a CSV row would get.
//!
//! Each field is taken as its text (a string trimmed, a number as written, `null` or an absent field as an empty
//! cell) and judged exactly as the cell of that column in a session file, so `duration_minutes: "sixty"` and
//! `duration_minutes: 0` fail as `invalid_number` and `out_of_range` like in a file. `topics` is a JSON list of
//! strings (a comma-separated string is accepted too, as in a file); anything else in it is `invalid_json`. A body
//! that is not a JSON object is `invalid_json` (field `null`). Fields not listed are ignored, like unknown
//! columns. Times without a zone are UTC.

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::domain::{SessionRow, WebhookEvent};

use super::errors::{ErrorCode, Problem, RawRecord, RowError};
use super::header::Column;
use super::validate::{self, Context, Keyed, RatingEvent, Values};
use super::values;

/// A validated webhook body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EventRow {
    /// `session-completed` or `booking-confirmed`: a session row, as a file row of it would be.
    Session(SessionRow),
    /// `rating-created`.
    Rating(RatingEvent),
}

/// The fields of each event's body, in the order problems are reported.
fn fields(event: WebhookEvent) -> &'static [(&'static str, Column)] {
    match event {
        WebhookEvent::SessionCompleted => &[
            ("session_id", Column::SessionId),
            ("session_type", Column::SessionType),
            ("participant_email", Column::ParticipantEmail),
            ("volunteer_email", Column::VolunteerEmail),
            ("scheduled_at", Column::ScheduledAt),
            ("completed_at", Column::CompletedAt),
            ("duration_minutes", Column::DurationMinutes),
            ("topics", Column::Topics),
            ("language_level", Column::LanguageLevel),
        ],
        WebhookEvent::BookingConfirmed => &[
            ("booking_id", Column::BookingId),
            ("session_type", Column::SessionType),
            ("participant_email", Column::ParticipantEmail),
            ("volunteer_email", Column::VolunteerEmail),
            ("scheduled_at", Column::ScheduledAt),
        ],
        WebhookEvent::RatingCreated => &[
            ("rating_id", Column::RatingId),
            ("session_id", Column::SessionId),
            ("from_role", Column::FromRole),
            ("rating", Column::Rating),
            ("feedback_text", Column::FeedbackText),
            ("created_at", Column::CreatedAt),
        ],
    }
}

/// A JSON value as the text of a cell; `None` for `null`.
fn cell_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// A body's `topics`: a list of strings, trimmed, empties dropped (`None` when nothing is left).
fn topics(v: &Value) -> Result<Option<Vec<String>>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(values::list(s)),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                match item {
                    Value::String(s) if s.trim().is_empty() => {}
                    Value::String(s) => out.push(s.trim().to_owned()),
                    other => return Err(format!("topics: {other} is not a string")),
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
        other => Err(format!("topics: {other} is not a list of strings")),
    }
}

/// Validates the body of `event`, judging times against `ingest_time` (a time that happened may be at most one
/// day later). The error is the row error a file row with these values would get (row and line 1), its raw record
/// the fields' texts in the order of [`fields`].
pub(crate) fn parse_event(
    event: WebhookEvent,
    body: &[u8],
    ingest_time: DateTime<Utc>,
) -> Result<EventRow, Box<RowError>> {
    let fields = fields(event);
    let reject = |problems: Vec<Problem>, raw: RawRecord| {
        Box::new(RowError::from_problems(1, 1, problems, raw))
    };
    let whole_body = |why: String| {
        let raw = RawRecord::from_values([String::from_utf8_lossy(body)]);
        reject(
            vec![Problem::new(
                ErrorCode::InvalidJson,
                None::<&'static str>,
                why,
            )],
            raw,
        )
    };
    let object = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(whole_body("the body is JSON but not an object".to_owned())),
        Err(e) => return Err(whole_body(format!("the body is not valid JSON ({e})"))),
    };
    let texts: Vec<Option<String>> = fields
        .iter()
        .map(|(name, column)| match (object.get(*name), column) {
            (None, _) | (_, Column::Topics) => None,
            (Some(v), _) => cell_text(v),
        })
        .collect();
    let mut order = [u32::MAX; Column::COUNT];
    let mut cells: [Option<&str>; Column::COUNT] = [None; Column::COUNT];
    for (position, ((_, column), text)) in (0u32..).zip(fields.iter().zip(&texts)) {
        if let Some(slot) = order.get_mut(*column as usize) {
            *slot = position;
        }
        if let Some(cell) = cells.get_mut(*column as usize) {
            *cell = text.as_deref().filter(|t| !t.is_empty());
        }
    }
    let mut problems: Vec<Keyed> = Vec::new();
    let mut topic_list = None;
    if let Some(v) = object.get("topics")
        && event == WebhookEvent::SessionCompleted
    {
        match topics(v) {
            Ok(t) => topic_list = t,
            Err(message) => problems.push(Keyed {
                key: order
                    .get(Column::Topics as usize)
                    .copied()
                    .unwrap_or(u32::MAX),
                problem: Problem::new(ErrorCode::InvalidJson, Some("topics"), message),
            }),
        }
    }
    let raw =
        RawRecord::from_values(fields.iter().zip(&texts).map(
            |((name, column), text)| match column {
                Column::Topics => object.get(*name).map(Value::to_string).unwrap_or_default(),
                _ => text.clone().unwrap_or_default(),
            },
        ));
    let values = Values {
        cells,
        unreadable: 0,
        order: &order,
    };
    let ctx = Context {
        zone_secs: 0,
        latest: ingest_time + TimeDelta::days(1),
    };
    let row = match event {
        WebhookEvent::SessionCompleted => {
            validate::session_event(&values, ctx, false, topic_list, &mut problems)
                .map(EventRow::Session)
        }
        WebhookEvent::BookingConfirmed => {
            validate::session_event(&values, ctx, true, None, &mut problems).map(EventRow::Session)
        }
        WebhookEvent::RatingCreated => {
            validate::rating_event(&values, ctx, &mut problems).map(EventRow::Rating)
        }
    };
    match row {
        Some(row) if problems.is_empty() => Ok(row),
        _ => {
            problems.sort_by_key(|k| k.key);
            Err(reject(
                problems.into_iter().map(|k| k.problem).collect(),
                raw,
            ))
        }
    }
}
