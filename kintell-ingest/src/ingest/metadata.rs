//! The batch's `csv_metadata`: what the header looked like, how the programme instance was found, the options a
//! resume must reuse, and the association counts so far.
//!
//! ```json
//! {"format": "mentors-v1", "delimiter": ",", "header": ["session_id", …], "columns": ["session_id", …],
//!  "unknown_columns": [], "comments": [], "header_line": 1,
//!  "program_instance": {"slug": "mentors-ukraine-2024-q4", "found_by": "file_name"},
//!  "options": {"timezone": "+00:00", "create_missing_users": false},
//!  "associations": {"explicit": 3, "auto": 0, "review": 0, "ignored": 0, "none": 0}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::{ProgramSlug, TimeZoneOffset};
use crate::formats::{Delimiter, FileError, HeaderInfo};

use super::report::AssociationCounts;

/// The options that decide what the write pass stores; a resume reads them back so that it stores exactly what
/// the interrupted run would have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunOptions {
    /// The zone of naive timestamps.
    pub(crate) timezone: TimeZoneOffset,
    /// Whether unknown emails create users.
    pub(crate) create_missing_users: bool,
}

/// How the batch's programme instance was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum InstanceSource {
    /// Named by the import: rows' `program_ref` values are ignored.
    Explicit,
    /// Derived from the file name: a row's `program_ref` wins over it.
    FileName,
}

/// The metadata of a file whose header was accepted.
pub(crate) fn build(
    header: &HeaderInfo,
    instance: Option<(&ProgramSlug, InstanceSource)>,
    options: RunOptions,
) -> Value {
    json!({
        "format": header.format,
        "delimiter": header.delimiter,
        "header": header.header,
        "columns": header.columns,
        "unknown_columns": header.unknown_columns,
        "comments": header.comments,
        "header_line": header.header_line,
        "program_instance": instance.map(|(slug, found_by)| json!({"slug": slug.as_str(), "found_by": found_by})),
        "options": options,
        "associations": AssociationCounts::default(),
    })
}

/// The metadata of a refused file: the error and the options.
pub(crate) fn refused(error: &FileError, options: RunOptions) -> Value {
    json!({ "file_error": error, "options": options })
}

/// The options recorded, if any.
pub(crate) fn options(meta: &Value) -> Option<RunOptions> {
    serde_json::from_value(meta.get("options")?.clone()).ok()
}

/// How the batch's instance was found, if it has one.
pub(crate) fn instance_source(meta: &Value) -> Option<InstanceSource> {
    serde_json::from_value(meta.get("program_instance")?.get("found_by")?.clone()).ok()
}

/// The delimiter recorded.
pub(crate) fn delimiter(meta: &Value) -> Option<Delimiter> {
    Delimiter::parse(meta.get("delimiter")?.as_str()?).ok()
}

/// The header as found, in file order (empty for a refused file).
pub(crate) fn header(meta: &Value) -> Vec<String> {
    meta.get("header")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .map(|n| n.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The association counts so far.
pub(crate) fn associations(meta: &Value) -> AssociationCounts {
    meta.get("associations")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default()
}

/// Records the association counts.
pub(crate) fn set_associations(meta: &mut Value, counts: AssociationCounts) {
    if let Value::Object(map) = meta
        && let Ok(v) = serde_json::to_value(counts)
    {
        map.insert("associations".to_owned(), v);
    }
}
