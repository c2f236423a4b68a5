//! Error vocabulary of the formats: row error codes, file errors, and the raw record kept with a rejected row.

use std::borrow::Cow;
use std::fmt;

/// Defines a closed set of error codes stored by name.
macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every code, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code as stored (`snake_case`).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Parses a stored code (exact, lower case).
            pub fn parse(input: &str) -> Option<Self> {
                match input {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <Cow<'de, str> as serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown code {s:?}")))
            }
        }
    };
}

code_enum!(
    /// Why a row was rejected. The first group is raised by the parser, the last four by the pipeline, which needs
    /// the database for them.
    ErrorCode {
        /// A required value is empty.
        MissingField => "missing_field",
        /// Not a valid email address.
        InvalidEmail => "invalid_email",
        /// Not a timestamp of an accepted form, or an impossible date.
        InvalidDatetime => "invalid_datetime",
        /// A well-formed number or timestamp outside its allowed range.
        OutOfRange => "out_of_range",
        /// Not a valid integer or decimal.
        InvalidNumber => "invalid_number",
        /// Not one of the accepted names.
        InvalidEnum => "invalid_enum",
        /// Not a JSON object.
        InvalidJson => "invalid_json",
        /// Longer than its column allows.
        TooLong => "too_long",
        /// A `session_type` naming neither language nor mentoring.
        UnknownSessionType => "unknown_session_type",
        /// `completed_at` earlier than `scheduled_at`.
        CompletedBeforeScheduled => "completed_before_scheduled",
        /// `ended_at` earlier than `matched_at`.
        EndedBeforeMatched => "ended_before_matched",
        /// Participant and buddy are the same person.
        SamePerson => "same_person",
        /// The record has more or fewer fields than the header.
        FieldCount => "field_count",
        /// The record is larger than 1 MiB.
        RecordTooLarge => "record_too_large",
        /// The record holds invalid UTF-8.
        Encoding => "encoding",
        /// An email that names no user (and users are not created).
        UnknownUser => "unknown_user",
        /// A company slug that names no company.
        UnknownCompany => "unknown_company",
        /// A `program_ref` that names no programme instance.
        UnknownProgramInstance => "unknown_program_instance",
        /// The same idempotency key as an earlier stored record of the same file.
        DuplicateInFile => "duplicate_in_file",
    }
);

code_enum!(
    /// Why a whole file was refused before any row was processed.
    FileErrorCode {
        /// No header line at all.
        EmptyFile => "empty_file",
        /// No format fits the header (no entity or format was given).
        UnknownFormat => "unknown_format",
        /// The header fits several formats and nothing decides between them.
        AmbiguousFormat => "ambiguous_format",
        /// A header name appears twice (aliases of one column count as the same name).
        DuplicateHeader => "duplicate_header",
        /// The entity or format was given, but none of its formats fits the header.
        MissingColumns => "missing_columns",
        /// An explicit programme-instance slug that does not exist (raised by the pipeline).
        UnknownProgramInstance => "unknown_program_instance",
    }
);

/// A file-level error: the whole file is refused.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FileError {
    /// The code.
    pub code: FileErrorCode,
    /// One line naming what was found and what is missing.
    pub message: String,
}

impl FileError {
    /// Builds a file error.
    pub fn new(code: FileErrorCode, message: impl Into<String>) -> Self {
        FileError {
            code,
            message: message.into(),
        }
    }
}

/// Opening a file failed: either its header was refused or it could not be read.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The header was refused.
    #[error(transparent)]
    File(#[from] FileError),
    /// The reader failed.
    #[error("could not read the input")]
    Io(#[source] std::io::Error),
}

/// Reading the next record failed because the underlying reader failed; the parse cannot go on.
#[derive(Debug, thiserror::Error)]
#[error("could not read the input after line {line}")]
pub struct ReadError {
    /// The last physical line read completely.
    pub line: u64,
    /// The reader's error.
    #[source]
    pub source: std::io::Error,
}

/// One problem of a row (an element of `details`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// The code.
    pub code: ErrorCode,
    /// The canonical field name; `None` for problems of the whole record.
    pub field: Option<Cow<'static, str>>,
    /// One line of explanation.
    pub message: String,
}

impl Problem {
    /// Builds a problem.
    pub fn new(
        code: ErrorCode,
        field: Option<impl Into<Cow<'static, str>>>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            code,
            field: field.map(Into::into),
            message: message.into(),
        }
    }
}

/// A rejected row: what is stored in `ingestion_row_errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowError {
    /// 1-based data record number (header excluded).
    pub row_number: u64,
    /// Physical line where the record starts.
    pub line_number: u64,
    /// The code of the first problem.
    pub code: ErrorCode,
    /// The field of the first problem.
    pub field: Option<Cow<'static, str>>,
    /// The message of the first problem.
    pub message: String,
    /// Every problem of the row, the first one first.
    pub details: Vec<Problem>,
    /// The record's values in file order.
    pub raw_record: RawRecord,
}

impl RowError {
    /// Builds a row error from its problems, the first being the one reported (the pipeline uses this for the
    /// problems only the database can find). `problems` must not be empty; an empty list yields a `field_count`
    /// error rather than a panic.
    pub fn from_problems(
        row_number: u64,
        line_number: u64,
        problems: Vec<Problem>,
        raw_record: RawRecord,
    ) -> Self {
        let first = problems.first().cloned().unwrap_or_else(|| {
            Problem::new(
                ErrorCode::FieldCount,
                None::<&'static str>,
                "the record was rejected without a stated problem",
            )
        });
        RowError {
            row_number,
            line_number,
            code: first.code,
            field: first.field.clone(),
            message: first.message.clone(),
            details: if problems.is_empty() {
                vec![first]
            } else {
                problems
            },
            raw_record,
        }
    }

    /// Builds a row error with a single problem.
    pub fn single(
        row_number: u64,
        line_number: u64,
        problem: Problem,
        raw_record: RawRecord,
    ) -> Self {
        Self::from_problems(row_number, line_number, vec![problem], raw_record)
    }

    /// The details as the JSON stored in `ingestion_row_errors.details`.
    pub fn details_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.details).unwrap_or(serde_json::Value::Null)
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "row {} (line {}): {}",
            self.row_number, self.line_number, self.code
        )?;
        if let Some(field) = &self.field {
            write!(f, " [{field}]")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Appended to a value cut to its first KiB, and added as a last value when fields were dropped.
pub const TRUNCATED_MARKER: &str = "…[truncated]";

/// The values of a record in file order, as text (invalid UTF-8 replaced by U+FFFD), in one buffer.
///
/// Serialises as a JSON array of strings (`raw_record`). A record over 1 MiB keeps the first KiB of each field,
/// each cut value ending in [`TRUNCATED_MARKER`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRecord {
    text: String,
    ends: Vec<usize>,
}

impl RawRecord {
    /// Builds a raw record from values.
    pub fn from_values<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut r = RawRecord::default();
        for v in values {
            r.push(v.as_ref());
        }
        r
    }

    pub(crate) fn push(&mut self, value: &str) {
        self.text.push_str(value);
        self.ends.push(self.text.len());
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The value at `index`.
    pub fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            i => *self.ends.get(i - 1)?,
        };
        self.text.get(start..end)
    }

    /// The values in file order.
    pub fn values(&self) -> impl Iterator<Item = &str> + '_ {
        (0..self.ends.len()).filter_map(|i| self.get(i))
    }

    /// The JSON array stored in `ingestion_row_errors.raw_record`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.values()
                .map(|v| serde_json::Value::String(v.to_owned()))
                .collect(),
        )
    }
}

impl serde::Serialize for RawRecord {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.values())
    }
}

impl<'de> serde::Deserialize<'de> for RawRecord {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = <Vec<Cow<'de, str>> as serde::Deserialize>::deserialize(d)?;
        Ok(RawRecord::from_values(v))
    }
}

/// The values of the record the parser returned last, borrowed from its buffers.
#[derive(Debug, Clone, Copy)]
pub struct RawRecordRef<'a> {
    /// The fields' bytes, each `gap` bytes after the previous one's end.
    pub(crate) bytes: &'a [u8],
    /// Where each field ends in `bytes`.
    pub(crate) ends: &'a [usize],
    /// Bytes between two fields: 0 for unquoted copies, 1 for a line split in place at its delimiters.
    pub(crate) gap: usize,
}

impl<'a> RawRecordRef<'a> {
    /// The number of values.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The bytes of the value at `index`, as in the file (unquoted).
    pub fn get_bytes(&self, index: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(index)?;
        let start = match index {
            0 => 0,
            i => *self.ends.get(i - 1)? + self.gap,
        };
        self.bytes.get(start..end)
    }

    /// The bytes of every value with what separates them (for a whole-record UTF-8 check).
    pub(crate) fn span(&self) -> &'a [u8] {
        self.bytes
    }

    /// Copies the values, replacing invalid UTF-8 by U+FFFD.
    pub fn to_owned_record(&self) -> RawRecord {
        let mut r = RawRecord {
            text: String::with_capacity(self.bytes.len()),
            ends: Vec::with_capacity(self.ends.len()),
        };
        for i in 0..self.ends.len() {
            let b = self.get_bytes(i).unwrap_or_default();
            r.push(&String::from_utf8_lossy(b));
        }
        r
    }
}
