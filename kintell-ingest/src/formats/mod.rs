//! Input formats: the pure, streaming CSV parser that turns export bytes into domain rows or row errors.
//!
//! [`Parser::open`] reads a file's preamble and header: it strips a BOM, keeps leading `#` comment lines, sniffs
//! the delimiter (`,`, `;` or TAB), normalises and aliases the header names and detects the [`FormatId`] — or
//! refuses the file with a [`FileError`]. The parser then yields one [`Entry`] per data record: a typed
//! [`Record`] or a [`RowError`] with every problem of the row, first in header order, and the raw values.
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use kintell_ingest::domain::DomainRow;
//! use kintell_ingest::formats::{FormatId, ParseOptions, Parser};
//!
//! let csv = "session_id,session_type,participant_email,volunteer_email,date,duration_min,rating\n\
//!            S-1,Language Connect,anna@example.com,olga@volunteer.org,2025-11-01T15:00:00Z,60,4\n\
//!            S-2,Chess,bob@example.com,olga@volunteer.org,2025-11-02T15:00:00Z,60,\n";
//! let options = ParseOptions::new(Utc.with_ymd_and_hms(2025, 12, 1, 0, 0, 0).unwrap());
//! let mut parser = Parser::open(csv.as_bytes(), &options)?;
//! assert_eq!(parser.format(), FormatId::KintellSessions);
//!
//! let first = parser.next_record()?.unwrap().unwrap();
//! let DomainRow::Session(session) = first.row else { unreachable!() };
//! assert_eq!(session.rating.unwrap().to_string(), "0.75");
//!
//! let second = parser.next_record()?.unwrap().unwrap_err();
//! assert_eq!((second.row_number, second.line_number), (2, 3));
//! assert_eq!(second.code.as_str(), "unknown_session_type");
//! assert!(parser.next_record()?.is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Nothing here touches a database, a clock or the file system: the ingest time is an option, and the file name
//! is only looked at by [`instance_from_file_name`].

mod errors;
mod header;
mod instance;
mod parser;
mod tokenizer;
mod validate;
mod values;
pub(crate) mod webhook;

pub use errors::{
    ErrorCode, FileError, FileErrorCode, OpenError, Problem, RawRecord, RawRecordRef, ReadError,
    RowError, TRUNCATED_MARKER,
};
pub use header::{
    Delimiter, FormatId, HeaderInfo, UnknownDelimiter, UnknownFormatId, normalise_header_name,
};
pub use instance::{FileNameInstance, instance_from_file_name};
pub use parser::{Entry, ParseOptions, Parser, Record};
pub use tokenizer::{KEPT_FIELD_BYTES, MAX_FIELDS, MAX_RECORD_BYTES};
