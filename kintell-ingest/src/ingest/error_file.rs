//! Writing a batch's error CSV to a file and recording where (`error_file_path`), as the CLI does.

use std::path::Path;

use crate::domain::BatchId;
use crate::ports::BatchGuard;
use crate::store::Store;

use super::error_csv::{ErrorCsvError, write_error_csv};

/// Writes the error CSV of `batch` to `path` (created or truncated; see [`write_error_csv`]) and records `path` as
/// the batch's `error_file_path`. Returns the number of rows written and whether the path was recorded (it is not
/// when another worker changed the batch in between; the file is complete either way).
///
/// # Errors
/// As [`write_error_csv`]; [`ErrorCsvError::Write`] when the file cannot be created or flushed.
pub async fn write_error_file(
    store: &Store,
    batch: BatchId,
    path: &Path,
    escape_formulas: bool,
) -> Result<(u64, bool), ErrorCsvError> {
    let file = std::fs::File::create(path).map_err(ErrorCsvError::Write)?;
    let mut out = std::io::BufWriter::new(file);
    let rows = write_error_csv(store, batch, &mut out, escape_formulas).await?;
    std::io::Write::flush(&mut out).map_err(ErrorCsvError::Write)?;
    drop(out);
    let Some(mut record) = store.get_batch(batch).await? else {
        return Err(ErrorCsvError::NotFound(batch));
    };
    let guard = BatchGuard::of(&record);
    let shown = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    record.error_file_path = Some(shown.display().to_string());
    let recorded = store.save_batch(&record, &guard).await?;
    Ok((rows, recorded))
}
