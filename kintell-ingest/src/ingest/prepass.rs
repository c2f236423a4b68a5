//! The pre-pass: one streaming read of the whole file that hashes it, counts its records and validates them
//! without a database, keeping only counts and the error summary in memory.

use std::io::Read;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::batch::{ErrorSample, ErrorSummary, Progress, ProgressMeter};
use crate::formats::{FileError, HeaderInfo, OpenError, ParseOptions, Parser, RowError};

use super::request::ImportSource;
use super::{Clock, ImportError};

/// A reader that hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    /// Reads what is left, then returns the lower-case hex SHA-256 of everything read and the byte count.
    pub(crate) fn finish(mut self) -> std::io::Result<(String, u64)> {
        std::io::copy(&mut self, &mut std::io::sink())?;
        Ok((hex(&self.hasher.finalize()), self.bytes))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(read) = buf.get(..n) {
            self.hasher.update(read);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The SHA-256 of no bytes at all (the legacy batches' `file_hash`).
pub(crate) fn empty_hash() -> String {
    hex(&Sha256::digest(b""))
}

/// What the pre-pass learnt about a file.
#[derive(Debug, Clone)]
pub(crate) struct PrePass {
    /// Lower-case hex SHA-256 of the raw bytes.
    pub(crate) hash: String,
    /// Size in bytes.
    pub(crate) size: u64,
    /// The header and counts, or why the whole file is refused.
    pub(crate) outcome: Result<Scanned, FileError>,
}

/// A file whose header was accepted.
#[derive(Debug, Clone)]
pub(crate) struct Scanned {
    /// Format, delimiter, names.
    pub(crate) header: HeaderInfo,
    /// Data records.
    pub(crate) total_rows: u64,
    /// The rows the parser rejects, counted by code, with the first few.
    pub(crate) summary: ErrorSummary,
}

impl Scanned {
    /// Rows the parser rejects.
    pub(crate) fn invalid_rows(&self) -> u64 {
        self.summary.total()
    }
}

/// How often, in records, the pre-pass reports progress.
const REPORT_EVERY: u64 = 8192;

/// Reads the whole source once.
///
/// # Errors
/// [`ImportError::Open`] when the source cannot be opened, [`ImportError::Read`] when reading it fails.
pub(crate) fn run(
    source: &ImportSource,
    options: &ParseOptions,
    progress: &dyn Progress,
    clock: &dyn Clock,
) -> Result<PrePass, ImportError> {
    let started = clock.now();
    let (reader, size) = source.open().map_err(|e| ImportError::open(source, e))?;
    let meter = ProgressMeter::scanning(size);
    let mut reader = HashingReader::new(reader);
    let outcome = match Parser::open(&mut reader, options) {
        Err(OpenError::File(e)) => Err(e),
        Err(OpenError::Io(e)) => return Err(ImportError::read(source, e)),
        Ok(mut parser) => {
            let mut summary = ErrorSummary::new();
            let mut rows = 0u64;
            while let Some(entry) = parser
                .next_record()
                .map_err(|e| ImportError::read(source, e.source))?
            {
                rows += 1;
                if let Err(e) = entry {
                    summary.record(sample(&e));
                }
                if rows.is_multiple_of(REPORT_EVERY) {
                    let elapsed = elapsed(started, clock);
                    progress.on_progress(&meter.snapshot(parser.bytes_consumed(), rows, elapsed));
                }
            }
            Ok(Scanned {
                header: parser.header().clone(),
                total_rows: rows,
                summary,
            })
        }
    };
    let (hash, bytes) = reader.finish().map_err(|e| ImportError::read(source, e))?;
    let rows = outcome.as_ref().map_or(0, |s| s.total_rows);
    progress.on_progress(&meter.snapshot(bytes, rows, elapsed(started, clock)));
    Ok(PrePass {
        hash,
        size: bytes,
        outcome,
    })
}

/// The sample a rejected row gives the error summary.
pub(crate) fn sample(e: &RowError) -> ErrorSample {
    ErrorSample::new(
        e.row_number,
        e.line_number,
        e.code.as_str(),
        e.field.as_deref(),
        e.message.clone(),
    )
}

/// Time since `started` by `clock` (zero if the clock went back).
pub(crate) fn elapsed(started: chrono::DateTime<chrono::Utc>, clock: &dyn Clock) -> Duration {
    (clock.now() - started).to_std().unwrap_or_default()
}
