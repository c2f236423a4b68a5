//! Command-line arguments (clap derive; the doc comments are the help text).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Ingest CSV exports of volunteer-programme activity (Kintell sessions and users, buddy matches, course
/// completions) into SQLite or PostgreSQL, with a batch ledger, lineage and campaign association.
///
/// Example:
///   kintell-ingest migrate up
///   kintell-ingest catalog import catalog.json
#[derive(Debug, Parser)]
#[command(name = "kintell-ingest", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Global {
    /// Database to use: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB` [default: sqlite://kintell.db?mode=rwc,
    /// and sqlite://kintell-demo.db?mode=rwc for `demo`]. It is migrated automatically on first use.
    #[arg(long, global = true, env = "KINTELL_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,

    /// Print one machine-readable JSON document on stdout and nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// Print no progress and no notices on stderr (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Print more detail on stderr (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// The database of every command but `demo` when none is given.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://kintell.db?mode=rwc";

/// The database of `demo` when none is given.
pub const DEMO_DATABASE_URL: &str = "sqlite://kintell-demo.db?mode=rwc";

impl Global {
    /// The database URL given, or `default`.
    pub fn database_url_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.database_url.as_deref().unwrap_or(default)
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what the tool does on a small bundled example: a catalogue and one sample file of every format
    /// (with rejected rows, an automatic association, a review case and an instance named by a file name),
    /// imported into sqlite://kintell-demo.db?mode=rwc unless --database-url is given; then the batches, the first
    /// rejected rows, the review queue and the campaign report. Running it again shows the re-import refusals and
    /// doubles nothing.
    ///
    /// Example: kintell-ingest demo
    Demo,

    /// Manage the database schema.
    ///
    /// Example: kintell-ingest migrate status
    #[command(subcommand)]
    Migrate(MigrateCommand),

    /// Manage the campaign catalogue (companies, beneficiary groups, campaigns, programme instances, users).
    ///
    /// Example: kintell-ingest catalog import catalog.json
    #[command(subcommand)]
    Catalog(CatalogCommand),

    /// Import a CSV export: validate every row, store the valid ones in chunks under a resumable batch, record
    /// every rejected row. The entity is detected from the header unless given.
    ///
    /// Exit codes: 0 every row stored; 1 rows (or the whole file) rejected; 2 usage or runtime error, or the batch
    /// paused or cancelled on request; 3 the file was already imported (use --force); 4 another worker is
    /// importing it.
    ///
    /// Example: kintell-ingest import sessions mentors_for_ukraine_2024_q4.csv --errors-out rejected.csv
    Import(ImportArgs),

    /// The batch ledger: list, show, export rejected rows, resume, pause, cancel.
    ///
    /// Example: kintell-ingest batches list --status failed
    #[command(subcommand)]
    Batches(BatchesCommand),

    /// Row lineage.
    ///
    /// Example: kintell-ingest lineage adopt-legacy
    #[command(subcommand)]
    Lineage(LineageCommand),

    /// Historical association: re-associate stored activities in checkpointed, resumable runs.
    ///
    /// Example: kintell-ingest associate backfill --dry-run
    #[command(subcommand)]
    Associate(AssociateCommand),

    /// The review queue: associations a person must decide.
    ///
    /// Example: kintell-ingest review list --company acme
    #[command(subcommand)]
    Review(ReviewCommand),

    /// Reports.
    ///
    /// Example: kintell-ingest report campaigns --company acme
    #[command(subcommand)]
    Report(ReportCommand),
}

/// The options of `import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// `[ENTITY] FILE`: the entity (`sessions`, `users`, `buddy-matches`, `course-completions`; detected from the
    /// header when left out) and the CSV file.
    #[arg(value_name = "[ENTITY] FILE", num_args = 1..=2, required = true)]
    pub args: Vec<String>,

    /// Link every row to this programme instance (slug); unknown slugs are refused.
    #[arg(long, value_name = "SLUG")]
    pub program_instance: Option<String>,

    /// The batch's programme type (mentors_ukraine, language_ukraine, buddy, upskilling, kintell); also decides
    /// between the mentors and language formats when the header fits both.
    #[arg(long, value_name = "TYPE")]
    pub program_type: Option<String>,

    /// The format (kintell-sessions, mentors-v1, language-v1, language-v1.1, kintell-users, buddy-matches,
    /// course-completions) instead of detecting it.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,

    /// The delimiter instead of sniffing it: `,`, `;` or `tab`.
    #[arg(long, value_name = "DELIMITER")]
    pub delimiter: Option<String>,

    /// The time zone of timestamps written without one, as ±HH:MM (default UTC).
    #[arg(long, value_name = "±HH:MM", allow_hyphen_values = true)]
    pub timezone: Option<String>,

    /// The time zone of the calendar dates association compares with campaign windows, as ±HH:MM (default UTC).
    #[arg(long, value_name = "±HH:MM", allow_hyphen_values = true)]
    pub policy_timezone: Option<String>,

    /// Import even a file a completed batch already imported (a new batch; nothing is duplicated).
    #[arg(long)]
    pub force: bool,

    /// Run the whole import and roll it back: the same report, nothing stored.
    #[arg(long)]
    pub dry_run: bool,

    /// Rows per transaction (default 5000).
    #[arg(long, value_name = "N")]
    pub chunk_size: Option<usize>,

    /// Refuse the whole file, before storing any row, when more rows than this are invalid.
    #[arg(long, value_name = "N")]
    pub max_errors: Option<u64>,

    /// Refuse the whole file, before storing any row, when a larger share of rows than this (0 to 1) is invalid.
    #[arg(long, value_name = "R")]
    pub max_error_ratio: Option<f64>,

    /// Create users for unknown emails instead of rejecting their rows.
    #[arg(long)]
    pub create_missing_users: bool,

    /// Write the rejected rows, with their errors, to this CSV file.
    #[arg(long, value_name = "PATH")]
    pub errors_out: Option<PathBuf>,
}

/// The batch ledger.
#[derive(Debug, Subcommand)]
pub enum BatchesCommand {
    /// List batches, newest first.
    ///
    /// Example: kintell-ingest batches list --status completed --limit 10
    List {
        /// Only batches in this status (pending, running, paused, completed, failed, cancelled).
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        /// At most this many.
        #[arg(long, value_name = "N", default_value_t = 50)]
        limit: u32,
    },
    /// Show one batch: counters, lease, error summary, metadata.
    ///
    /// Example: kintell-ingest batches show 0192f0c4-…
    Show {
        /// The batch id.
        id: uuid::Uuid,
    },
    /// Write the rejected rows of a batch as CSV: the original columns, then `_error_row`, `_error_line`,
    /// `_error_code`, `_error_field`, `_error_message`.
    ///
    /// Example: kintell-ingest batches errors 0192f0c4-… -o rejected.csv
    Errors {
        /// The batch id.
        id: uuid::Uuid,
        /// Write to this file instead of standard output.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
        /// Keep cells that begin with =, +, -, @, TAB or CR as they are (by default they get a leading ').
        #[arg(long)]
        no_escape_formulas: bool,
    },
    /// Resume a paused, failed, orphaned or abandoned batch from its checkpoint; FILE must be the same bytes.
    ///
    /// Example: kintell-ingest batches resume 0192f0c4-… mentors_for_ukraine_2024_q4.csv
    Resume {
        /// The batch id.
        id: uuid::Uuid,
        /// The file the batch imports.
        file: PathBuf,
    },
    /// Ask the worker importing a batch to pause after its current chunk.
    ///
    /// Example: kintell-ingest batches pause 0192f0c4-…
    Pause {
        /// The batch id.
        id: uuid::Uuid,
    },
    /// Cancel a batch: at once when no worker holds it, else after the worker's current chunk. Rows already
    /// stored stay, with their lineage.
    ///
    /// Example: kintell-ingest batches cancel 0192f0c4-…
    Cancel {
        /// The batch id.
        id: uuid::Uuid,
    },
}

/// Row lineage.
#[derive(Debug, Subcommand)]
pub enum LineageCommand {
    /// Link every activity row stored before batches existed (no batch) to a synthetic legacy batch per table.
    /// Running it again adds only rows still unlinked.
    ///
    /// Example: kintell-ingest lineage adopt-legacy
    AdoptLegacy,
}

/// Schema management.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations (all, or the next N).
    ///
    /// Example: kintell-ingest migrate up
    Up {
        /// Apply only this many migrations.
        #[arg(long, value_name = "N")]
        steps: Option<usize>,
    },
    /// Revert the last applied migration, or all of them.
    ///
    /// Example: kintell-ingest migrate down --all
    Down {
        /// Revert every applied migration (drops every table of ours).
        #[arg(long)]
        all: bool,
    },
    /// List the migrations and whether each is applied.
    ///
    /// Example: kintell-ingest migrate status --json
    Status,
    /// Check that every table, column and index of the applied migrations exists; exits 2 on a mismatch.
    ///
    /// Example: kintell-ingest migrate verify
    Verify,
}

/// Catalogue management.
#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Load a catalogue JSON document: upsert by key, stable ids, all or nothing. Re-importing the same document
    /// changes nothing.
    ///
    /// Example: kintell-ingest catalog import catalog.json
    Import {
        /// The catalogue document (JSON, see the README for its shape).
        file: PathBuf,
    },
}

/// Historical association.
#[derive(Debug, Subcommand)]
pub enum AssociateCommand {
    /// Re-associate stored activities with campaigns and programme instances, page by page (each page one
    /// transaction with the run's checkpoint). By default only activities without an association (or with `none`)
    /// are read; human (`accepted`, `rejected`) and `explicit` decisions are never changed. Prints the run: its id
    /// (for `associate resume`), status and statistics.
    ///
    /// Example: kintell-ingest associate backfill --entity sessions --company acme --start-date 2024-01-01 --dry-run
    Backfill {
        /// Only report what would change (with a sample of up to 20 changes); the run is recorded, nothing else is
        /// written.
        #[arg(long)]
        dry_run: bool,
        /// Which activities to re-associate.
        #[arg(long, value_enum, default_value_t = Entity::All, value_name = "ENTITY")]
        entity: Entity,
        /// Only activities of this company (slug): the volunteer's company, else the participant's.
        #[arg(long, value_name = "SLUG")]
        company: Option<String>,
        /// Only activities on or after this activity date (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        start_date: Option<chrono::NaiveDate>,
        /// Only activities on or before this activity date (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        end_date: Option<chrono::NaiveDate>,
        /// Re-associate every activity, not only those without an association.
        #[arg(long)]
        all_rows: bool,
        /// Activities per page and transaction (1 to 100000).
        #[arg(long, value_name = "N", default_value_t = 1000)]
        batch_size: u32,
        /// The time zone of activity dates (and of --start-date/--end-date), e.g. +02:00; default UTC.
        #[arg(long, value_name = "±HH:MM", allow_hyphen_values = true)]
        policy_timezone: Option<String>,
    },
    /// List the backfill runs, newest first.
    ///
    /// Example: kintell-ingest associate runs --json
    Runs,
    /// Continue a run that failed, was interrupted, or whose worker died, from its checkpoint. Give the
    /// --policy-timezone the run was started with, if any.
    ///
    /// Example: kintell-ingest associate resume 0192f0c4-…
    Resume {
        /// The run's id.
        run: uuid::Uuid,
        /// The time zone of activity dates the run was started with, e.g. +02:00; default UTC.
        #[arg(long, value_name = "±HH:MM", allow_hyphen_values = true)]
        policy_timezone: Option<String>,
    },
}

/// Which activities a backfill reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Entity {
    /// Kintell sessions.
    Sessions,
    /// Buddy matches.
    Matches,
    /// Course completions.
    Completions,
    /// All three.
    All,
}

/// The review queue.
#[derive(Debug, Subcommand)]
pub enum ReviewCommand {
    /// List the items waiting for review, oldest activity first.
    ///
    /// Example: kintell-ingest review list --campaign acme-mentors-2024 --from 2024-10-01
    List {
        /// Only proposals of campaigns of this company (slug).
        #[arg(long, value_name = "SLUG")]
        company: Option<String>,
        /// Only proposals of this campaign (key).
        #[arg(long, value_name = "KEY")]
        campaign: Option<String>,
        /// Only activities of this kind.
        #[arg(long, value_name = "KIND", value_parser = ["kintell_session", "buddy_match", "course_completion"])]
        kind: Option<String>,
        /// Only activities on or after this date (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        from: Option<chrono::NaiveDate>,
        /// Only activities on or before this date (YYYY-MM-DD).
        #[arg(long, value_name = "DATE")]
        to: Option<chrono::NaiveDate>,
        /// At most this many items.
        #[arg(long, value_name = "N")]
        limit: Option<u32>,
    },
    /// Show one item: its reasons and the top-three candidates.
    ///
    /// Example: kintell-ingest review show 0192f0c4-…
    Show {
        /// The item's id (the association id).
        id: uuid::Uuid,
    },
    /// Accept an item: link the activity to the proposed instance (or another instance of the same campaign) and
    /// enrol its people.
    ///
    /// Example: kintell-ingest review accept 0192f0c4-… --by anna@example.com
    Accept {
        /// The item's id.
        id: uuid::Uuid,
        /// Link to this instance (slug) instead of the proposed one; required when the proposal has none.
        #[arg(long, value_name = "SLUG")]
        instance: Option<String>,
        /// Who decides (recorded with the decision).
        #[arg(long, value_name = "WHO")]
        by: String,
    },
    /// Reject an item: record the decision and unlink the activity from the proposed instance.
    ///
    /// Example: kintell-ingest review reject 0192f0c4-… --by anna@example.com
    Reject {
        /// The item's id.
        id: uuid::Uuid,
        /// Who decides (recorded with the decision).
        #[arg(long, value_name = "WHO")]
        by: String,
    },
}

/// Reports.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per campaign and programme instance: linked sessions, matches, completions, session hours, distinct people,
    /// pending reviews and capacity utilisation.
    ///
    /// Example: kintell-ingest report campaigns --company acme --json
    Campaigns {
        /// Only the campaigns of this company (slug).
        #[arg(long, value_name = "SLUG")]
        company: Option<String>,
    },
}
