//! Tests of the migrations area: up, down and up again on both backends, status, verify, rows kept across a step
//! down, the seed's post-migration queries, connecting, and the constraints the stores rely on.
#![cfg(all(feature = "sqlite", feature = "postgres"))]

use std::collections::BTreeSet;
use std::future::Future;

use kintell_ingest::store::migrate::{MIGRATIONS, SchemaObject};
use kintell_ingest::store::{Backend, ConnectError, Database, MigrateError, VerifyProblem};
use sqlx::AssertSqlSafe;
use sqlx::error::ErrorKind;

use crate::support;

/// Every table the nine migrations create.
const OUR_TABLES: [&str; 15] = [
    "activity_associations",
    "association_runs",
    "beneficiary_groups",
    "buddy_matches",
    "campaigns",
    "companies",
    "ingestion_batches",
    "ingestion_row_errors",
    "kintell_sessions",
    "learning_progress",
    "program_enrollments",
    "program_instances",
    "user_external_ids",
    "users",
    "webhook_deliveries",
];

fn our_tables() -> BTreeSet<String> {
    OUR_TABLES.iter().map(|t| (*t).to_owned()).collect()
}

/// Runs `body` on a fresh SQLite file, then on a fresh PostgreSQL database when one is configured.
async fn on_each_backend<F, Fut>(test: &str, body: F)
where
    F: Fn(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let lite = support::fresh_sqlite();
    let db = Database::connect(&lite.url)
        .await
        .expect("connect to SQLite");
    body(db.clone()).await;
    db.close().await;
    if let Some(pg) = support::fresh_pg(test).await {
        let db = Database::connect(&pg.url)
            .await
            .expect("connect to PostgreSQL");
        body(db.clone()).await;
        db.close().await;
    }
}

async fn exec(db: &Database, sql: &str) -> Result<(), sqlx::Error> {
    let sql = AssertSqlSafe(sql.to_owned());
    match db {
        Database::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        Database::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
    }
}

async fn count(db: &Database, sql: &str) -> i64 {
    let sql = AssertSqlSafe(sql.to_owned());
    match db {
        Database::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        Database::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
    }
    .expect("count query")
}

async fn table_names(db: &Database) -> BTreeSet<String> {
    let names: Vec<String> = match db {
        Database::Sqlite(pool) => sqlx::query_scalar(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await,
        Database::Postgres(pool) => sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await,
    }
    .expect("list tables");
    names.into_iter().collect()
}

/// The kind of database error a statement failed with.
fn kind(result: Result<(), sqlx::Error>) -> Option<ErrorKind> {
    match result {
        Ok(()) => None,
        Err(e) => Some(
            e.as_database_error()
                .map(|d| d.kind())
                .unwrap_or_else(|| panic!("not a database error: {e}")),
        ),
    }
}

/// A UUID literal in the backend's encoding (on SQLite the 16 bytes sqlx writes for `uuid::Uuid`).
fn id(db: &Database, n: u128) -> String {
    let u = uuid::Uuid::from_u128(n);
    match db.backend() {
        Backend::Sqlite => format!("X'{}'", u.simple()),
        Backend::Postgres => format!("'{u}'"),
    }
}

fn boolean(db: &Database, v: bool) -> &'static str {
    match (db.backend(), v) {
        (Backend::Sqlite, true) => "1",
        (Backend::Sqlite, false) => "0",
        (Backend::Postgres, true) => "true",
        (Backend::Postgres, false) => "false",
    }
}

const COMPANY: u128 = 0xC0;
const PARTICIPANT: u128 = 0x01;
const VOLUNTEER: u128 = 0x02;
const GROUP: u128 = 0x60;
const CAMPAIGN: u128 = 0xCA;
const INSTANCE: u128 = 0x1A;
const BATCH: u128 = 0xBA;
const SESSION: u128 = 0x5E;
const HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// One row in every table, linked the way an import links them.
async fn populate(db: &Database) {
    let i = |n| id(db, n);
    let sql = format!(
        "INSERT INTO companies (id, name, slug) VALUES ({c}, 'Acme AS', 'acme');
         INSERT INTO users (id, email, role, company_id, tags)
           VALUES ({p}, 'anna@example.com', 'participant', {c}, '[\"refugees\"]');
         INSERT INTO users (id, email, role) VALUES ({v}, 'vera@volunteer.org', 'volunteer');
         INSERT INTO user_external_ids (id, user_id, provider, external_id) VALUES ({x}, {p}, 'kintell', 'K-1');
         INSERT INTO beneficiary_groups (id, key, name, group_type, tags)
           VALUES ({g}, 'ua-refugees', 'Ukrainian refugees', 'refugees', '[\"refugees\", \"ukrainian\"]');
         INSERT INTO campaigns (id, key, name, company_id, beneficiary_group_id, program_type, start_date, end_date,
                                status, max_sessions)
           VALUES ({cp}, 'acme-mentors-2024', 'Acme mentors', {c}, {g}, 'mentors_ukraine', '2024-01-01',
                   '2024-12-31', 'active', 500);
         INSERT INTO program_instances (id, program_type, program_name, program_slug, company_id, start_date,
                                        end_date, status, campaign_id)
           VALUES ({pi}, 'mentors_ukraine', 'Mentors for Ukraine - Q4 2024', 'mentors-ukraine-2024-q4', {c},
                   '2024-10-01', '2024-12-31', 'completed', {cp});
         INSERT INTO ingestion_batches (id, file_name, file_hash, program_type, program_instance_id, entity_kind,
                                        format, total_rows, success_rows, inserted_rows, error_rows,
                                        last_processed_row, status)
           VALUES ({b}, 'mentors.csv', '{HASH}', 'mentors_ukraine', {pi}, 'kintell_sessions', 'mentors-v1', 2, 1,
                   1, 1, 2, 'completed');
         INSERT INTO ingestion_row_errors (batch_id, row_number, line_number, code, field, message, raw_record)
           VALUES ({b}, 2, 3, 'invalid_email', 'participant_email', 'not an email', '[\"x\", \"y\"]');
         INSERT INTO kintell_sessions (id, external_session_id, session_type, participant_id, volunteer_id,
                                       completed_at, duration_minutes, rating, topics, batch_id,
                                       program_instance_id, first_batch_id, source_row_number)
           VALUES ({s}, 'KINTELL-00000001', 'mentorship', {p}, {v}, '2024-10-15T10:00:00+00:00', 60, '0.75',
                   '[\"careers\"]', {b}, {pi}, {b}, 1);
         INSERT INTO program_enrollments (id, user_id, program_type, role, enrolled_at, program_instance_id)
           VALUES ({e}, {p}, 'mentors_ukraine', 'participant', '2024-10-15T10:00:00+00:00', {pi});
         INSERT INTO buddy_matches (id, participant_id, buddy_id, matched_at, batch_id, program_instance_id,
                                    first_batch_id, source_row_number)
           VALUES ({m}, {p}, {v}, '2024-10-01T00:00:00+00:00', {b}, {pi}, {b}, 1);
         INSERT INTO learning_progress (id, user_id, provider, course_id, status, completed_at, final_score,
                                        batch_id, first_batch_id, source_row_number)
           VALUES ({l}, {p}, 'coursera', 'C-1', 'completed', '2024-11-01T00:00:00+00:00', '87.50', {b}, {b}, 1);
         INSERT INTO association_runs (id, dry_run, entity, batch_size, status)
           VALUES ({r}, {no}, 'sessions', 100, 'completed');
         INSERT INTO activity_associations (id, activity_kind, activity_id, campaign_id, program_instance_id,
                                            confidence, decision, reasons, policy_version, batch_id, run_id)
           VALUES ({a}, 'kintell_session', {s}, {cp}, {pi}, 90, 'auto', '[]', 'v1', {b}, {r});
         INSERT INTO webhook_deliveries (delivery_id, event, received_at, body_sha256, response_status,
                                         response_body, batch_id)
           VALUES ('D-1', 'session-completed', '2024-10-15T10:00:00+00:00', '{HASH}', 200, '{{}}', {b});",
        c = i(COMPANY),
        p = i(PARTICIPANT),
        v = i(VOLUNTEER),
        x = i(0xE1),
        g = i(GROUP),
        cp = i(CAMPAIGN),
        pi = i(INSTANCE),
        b = i(BATCH),
        s = i(SESSION),
        e = i(0xE2),
        m = i(0xE3),
        l = i(0xE4),
        r = i(0xE5),
        a = i(0xE6),
        no = boolean(db, false),
    );
    exec(db, &sql).await.expect("populate every table");
}

#[tokio::test]
async fn up_all_down_all_up_all_again() {
    on_each_backend("up_all_down_all_up_all_again", |db| async move {
        let before = db.migrate_status().await.expect("status before");
        assert_eq!(before.len(), MIGRATIONS.len());
        assert!(
            before
                .iter()
                .all(|s| !s.applied && s.known && s.applied_at.is_none())
        );
        assert!(table_names(&db).await.is_empty());

        let applied = db.migrate_up(None).await.expect("up");
        let labels: Vec<String> = applied.iter().map(ToString::to_string).collect();
        assert_eq!(
            labels,
            [
                "0001_base",
                "0002_program_instances",
                "0003_ingestion_batches",
                "0004_extend_kintell_sessions",
                "0005_extend_program_enrollments",
                "0006_campaigns",
                "0007_activity_program_instance",
                "0008_associations",
                "0009_webhook_deliveries",
            ]
        );
        let after = db.migrate_status().await.expect("status after");
        assert!(
            after
                .iter()
                .all(|s| s.applied && s.applied_at.is_some() && !s.checksum_mismatch)
        );
        let mut expected = our_tables();
        expected.insert("kintell_schema_migrations".into());
        assert_eq!(table_names(&db).await, expected);
        let report = db.migrate_verify().await.expect("verify");
        assert!(report.is_ok(), "{report}");
        assert!(report.extras.is_empty(), "{report}");
        assert!(db.migrate_up(None).await.expect("up again").is_empty());

        let reverted = db.migrate_down(true).await.expect("down all");
        let versions: Vec<i64> = reverted.iter().map(|s| s.version).collect();
        assert_eq!(versions, [9, 8, 7, 6, 5, 4, 3, 2, 1]);
        assert!(table_names(&db).await.is_empty(), "no table of ours left");
        let status = db.migrate_status().await.expect("status after down");
        assert!(status.iter().all(|s| !s.applied));
        assert!(
            db.migrate_down(true)
                .await
                .expect("down on empty")
                .is_empty()
        );

        assert_eq!(db.migrate_up(None).await.expect("up all again").len(), 9);
        let report = db.migrate_verify().await.expect("verify again");
        assert!(report.is_ok() && report.extras.is_empty(), "{report}");
    })
    .await;
}

/// Every prefix of the sequence, reached going up and going down, is exactly what the applied migrations make: no
/// missing object, no leftover of an unapplied migration, no object no migration creates.
#[tokio::test]
async fn each_step_up_and_down_leaves_the_expected_schema() {
    on_each_backend(
        "each_step_up_and_down_leaves_the_expected_schema",
        |db| async move {
            let check = |n: usize, report: kintell_ingest::store::VerifyReport| {
                let not_applied: Vec<VerifyProblem> = MIGRATIONS[n..]
                    .iter()
                    .map(|m| VerifyProblem::NotApplied {
                        migration: format!("{:04}_{}", m.version(), m.name()),
                    })
                    .collect();
                assert_eq!(
                    report.problems, not_applied,
                    "after {n} migrations: {report}"
                );
                assert!(report.extras.is_empty(), "after {n} migrations: {report}");
            };
            check(0, db.migrate_verify().await.expect("verify"));
            for n in 1..=MIGRATIONS.len() {
                let step = db.migrate_up(Some(1)).await.expect("one step up");
                assert_eq!(step.len(), 1);
                assert_eq!(step[0].version, n as i64);
                check(n, db.migrate_verify().await.expect("verify"));
            }
            for n in (0..MIGRATIONS.len()).rev() {
                let step = db.migrate_down(false).await.expect("one step down");
                assert_eq!(step.len(), 1);
                assert_eq!(step[0].version, n as i64 + 1);
                check(n, db.migrate_verify().await.expect("verify"));
            }
            assert_eq!(db.migrate_up(Some(3)).await.expect("three steps").len(), 3);
            check(3, db.migrate_verify().await.expect("verify"));
        },
    )
    .await;
}

#[tokio::test]
async fn stepping_down_a_populated_database_keeps_the_other_tables_rows() {
    on_each_backend("stepping_down_a_populated_database_keeps_rows", |db| async move {
        db.migrate_up(None).await.expect("up");
        populate(&db).await;
        let base = [
            ("companies", 1),
            ("users", 2),
            ("user_external_ids", 1),
            ("kintell_sessions", 1),
            ("program_enrollments", 1),
            ("buddy_matches", 1),
            ("learning_progress", 1),
        ];
        // Tables that outlive each step down, with their row counts.
        let later: [(i64, &[(&str, i64)]); 8] = [
            (9, &[("ingestion_batches", 1), ("ingestion_row_errors", 1), ("activity_associations", 1)]),
            (8, &[("ingestion_batches", 1), ("ingestion_row_errors", 1), ("campaigns", 1)]),
            (7, &[("program_instances", 1), ("beneficiary_groups", 1)]),
            (6, &[("program_instances", 1), ("ingestion_batches", 1)]),
            (5, &[("program_instances", 1), ("ingestion_batches", 1)]),
            (4, &[("program_instances", 1), ("ingestion_row_errors", 1)]),
            (3, &[("program_instances", 1)]),
            (2, &[]),
        ];
        for (version, kept) in later {
            let step = db.migrate_down(false).await.expect("one step down");
            assert_eq!(step[0].version, version);
            for (table, rows) in base.iter().chain(kept.iter()) {
                let n = count(&db, &format!("SELECT count(*) FROM {table}")).await;
                assert_eq!(n, *rows, "{table} after reverting {version}");
            }
        }
        // The session's own values survived every column drop.
        let same = count(
            &db,
            &format!(
                "SELECT count(*) FROM kintell_sessions WHERE id = {} AND external_session_id = 'KINTELL-00000001'
                 AND CAST(rating AS TEXT) = '0.75' AND duration_minutes = 60 AND participant_id = {}",
                id(&db, SESSION),
                id(&db, PARTICIPANT)
            ),
        )
        .await;
        assert_eq!(same, 1);
        // And going up again over the rows works.
        db.migrate_up(None).await.expect("up over existing rows");
        assert!(db.migrate_verify().await.expect("verify").is_ok());
    })
    .await;
}

#[tokio::test]
async fn verify_names_an_index_dropped_by_hand() {
    on_each_backend("verify_names_an_index_dropped_by_hand", |db| async move {
        db.migrate_up(None).await.expect("up");
        exec(&db, "DROP INDEX program_instances_status_idx")
            .await
            .expect("drop index");
        let report = db.migrate_verify().await.expect("verify");
        assert!(!report.is_ok());
        assert_eq!(
            report.problems,
            [VerifyProblem::Missing {
                object: SchemaObject::Index {
                    table: "program_instances".into(),
                    index: "program_instances_status_idx".into(),
                },
                migration: "0002_program_instances".into(),
            }]
        );
        assert!(
            report.to_string().contains(
                "missing index program_instances_status_idx on program_instances (migration \
                 0002_program_instances)"
            ),
            "{report}"
        );

        exec(&db, "CREATE INDEX by_hand_idx ON users(last_name)")
            .await
            .expect("extra index");
        let report = db.migrate_verify().await.expect("verify");
        assert_eq!(
            report.extras,
            [SchemaObject::Index {
                table: "users".into(),
                index: "by_hand_idx".into()
            }]
        );
    })
    .await;
}

#[tokio::test]
async fn a_changed_script_is_reported_and_blocks_up() {
    on_each_backend("a_changed_script_is_reported_and_blocks_up", |db| async move {
        db.migrate_up(Some(4)).await.expect("up four");
        exec(
            &db,
            "UPDATE kintell_schema_migrations SET checksum = 'tampered' WHERE version = 3",
        )
        .await
        .expect("tamper");
        let status = db.migrate_status().await.expect("status");
        let mismatched: Vec<i64> = status
            .iter()
            .filter(|s| s.checksum_mismatch)
            .map(|s| s.version)
            .collect();
        assert_eq!(mismatched, [3]);
        let report = db.migrate_verify().await.expect("verify");
        assert!(report.problems.contains(&VerifyProblem::ChecksumMismatch {
            migration: "0003_ingestion_batches".into(),
            recorded: "tampered".into(),
            expected: MIGRATIONS[2].checksum(db.backend()),
        }));
        let err = db.migrate_up(None).await.expect_err("up refuses");
        assert!(
            matches!(err, MigrateError::ChecksumMismatch { version: 3, .. }),
            "{err}"
        );
        assert_eq!(
            db.migrate_status()
                .await
                .expect("status")
                .iter()
                .filter(|s| s.applied)
                .count(),
            4,
            "nothing applied after the refusal"
        );

        exec(
            &db,
            "INSERT INTO kintell_schema_migrations (version, name, checksum) VALUES (9999, 'from_the_future', 'x')",
        )
        .await
        .expect("record an unknown migration");
        let status = db.migrate_status().await.expect("status");
        let last = status.last().expect("a line");
        assert_eq!((last.version, last.known, last.applied), (9999, false, true));
        let err = db.migrate_down(false).await.expect_err("down refuses");
        assert!(matches!(err, MigrateError::UnknownApplied { version: 9999, .. }), "{err}");
    })
    .await;
}

#[tokio::test]
async fn concurrent_runs_apply_each_migration_once() {
    let lite = support::fresh_sqlite();
    let pg = support::fresh_pg("concurrent_runs_apply_each_migration_once").await;
    let mut urls = vec![lite.url.clone()];
    urls.extend(pg.as_ref().map(|p| p.url.clone()));
    for url in urls {
        let a = Database::connect(&url).await.expect("connect a");
        let b = Database::connect(&url).await.expect("connect b");
        let (ra, rb) = tokio::join!(a.migrate_up(None), b.migrate_up(None));
        let (ra, rb) = (ra.expect("run a"), rb.expect("run b"));
        let mut versions: Vec<i64> = ra.iter().chain(rb.iter()).map(|s| s.version).collect();
        versions.sort_unstable();
        assert_eq!(versions, (1..=9).collect::<Vec<_>>(), "{url}");
        assert_eq!(
            count(&a, "SELECT count(*) FROM kintell_schema_migrations").await,
            9
        );
        a.close().await;
        b.close().await;
    }
}

#[tokio::test]
async fn seed_post_migration_queries_and_comments_are_as_the_guide_says() {
    let Some(pg) =
        support::fresh_pg("seed_post_migration_queries_and_comments_are_as_the_guide_says").await
    else {
        return;
    };
    let db = Database::connect(&pg.url).await.expect("connect");
    db.migrate_up(None).await.expect("up");
    let pool = db.as_postgres().expect("PostgreSQL");
    // The four queries of seed 000, "Post-Migration Verification", verbatim.
    let tables = sqlx::query(
        "SELECT table_name
FROM information_schema.tables
WHERE table_schema = 'public'
  AND table_name IN ('program_instances', 'ingestion_batches');",
    )
    .fetch_all(pool)
    .await
    .expect("query 1");
    assert_eq!(tables.len(), 2);
    let columns = sqlx::query(
        "SELECT column_name, data_type
FROM information_schema.columns
WHERE table_name = 'kintell_sessions'
  AND column_name IN ('batch_id', 'program_instance_id');",
    )
    .fetch_all(pool)
    .await
    .expect("query 2");
    assert_eq!(columns.len(), 2);
    let indexes = sqlx::query(
        "SELECT indexname
FROM pg_indexes
WHERE tablename IN ('program_instances', 'ingestion_batches', 'kintell_sessions', 'program_enrollments')
  AND indexname LIKE '%batch%' OR indexname LIKE '%program_instance%';",
    )
    .fetch_all(pool)
    .await
    .expect("query 3");
    assert!(indexes.len() >= 10, "{} indexes", indexes.len());
    let foreign_keys = sqlx::query(
        "SELECT
  tc.table_name,
  kcu.column_name,
  ccu.table_name AS foreign_table_name,
  ccu.column_name AS foreign_column_name
FROM information_schema.table_constraints AS tc
JOIN information_schema.key_column_usage AS kcu
  ON tc.constraint_name = kcu.constraint_name
JOIN information_schema.constraint_column_usage AS ccu
  ON ccu.constraint_name = tc.constraint_name
WHERE tc.constraint_type = 'FOREIGN KEY'
  AND tc.table_name IN ('kintell_sessions', 'program_enrollments', 'ingestion_batches');",
    )
    .fetch_all(pool)
    .await
    .expect("query 4");
    assert!(
        foreign_keys.len() >= 5,
        "{} foreign keys",
        foreign_keys.len()
    );

    // The seed's comments, verbatim.
    for (table, column, text) in [
        (
            "program_instances",
            "",
            "Specific runs of programs (e.g., Mentors for Ukraine Q4 2024)",
        ),
        (
            "program_instances",
            "program_type",
            "mentors_ukraine, language_ukraine, buddy, upskilling",
        ),
        (
            "program_instances",
            "program_slug",
            "URL-friendly identifier (e.g., mentors-ukraine-2024-q4)",
        ),
        (
            "program_instances",
            "status",
            "active, completed, paused, cancelled",
        ),
        (
            "ingestion_batches",
            "",
            "Audit trail for CSV imports and API ingestion runs",
        ),
        (
            "ingestion_batches",
            "file_hash",
            "SHA-256 hash for re-import detection",
        ),
        (
            "ingestion_batches",
            "status",
            "pending, running, completed, failed, paused",
        ),
        (
            "kintell_sessions",
            "batch_id",
            "Links to ingestion batch for data lineage",
        ),
        (
            "kintell_sessions",
            "program_instance_id",
            "Links to specific program instance (Q4 2024 vs Q1 2025)",
        ),
        (
            "program_enrollments",
            "program_instance_id",
            "Links enrollment to specific program instance",
        ),
    ] {
        let found: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_description d
             JOIN pg_class c ON c.oid = d.objoid
             LEFT JOIN pg_attribute a ON a.attrelid = d.objoid AND a.attnum = d.objsubid
             WHERE c.relname = $1 AND coalesce(a.attname::text, '') = $2 AND d.description = $3",
        )
        .bind(table)
        .bind(column)
        .bind(text)
        .fetch_one(pool)
        .await
        .expect("comment query");
        assert_eq!(found, 1, "comment on {table}.{column}");
    }
    db.close().await;
}

#[tokio::test]
async fn batch_constraints_hold() {
    on_each_backend("batch_constraints_hold", |db| async move {
        db.migrate_up(None).await.expect("up");
        // `counters` is "total, success, error, skipped, last"; every success is counted as inserted.
        let batch = |n: u128, status: &str, counters: &str| {
            let success = counters.split(", ").nth(1).unwrap_or("0");
            format!(
                "INSERT INTO ingestion_batches (id, file_name, file_hash, program_type, entity_kind, format, status,
                                                total_rows, success_rows, error_rows, skipped_rows,
                                                last_processed_row, inserted_rows)
                 VALUES ({}, 'f.csv', '{HASH}', 'kintell', 'kintell_sessions', 'kintell-v1', '{status}', {counters},
                         {success})",
                id(&db, n)
            )
        };
        // success + error + skipped = last_processed_row <= total_rows
        assert_eq!(kind(exec(&db, &batch(1, "completed", "100, 95, 0, 0, 0")).await), Some(ErrorKind::CheckViolation));
        assert_eq!(kind(exec(&db, &batch(1, "completed", "10, 5, 3, 3, 11")).await), Some(ErrorKind::CheckViolation));
        assert_eq!(kind(exec(&db, &batch(1, "completed", "10, -1, 1, 0, 0")).await), Some(ErrorKind::CheckViolation));
        assert_eq!(kind(exec(&db, &batch(1, "done", "0, 0, 0, 0, 0")).await), Some(ErrorKind::CheckViolation));
        assert_eq!(kind(exec(&db, &batch(1, "completed", "100, 95, 3, 2, 100")).await), None);
        // success = inserted + updated
        let split = format!(
            "UPDATE ingestion_batches SET inserted_rows = 90, updated_rows = 4 WHERE id = {}",
            id(&db, 1)
        );
        assert_eq!(kind(exec(&db, &split).await), Some(ErrorKind::CheckViolation));

        // One in-flight batch per (entity_kind, file_hash); completed ones do not count.
        assert_eq!(kind(exec(&db, &batch(2, "running", "100, 5, 0, 0, 5")).await), None);
        assert_eq!(kind(exec(&db, &batch(3, "pending", "0, 0, 0, 0, 0")).await), Some(ErrorKind::UniqueViolation));
        assert_eq!(kind(exec(&db, &batch(3, "paused", "0, 0, 0, 0, 0")).await), Some(ErrorKind::UniqueViolation));
        assert_eq!(kind(exec(&db, &batch(3, "failed", "0, 0, 0, 0, 0")).await), None);
        exec(&db, &format!("UPDATE ingestion_batches SET status = 'cancelled' WHERE id = {}", id(&db, 2)))
            .await
            .expect("cancel");
        assert_eq!(kind(exec(&db, &batch(4, "pending", "0, 0, 0, 0, 0")).await), None);

        // Row errors: one per (batch, row), deleted with their batch.
        let error = |row: i32| {
            format!(
                "INSERT INTO ingestion_row_errors (batch_id, row_number, line_number, code, message, raw_record)
                 VALUES ({}, {row}, {}, 'missing_field', 'session_id is missing', '[]')",
                id(&db, 1),
                row + 1
            )
        };
        assert_eq!(kind(exec(&db, &error(7)).await), None);
        assert_eq!(kind(exec(&db, &error(7)).await), Some(ErrorKind::UniqueViolation));
        assert_eq!(kind(exec(&db, &error(0)).await), Some(ErrorKind::CheckViolation));
        exec(&db, &format!("DELETE FROM ingestion_batches WHERE id = {}", id(&db, 1)))
            .await
            .expect("delete batch");
        assert_eq!(count(&db, "SELECT count(*) FROM ingestion_row_errors").await, 0);
    })
    .await;
}

#[tokio::test]
async fn activity_constraints_and_foreign_keys_hold() {
    on_each_backend("activity_constraints_and_foreign_keys_hold", |db| async move {
        db.migrate_up(None).await.expect("up");
        populate(&db).await;
        let session = |n: u128, external: &str, source: &str, participant: u128, extra: &str, value: &str| {
            format!(
                "INSERT INTO kintell_sessions (id, external_session_id, source_system, session_type, participant_id,
                                               volunteer_id{extra})
                 VALUES ({}, '{external}', '{source}', 'language', {}, {}{value})",
                id(&db, n),
                id(&db, participant),
                id(&db, VOLUNTEER)
            )
        };
        // The idempotency key is (external_session_id, source_system).
        assert_eq!(
            kind(exec(&db, &session(0x100, "KINTELL-00000001", "kintell", PARTICIPANT, "", "")).await),
            Some(ErrorKind::UniqueViolation)
        );
        assert_eq!(kind(exec(&db, &session(0x101, "KINTELL-00000001", "webhook", PARTICIPANT, "", "")).await), None);
        // Foreign keys are enforced (on SQLite too).
        assert_eq!(
            kind(exec(&db, &session(0x102, "S-2", "kintell", 0xDEAD, "", "")).await),
            Some(ErrorKind::ForeignKeyViolation)
        );
        assert_eq!(
            kind(exec(&db, &session(0x103, "S-3", "kintell", PARTICIPANT, ", batch_id", &format!(", {}", id(&db, 0xBAD)))).await),
            Some(ErrorKind::ForeignKeyViolation)
        );
        // Value checks.
        for (column, value) in [
            ("duration_minutes", "0"),
            ("duration_minutes", "481"),
            ("rating", "'1.01'"),
            ("language_level", "'D1'"),
            ("source_row_number", "0"),
        ] {
            assert_eq!(
                kind(exec(&db, &session(0x104, "S-4", "kintell", PARTICIPANT, &format!(", {column}"), &format!(", {value}"))).await),
                Some(ErrorKind::CheckViolation),
                "{column} = {value}"
            );
        }
        assert_eq!(
            kind(exec(&db, &session(0x105, "S-5", "kintell", PARTICIPANT, ", rating, duration_minutes", ", '1.00', 480")).await),
            None
        );
        let check = |sql: String| {
            let db = db.clone();
            async move { kind(exec(&db, &sql).await) }
        };
        assert_eq!(
            check(format!(
                "INSERT INTO buddy_matches (id, participant_id, buddy_id, matched_at) VALUES ({}, {}, {}, '2024-10-01T00:00:00+00:00')",
                id(&db, 0x200), id(&db, PARTICIPANT), id(&db, VOLUNTEER)
            ))
            .await,
            Some(ErrorKind::UniqueViolation)
        );
        assert_eq!(
            check(format!(
                "INSERT INTO learning_progress (id, user_id, provider, course_id, status, final_score) VALUES ({}, {}, 'edx', 'C-2', 'completed', '100.01')",
                id(&db, 0x201), id(&db, PARTICIPANT)
            ))
            .await,
            Some(ErrorKind::CheckViolation)
        );
        assert_eq!(
            check(format!(
                "INSERT INTO program_enrollments (id, user_id, program_type, role, enrolled_at, program_instance_id) VALUES ({}, {}, 'mentors_ukraine', 'participant', '2024-10-16T10:00:00+00:00', {})",
                id(&db, 0x202), id(&db, PARTICIPANT), id(&db, INSTANCE)
            ))
            .await,
            Some(ErrorKind::UniqueViolation)
        );
        assert_eq!(
            check(format!(
                "INSERT INTO activity_associations (id, activity_kind, activity_id, confidence, decision, reasons, policy_version) VALUES ({}, 'kintell_session', {}, 101, 'auto', '[]', 'v1')",
                id(&db, 0x203), id(&db, 0x101)
            ))
            .await,
            Some(ErrorKind::CheckViolation)
        );
        assert_eq!(
            check(format!(
                "INSERT INTO campaigns (id, key, name, company_id, beneficiary_group_id, start_date, end_date) VALUES ({}, 'k2', 'n', {}, {}, '2024-02-01', '2024-01-31')",
                id(&db, 0x204), id(&db, COMPANY), id(&db, GROUP)
            ))
            .await,
            Some(ErrorKind::CheckViolation)
        );

        // ON DELETE: a beneficiary group in use cannot go; a campaign takes its instances and associations along,
        // and the activities keep their rows with the instance cleared; a user takes their activities along.
        // SQLite reports a RESTRICT refusal as SQLITE_CONSTRAINT_TRIGGER (1811), not as a foreign-key error code,
        // so sqlx's kind is `Other` there: the message is what says it.
        let refused = exec(&db, &format!("DELETE FROM beneficiary_groups WHERE id = {}", id(&db, GROUP)))
            .await
            .expect_err("a group in use stays");
        let refused = refused.as_database_error().expect("database error");
        match db.backend() {
            Backend::Postgres => assert_eq!(refused.kind(), ErrorKind::ForeignKeyViolation),
            Backend::Sqlite => {
                assert_eq!(refused.code().as_deref(), Some("1811"));
                assert_eq!(refused.message(), "FOREIGN KEY constraint failed");
            }
        }
        assert_eq!(check(format!("DELETE FROM campaigns WHERE id = {}", id(&db, CAMPAIGN))).await, None);
        assert_eq!(count(&db, "SELECT count(*) FROM program_instances").await, 0);
        assert_eq!(count(&db, "SELECT count(*) FROM activity_associations").await, 0);
        assert_eq!(count(&db, "SELECT count(*) FROM kintell_sessions WHERE program_instance_id IS NULL").await, 3);
        assert_eq!(count(&db, "SELECT count(*) FROM ingestion_batches WHERE program_instance_id IS NULL").await, 1);
        assert_eq!(
            check(format!("DELETE FROM ingestion_batches WHERE id = {}", id(&db, BATCH))).await,
            Some(ErrorKind::ForeignKeyViolation),
            "a batch that rows trace to stays"
        );
        assert_eq!(check(format!("DELETE FROM users WHERE id = {}", id(&db, PARTICIPANT))).await, None);
        for table in ["kintell_sessions", "buddy_matches", "learning_progress", "program_enrollments", "user_external_ids"] {
            assert_eq!(count(&db, &format!("SELECT count(*) FROM {table}")).await, 0, "{table}");
        }
    })
    .await;
}

#[tokio::test]
async fn sqlite_stores_uuids_as_sqlx_blobs_and_checks_text_formats() {
    let lite = support::fresh_sqlite();
    let db = Database::connect(&lite.url).await.expect("connect");
    db.migrate_up(None).await.expect("up");
    let pool = db.as_sqlite().expect("SQLite");
    let company = uuid::Uuid::from_u128(0xC0FFEE);
    sqlx::query("INSERT INTO companies (id, name, slug) VALUES (?1, 'Acme', 'acme')")
        .bind(company)
        .execute(pool)
        .await
        .expect("insert with a bound uuid");
    assert_eq!(
        count(&db, "SELECT count(*) FROM companies WHERE id = X'00000000000000000000000000c0ffee' AND length(id) = 16").await,
        1
    );
    let created: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT created_at FROM companies")
            .fetch_one(pool)
            .await
            .expect("default timestamp");
    let text: String = sqlx::query_scalar("SELECT created_at FROM companies")
        .fetch_one(pool)
        .await
        .expect("text");
    assert!(text.ends_with("+00:00") && text.contains('T'), "{text}");
    assert!(created.timestamp() > 1_700_000_000);
    let bound = chrono::DateTime::parse_from_rfc3339("2024-10-15T10:00:00.5Z")
        .expect("time")
        .to_utc();
    sqlx::query("UPDATE companies SET updated_at = ?1")
        .bind(bound)
        .execute(pool)
        .await
        .expect("bound timestamp");

    for (sql, what) in [
        (
            "INSERT INTO companies (id, name, slug) VALUES ('6ba7b811-9dad-11d1-80b4-00c04fd430c8', 'T', 't')",
            "text uuid",
        ),
        (
            "INSERT INTO companies (id, name, slug) VALUES (X'00', 'T', 't')",
            "short uuid",
        ),
        (
            "UPDATE companies SET updated_at = '2024-01-01 10:00:00'",
            "timestamp without T and offset",
        ),
        (
            "UPDATE companies SET updated_at = '2024-01-01T10:00:00+01:00'",
            "timestamp not in UTC",
        ),
        ("UPDATE users SET tags = 'not json'", "json"),
    ] {
        // The users update touches no row, so insert one to make the check bite.
        exec(&db, "INSERT OR IGNORE INTO users (id, email, role) VALUES (X'000000000000000000000000000000aa', 'a@b.c', 'admin')")
            .await
            .expect("user");
        assert_eq!(
            kind(exec(&db, sql).await),
            Some(ErrorKind::CheckViolation),
            "{what}"
        );
    }
    exec(&db, "INSERT INTO companies (id, name, slug) VALUES (X'000000000000000000000000000000ab', 'Z', 'z')")
        .await
        .expect("company");
    for (sql, what) in [
        (
            "INSERT INTO program_instances (id, program_type, program_name, program_slug, start_date) VALUES (X'000000000000000000000000000000ac', 'buddy', 'B', 'b', '2024-1-1')",
            "date",
        ),
        (
            "INSERT INTO beneficiary_groups (id, key, name, group_type, is_active) VALUES (X'000000000000000000000000000000ad', 'g', 'G', 't', 2)",
            "boolean",
        ),
    ] {
        assert_eq!(
            kind(exec(&db, sql).await),
            Some(ErrorKind::CheckViolation),
            "{what}"
        );
    }
    db.close().await;
}

#[tokio::test]
async fn sqlite_connections_get_the_pragmas_and_the_file_is_created() {
    let lite = support::fresh_sqlite();
    assert!(!lite.path.exists());
    let db = Database::connect(&lite.url).await.expect("connect");
    assert!(lite.path.exists(), "mode=rwc creates the file");
    assert_eq!(db.backend(), Backend::Sqlite);
    let pool = db.as_sqlite().expect("SQLite");
    // Two connections held at once, so both come from the pool's own setup.
    let mut a = pool.acquire().await.expect("a");
    let mut b = pool.acquire().await.expect("b");
    for conn in [&mut *a, &mut *b] {
        let fk: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .expect("fk");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .expect("journal");
        let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .expect("sync");
        let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .expect("busy");
        assert_eq!((fk, journal.as_str(), sync, busy), (1, "wal", 1, 5000));
        let checkpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&mut *conn)
            .await
            .expect("wal_autocheckpoint");
        let limit: i64 = sqlx::query_scalar("PRAGMA journal_size_limit")
            .fetch_one(&mut *conn)
            .await
            .expect("journal_size_limit");
        assert_eq!((checkpoint, limit), (16_384, 64 * 1024 * 1024));
    }
    drop((a, b));
    db.close().await;

    let missing = lite.path.with_file_name("missing.db");
    let err = Database::connect(&format!("sqlite://{}", missing.display()))
        .await
        .expect_err("no mode=rwc, no file");
    assert!(
        matches!(
            err,
            ConnectError::Connect {
                backend: Backend::Sqlite,
                ..
            }
        ),
        "{err}"
    );
    assert!(!missing.exists());
}

#[tokio::test]
async fn in_memory_sqlite_is_shared_by_the_pool() {
    let db = Database::connect("sqlite::memory:").await.expect("connect");
    db.migrate_up(None).await.expect("up");
    let pool = db.as_sqlite().expect("SQLite");
    let mut a = pool.acquire().await.expect("a");
    let mut b = pool.acquire().await.expect("b");
    for conn in [&mut *a, &mut *b] {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM kintell_schema_migrations")
            .fetch_one(&mut *conn)
            .await
            .expect("count");
        assert_eq!(n, 9);
    }
    drop((a, b));
    assert!(db.migrate_verify().await.expect("verify").is_ok());
    db.close().await;
}

#[tokio::test]
async fn bad_urls_are_clear_errors_without_passwords() {
    let err = Database::connect("mysql://user:secret@localhost/db")
        .await
        .expect_err("scheme");
    assert!(matches!(err, ConnectError::UnknownScheme { ref scheme, .. } if scheme == "mysql"));
    let message = err.to_string();
    assert!(
        message.contains("mysql://user:***@localhost/db") && !message.contains("secret"),
        "{message}"
    );

    let err = Database::connect("postgres://user:secret@localhost:notaport/db")
        .await
        .expect_err("url");
    assert!(
        matches!(
            err,
            ConnectError::InvalidUrl {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("secret"));
    assert!(
        std::error::Error::source(&err).is_some(),
        "the driver's reason is kept as the source"
    );

    // Nothing listens on port 1: refused at once, not after the pool's acquire timeout.
    let err = Database::connect("postgres://user:secret@127.0.0.1:1/db")
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            ConnectError::Connect {
                backend: Backend::Postgres,
                ..
            }
        ),
        "{err}"
    );
    assert!(!err.to_string().contains("secret"));
}
