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
    /// Database to use: `sqlite://FILE?mode=rwc` or `postgres://USER@HOST/DB`. It is migrated automatically on
    /// first use.
    #[arg(
        long,
        global = true,
        env = "KINTELL_DATABASE_URL",
        default_value = "sqlite://kintell.db?mode=rwc",
        value_name = "URL"
    )]
    pub database_url: String,

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

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
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
