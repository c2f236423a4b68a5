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

use crate::ports::{StoreError, StoreResult};
use sea_query::Value;
use std::io::Write;

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
        Value::ChronoDateTimeUtc(Some(t)) => write_display(
            out,
            format_args!("\"{}\"", t.format("%Y-%m-%dT%H:%M:%S%.6fZ")),
        )?,
        Value::Json(Some(j)) => serde_json::to_writer(&mut *out, j.as_ref()).map_err(doc_error)?,
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
        | Value::Json(None) => out.extend_from_slice(b"null"),
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
    fn keys_keep_order_and_empty_is_an_empty_array() {
        let key = [Value::String(Some("x".into()))];
        assert_eq!(keys(&[(7, &key[..])]).expect("encodes"), "[[7,\"x\"]]");
        assert_eq!(keys(&[]).expect("encodes"), "[]");
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
