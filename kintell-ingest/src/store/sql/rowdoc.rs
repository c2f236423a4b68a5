//! Rows as one JSON document, for a backend that expands it server-side (PostgreSQL's `json_populate_recordset` and
//! `json_array_elements`).
//!
//! A multi-row `VALUES` list costs a bind parameter per cell, a statement text (and so a plan) per row count, and a
//! `VALUES` node per row to parse and plan: on PostgreSQL that planning weighed as much as the insert itself. A JSON
//! document is one text parameter whatever the row count, and the statement around it is the same every time.
//!
//! Each value is written in the form the column type's own input function reads back exactly: uuids hyphenated,
//! timestamps as RFC 3339 in UTC with microseconds (truncated, as the binary protocol does), decimals as the strings
//! they are bound as, JSON documents as themselves. SQL `NULL` is JSON `null`.
//!
//! [`copy_text`] writes the same values in the text format of `COPY … FROM STDIN`, for rows known to be new
//! (PostgreSQL stores them without planning or evaluating a statement per row, and without the speculative insertion
//! of `ON CONFLICT`).

use crate::ports::{StoreError, StoreResult};
use sea_query::Value;
use std::io::Write;

/// A JSON document given as its text, as it travels in the row documents and in COPY: [`Value::Bytes`] holding
/// that text, written as it is (in a document, the JSON itself; in COPY, the text, escaped). No column of the
/// schema is `bytea`, so bytes mean nothing else here; bound as a parameter of an ordinary statement they would be
/// refused by a JSON column as a type error, never stored as something else.
pub(super) fn raw_json(text: String) -> Value {
    Value::Bytes(Some(text.into_bytes()))
}

/// `[{"c1":v,…},…]`: each row an object keyed by `columns`, in order.
pub(super) fn objects<R: AsRef<[Value]>>(
    columns: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> StoreResult<String> {
    let mut out = Vec::with_capacity(4096);
    out.push(b'[');
    for (i, row) in rows.into_iter().enumerate() {
        let row = row.as_ref();
        if row.len() != columns.len() {
            return Err(shape_error(columns.len(), row.len()));
        }
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        for (j, (column, value)) in columns.iter().zip(row).enumerate() {
            if j > 0 {
                out.push(b',');
            }
            write_json(&mut out, column)?;
            out.push(b':');
            write_value(&mut out, value)?;
        }
        out.push(b'}');
    }
    out.push(b']');
    finish(out)
}

/// `[[ord,k1,k2,…],…]`: each key an array of its position and its values.
pub(super) fn keys(keys: &[(i64, &[Value])]) -> StoreResult<String> {
    let mut out = Vec::with_capacity(1024);
    out.push(b'[');
    for (i, (ord, key)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'[');
        write_display(&mut out, ord)?;
        for value in *key {
            out.push(b',');
            write_value(&mut out, value)?;
        }
        out.push(b']');
    }
    out.push(b']');
    finish(out)
}

/// Whether a statement reads a row document (its rows or keys expanded by `json_populate_recordset`,
/// `json_array_elements` or `json_array_elements_text`).
///
/// PostgreSQL plans such a statement for the data it is given only when it is prepared for one use: a statement
/// prepared once per connection may switch, after five runs, to a generic plan made while the tables were small (an
/// import starts on empty tables), which then never changes as they grow (a look-up of a chunk's keys planned as a
/// scan of the whole table stays one). Planning a statement of thousands of rows costs little next to running it.
pub(super) fn reads_document(sql: &str) -> bool {
    sql.contains("json_populate_recordset(") || sql.contains("json_array_elements")
}

/// The SQL type a key value of this kind is read back as from its JSON text (`->>`), for a typed column list;
/// `None` for a kind that is no key (a JSON document) or that the documents do not carry.
pub(super) fn sql_type(value: &Value) -> Option<&'static str> {
    Some(match value {
        Value::Bool(_) => "boolean",
        Value::SmallInt(_) => "smallint",
        Value::Int(_) => "integer",
        Value::BigInt(_) => "bigint",
        Value::String(_) => "text",
        Value::Uuid(_) => "uuid",
        Value::ChronoDate(_) => "date",
        Value::ChronoDateTimeUtc(_) => "timestamptz",
        _ => return None,
    })
}

fn write_value(out: &mut Vec<u8>, value: &Value) -> StoreResult<()> {
    match value {
        Value::Bool(Some(b)) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::TinyInt(Some(n)) => write_display(out, n)?,
        Value::SmallInt(Some(n)) => write_display(out, n)?,
        Value::Int(Some(n)) => write_display(out, n)?,
        Value::BigInt(Some(n)) => write_display(out, n)?,
        Value::TinyUnsigned(Some(n)) => write_display(out, n)?,
        Value::SmallUnsigned(Some(n)) => write_display(out, n)?,
        Value::Unsigned(Some(n)) => write_display(out, n)?,
        Value::BigUnsigned(Some(n)) => write_display(out, n)?,
        Value::Double(Some(x)) if x.is_finite() => write_display(out, x)?,
        Value::String(Some(s)) => write_json(out, s.as_str())?,
        Value::Uuid(Some(u)) => write_display(out, format_args!("\"{}\"", u.hyphenated()))?,
        Value::ChronoDate(Some(d)) => {
            write_display(out, format_args!("\"{}\"", d.format("%Y-%m-%d")))?
        }
        Value::ChronoDateTimeUtc(Some(t)) => {
            out.push(b'"');
            write_timestamp(out, t)?;
            out.push(b'"');
        }
        Value::Json(Some(j)) => serde_json::to_writer(&mut *out, j.as_ref()).map_err(doc_error)?,
        Value::Bytes(Some(json)) => out.extend_from_slice(json),
        null if is_null(null) => out.extend_from_slice(b"null"),
        other => {
            return Err(StoreError::Backend {
                message: format!("a {other:?} cannot be sent in a JSON row document"),
                source: "unsupported value kind".into(),
            });
        }
    }
    Ok(())
}

fn write_json(out: &mut Vec<u8>, s: &str) -> StoreResult<()> {
    serde_json::to_writer(&mut *out, s).map_err(doc_error)
}

fn write_display(out: &mut Vec<u8>, v: impl std::fmt::Display) -> StoreResult<()> {
    write!(out, "{v}").map_err(doc_error)
}

fn finish(out: Vec<u8>) -> StoreResult<String> {
    String::from_utf8(out).map_err(doc_error)
}

/// Rows in the text format of `COPY … FROM STDIN`: one line per row, values separated by tabs, `\N` for `NULL`,
/// and backslash, newline, carriage return and tab escaped in text.
pub(super) fn copy_text<R: AsRef<[Value]>>(
    width: usize,
    rows: impl IntoIterator<Item = R>,
) -> StoreResult<Vec<u8>> {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut scratch = Vec::new();
    for row in rows {
        let row = row.as_ref();
        if row.len() != width {
            return Err(shape_error(width, row.len()));
        }
        for (j, value) in row.iter().enumerate() {
            if j > 0 {
                out.push(b'\t');
            }
            write_copy_value(&mut out, &mut scratch, value)?;
        }
        out.push(b'\n');
    }
    Ok(out)
}

fn write_copy_value(out: &mut Vec<u8>, scratch: &mut Vec<u8>, value: &Value) -> StoreResult<()> {
    match value {
        Value::Bool(Some(b)) => out.push(if *b { b't' } else { b'f' }),
        Value::String(Some(s)) => escape_copy(out, s.as_bytes()),
        Value::Uuid(Some(u)) => write_display(out, u.hyphenated())?,
        Value::ChronoDate(Some(d)) => write_display(out, d.format("%Y-%m-%d"))?,
        Value::ChronoDateTimeUtc(Some(t)) => write_timestamp(out, t)?,
        Value::Json(Some(j)) => {
            scratch.clear();
            serde_json::to_writer(&mut *scratch, j.as_ref()).map_err(doc_error)?;
            escape_copy(out, scratch);
        }
        Value::Bytes(Some(json)) => escape_copy(out, json),
        // Numbers have the same text in both formats; the other kinds are refused there too.
        other if !is_null(other) => write_value(out, other)?,
        _ => out.extend_from_slice(b"\\N"),
    }
    Ok(())
}

fn is_null(value: &Value) -> bool {
    matches!(
        value,
        Value::Bool(None)
            | Value::TinyInt(None)
            | Value::SmallInt(None)
            | Value::Int(None)
            | Value::BigInt(None)
            | Value::TinyUnsigned(None)
            | Value::SmallUnsigned(None)
            | Value::Unsigned(None)
            | Value::BigUnsigned(None)
            | Value::Double(None)
            | Value::String(None)
            | Value::Uuid(None)
            | Value::ChronoDate(None)
            | Value::ChronoDateTimeUtc(None)
            | Value::Json(None)
            | Value::Bytes(None)
    )
}

/// Appends `text` with COPY's escapes, copying the runs between special bytes whole.
fn escape_copy(out: &mut Vec<u8>, mut text: &[u8]) {
    while let Some(i) = text
        .iter()
        .position(|b| matches!(b, b'\\' | b'\n' | b'\r' | b'\t'))
    {
        out.extend_from_slice(&text[..i]);
        out.extend_from_slice(match text[i] {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => b"\\t",
        });
        text = &text[i + 1..];
    }
    out.extend_from_slice(text);
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` (microseconds, truncated), written without parsing a format string per value.
fn write_timestamp(out: &mut Vec<u8>, t: &chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    // Years of other widths and leap seconds (carried in the nanoseconds) take chrono's own formatting.
    if !(0..=9999).contains(&year) || t.nanosecond() >= 1_000_000_000 {
        return write_display(out, t.format("%Y-%m-%dT%H:%M:%S%.6fZ"));
    }
    write_display(
        out,
        format_args!(
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            t.month(),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.nanosecond() / 1_000
        ),
    )
}

fn doc_error(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Backend {
        message: "writing a JSON row document".to_owned(),
        source: Box::new(e),
    }
}

fn shape_error(columns: usize, values: usize) -> StoreError {
    StoreError::Backend {
        message: "building a statement".to_owned(),
        source: format!("a row of {values} values for {columns} columns").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    #[test]
    fn objects_carry_every_kind_and_null() {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 9, 30, 0)
            .single()
            .expect("valid time")
            + chrono::Duration::nanoseconds(123_456_789);
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let row = vec![
            Value::Uuid(Some(id)),
            Value::String(Some("a \"quoted\"\nline ✓".to_owned())),
            Value::ChronoDateTimeUtc(Some(at)),
            Value::Int(Some(-3)),
            Value::BigInt(None),
            Value::Json(Some(Box::new(serde_json::json!({"k": [1, "x"]})))),
            Value::Bool(Some(true)),
        ];
        let columns = ["id", "t", "at", "n", "m", "j", "b"];
        let doc = objects(&columns, [row.as_slice()]).expect("encodes");
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!([{
                "id": "01234567-89ab-cdef-0123-456789abcdef",
                "t": "a \"quoted\"\nline ✓",
                "at": "2024-03-01T09:30:00.123456Z",
                "n": -3,
                "m": null,
                "j": {"k": [1, "x"]},
                "b": true,
            }])
        );
    }

    #[test]
    fn timestamps_are_written_as_chronos_format_writes_them() {
        let base = Utc
            .with_ymd_and_hms(2024, 12, 31, 23, 59, 59)
            .single()
            .expect("valid time");
        let times = [
            base,
            base + chrono::Duration::nanoseconds(999_999_999),
            base + chrono::Duration::nanoseconds(1_500),
            Utc.with_ymd_and_hms(7, 1, 2, 3, 4, 5)
                .single()
                .expect("valid time"),
            Utc.with_ymd_and_hms(-44, 3, 15, 12, 0, 0)
                .single()
                .expect("valid time"),
            Utc.with_ymd_and_hms(12_345, 6, 7, 8, 9, 10)
                .single()
                .expect("valid time"),
            chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
                .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_250_000_000))
                .expect("a leap second")
                .and_utc(),
        ];
        for t in times {
            let mut out = Vec::new();
            write_timestamp(&mut out, &t).expect("writes");
            assert_eq!(
                String::from_utf8(out).expect("UTF-8"),
                t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
            );
        }
    }

    #[test]
    fn statements_reading_a_document_are_recognised() {
        assert!(reads_document(
            "SELECT 1 FROM json_array_elements(CAST($1 AS json)) AS \"j\""
        ));
        assert!(reads_document(
            "INSERT INTO t SELECT * FROM json_populate_recordset(NULL::t, CAST($1 AS json)) AS r"
        ));
        assert!(!reads_document(
            "SELECT \"id\" FROM \"ingestion_batches\" WHERE \"id\" = $1"
        ));
    }

    #[test]
    fn keys_keep_order_and_empty_is_an_empty_array() {
        let key = [Value::String(Some("x".into()))];
        assert_eq!(keys(&[(7, &key[..])]).expect("encodes"), "[[7,\"x\"]]");
        assert_eq!(keys(&[]).expect("encodes"), "[]");
    }

    #[test]
    fn copy_text_escapes_text_and_json_and_writes_null() {
        let at = Utc
            .with_ymd_and_hms(2024, 3, 1, 9, 30, 0)
            .single()
            .expect("valid time");
        let id = uuid::Uuid::from_u128(1);
        let row = vec![
            Value::Uuid(Some(id)),
            Value::String(Some("tab\there\nnew \\ back\r".to_owned())),
            Value::ChronoDateTimeUtc(Some(at)),
            Value::Int(Some(-3)),
            Value::String(None),
            Value::Json(Some(Box::new(serde_json::json!({"k": "a\nb"})))),
            Value::Bool(Some(false)),
            Value::String(Some("0.50".to_owned())),
        ];
        let text = copy_text(8, [row.as_slice(), row.as_slice()]).expect("encodes");
        let line = "00000000-0000-0000-0000-000000000001\ttab\\there\\nnew \\\\ back\\r\t\
                    2024-03-01T09:30:00.000000Z\t-3\t\\N\t{\"k\":\"a\\\\nb\"}\tf\t0.50\n";
        assert_eq!(
            String::from_utf8(text).expect("UTF-8"),
            format!("{line}{line}")
        );
        assert!(copy_text(2, [row.as_slice()]).is_err());
        assert!(copy_text(1, [[Value::Double(Some(f64::INFINITY))].as_slice()]).is_err());
    }

    #[test]
    fn json_given_as_text_is_written_as_the_document_it_is() {
        let text = r#"[{"code":"a\nb","points":3}]"#;
        let row = [
            raw_json(text.to_owned()),
            raw_json(String::new()),
            Value::Bytes(None),
        ];
        let doc = objects(&["j"], [&row[..1]]).expect("encodes");
        let parsed: serde_json::Value = serde_json::from_str(&doc).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!([{"j": [{"code": "a\nb", "points": 3}]}])
        );
        let copy = copy_text(3, [&row[..]]).expect("encodes");
        assert_eq!(
            String::from_utf8(copy).expect("UTF-8"),
            "[{\"code\":\"a\\\\nb\",\"points\":3}]\t\t\\N\n"
        );
    }

    #[test]
    fn a_row_of_the_wrong_width_and_an_unsupported_kind_are_errors() {
        let short = [Value::Int(Some(1))];
        assert!(objects(&["a", "b"], [short.as_slice()]).is_err());
        let not_finite = [Value::Double(Some(f64::NAN))];
        assert!(objects(&["a"], [not_finite.as_slice()]).is_err());
        let float = [Value::Float(Some(1.5))];
        assert!(objects(&["a"], [float.as_slice()]).is_err());
        assert_eq!(sql_type(&Value::Double(None)), None);
        assert_eq!(sql_type(&Value::Uuid(None)), Some("uuid"));
    }
}
