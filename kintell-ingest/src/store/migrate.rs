//! Schema migrations for both backends: the SQL embedded in the binary, a runner that applies and reverts them one
//! transaction each, and the checks behind `migrate status` and `migrate verify`.
//!
//! The scripts live in `migrations/postgres/` and `migrations/sqlite/` as `NNNN_name.up.sql` /
//! `NNNN_name.down.sql`. [`MIGRATIONS`] lists them together with what each one should leave in the schema (its
//! tables, columns, indexes and foreign keys); `verify` compares the database with that list, and the integration
//! tests check that the list and the scripts agree exactly on both backends. A new migration adds its two pairs of
//! scripts and one entry here.
//!
//! Applied migrations are recorded in [`MIGRATIONS_TABLE`] with the SHA-256 of the up script that was run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::database::{Backend, BoxError, Database};

/// The bookkeeping table: `version`, `name`, `checksum` (SHA-256 hex of the up script), `applied_at`.
pub const MIGRATIONS_TABLE: &str = "kintell_schema_migrations";

/// One migration: its version, name, SQL for both backends, and what it should leave in the schema.
#[derive(Debug)]
pub struct Migration {
    version: i64,
    name: &'static str,
    postgres: Scripts,
    sqlite: Scripts,
    expect: Expect,
}

#[derive(Debug)]
struct Scripts {
    up: &'static str,
    down: &'static str,
}

impl Migration {
    /// The version, `1` for `0001_base`.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The name, `base` for `0001_base`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The up script of a backend.
    pub fn up_sql(&self, backend: Backend) -> &'static str {
        self.scripts(backend).up
    }

    /// The down script of a backend.
    pub fn down_sql(&self, backend: Backend) -> &'static str {
        self.scripts(backend).down
    }

    /// The SHA-256 of the up script of a backend, lower-case hex: what the bookkeeping table records.
    pub fn checksum(&self, backend: Backend) -> String {
        hex(&Sha256::digest(self.up_sql(backend).as_bytes()))
    }

    fn scripts(&self, backend: Backend) -> &Scripts {
        match backend {
            Backend::Sqlite => &self.sqlite,
            Backend::Postgres => &self.postgres,
        }
    }

    fn step(&self) -> MigrationStep {
        MigrationStep {
            version: self.version,
            name: self.name,
        }
    }

    fn label(&self) -> String {
        format!("{:04}_{}", self.version, self.name)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What a migration should leave in the schema.
#[derive(Debug)]
struct Expect {
    /// Tables it creates, with all the columns they are created with.
    tables: &'static [(&'static str, &'static [&'static str])],
    /// Columns it adds to tables that exist before it.
    columns: &'static [(&'static str, &'static [&'static str])],
    /// Indexes it creates (primary keys excluded).
    indexes: &'static [Ix],
    /// Single-column foreign keys it creates.
    foreign_keys: &'static [Fk],
}

/// An expected index.
#[derive(Debug)]
struct Ix {
    name: &'static str,
    table: &'static str,
    unique: bool,
    partial: bool,
}

/// An expected foreign key.
#[derive(Debug)]
struct Fk {
    table: &'static str,
    column: &'static str,
    references: &'static str,
    on_delete: OnDelete,
}

/// A foreign key's `ON DELETE` action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDelete {
    /// `NO ACTION` (the default): the delete fails at the end of the statement if rows still refer.
    NoAction,
    /// `RESTRICT`: the delete fails at once if rows refer.
    Restrict,
    /// `CASCADE`: referring rows are deleted.
    Cascade,
    /// `SET NULL`: referring columns become NULL.
    SetNull,
    /// `SET DEFAULT`: referring columns take their default.
    SetDefault,
}

impl OnDelete {
    /// The SQL spelling.
    pub fn as_sql(self) -> &'static str {
        match self {
            OnDelete::NoAction => "NO ACTION",
            OnDelete::Restrict => "RESTRICT",
            OnDelete::Cascade => "CASCADE",
            OnDelete::SetNull => "SET NULL",
            OnDelete::SetDefault => "SET DEFAULT",
        }
    }

    /// From SQLite's `pragma_foreign_key_list` spelling or PostgreSQL's `confdeltype` letter.
    fn parse(s: &str) -> Option<OnDelete> {
        match s.to_ascii_uppercase().as_str() {
            "NO ACTION" | "A" => Some(OnDelete::NoAction),
            "RESTRICT" | "R" => Some(OnDelete::Restrict),
            "CASCADE" | "C" => Some(OnDelete::Cascade),
            "SET NULL" | "N" => Some(OnDelete::SetNull),
            "SET DEFAULT" | "D" => Some(OnDelete::SetDefault),
            _ => None,
        }
    }
}

impl fmt::Display for OnDelete {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_sql())
    }
}

const fn ix(name: &'static str, table: &'static str) -> Ix {
    Ix {
        name,
        table,
        unique: false,
        partial: false,
    }
}

const fn unique(name: &'static str, table: &'static str) -> Ix {
    Ix {
        name,
        table,
        unique: true,
        partial: false,
    }
}

const fn fk(
    table: &'static str,
    column: &'static str,
    references: &'static str,
    on_delete: OnDelete,
) -> Fk {
    Fk {
        table,
        column,
        references,
        on_delete,
    }
}

macro_rules! migration {
    ($version:literal, $name:literal, $stem:literal, $expect:expr) => {
        Migration {
            version: $version,
            name: $name,
            postgres: Scripts {
                up: include_str!(concat!("../../migrations/postgres/", $stem, ".up.sql")),
                down: include_str!(concat!("../../migrations/postgres/", $stem, ".down.sql")),
            },
            sqlite: Scripts {
                up: include_str!(concat!("../../migrations/sqlite/", $stem, ".up.sql")),
                down: include_str!(concat!("../../migrations/sqlite/", $stem, ".down.sql")),
            },
            expect: $expect,
        }
    };
}

use OnDelete::{Cascade, NoAction, Restrict, SetNull};

/// Every migration this build knows, in version order.
pub static MIGRATIONS: &[Migration] = &[
    migration!(
        1,
        "base",
        "0001_base",
        Expect {
            tables: &[
                (
                    "companies",
                    &["id", "name", "slug", "created_at", "updated_at"]
                ),
                (
                    "users",
                    &[
                        "id",
                        "email",
                        "role",
                        "first_name",
                        "last_name",
                        "company_id",
                        "tags",
                        "journey_flags",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "user_external_ids",
                    &[
                        "id",
                        "user_id",
                        "provider",
                        "external_id",
                        "metadata",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "kintell_sessions",
                    &[
                        "id",
                        "source_system",
                        "external_session_id",
                        "session_type",
                        "participant_id",
                        "volunteer_id",
                        "scheduled_at",
                        "completed_at",
                        "duration_minutes",
                        "rating",
                        "feedback_text",
                        "language_level",
                        "topics",
                        "metadata",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "program_enrollments",
                    &[
                        "id",
                        "user_id",
                        "program_type",
                        "role",
                        "enrolled_at",
                        "status",
                        "completed_at",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "buddy_matches",
                    &[
                        "id",
                        "external_match_id",
                        "participant_id",
                        "buddy_id",
                        "matched_at",
                        "status",
                        "ended_at",
                        "end_reason",
                        "language",
                        "interests",
                        "location",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "learning_progress",
                    &[
                        "id",
                        "user_id",
                        "provider",
                        "course_id",
                        "course_name",
                        "status",
                        "progress_percent",
                        "started_at",
                        "completed_at",
                        "final_score",
                        "credential_ref",
                        "metadata",
                        "created_at",
                        "updated_at",
                    ],
                ),
            ],
            columns: &[],
            indexes: &[
                unique("companies_slug_key", "companies"),
                unique("users_email_key", "users"),
                unique(
                    "user_external_ids_provider_external_id_key",
                    "user_external_ids"
                ),
                ix("user_external_ids_user_id_idx", "user_external_ids"),
                unique(
                    "kintell_sessions_external_session_id_idx",
                    "kintell_sessions"
                ),
                unique(
                    "buddy_matches_participant_id_buddy_id_matched_at_key",
                    "buddy_matches"
                ),
                unique(
                    "learning_progress_user_id_provider_course_id_key",
                    "learning_progress"
                ),
            ],
            foreign_keys: &[
                fk("users", "company_id", "companies", SetNull),
                fk("user_external_ids", "user_id", "users", Cascade),
                fk("kintell_sessions", "participant_id", "users", Cascade),
                fk("kintell_sessions", "volunteer_id", "users", Cascade),
                fk("program_enrollments", "user_id", "users", Cascade),
                fk("buddy_matches", "participant_id", "users", Cascade),
                fk("buddy_matches", "buddy_id", "users", Cascade),
                fk("learning_progress", "user_id", "users", Cascade),
            ],
        }
    ),
    migration!(
        2,
        "program_instances",
        "0002_program_instances",
        Expect {
            tables: &[(
                "program_instances",
                &[
                    "id",
                    "program_type",
                    "program_name",
                    "program_slug",
                    "company_id",
                    "start_date",
                    "end_date",
                    "external_system_id",
                    "external_system",
                    "description",
                    "target_participants",
                    "program_goals",
                    "metadata",
                    "status",
                    "created_at",
                    "updated_at",
                ],
            )],
            columns: &[],
            indexes: &[
                ix("program_instances_program_type_idx", "program_instances"),
                ix("program_instances_company_id_idx", "program_instances"),
                unique("program_instances_program_slug_idx", "program_instances"),
                ix("program_instances_status_idx", "program_instances"),
                ix("program_instances_start_date_idx", "program_instances"),
                ix("program_instances_company_program_idx", "program_instances"),
                ix("program_instances_external_system_idx", "program_instances"),
            ],
            foreign_keys: &[fk("program_instances", "company_id", "companies", NoAction)],
        }
    ),
    migration!(
        3,
        "ingestion_batches",
        "0003_ingestion_batches",
        Expect {
            tables: &[
                (
                    "ingestion_batches",
                    &[
                        "id",
                        "file_name",
                        "file_hash",
                        "file_size_bytes",
                        "program_type",
                        "program_instance_id",
                        "source_system",
                        "import_method",
                        "total_rows",
                        "success_rows",
                        "error_rows",
                        "skipped_rows",
                        "last_processed_row",
                        "error_file_path",
                        "csv_metadata",
                        "imported_by",
                        "imported_by_service",
                        "status",
                        "error_summary",
                        "started_at",
                        "completed_at",
                        "created_at",
                        "updated_at",
                        "entity_kind",
                        "format",
                        "lease_owner",
                        "lease_expires_at",
                        "last_error",
                        "requested_action",
                        "inserted_rows",
                        "updated_rows",
                    ],
                ),
                (
                    "ingestion_row_errors",
                    &[
                        "id",
                        "batch_id",
                        "row_number",
                        "line_number",
                        "code",
                        "field",
                        "message",
                        "details",
                        "raw_record",
                        "created_at",
                    ],
                ),
            ],
            columns: &[],
            indexes: &[
                ix("ingestion_batches_file_hash_idx", "ingestion_batches"),
                ix("ingestion_batches_program_type_idx", "ingestion_batches"),
                ix(
                    "ingestion_batches_program_instance_id_idx",
                    "ingestion_batches"
                ),
                ix("ingestion_batches_status_idx", "ingestion_batches"),
                ix("ingestion_batches_started_at_idx", "ingestion_batches"),
                ix("ingestion_batches_created_at_idx", "ingestion_batches"),
                ix("ingestion_batches_imported_by_idx", "ingestion_batches"),
                ix("ingestion_batches_source_system_idx", "ingestion_batches"),
                Ix {
                    name: "ingestion_batches_in_flight_uq",
                    table: "ingestion_batches",
                    unique: true,
                    partial: true,
                },
                unique(
                    "ingestion_row_errors_batch_id_row_number_key",
                    "ingestion_row_errors"
                ),
            ],
            foreign_keys: &[
                fk(
                    "ingestion_batches",
                    "program_instance_id",
                    "program_instances",
                    SetNull
                ),
                fk("ingestion_batches", "imported_by", "users", SetNull),
                fk(
                    "ingestion_row_errors",
                    "batch_id",
                    "ingestion_batches",
                    Cascade
                ),
            ],
        }
    ),
    migration!(
        4,
        "extend_kintell_sessions",
        "0004_extend_kintell_sessions",
        Expect {
            tables: &[],
            columns: &[("kintell_sessions", &["batch_id", "program_instance_id"])],
            indexes: &[
                ix("kintell_sessions_batch_id_idx", "kintell_sessions"),
                ix(
                    "kintell_sessions_program_instance_id_idx",
                    "kintell_sessions"
                ),
                ix("kintell_sessions_participant_id_idx", "kintell_sessions"),
                ix("kintell_sessions_volunteer_id_idx", "kintell_sessions"),
                ix("kintell_sessions_completed_at_idx", "kintell_sessions"),
            ],
            foreign_keys: &[
                fk(
                    "kintell_sessions",
                    "batch_id",
                    "ingestion_batches",
                    NoAction
                ),
                fk(
                    "kintell_sessions",
                    "program_instance_id",
                    "program_instances",
                    SetNull
                ),
            ],
        }
    ),
    migration!(
        5,
        "extend_program_enrollments",
        "0005_extend_program_enrollments",
        Expect {
            tables: &[],
            columns: &[("program_enrollments", &["program_instance_id"])],
            indexes: &[
                ix(
                    "program_enrollments_program_instance_id_idx",
                    "program_enrollments"
                ),
                unique(
                    "program_enrollments_user_id_program_instance_id_role_key",
                    "program_enrollments"
                ),
            ],
            foreign_keys: &[fk(
                "program_enrollments",
                "program_instance_id",
                "program_instances",
                SetNull
            )],
        }
    ),
    migration!(
        6,
        "campaigns",
        "0006_campaigns",
        Expect {
            tables: &[
                (
                    "beneficiary_groups",
                    &[
                        "id",
                        "key",
                        "name",
                        "group_type",
                        "tags",
                        "is_active",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "campaigns",
                    &[
                        "id",
                        "key",
                        "name",
                        "company_id",
                        "beneficiary_group_id",
                        "program_type",
                        "start_date",
                        "end_date",
                        "status",
                        "is_active",
                        "target_volunteers",
                        "target_beneficiaries",
                        "max_sessions",
                        "created_at",
                        "updated_at",
                    ],
                ),
            ],
            columns: &[("program_instances", &["campaign_id"])],
            indexes: &[
                unique("beneficiary_groups_key_key", "beneficiary_groups"),
                unique("campaigns_key_key", "campaigns"),
                ix("campaigns_company_active_dates_idx", "campaigns"),
                ix("program_instances_campaign_id_idx", "program_instances"),
            ],
            foreign_keys: &[
                fk("campaigns", "company_id", "companies", Cascade),
                fk(
                    "campaigns",
                    "beneficiary_group_id",
                    "beneficiary_groups",
                    Restrict
                ),
                fk("program_instances", "campaign_id", "campaigns", Cascade),
            ],
        }
    ),
    migration!(
        7,
        "activity_program_instance",
        "0007_activity_program_instance",
        Expect {
            tables: &[],
            columns: &[
                (
                    "buddy_matches",
                    &[
                        "batch_id",
                        "program_instance_id",
                        "first_batch_id",
                        "source_row_number",
                    ],
                ),
                (
                    "learning_progress",
                    &[
                        "batch_id",
                        "program_instance_id",
                        "first_batch_id",
                        "source_row_number",
                    ],
                ),
                ("kintell_sessions", &["first_batch_id", "source_row_number"]),
            ],
            indexes: &[
                ix("kintell_sessions_instance_date_idx", "kintell_sessions"),
                ix("buddy_matches_batch_id_idx", "buddy_matches"),
                ix("buddy_matches_program_instance_id_idx", "buddy_matches"),
                ix("buddy_matches_instance_date_idx", "buddy_matches"),
                ix("learning_progress_batch_id_idx", "learning_progress"),
                ix(
                    "learning_progress_program_instance_id_idx",
                    "learning_progress"
                ),
                ix("learning_progress_instance_date_idx", "learning_progress"),
            ],
            foreign_keys: &[
                fk("buddy_matches", "batch_id", "ingestion_batches", NoAction),
                fk(
                    "buddy_matches",
                    "program_instance_id",
                    "program_instances",
                    SetNull
                ),
                fk(
                    "buddy_matches",
                    "first_batch_id",
                    "ingestion_batches",
                    NoAction
                ),
                fk(
                    "learning_progress",
                    "batch_id",
                    "ingestion_batches",
                    NoAction
                ),
                fk(
                    "learning_progress",
                    "program_instance_id",
                    "program_instances",
                    SetNull
                ),
                fk(
                    "learning_progress",
                    "first_batch_id",
                    "ingestion_batches",
                    NoAction
                ),
                fk(
                    "kintell_sessions",
                    "first_batch_id",
                    "ingestion_batches",
                    NoAction
                ),
            ],
        }
    ),
    migration!(
        8,
        "associations",
        "0008_associations",
        Expect {
            tables: &[
                (
                    "association_runs",
                    &[
                        "id",
                        "dry_run",
                        "entity",
                        "company_id",
                        "start_date",
                        "end_date",
                        "only_unassociated",
                        "batch_size",
                        "status",
                        "checkpoint",
                        "stats",
                        "lease_owner",
                        "lease_expires_at",
                        "started_at",
                        "completed_at",
                        "created_at",
                        "updated_at",
                    ],
                ),
                (
                    "activity_associations",
                    &[
                        "id",
                        "activity_kind",
                        "activity_id",
                        "campaign_id",
                        "program_instance_id",
                        "confidence",
                        "decision",
                        "reasons",
                        "policy_version",
                        "candidates",
                        "batch_id",
                        "run_id",
                        "decided_by",
                        "decided_at",
                        "created_at",
                        "updated_at",
                    ],
                ),
            ],
            columns: &[],
            indexes: &[
                unique(
                    "activity_associations_activity_kind_activity_id_key",
                    "activity_associations"
                ),
                ix(
                    "activity_associations_decision_idx",
                    "activity_associations"
                ),
            ],
            foreign_keys: &[
                fk("activity_associations", "campaign_id", "campaigns", Cascade),
                fk(
                    "activity_associations",
                    "program_instance_id",
                    "program_instances",
                    SetNull
                ),
                fk(
                    "activity_associations",
                    "run_id",
                    "association_runs",
                    SetNull
                ),
            ],
        }
    ),
    migration!(
        9,
        "webhook_deliveries",
        "0009_webhook_deliveries",
        Expect {
            tables: &[(
                "webhook_deliveries",
                &[
                    "delivery_id",
                    "event",
                    "received_at",
                    "body_sha256",
                    "response_status",
                    "response_body",
                    "batch_id",
                    "created_at",
                ],
            )],
            columns: &[],
            indexes: &[ix("webhook_deliveries_batch_id_idx", "webhook_deliveries")],
            foreign_keys: &[fk(
                "webhook_deliveries",
                "batch_id",
                "ingestion_batches",
                SetNull
            )],
        }
    ),
];

/// A migration applied or reverted by a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStep {
    /// Its version.
    pub version: i64,
    /// Its name.
    pub name: &'static str,
}

impl fmt::Display for MigrationStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}_{}", self.version, self.name)
    }
}

/// One line of `migrate status`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// The version.
    pub version: i64,
    /// The name (as this build knows it, or as recorded when it does not).
    pub name: String,
    /// Whether the database records it as applied.
    pub applied: bool,
    /// When it was applied.
    pub applied_at: Option<DateTime<Utc>>,
    /// Applied with an up script other than this build's.
    pub checksum_mismatch: bool,
    /// False for a migration the database records but this build does not know (applied by a newer build).
    pub known: bool,
}

/// Up or down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Applying.
    Up,
    /// Reverting.
    Down,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Up => "apply",
            Direction::Down => "revert",
        })
    }
}

/// Why `migrate up` or `migrate down` stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The bookkeeping table could not be created or read, or a transaction could not be opened or committed.
    #[error("could not {action} on the {backend} database")]
    Database {
        /// What was being done.
        action: &'static str,
        /// The backend.
        backend: Backend,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
    /// A migration's SQL failed; its transaction was rolled back.
    #[error("could not {direction} migration {step} on the {backend} database")]
    Step {
        /// The migration.
        step: MigrationStep,
        /// Applying or reverting.
        direction: Direction,
        /// The backend.
        backend: Backend,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
    /// The database records a migration whose up script differs from this build's.
    #[error(
        "migration {version:04}_{name} was applied with a different script (checksum {recorded}, this build has \
         {expected}); refusing to migrate"
    )]
    ChecksumMismatch {
        /// Its version.
        version: i64,
        /// Its name.
        name: String,
        /// The checksum recorded when it was applied.
        recorded: String,
        /// The checksum of this build's script.
        expected: String,
    },
    /// The database records a migration this build does not know: it was migrated by a newer build.
    #[error(
        "the database records migration {version:04}_{name}, which this build does not know (migrated by a newer \
         build?); refusing to migrate"
    )]
    UnknownApplied {
        /// Its version.
        version: i64,
        /// Its recorded name.
        name: String,
    },
    /// A pending migration is older than one already applied, so applying it now would run it out of order.
    #[error(
        "migration {step} is not applied but the later migration {later:04} is; refusing to apply it out of order"
    )]
    OutOfOrder {
        /// The pending migration.
        step: MigrationStep,
        /// The latest applied version.
        later: i64,
    },
}

/// Why `migrate status` or `migrate verify` could not read the database.
#[derive(Debug, thiserror::Error)]
#[error("could not read {what} of the {backend} database")]
pub struct InspectError {
    /// What was being read.
    pub what: &'static str,
    /// The backend.
    pub backend: Backend,
    /// What the driver said.
    #[source]
    pub source: BoxError,
}

/// A table, column or index, named in a verification report.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchemaObject {
    /// A table.
    Table {
        /// Its name.
        table: String,
    },
    /// A column.
    Column {
        /// Its table.
        table: String,
        /// Its name.
        column: String,
    },
    /// An index.
    Index {
        /// Its table.
        table: String,
        /// Its name.
        index: String,
    },
}

impl fmt::Display for SchemaObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaObject::Table { table } => write!(f, "table {table}"),
            SchemaObject::Column { table, column } => write!(f, "column {table}.{column}"),
            SchemaObject::Index { table, index } => write!(f, "index {index} on {table}"),
        }
    }
}

/// A difference between the database and what its migrations should have made. `migration` is the
/// `NNNN_name` of the migration concerned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum VerifyProblem {
    /// A migration of this build is not applied.
    NotApplied {
        /// The migration.
        migration: String,
    },
    /// An applied migration was applied with an up script other than this build's.
    ChecksumMismatch {
        /// The migration.
        migration: String,
        /// The recorded checksum.
        recorded: String,
        /// This build's checksum.
        expected: String,
    },
    /// The database records a migration this build does not know.
    UnknownMigration {
        /// The recorded `NNNN_name`.
        migration: String,
    },
    /// Something an applied migration creates is missing.
    Missing {
        /// What is missing.
        object: SchemaObject,
        /// The migration that creates it.
        migration: String,
    },
    /// An index exists with a different uniqueness or partiality.
    IndexDiffers {
        /// The index.
        object: SchemaObject,
        /// What the migration creates, e.g. `unique partial`.
        expected: String,
        /// What the database has.
        found: String,
        /// The migration that creates it.
        migration: String,
    },
    /// A foreign key an applied migration creates is missing, or points elsewhere.
    MissingForeignKey {
        /// The referring table.
        table: String,
        /// The referring column.
        column: String,
        /// The referenced table.
        references: String,
        /// The migration that creates it.
        migration: String,
    },
    /// A foreign key exists with another `ON DELETE` action.
    ForeignKeyDiffers {
        /// The referring table.
        table: String,
        /// The referring column.
        column: String,
        /// The action the migration sets.
        expected: OnDelete,
        /// The action the database has (as the database spells it when unknown).
        found: String,
        /// The migration that creates it.
        migration: String,
    },
    /// Something a migration that is not applied creates is present (a failed or manual down, or manual DDL).
    Leftover {
        /// What is present.
        object: SchemaObject,
        /// The unapplied migration that creates it.
        migration: String,
    },
}

impl fmt::Display for VerifyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyProblem::NotApplied { migration } => {
                write!(f, "migration {migration} is not applied")
            }
            VerifyProblem::ChecksumMismatch {
                migration,
                recorded,
                expected,
            } => write!(
                f,
                "migration {migration} was applied with a different script (checksum {recorded}, this build has \
                 {expected})"
            ),
            VerifyProblem::UnknownMigration { migration } => write!(
                f,
                "the database records migration {migration}, which this build does not know"
            ),
            VerifyProblem::Missing { object, migration } => {
                write!(f, "missing {object} (migration {migration})")
            }
            VerifyProblem::IndexDiffers {
                object,
                expected,
                found,
                migration,
            } => write!(
                f,
                "{object} is {found}, expected {expected} (migration {migration})"
            ),
            VerifyProblem::MissingForeignKey {
                table,
                column,
                references,
                migration,
            } => write!(
                f,
                "missing foreign key {table}.{column} -> {references} (migration {migration})"
            ),
            VerifyProblem::ForeignKeyDiffers {
                table,
                column,
                expected,
                found,
                migration,
            } => write!(
                f,
                "foreign key {table}.{column} is ON DELETE {found}, expected ON DELETE {expected} (migration \
                 {migration})"
            ),
            VerifyProblem::Leftover { object, migration } => write!(
                f,
                "{object} is present but migration {migration}, which creates it, is not applied"
            ),
        }
    }
}

/// The result of `migrate verify`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// The backend checked.
    pub backend: Backend,
    /// Versions the database records as applied, ascending.
    pub applied: Vec<i64>,
    /// Every difference found; empty when the schema is exactly what this build's migrations make.
    pub problems: Vec<VerifyProblem>,
    /// Columns and indexes on our tables that no migration creates (added by hand, say). Reported, not a failure.
    pub extras: Vec<SchemaObject>,
}

impl VerifyReport {
    /// True when there is no problem (extras allowed).
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            write!(
                f,
                "{} schema verified: {} migrations applied, no problem",
                self.backend,
                self.applied.len()
            )?;
        } else {
            write!(
                f,
                "{} schema has {} problem(s):",
                self.backend,
                self.problems.len()
            )?;
            for p in &self.problems {
                write!(f, "\n  {p}")?;
            }
        }
        for e in &self.extras {
            write!(f, "\n  note: {e} is not created by any migration")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Planning: pure decisions on what the bookkeeping table records.

/// A row of the bookkeeping table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Recorded {
    version: i64,
    name: String,
    checksum: String,
    applied_at: DateTime<Utc>,
}

fn known(version: i64) -> Option<&'static Migration> {
    MIGRATIONS.iter().find(|m| m.version == version)
}

/// The next migration to apply, or `None` when up to date; refuses when the recorded state is not one this build
/// can build on.
fn plan_up(
    backend: Backend,
    recorded: &[Recorded],
) -> Result<Option<&'static Migration>, MigrateError> {
    for r in recorded {
        match known(r.version) {
            None => {
                return Err(MigrateError::UnknownApplied {
                    version: r.version,
                    name: r.name.clone(),
                });
            }
            Some(m) => {
                let expected = m.checksum(backend);
                if r.checksum != expected {
                    return Err(MigrateError::ChecksumMismatch {
                        version: r.version,
                        name: m.name.to_owned(),
                        recorded: r.checksum.clone(),
                        expected,
                    });
                }
            }
        }
    }
    let applied: BTreeSet<i64> = recorded.iter().map(|r| r.version).collect();
    let Some(next) = MIGRATIONS.iter().find(|m| !applied.contains(&m.version)) else {
        return Ok(None);
    };
    match applied.last() {
        Some(&later) if later > next.version => Err(MigrateError::OutOfOrder {
            step: next.step(),
            later,
        }),
        _ => Ok(Some(next)),
    }
}

/// The migration to revert (the latest applied), or `None` when nothing is applied.
fn plan_down(recorded: &[Recorded]) -> Result<Option<&'static Migration>, MigrateError> {
    let Some(latest) = recorded.iter().max_by_key(|r| r.version) else {
        return Ok(None);
    };
    known(latest.version)
        .map(Some)
        .ok_or_else(|| MigrateError::UnknownApplied {
            version: latest.version,
            name: latest.name.clone(),
        })
}

fn status_of(backend: Backend, recorded: &[Recorded]) -> Vec<MigrationStatus> {
    let by_version: BTreeMap<i64, &Recorded> = recorded.iter().map(|r| (r.version, r)).collect();
    let mut out: Vec<MigrationStatus> = MIGRATIONS
        .iter()
        .map(|m| {
            let r = by_version.get(&m.version);
            MigrationStatus {
                version: m.version,
                name: m.name.to_owned(),
                applied: r.is_some(),
                applied_at: r.map(|r| r.applied_at),
                checksum_mismatch: r.is_some_and(|r| r.checksum != m.checksum(backend)),
                known: true,
            }
        })
        .collect();
    out.extend(
        recorded
            .iter()
            .filter(|r| known(r.version).is_none())
            .map(|r| MigrationStatus {
                version: r.version,
                name: r.name.clone(),
                applied: true,
                applied_at: Some(r.applied_at),
                checksum_mismatch: false,
                known: false,
            }),
    );
    out.sort_by_key(|s| s.version);
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Verification: the database's schema, read the same way on both backends, against the expectations.

/// What the database has, for the tables we know.
#[derive(Debug, Default)]
struct Snapshot {
    tables: BTreeMap<String, TableInfo>,
}

#[derive(Debug, Default)]
struct TableInfo {
    columns: BTreeSet<String>,
    /// Non-primary-key indexes: name → (unique, partial).
    indexes: BTreeMap<String, (bool, bool)>,
    /// Single-column foreign keys: (column, referenced table) → ON DELETE as the database spells it.
    foreign_keys: BTreeMap<(String, String), String>,
}

/// Every table any known migration creates.
fn our_tables() -> Vec<&'static str> {
    let mut tables: Vec<&'static str> = MIGRATIONS
        .iter()
        .flat_map(|m| m.expect.tables.iter().map(|(t, _)| *t))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    tables
}

fn shape(unique: bool, partial: bool) -> String {
    match (unique, partial) {
        (true, true) => "unique partial".into(),
        (true, false) => "unique".into(),
        (false, true) => "partial".into(),
        (false, false) => "plain".into(),
    }
}

fn compute_verify(backend: Backend, recorded: &[Recorded], snap: &Snapshot) -> VerifyReport {
    let mut problems = Vec::new();
    let by_version: BTreeMap<i64, &Recorded> = recorded.iter().map(|r| (r.version, r)).collect();

    for r in recorded {
        if known(r.version).is_none() {
            problems.push(VerifyProblem::UnknownMigration {
                migration: format!("{:04}_{}", r.version, r.name),
            });
        }
    }

    // Everything the applied migrations make, to tell leftovers and extras from expected objects.
    let mut expected_columns: BTreeSet<(&str, &str)> = BTreeSet::new();
    let mut expected_indexes: BTreeSet<&str> = BTreeSet::new();
    let mut expected_tables: BTreeSet<&str> = BTreeSet::new();
    for m in MIGRATIONS
        .iter()
        .filter(|m| by_version.contains_key(&m.version))
    {
        for (t, cols) in m.expect.tables {
            expected_tables.insert(t);
            expected_columns.extend(cols.iter().map(|c| (*t, *c)));
        }
        for (t, cols) in m.expect.columns {
            expected_columns.extend(cols.iter().map(|c| (*t, *c)));
        }
        expected_indexes.extend(m.expect.indexes.iter().map(|i| i.name));
    }

    let mut leftovers: BTreeSet<SchemaObject> = BTreeSet::new();
    for m in MIGRATIONS {
        let label = m.label();
        let Some(r) = by_version.get(&m.version) else {
            problems.push(VerifyProblem::NotApplied {
                migration: label.clone(),
            });
            check_leftovers(m, snap, &expected_tables, &mut leftovers, &mut problems);
            continue;
        };
        let expected_sum = m.checksum(backend);
        if r.checksum != expected_sum {
            problems.push(VerifyProblem::ChecksumMismatch {
                migration: label.clone(),
                recorded: r.checksum.clone(),
                expected: expected_sum,
            });
        }
        check_applied(m, snap, &label, &mut problems);
    }

    let mut extras = Vec::new();
    for table in &expected_tables {
        let Some(info) = snap.tables.get(*table) else {
            continue;
        };
        for c in &info.columns {
            let object = SchemaObject::Column {
                table: (*table).to_owned(),
                column: c.clone(),
            };
            if !expected_columns.contains(&(*table, c.as_str())) && !leftovers.contains(&object) {
                extras.push(object);
            }
        }
        for i in info.indexes.keys() {
            let object = SchemaObject::Index {
                table: (*table).to_owned(),
                index: i.clone(),
            };
            if !expected_indexes.contains(i.as_str()) && !leftovers.contains(&object) {
                extras.push(object);
            }
        }
    }

    VerifyReport {
        backend,
        applied: by_version.keys().copied().collect(),
        problems,
        extras,
    }
}

fn check_applied(m: &Migration, snap: &Snapshot, label: &str, problems: &mut Vec<VerifyProblem>) {
    let missing = |object| VerifyProblem::Missing {
        object,
        migration: label.to_owned(),
    };
    for (t, cols) in m.expect.tables {
        match snap.tables.get(*t) {
            None => problems.push(missing(SchemaObject::Table {
                table: (*t).to_owned(),
            })),
            Some(info) => problems.extend(cols.iter().filter(|c| !info.columns.contains(**c)).map(
                |c| {
                    missing(SchemaObject::Column {
                        table: (*t).to_owned(),
                        column: (*c).to_owned(),
                    })
                },
            )),
        }
    }
    for (t, cols) in m.expect.columns {
        // A missing table is reported by the migration that creates it.
        if let Some(info) = snap.tables.get(*t) {
            problems.extend(
                cols.iter()
                    .filter(|c| !info.columns.contains(**c))
                    .map(|c| {
                        missing(SchemaObject::Column {
                            table: (*t).to_owned(),
                            column: (*c).to_owned(),
                        })
                    }),
            );
        }
    }
    for i in m.expect.indexes {
        let object = SchemaObject::Index {
            table: i.table.to_owned(),
            index: i.name.to_owned(),
        };
        match snap.tables.get(i.table).and_then(|t| t.indexes.get(i.name)) {
            None => problems.push(missing(object)),
            Some(&(unique, partial)) if (unique, partial) != (i.unique, i.partial) => {
                problems.push(VerifyProblem::IndexDiffers {
                    object,
                    expected: shape(i.unique, i.partial),
                    found: shape(unique, partial),
                    migration: label.to_owned(),
                });
            }
            Some(_) => {}
        }
    }
    for k in m.expect.foreign_keys {
        let found = snap.tables.get(k.table).and_then(|t| {
            t.foreign_keys
                .get(&(k.column.to_owned(), k.references.to_owned()))
        });
        match found {
            None => problems.push(VerifyProblem::MissingForeignKey {
                table: k.table.to_owned(),
                column: k.column.to_owned(),
                references: k.references.to_owned(),
                migration: label.to_owned(),
            }),
            Some(action) if OnDelete::parse(action) != Some(k.on_delete) => {
                problems.push(VerifyProblem::ForeignKeyDiffers {
                    table: k.table.to_owned(),
                    column: k.column.to_owned(),
                    expected: k.on_delete,
                    found: OnDelete::parse(action)
                        .map_or_else(|| action.clone(), |a| a.as_sql().to_owned()),
                    migration: label.to_owned(),
                });
            }
            Some(_) => {}
        }
    }
}

fn check_leftovers(
    m: &Migration,
    snap: &Snapshot,
    expected_tables: &BTreeSet<&str>,
    leftovers: &mut BTreeSet<SchemaObject>,
    problems: &mut Vec<VerifyProblem>,
) {
    let mut report = |object: SchemaObject| {
        if leftovers.insert(object.clone()) {
            problems.push(VerifyProblem::Leftover {
                object,
                migration: m.label(),
            });
        }
    };
    let mut own_tables = BTreeSet::new();
    for (t, _) in m.expect.tables {
        if snap.tables.contains_key(*t) && !expected_tables.contains(t) {
            own_tables.insert(*t);
            report(SchemaObject::Table {
                table: (*t).to_owned(),
            });
        }
    }
    for (t, cols) in m.expect.columns {
        if let Some(info) = snap.tables.get(*t) {
            for c in cols.iter().filter(|c| info.columns.contains(**c)) {
                report(SchemaObject::Column {
                    table: (*t).to_owned(),
                    column: (*c).to_owned(),
                });
            }
        }
    }
    for i in m.expect.indexes {
        // The indexes of a leftover table go with it.
        if own_tables.contains(i.table) {
            continue;
        }
        if snap
            .tables
            .get(i.table)
            .is_some_and(|t| t.indexes.contains_key(i.name))
        {
            report(SchemaObject::Index {
                table: i.table.to_owned(),
                index: i.name.to_owned(),
            });
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The runner.

pub(crate) async fn up(
    db: &Database,
    steps: Option<usize>,
) -> Result<Vec<MigrationStep>, MigrateError> {
    let mut done = Vec::new();
    while steps.is_none_or(|n| done.len() < n) {
        let applied = match db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => lite::step(pool, Direction::Up).await?,
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => pg::step(pool, Direction::Up).await?,
        };
        match applied {
            Some(m) => done.push(m.step()),
            None => break,
        }
    }
    Ok(done)
}

pub(crate) async fn down(db: &Database, all: bool) -> Result<Vec<MigrationStep>, MigrateError> {
    let mut done = Vec::new();
    while all || done.is_empty() {
        let reverted = match db {
            #[cfg(feature = "sqlite")]
            Database::Sqlite(pool) => lite::step(pool, Direction::Down).await?,
            #[cfg(feature = "postgres")]
            Database::Postgres(pool) => pg::step(pool, Direction::Down).await?,
        };
        match reverted {
            Some(m) => done.push(m.step()),
            None => break,
        }
    }
    Ok(done)
}

pub(crate) async fn status(db: &Database) -> Result<Vec<MigrationStatus>, InspectError> {
    let recorded = read_recorded(db).await?;
    Ok(status_of(db.backend(), &recorded))
}

pub(crate) async fn verify(db: &Database) -> Result<VerifyReport, InspectError> {
    let recorded = read_recorded(db).await?;
    let backend = db.backend();
    let snapshot = match db {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => lite::snapshot(pool).await,
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => pg::snapshot(pool).await,
    }
    .map_err(|e| InspectError {
        what: "the schema",
        backend,
        source: Box::new(e),
    })?;
    Ok(compute_verify(backend, &recorded, &snapshot))
}

async fn read_recorded(db: &Database) -> Result<Vec<Recorded>, InspectError> {
    match db {
        #[cfg(feature = "sqlite")]
        Database::Sqlite(pool) => {
            let mut conn = pool.acquire().await.map_err(inspect_err(Backend::Sqlite))?;
            lite::recorded(&mut conn).await
        }
        #[cfg(feature = "postgres")]
        Database::Postgres(pool) => {
            let mut conn = pool
                .acquire()
                .await
                .map_err(inspect_err(Backend::Postgres))?;
            pg::recorded(&mut conn).await
        }
    }
    .map_err(inspect_err(db.backend()))
}

fn inspect_err(backend: Backend) -> impl FnOnce(sqlx::Error) -> InspectError {
    move |e| InspectError {
        what: "the migration state",
        backend,
        source: Box::new(e),
    }
}

fn db_err(action: &'static str, backend: Backend) -> impl FnOnce(sqlx::Error) -> MigrateError {
    move |e| MigrateError::Database {
        action,
        backend,
        source: Box::new(e),
    }
}

fn recorded_from_rows(rows: Vec<(i64, String, String, DateTime<Utc>)>) -> Vec<Recorded> {
    rows.into_iter()
        .map(|(version, name, checksum, applied_at)| Recorded {
            version,
            name,
            checksum,
            applied_at,
        })
        .collect()
}

#[cfg(feature = "sqlite")]
mod lite {
    //! The runner and the schema reader on SQLite.

    use super::*;
    use sqlx::sqlite::{SqliteConnection, SqlitePool};

    const BACKEND: Backend = Backend::Sqlite;

    const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kintell_schema_migrations (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now'))
    )";

    pub(super) async fn recorded(
        conn: &mut SqliteConnection,
    ) -> Result<Vec<Recorded>, sqlx::Error> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'kintell_schema_migrations'",
        )
        .fetch_one(&mut *conn)
        .await?;
        if exists == 0 {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(
            "SELECT version, name, checksum, applied_at FROM kintell_schema_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(recorded_from_rows(rows))
    }

    /// Applies or reverts one migration in one write transaction. `BEGIN IMMEDIATE` takes the write lock before
    /// the state is read, so two processes migrating at once serialise instead of both applying.
    pub(super) async fn step(
        pool: &SqlitePool,
        direction: Direction,
    ) -> Result<Option<&'static Migration>, MigrateError> {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_err("begin a transaction", BACKEND))?;
        let recorded = recorded(&mut tx)
            .await
            .map_err(db_err("read the applied migrations", BACKEND))?;
        let plan = match direction {
            Direction::Up => plan_up(BACKEND, &recorded)?,
            Direction::Down => plan_down(&recorded)?,
        };
        let Some(m) = plan else {
            return Ok(None);
        };
        let failed = |e: sqlx::Error| MigrateError::Step {
            step: m.step(),
            direction,
            backend: BACKEND,
            source: Box::new(e),
        };
        match direction {
            Direction::Up => {
                sqlx::raw_sql(CREATE_TABLE)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("create the migrations table", BACKEND))?;
                sqlx::raw_sql(m.up_sql(BACKEND))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                sqlx::query(
                    "INSERT INTO kintell_schema_migrations (version, name, checksum) VALUES (?1, ?2, ?3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(m.checksum(BACKEND))
                .execute(&mut *tx)
                .await
                .map_err(db_err("record the migration", BACKEND))?;
            }
            Direction::Down => {
                sqlx::raw_sql(m.down_sql(BACKEND))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                sqlx::query("DELETE FROM kintell_schema_migrations WHERE version = ?1")
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("record the migration", BACKEND))?;
                if recorded.len() == 1 {
                    sqlx::raw_sql("DROP TABLE kintell_schema_migrations")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("drop the migrations table", BACKEND))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(db_err("commit the migration", BACKEND))?;
        Ok(Some(m))
    }

    pub(super) async fn snapshot(pool: &SqlitePool) -> Result<Snapshot, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let present: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table'")
                .fetch_all(&mut *conn)
                .await?;
        let mut snap = Snapshot::default();
        for table in our_tables() {
            if !present.iter().any(|p| p == table) {
                continue;
            }
            let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?1)")
                .bind(table)
                .fetch_all(&mut *conn)
                .await?;
            let indexes: Vec<(String, bool, String, bool)> = sqlx::query_as(
                "SELECT name, \"unique\", origin, partial FROM pragma_index_list(?1)",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            let fks: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT \"from\", \"table\", on_delete FROM pragma_foreign_key_list(?1)",
            )
            .bind(table)
            .fetch_all(&mut *conn)
            .await?;
            snap.tables.insert(
                table.to_owned(),
                TableInfo {
                    columns: columns.into_iter().collect(),
                    indexes: indexes
                        .into_iter()
                        .filter(|(_, _, origin, _)| origin != "pk")
                        .map(|(name, unique, _, partial)| (name, (unique, partial)))
                        .collect(),
                    foreign_keys: fks
                        .into_iter()
                        .map(|(from, to, action)| ((from, to), action))
                        .collect(),
                },
            );
        }
        Ok(snap)
    }
}

#[cfg(feature = "postgres")]
mod pg {
    //! The runner and the schema reader on PostgreSQL.

    use super::*;
    use sqlx::postgres::{PgConnection, PgPool};

    const BACKEND: Backend = Backend::Postgres;

    /// The advisory lock that serialises migration runs on one database ("kintell" in ASCII).
    const LOCK_KEY: i64 = 0x006b_696e_7465_6c6c;

    const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS kintell_schema_migrations (
        version BIGINT PRIMARY KEY,
        name TEXT NOT NULL,
        checksum TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )";

    pub(super) async fn recorded(conn: &mut PgConnection) -> Result<Vec<Recorded>, sqlx::Error> {
        let exists: bool =
            sqlx::query_scalar("SELECT to_regclass('kintell_schema_migrations') IS NOT NULL")
                .fetch_one(&mut *conn)
                .await?;
        if !exists {
            return Ok(Vec::new());
        }
        let rows = sqlx::query_as(
            "SELECT version, name, checksum, applied_at FROM kintell_schema_migrations ORDER BY version",
        )
        .fetch_all(&mut *conn)
        .await?;
        Ok(recorded_from_rows(rows))
    }

    /// Applies or reverts one migration in one transaction, under a transaction-scoped advisory lock taken before
    /// the state is read, so concurrent runs serialise and each migration is applied once.
    pub(super) async fn step(
        pool: &PgPool,
        direction: Direction,
    ) -> Result<Option<&'static Migration>, MigrateError> {
        let mut tx = pool
            .begin()
            .await
            .map_err(db_err("begin a transaction", BACKEND))?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(db_err("take the migration lock", BACKEND))?;
        let recorded = recorded(&mut tx)
            .await
            .map_err(db_err("read the applied migrations", BACKEND))?;
        let plan = match direction {
            Direction::Up => plan_up(BACKEND, &recorded)?,
            Direction::Down => plan_down(&recorded)?,
        };
        let Some(m) = plan else {
            return Ok(None);
        };
        let failed = |e: sqlx::Error| MigrateError::Step {
            step: m.step(),
            direction,
            backend: BACKEND,
            source: Box::new(e),
        };
        match direction {
            Direction::Up => {
                sqlx::raw_sql(CREATE_TABLE)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("create the migrations table", BACKEND))?;
                sqlx::raw_sql(m.up_sql(BACKEND))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                sqlx::query(
                    "INSERT INTO kintell_schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                )
                .bind(m.version)
                .bind(m.name)
                .bind(m.checksum(BACKEND))
                .execute(&mut *tx)
                .await
                .map_err(db_err("record the migration", BACKEND))?;
            }
            Direction::Down => {
                sqlx::raw_sql(m.down_sql(BACKEND))
                    .execute(&mut *tx)
                    .await
                    .map_err(failed)?;
                sqlx::query("DELETE FROM kintell_schema_migrations WHERE version = $1")
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err("record the migration", BACKEND))?;
                if recorded.len() == 1 {
                    sqlx::raw_sql("DROP TABLE kintell_schema_migrations")
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err("drop the migrations table", BACKEND))?;
                }
            }
        }
        tx.commit()
            .await
            .map_err(db_err("commit the migration", BACKEND))?;
        Ok(Some(m))
    }

    pub(super) async fn snapshot(pool: &PgPool) -> Result<Snapshot, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let ours: Vec<String> = our_tables().into_iter().map(str::to_owned).collect();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
               AND table_name::text = ANY($1)",
        )
        .bind(&ours)
        .fetch_all(&mut *conn)
        .await?;
        let columns: Vec<(String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name::text = ANY($1)",
        )
        .bind(&ours)
        .fetch_all(&mut *conn)
        .await?;
        let indexes: Vec<(String, String, bool, bool)> = sqlx::query_as(
            "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indpred IS NOT NULL
             FROM pg_index ix
             JOIN pg_class i ON i.oid = ix.indexrelid
             JOIN pg_class t ON t.oid = ix.indrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             WHERE n.nspname = current_schema() AND NOT ix.indisprimary AND t.relname::text = ANY($1)",
        )
        .bind(&ours)
        .fetch_all(&mut *conn)
        .await?;
        let fks: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT t.relname::text, a.attname::text, r.relname::text, c.confdeltype::text
             FROM pg_constraint c
             JOIN pg_class t ON t.oid = c.conrelid
             JOIN pg_class r ON r.oid = c.confrelid
             JOIN pg_namespace n ON n.oid = t.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
             WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
               AND n.nspname = current_schema() AND t.relname::text = ANY($1)",
        )
        .bind(&ours)
        .fetch_all(&mut *conn)
        .await?;

        let mut snap = Snapshot::default();
        for t in tables {
            snap.tables.insert(t, TableInfo::default());
        }
        for (t, c) in columns {
            if let Some(info) = snap.tables.get_mut(&t) {
                info.columns.insert(c);
            }
        }
        for (t, i, unique, partial) in indexes {
            if let Some(info) = snap.tables.get_mut(&t) {
                info.indexes.insert(i, (unique, partial));
            }
        }
        for (t, column, references, action) in fks {
            if let Some(info) = snap.tables.get_mut(&t) {
                info.foreign_keys.insert((column, references), action);
            }
        }
        Ok(snap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(version: i64, backend: Backend) -> Recorded {
        let m = known(version).expect("known version");
        Recorded {
            version,
            name: m.name.to_owned(),
            checksum: m.checksum(backend),
            applied_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    #[test]
    fn versions_are_consecutive_and_names_match_the_files() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i64 + 1);
            for backend in [Backend::Postgres, Backend::Sqlite] {
                let up = m.up_sql(backend);
                let down = m.down_sql(backend);
                // Each script opens with a comment naming its migration.
                let head = format!("-- {:04} {}", m.version, m.name);
                assert!(up.starts_with(&head), "{} {backend} up", m.label());
                assert!(down.starts_with(&head), "{} {backend} down", m.label());
            }
        }
    }

    #[test]
    fn sqlite_scripts_have_no_postgres_only_syntax() {
        for m in MIGRATIONS {
            let sql: String = [m.up_sql(Backend::Sqlite), m.down_sql(Backend::Sqlite)]
                .iter()
                .flat_map(|s| s.lines())
                .filter(|l| !l.trim_start().starts_with("--"))
                .collect();
            for word in [
                "COMMENT ON",
                "JSONB",
                "TIMESTAMPTZ",
                "UUID",
                "gen_random_uuid",
                "now()",
            ] {
                assert!(!sql.contains(word), "{} uses {word}", m.label());
            }
        }
    }

    #[test]
    fn checksums_are_sha256_hex_and_differ_by_backend() {
        let m = &MIGRATIONS[0];
        let pg = m.checksum(Backend::Postgres);
        assert_eq!(pg.len(), 64);
        assert!(
            pg.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(pg, m.checksum(Backend::Sqlite));
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn expectations_name_each_index_once_and_only_our_tables() {
        let tables = our_tables();
        let mut names = BTreeSet::new();
        for m in MIGRATIONS {
            for i in m.expect.indexes {
                assert!(names.insert(i.name), "index {} listed twice", i.name);
                assert!(tables.contains(&i.table), "{} on unknown table", i.name);
            }
            for k in m.expect.foreign_keys {
                assert!(tables.contains(&k.table) && tables.contains(&k.references));
            }
        }
    }

    #[test]
    fn up_plans_the_first_pending_migration() {
        let b = Backend::Sqlite;
        assert_eq!(plan_up(b, &[]).expect("plan").map(|m| m.version), Some(1));
        let two = [rec(1, b), rec(2, b)];
        assert_eq!(plan_up(b, &two).expect("plan").map(|m| m.version), Some(3));
        let all: Vec<_> = MIGRATIONS.iter().map(|m| rec(m.version, b)).collect();
        assert!(plan_up(b, &all).expect("plan").is_none());
    }

    #[test]
    fn up_refuses_unknown_changed_and_out_of_order_states() {
        let b = Backend::Postgres;
        let mut changed = rec(1, b);
        changed.checksum = "0".repeat(64);
        assert!(matches!(
            plan_up(b, &[changed]),
            Err(MigrateError::ChecksumMismatch { version: 1, .. })
        ));
        let unknown = Recorded {
            version: 9999,
            name: "future".into(),
            checksum: String::new(),
            applied_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let err = plan_up(b, &[rec(1, b), unknown]).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "the database records migration 9999_future, which this build does not know (migrated by a newer \
             build?); refusing to migrate"
        );
        assert!(matches!(
            plan_up(b, &[rec(1, b), rec(3, b)]),
            Err(MigrateError::OutOfOrder {
                step: MigrationStep { version: 2, .. },
                later: 3
            })
        ));
    }

    #[test]
    fn down_plans_the_latest_applied_migration() {
        let b = Backend::Sqlite;
        assert!(plan_down(&[]).expect("plan").is_none());
        let recorded = [rec(2, b), rec(1, b), rec(3, b)];
        assert_eq!(
            plan_down(&recorded).expect("plan").map(|m| m.version),
            Some(3)
        );
        let unknown = Recorded {
            version: 42,
            name: "x".into(),
            checksum: String::new(),
            applied_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        assert!(matches!(
            plan_down(&[rec(1, b), unknown]),
            Err(MigrateError::UnknownApplied { version: 42, .. })
        ));
    }

    #[test]
    fn status_lists_known_then_unknown_migrations() {
        let b = Backend::Sqlite;
        let mut changed = rec(2, b);
        changed.checksum = "x".into();
        let unknown = Recorded {
            version: 77,
            name: "later".into(),
            checksum: "y".into(),
            applied_at: DateTime::<Utc>::UNIX_EPOCH,
        };
        let s = status_of(b, &[rec(1, b), changed, unknown]);
        assert_eq!(s.len(), MIGRATIONS.len() + 1);
        assert!(s[0].applied && !s[0].checksum_mismatch && s[0].known);
        assert!(s[1].applied && s[1].checksum_mismatch);
        assert!(!s[2].applied && s[2].applied_at.is_none());
        let last = s.last().expect("unknown line");
        assert_eq!((last.version, last.known, last.applied), (77, false, true));
    }

    /// A snapshot exactly as the first `n` migrations leave the schema.
    fn snapshot_after(n: i64) -> Snapshot {
        let mut snap = Snapshot::default();
        for m in MIGRATIONS.iter().filter(|m| m.version <= n) {
            for (t, cols) in m.expect.tables {
                let info = snap.tables.entry((*t).to_owned()).or_default();
                info.columns.extend(cols.iter().map(|c| (*c).to_owned()));
            }
            for (t, cols) in m.expect.columns {
                let info = snap.tables.entry((*t).to_owned()).or_default();
                info.columns.extend(cols.iter().map(|c| (*c).to_owned()));
            }
            for i in m.expect.indexes {
                let info = snap.tables.entry(i.table.to_owned()).or_default();
                info.indexes
                    .insert(i.name.to_owned(), (i.unique, i.partial));
            }
            for k in m.expect.foreign_keys {
                let info = snap.tables.entry(k.table.to_owned()).or_default();
                info.foreign_keys.insert(
                    (k.column.to_owned(), k.references.to_owned()),
                    k.on_delete.as_sql().to_owned(),
                );
            }
        }
        snap
    }

    fn rendered(report: &VerifyReport) -> Vec<String> {
        report.problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn verify_accepts_the_expected_schema() {
        let b = Backend::Sqlite;
        let all: Vec<_> = MIGRATIONS.iter().map(|m| rec(m.version, b)).collect();
        let report = compute_verify(b, &all, &snapshot_after(9));
        assert!(report.is_ok(), "{report}");
        assert!(report.extras.is_empty());
        assert_eq!(report.applied, (1..=9).collect::<Vec<_>>());
    }

    #[test]
    fn verify_names_what_is_missing_or_different() {
        let b = Backend::Postgres;
        let all: Vec<_> = MIGRATIONS.iter().map(|m| rec(m.version, b)).collect();
        let mut snap = snapshot_after(9);
        let pi = snap.tables.get_mut("program_instances").expect("table");
        pi.indexes.remove("program_instances_status_idx");
        pi.indexes
            .insert("program_instances_program_slug_idx".into(), (false, false));
        pi.columns.remove("campaign_id");
        pi.indexes.insert("by_hand_idx".into(), (false, false));
        let ks = snap.tables.get_mut("kintell_sessions").expect("table");
        ks.foreign_keys
            .insert(("batch_id".into(), "ingestion_batches".into()), "c".into());
        snap.tables.remove("association_runs");
        let report = compute_verify(b, &all, &snap);
        assert_eq!(
            rendered(&report),
            [
                "index program_instances_program_slug_idx on program_instances is plain, expected unique (migration \
                 0002_program_instances)",
                "missing index program_instances_status_idx on program_instances (migration 0002_program_instances)",
                "foreign key kintell_sessions.batch_id is ON DELETE CASCADE, expected ON DELETE NO ACTION (migration \
                 0004_extend_kintell_sessions)",
                "missing column program_instances.campaign_id (migration 0006_campaigns)",
                "missing table association_runs (migration 0008_associations)",
            ]
        );
        assert_eq!(
            report.extras,
            [SchemaObject::Index {
                table: "program_instances".into(),
                index: "by_hand_idx".into()
            }]
        );
    }

    #[test]
    fn verify_reports_pending_migrations_and_their_leftovers() {
        let b = Backend::Sqlite;
        let first_six: Vec<_> = (1..=6).map(|v| rec(v, b)).collect();
        let mut snap = snapshot_after(6);
        // A half-reverted 0007: one column and one index still there.
        let bm = snap.tables.get_mut("buddy_matches").expect("table");
        bm.columns.insert("first_batch_id".into());
        bm.indexes
            .insert("buddy_matches_batch_id_idx".into(), (false, false));
        // 0008's table present although 0008 is not applied.
        snap.tables
            .insert("association_runs".into(), TableInfo::default());
        let mut changed = first_six;
        changed[0].checksum = "abc".into();
        let report = compute_verify(b, &changed, &snap);
        let expected_sum = MIGRATIONS[0].checksum(b);
        assert_eq!(
            rendered(&report),
            [
                format!(
                    "migration 0001_base was applied with a different script (checksum abc, this build has \
                     {expected_sum})"
                ),
                "migration 0007_activity_program_instance is not applied".into(),
                "column buddy_matches.first_batch_id is present but migration 0007_activity_program_instance, \
                 which creates it, is not applied"
                    .into(),
                "index buddy_matches_batch_id_idx on buddy_matches is present but migration \
                 0007_activity_program_instance, which creates it, is not applied"
                    .into(),
                "migration 0008_associations is not applied".into(),
                "table association_runs is present but migration 0008_associations, which creates it, is not \
                 applied"
                    .into(),
                "migration 0009_webhook_deliveries is not applied".into(),
            ]
        );
        assert!(report.extras.is_empty(), "{:?}", report.extras);
    }
}
