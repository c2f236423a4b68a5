//! The streaming parser: opens a file (preamble, delimiter, header, format), then yields one record at a time.

use std::io::Read;

use chrono::{DateTime, TimeDelta, Utc};

use crate::domain::{DomainRow, EntityKind, ProgramType, TimeZoneOffset};

use super::errors::{
    ErrorCode, FileError, FileErrorCode, OpenError, Problem, RawRecordRef, ReadError, RowError,
};
use super::header::{
    self, Column, Delimiter, FormatId, HeaderInfo, candidates, detect, lookup,
    normalise_header_name, recognised,
};
use super::tokenizer::{Line, MAX_RECORD_BYTES, Next, Tokenizer, split_line};
use super::validate::{self, Context, Keyed, Values};

/// How to read a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseOptions {
    /// The entity the import names: only its formats are tried.
    pub entity: Option<EntityKind>,
    /// An explicit format: no detection.
    pub format: Option<FormatId>,
    /// An explicit delimiter: no sniffing.
    pub delimiter: Option<Delimiter>,
    /// The zone of timestamps written without one (default UTC).
    pub time_zone: TimeZoneOffset,
    /// The import's programme type; settles a header that fits both mentors-v1 and language-v1.
    pub program_type: Option<ProgramType>,
    /// When the import runs: events later than this plus one day are out of range.
    pub ingest_time: DateTime<Utc>,
}

impl ParseOptions {
    /// Options with detection everywhere, naive timestamps in UTC.
    pub fn new(ingest_time: DateTime<Utc>) -> Self {
        ParseOptions {
            entity: None,
            format: None,
            delimiter: None,
            time_zone: TimeZoneOffset::UTC,
            program_type: None,
            ingest_time,
        }
    }

    /// Restricts detection to the formats of `entity`.
    pub fn entity(mut self, entity: EntityKind) -> Self {
        self.entity = Some(entity);
        self
    }

    /// Uses `format` without detection.
    pub fn format(mut self, format: FormatId) -> Self {
        self.format = Some(format);
        self
    }

    /// Uses `delimiter` without sniffing.
    pub fn delimiter(mut self, delimiter: Delimiter) -> Self {
        self.delimiter = Some(delimiter);
        self
    }

    /// Reads naive timestamps in `zone`.
    pub fn time_zone(mut self, zone: TimeZoneOffset) -> Self {
        self.time_zone = zone;
        self
    }

    /// Gives the import's programme type.
    pub fn program_type(mut self, program_type: ProgramType) -> Self {
        self.program_type = Some(program_type);
        self
    }
}

/// A record that passed every check the parser can make.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// 1-based data record number (header excluded).
    pub row_number: u64,
    /// Physical line where the record starts.
    pub line_number: u64,
    /// The typed row.
    pub row: DomainRow,
}

/// What reading one record gave: a row, or the row's problems (boxed: rejections are rare and large).
pub type Entry = Result<Record, Box<RowError>>;

/// A streaming parser over one file.
///
/// [`Parser::open`] reads the preamble and the header and settles the format; then [`Parser::next_record`] (or the
/// [`Iterator`] impl) yields one [`Entry`] per data record. Memory is bounded per record (see
/// [`MAX_RECORD_BYTES`]), whatever the file's size. The parser holds nothing but its reader, so it is `Send` when
/// the reader is, and parsing the same bytes again gives the same entries.
pub struct Parser<R> {
    tok: Tokenizer<R>,
    info: HeaderInfo,
    /// The canonical column of each header position.
    slots: Vec<Option<Column>>,
    /// The normalised header names, to name unknown columns in messages.
    names: Vec<String>,
    order: [u32; Column::COUNT],
    ctx: Context,
    row_number: u64,
    problems: Vec<Keyed>,
    failed: bool,
}

impl<R: Read> Parser<R> {
    /// Reads the preamble (`#` comments, blank lines) and the header, sniffs the delimiter and detects the
    /// format.
    ///
    /// # Errors
    /// [`OpenError::File`] when the header is refused (`empty_file`, `unknown_format`, `ambiguous_format`,
    /// `duplicate_header`, `missing_columns`); [`OpenError::Io`] when the reader fails.
    pub fn open(reader: R, options: &ParseOptions) -> Result<Self, OpenError> {
        let mut tok = Tokenizer::new(reader);
        tok.strip_bom().map_err(OpenError::Io)?;
        let mut comments = Vec::new();
        let first_line = loop {
            match tok.peek_line(MAX_RECORD_BYTES).map_err(OpenError::Io)? {
                Line::End => {
                    return Err(FileError::new(
                        FileErrorCode::EmptyFile,
                        if comments.is_empty() {
                            "the file holds no header line (it is empty or blank)"
                        } else {
                            "the file holds only comment lines, no header line"
                        },
                    )
                    .into());
                }
                Line::TooLong => {
                    return Err(FileError::new(
                        FileErrorCode::UnknownFormat,
                        "the first line is longer than 1 MiB; it cannot be a header",
                    )
                    .into());
                }
                Line::Text(line) => {
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    let trimmed = line.trim_ascii();
                    if trimmed.is_empty() {
                        tok.consume_line();
                    } else if trimmed.starts_with(b"#") {
                        comments.push(String::from_utf8_lossy(line).trim_end().to_owned());
                        tok.consume_line();
                    } else {
                        break line.to_vec();
                    }
                }
            }
        };
        let tried = candidates(options.entity, options.format);
        let delimiter = options
            .delimiter
            .unwrap_or_else(|| sniff(&first_line, &tried));
        tok.set_delimiter(delimiter.byte());
        let header_line = tok.line();
        if tok.next_record().map_err(OpenError::Io)? == Next::End {
            return Err(
                FileError::new(FileErrorCode::EmptyFile, "the file holds no header line").into(),
            );
        }
        let raw = tok.record();
        let found: Vec<String> = (0..raw.len())
            .map(|i| String::from_utf8_lossy(raw.get_bytes(i).unwrap_or_default()).into_owned())
            .collect();
        if tok.too_large() {
            return Err(FileError::new(
                FileErrorCode::UnknownFormat,
                "the header is larger than 1 MiB; it cannot be a header",
            )
            .into());
        }
        let names: Vec<String> = found.iter().map(|n| normalise_header_name(n)).collect();
        for (i, n) in names.iter().enumerate() {
            if n.is_empty() {
                continue;
            }
            if let Some(j) = names.iter().skip(i + 1).position(|m| m == n) {
                return Err(FileError::new(
                    FileErrorCode::DuplicateHeader,
                    format!(
                        "the header names column {n:?} twice (columns {} and {})",
                        i + 1,
                        i + j + 2
                    ),
                )
                .into());
            }
        }
        let format = detect(&names, options.entity, options.format, options.program_type)?;
        let slots: Vec<Option<Column>> = names.iter().map(|n| lookup(format, n)).collect();
        for (i, s) in slots.iter().enumerate() {
            let Some(col) = s else { continue };
            if let Some(j) = slots.iter().skip(i + 1).position(|t| t == s) {
                return Err(FileError::new(
                    FileErrorCode::DuplicateHeader,
                    format!(
                        "columns {:?} and {:?} are both column {} of format {format} (one is an alias of the other)",
                        found.get(i).map(|s| s.trim()).unwrap_or_default(),
                        found.get(i + j + 1).map(|s| s.trim()).unwrap_or_default(),
                        col.name()
                    ),
                )
                .into());
            }
        }
        let mut order = [u32::MAX; Column::COUNT];
        for (i, c) in header::spec(format).iter().enumerate() {
            if let Some(o) = order.get_mut(c.column as usize) {
                *o = 1_000_000 + i as u32;
            }
        }
        for (i, s) in slots.iter().enumerate() {
            if let Some(o) = s.and_then(|c| order.get_mut(c as usize)) {
                *o = i as u32;
            }
        }
        let unknown_columns = found
            .iter()
            .zip(&slots)
            .filter(|(_, s)| s.is_none())
            .map(|(n, _)| n.trim().to_owned())
            .collect();
        let info = HeaderInfo {
            format,
            delimiter,
            columns: slots
                .iter()
                .map(|s| s.map(|c| c.name().to_owned()))
                .collect(),
            header: found,
            unknown_columns,
            comments,
            header_line,
        };
        Ok(Parser {
            tok,
            info,
            slots,
            names,
            order,
            ctx: Context {
                zone_secs: options.time_zone.fixed().local_minus_utc(),
                latest: options.ingest_time + TimeDelta::days(1),
            },
            row_number: 0,
            problems: Vec::new(),
            failed: false,
        })
    }

    /// The header: format, delimiter, names, unknown columns, comments.
    pub fn header(&self) -> &HeaderInfo {
        &self.info
    }

    /// The file's format.
    pub fn format(&self) -> FormatId {
        self.info.format
    }

    /// The row number of the last record read (0 before the first).
    pub fn row_number(&self) -> u64 {
        self.row_number
    }

    /// How many bytes of the input have been consumed (for progress).
    pub fn bytes_consumed(&self) -> u64 {
        self.tok.bytes_consumed()
    }

    /// The values of the record returned last, borrowed; [`RawRecordRef::to_owned_record`] copies them when the
    /// pipeline must reject a valid row later.
    pub fn raw_record(&self) -> RawRecordRef<'_> {
        self.tok.record()
    }

    /// Reads the next data record (empty and whitespace-only lines are skipped and not counted).
    ///
    /// # Errors
    /// [`ReadError`] when the reader fails; the parse cannot go on after it.
    pub fn next_record(&mut self) -> Result<Option<Entry>, ReadError> {
        if !self.advance()? {
            return Ok(None);
        }
        self.row_number += 1;
        Ok(Some(self.build()))
    }

    /// Skips up to `n` data records without validating them (resuming after a checkpoint); returns how many were
    /// skipped, fewer only at the end of the file. Row and line numbers go on as if they had been read.
    ///
    /// # Errors
    /// [`ReadError`] when the reader fails.
    pub fn skip_records(&mut self, n: u64) -> Result<u64, ReadError> {
        let mut skipped = 0;
        while skipped < n && self.advance()? {
            self.row_number += 1;
            skipped += 1;
        }
        Ok(skipped)
    }

    /// Tokenises the next record that is not a whitespace-only line; `false` at the end.
    fn advance(&mut self) -> Result<bool, ReadError> {
        if self.failed {
            return Ok(false);
        }
        loop {
            match self.tok.next_record() {
                Err(source) => {
                    self.failed = true;
                    return Err(ReadError {
                        line: self.tok.line(),
                        source,
                    });
                }
                Ok(Next::End) => return Ok(false),
                Ok(Next::Record) => {
                    let raw = self.tok.record();
                    let blank = raw.len() == 1
                        && !self.tok.too_large()
                        && std::str::from_utf8(raw.span()).is_ok_and(|s| s.trim().is_empty());
                    if !blank {
                        return Ok(true);
                    }
                }
            }
        }
    }

    fn field_name(&self, index: usize) -> Option<String> {
        match self.slots.get(index) {
            Some(Some(c)) => Some(c.name().to_owned()),
            Some(None) => self.names.get(index).cloned(),
            None => None,
        }
    }

    fn build(&mut self) -> Entry {
        let row_number = self.row_number;
        let line_number = self.tok.start_line();
        let raw = self.tok.record();
        let reject = |problems: Vec<Problem>| {
            Box::new(RowError::from_problems(
                row_number,
                line_number,
                problems,
                raw.to_owned_record(),
            ))
        };
        if self.tok.too_large() {
            return Err(reject(vec![Problem::new(
                ErrorCode::RecordTooLarge,
                None::<&'static str>,
                format!(
                    "the record is larger than the 1 MiB limit ({} bytes of values read); each value is kept cut \
                     to its first KiB",
                    self.tok.record_bytes()
                ),
            )]));
        }
        let whole = std::str::from_utf8(raw.span()).ok();
        // Filled in place: the cells are a few hundred bytes, not worth a copy per record.
        let mut values = Values {
            cells: [None; Column::COUNT],
            unreadable: 0,
            order: &self.order,
        };
        let mut record_problems = Vec::new();
        let mut bad_fields: Vec<Option<String>> = Vec::new();
        let mut next_start = 0;
        for (i, &end) in raw.ends.iter().enumerate() {
            let start = next_start;
            next_start = end + raw.gap;
            let text = match whole {
                // Values copied side by side (gap 0) can join two halves of a broken character into a valid one:
                // a value that lies inside it is refused by `get` below, rightly unless it is empty.
                _ if start >= end => Some(""),
                Some(t) => t.get(start..end),
                None => raw
                    .span()
                    .get(start..end)
                    .and_then(|b| std::str::from_utf8(b).ok()),
            };
            let slot = self.slots.get(i).copied().flatten();
            match text {
                Some(t) => {
                    if let Some(c) = slot {
                        let t = trim(t);
                        if let Some(cell) = values.cells.get_mut(c as usize) {
                            *cell = (!t.is_empty()).then_some(t);
                        }
                    }
                }
                None => {
                    if let Some(c) = slot {
                        values.unreadable |= 1 << c as u64;
                    }
                    bad_fields.push(self.field_name(i));
                }
            }
        }
        for field in bad_fields {
            let message = match &field {
                Some(f) => format!("{f} holds bytes that are not valid UTF-8; re-export the file as UTF-8"),
                None => "a value beyond the header holds bytes that are not valid UTF-8; re-export the file as \
                         UTF-8"
                    .to_owned(),
            };
            record_problems.push(Problem::new(ErrorCode::Encoding, field, message));
        }
        let expected = self.slots.len();
        if raw.len() != expected {
            record_problems.push(Problem::new(
                ErrorCode::FieldCount,
                None::<&'static str>,
                format!(
                    "the record has {} field{}, the header has {expected}",
                    raw.len(),
                    if raw.len() == 1 { "" } else { "s" }
                ),
            ));
            return Err(reject(record_problems));
        }
        self.problems.clear();
        let row = validate::row(self.info.format, &values, self.ctx, &mut self.problems);
        match row {
            Some(row) if record_problems.is_empty() && self.problems.is_empty() => Ok(Record {
                row_number,
                line_number,
                row,
            }),
            _ => {
                self.problems.sort_by_key(|k| k.key);
                record_problems.extend(self.problems.drain(..).map(|k| k.problem));
                Err(reject(record_problems))
            }
        }
    }
}

impl<R: Read> Iterator for Parser<R> {
    type Item = Result<Entry, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Trims whitespace; empty values and values that start and end with visible ASCII, nearly all of them, are
/// returned as they are.
fn trim(s: &str) -> &str {
    match (s.as_bytes().first(), s.as_bytes().last()) {
        (Some(&f), Some(&l)) if f > b' ' && f < 0x80 && l > b' ' && l < 0x80 => s,
        (None, _) => s,
        _ => s.trim(),
    }
}

/// Picks the delimiter that makes the most of the header line's names recognised; ties go to `,`, then `;`, then
/// TAB.
fn sniff(line: &[u8], formats: &[FormatId]) -> Delimiter {
    let mut best = (0, Delimiter::Comma);
    for d in Delimiter::ALL {
        let names: Vec<String> = split_line(line, d.byte())
            .iter()
            .map(|f| normalise_header_name(&String::from_utf8_lossy(f)))
            .collect();
        let n = recognised(&names, formats);
        if n > best.0 {
            best = (n, *d);
        }
    }
    best.1
}
