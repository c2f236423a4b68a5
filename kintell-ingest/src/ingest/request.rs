//! What an import is asked to do: the source of the bytes and the options.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::domain::{EntityKind, ProgramType, TimeZoneOffset};
use crate::formats::{Delimiter, FormatId};

/// Where the bytes of an import come from. The pipeline reads them twice (the pre-pass, then the write pass), so a
/// source is something that can be opened again: a path (re-opened each time) or bytes held in memory.
#[derive(Clone)]
pub struct ImportSource {
    name: String,
    origin: Origin,
}

#[derive(Clone)]
enum Origin {
    Path(PathBuf),
    Bytes(Arc<[u8]>),
}

impl ImportSource {
    /// A file on disk; its base name becomes the batch's `file_name`.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.to_string_lossy().into_owned());
        ImportSource {
            name,
            origin: Origin::Path(path),
        }
    }

    /// Bytes held in memory (an upload, a test), under the file name `name`.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        ImportSource {
            name: name.into(),
            origin: Origin::Bytes(bytes.into()),
        }
    }

    /// The same bytes under another file name (the name recorded on the batch and searched for a programme
    /// instance): a server's spooled upload keeps the name the client gave.
    pub fn with_file_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The file name recorded on the batch and searched for a programme instance.
    pub fn file_name(&self) -> &str {
        &self.name
    }

    /// The path, for a source read from disk.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::Path(p) => Some(p),
            Origin::Bytes(_) => None,
        }
    }

    /// Opens the bytes from the start, with their size.
    pub(crate) fn open(&self) -> std::io::Result<(Box<dyn Read + Send>, u64)> {
        match &self.origin {
            Origin::Path(p) => {
                let file = std::fs::File::open(p)?;
                let size = file.metadata()?.len();
                // The parser buffers its input itself.
                Ok((Box::new(file), size))
            }
            Origin::Bytes(b) => Ok((
                Box::new(std::io::Cursor::new(Arc::clone(b))),
                b.len() as u64,
            )),
        }
    }

    /// How to name the source in an error message.
    pub(crate) fn describe(&self) -> String {
        match &self.origin {
            Origin::Path(p) => p.display().to_string(),
            Origin::Bytes(_) => self.name.clone(),
        }
    }
}

impl std::fmt::Debug for ImportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("ImportSource");
        d.field("name", &self.name);
        match &self.origin {
            Origin::Path(p) => d.field("path", p),
            Origin::Bytes(b) => d.field("bytes", &b.len()),
        };
        d.finish()
    }
}

/// The options of one import; every one is optional.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportOptions {
    /// The entity; detected from the header when absent.
    pub entity: Option<EntityKind>,
    /// An explicit programme-instance slug: every row is linked to it (rows' `program_ref` values are ignored);
    /// a slug that names no instance is the file error `unknown_program_instance`.
    pub program_instance: Option<String>,
    /// The batch's programme type (and the tie-breaker between `mentors-v1` and `language-v1`).
    pub program_type: Option<ProgramType>,
    /// An explicit format: no detection.
    pub format: Option<FormatId>,
    /// An explicit delimiter: no sniffing.
    pub delimiter: Option<Delimiter>,
    /// The zone of timestamps written without one (default UTC).
    pub timezone: Option<TimeZoneOffset>,
    /// Import even a file whose bytes a completed batch already imported (a new batch; upserts keep the data free
    /// of duplicates).
    pub force: bool,
    /// Run the whole pipeline in one unit of work and roll it back: the report, and nothing stored.
    pub dry_run: bool,
    /// Records per chunk; the ingestor's default when absent.
    pub chunk_size: Option<usize>,
    /// Refuse the file (before any data row) when the pre-pass finds more invalid rows than this.
    pub max_errors: Option<u64>,
    /// Refuse the file (before any data row) when the share of invalid rows found by the pre-pass is larger than
    /// this (0.0 to 1.0).
    pub max_error_ratio: Option<f64>,
    /// Create users for unknown emails (with the role their column implies) instead of rejecting the rows.
    pub create_missing_users: bool,
}

/// An import: a source and its options, built with chained calls.
///
/// ```
/// use kintell_ingest::domain::EntityKind;
/// use kintell_ingest::ingest::ImportRequest;
///
/// let request = ImportRequest::from_path("mentors_for_ukraine_2024_q4.csv")
///     .entity(EntityKind::KintellSessions)
///     .program_instance("mentors-ukraine-2024-q4")
///     .dry_run(true);
/// assert_eq!(request.source().file_name(), "mentors_for_ukraine_2024_q4.csv");
/// assert!(request.options().dry_run);
/// ```
#[derive(Debug, Clone)]
pub struct ImportRequest {
    source: ImportSource,
    options: ImportOptions,
}

impl ImportRequest {
    /// Imports a file on disk.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        Self::new(ImportSource::from_path(path))
    }

    /// Imports bytes held in memory under the file name `name`.
    pub fn from_bytes(name: impl Into<String>, bytes: impl Into<Arc<[u8]>>) -> Self {
        Self::new(ImportSource::from_bytes(name, bytes))
    }

    /// Imports `source` with default options.
    pub fn new(source: ImportSource) -> Self {
        ImportRequest {
            source,
            options: ImportOptions::default(),
        }
    }

    /// Replaces every option at once.
    pub fn with_options(mut self, options: ImportOptions) -> Self {
        self.options = options;
        self
    }

    /// The source.
    pub fn source(&self) -> &ImportSource {
        &self.source
    }

    /// The options.
    pub fn options(&self) -> &ImportOptions {
        &self.options
    }

    /// Names the entity (only its formats are tried).
    pub fn entity(mut self, entity: EntityKind) -> Self {
        self.options.entity = Some(entity);
        self
    }

    /// Links every row to the programme instance with this slug.
    pub fn program_instance(mut self, slug: impl Into<String>) -> Self {
        self.options.program_instance = Some(slug.into());
        self
    }

    /// Sets the batch's programme type.
    pub fn program_type(mut self, program_type: ProgramType) -> Self {
        self.options.program_type = Some(program_type);
        self
    }

    /// Uses this format without detection.
    pub fn format(mut self, format: FormatId) -> Self {
        self.options.format = Some(format);
        self
    }

    /// Uses this delimiter without sniffing.
    pub fn delimiter(mut self, delimiter: Delimiter) -> Self {
        self.options.delimiter = Some(delimiter);
        self
    }

    /// Reads timestamps written without a zone in this offset.
    pub fn timezone(mut self, offset: TimeZoneOffset) -> Self {
        self.options.timezone = Some(offset);
        self
    }

    /// Imports even a file a completed batch already imported.
    pub fn force(mut self, force: bool) -> Self {
        self.options.force = force;
        self
    }

    /// Runs everything and rolls it back.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.options.dry_run = dry_run;
        self
    }

    /// Records per chunk.
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.options.chunk_size = Some(n);
        self
    }

    /// Refuses the file when the pre-pass finds more invalid rows than `n`.
    pub fn max_errors(mut self, n: u64) -> Self {
        self.options.max_errors = Some(n);
        self
    }

    /// Refuses the file when the share of invalid rows is larger than `ratio`.
    pub fn max_error_ratio(mut self, ratio: f64) -> Self {
        self.options.max_error_ratio = Some(ratio);
        self
    }

    /// Creates users for unknown emails instead of rejecting the rows.
    pub fn create_missing_users(mut self, yes: bool) -> Self {
        self.options.create_missing_users = yes;
        self
    }

    pub(crate) fn into_parts(self) -> (ImportSource, ImportOptions) {
        (self.source, self.options)
    }
}
