//! The error CSV of a batch: its rejected rows with their original columns, then where and why each was
//! rejected; generated from `ingestion_row_errors`, so complete across resumes.

use std::io::Write;

use crate::domain::BatchId;
use crate::ports::StoreError;
use crate::store::Store;

use super::metadata;

/// Why the error CSV could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ErrorCsvError {
    /// No batch has this id.
    #[error("batch {0} does not exist")]
    NotFound(BatchId),
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The writer failed.
    #[error("cannot write the error CSV")]
    Write(#[source] std::io::Error),
}

/// Row errors read per store call.
const PAGE: u32 = 1_000;

/// The columns that follow the record's own.
const ERROR_COLUMNS: [&str; 5] = [
    "_error_row",
    "_error_line",
    "_error_code",
    "_error_field",
    "_error_message",
];

/// Writes the rejected rows of `batch` as a comma-delimited CSV: the header as found in the file, then
/// `_error_row`, `_error_line`, `_error_code`, `_error_field`, `_error_message`; one line per rejected row, by row
/// number, with its original values (a record shorter than the header is padded with empty cells; values beyond
/// the header go to extra columns `_extra_1`, `_extra_2`, … placed before the error columns). With
/// `escape_formulas`, a cell beginning with `=`, `+`, `-`, `@`, TAB or CR is prefixed with `'` so that a
/// spreadsheet does not run it. Returns the number of rows written.
///
/// # Errors
/// [`ErrorCsvError::NotFound`], [`ErrorCsvError::Store`], [`ErrorCsvError::Write`].
pub async fn write_error_csv<W: Write>(
    store: &Store,
    batch: BatchId,
    out: W,
    escape_formulas: bool,
) -> Result<u64, ErrorCsvError> {
    let record = store
        .get_batch(batch)
        .await?
        .ok_or(ErrorCsvError::NotFound(batch))?;
    let header = metadata::header(&record.csv_metadata);
    // A first pass finds the widest record, so that every line has the same columns.
    let mut width = header.len();
    let mut after = 0;
    loop {
        let page = store.row_errors(batch, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.row_number;
        for e in &page {
            width = width.max(e.raw_record.as_array().map_or(0, Vec::len));
        }
    }
    let mut csv = csv::WriterBuilder::new().from_writer(out);
    let write_err = |e: csv::Error| ErrorCsvError::Write(std::io::Error::other(e));
    let cell = |s: &str| -> String {
        if escape_formulas && s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            format!("'{s}")
        } else {
            s.to_owned()
        }
    };
    let mut names: Vec<String> = header.iter().map(|h| cell(h)).collect();
    names.extend((1..=width - header.len()).map(|i| format!("_extra_{i}")));
    names.extend(ERROR_COLUMNS.iter().map(|c| (*c).to_owned()));
    csv.write_record(&names).map_err(write_err)?;
    let mut rows = 0u64;
    let mut after = 0;
    loop {
        let page = store.row_errors(batch, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.row_number;
        for e in &page {
            let values = e
                .raw_record
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let mut line: Vec<String> = values
                .iter()
                .map(|v| cell(v.as_str().unwrap_or_default()))
                .collect();
            line.resize(width, String::new());
            line.push(e.row_number.to_string());
            line.push(e.line_number.to_string());
            line.push(cell(&e.code));
            line.push(cell(e.field.as_deref().unwrap_or_default()));
            line.push(cell(&e.message));
            csv.write_record(&line).map_err(write_err)?;
            rows += 1;
        }
    }
    csv.flush().map_err(ErrorCsvError::Write)?;
    Ok(rows)
}
