//! Runs every example end to end: each example file is compiled here as a module and its `run` called, so the
//! tests exercise exactly the code `cargo run --example NAME` runs (only `main`, which hands `run` a temporary
//! directory and stdout, is left out).
//!
//! The PostgreSQL example runs when `KINTELL_TEST_DATABASE_URL` names a server where the user may create
//! databases: it gets a fresh database named with a UUID, dropped afterwards; without the variable the test prints
//! `skipped: …`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use kintell_ingest::batch::ProgressPhase;
use kintell_ingest::domain::{BatchStatus, Decision};

#[allow(dead_code)]
#[path = "../examples/sqlite_service.rs"]
mod sqlite_service;

#[allow(dead_code)]
#[path = "../examples/postgres.rs"]
mod postgres;

#[allow(dead_code)]
#[path = "../examples/custom_scoring.rs"]
mod custom_scoring;

#[allow(dead_code)]
#[path = "../examples/progress.rs"]
mod progress;

#[allow(dead_code)]
#[path = "../examples/custom_store.rs"]
mod custom_store;

/// A writer the test can read back after handing it to an example.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("not poisoned").clone()).expect("UTF-8 output")
    }
}

/// What both service examples must show for the sample data on a new database.
fn check_walkthrough(w: &kintell_ingest_examples::service::Walkthrough, printed: &str) {
    let report = w.report.as_ref().expect("a new database imports the file");
    assert_eq!(report.batch.status, BatchStatus::Completed);
    assert_eq!(report.batch.total_rows, 6);
    assert_eq!((report.inserted, report.errors), (4, 2));
    let a = report.associations;
    assert_eq!((a.auto, a.review, a.ignored, a.none), (3, 1, 0, 0));
    assert_eq!(w.batches, 1);

    assert_eq!(w.reviews.len(), 1);
    let review = &w.reviews[0];
    assert_eq!(
        review.campaign.as_ref().map(|k| k.as_str()),
        Some("acme-mentors-2024")
    );
    assert_eq!(review.confidence, 80);

    let by_key = |key: &str| {
        w.campaigns
            .iter()
            .find(|c| c.key.as_str() == key)
            .unwrap_or_else(|| panic!("campaign {key} reported"))
    };
    let mentors = by_key("acme-mentors-2024");
    assert_eq!(mentors.counts.sessions, 2);
    assert_eq!(mentors.counts.session_minutes, 105);
    assert_eq!(mentors.pending_reviews, 1);
    let capacity = mentors.capacity.expect("max_sessions gives a capacity");
    assert_eq!((capacity.used, capacity.limit), (2, 4));
    assert_eq!(by_key("acme-language-2024").counts.sessions, 1);

    for expected in [
        "migrate: ",
        "catalogue: 10 inserted",
        "4 inserted, 0 updated, 0 unchanged, 2 rejected",
        "3 auto, 1 review",
        "unknown_user",
        "invalid_datetime",
        "review queue: 1 item(s)",
        "acme-mentors-2024: 2 session(s), 105 minute(s)",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
}

#[tokio::test]
async fn sqlite_service_walks_through_import_review_and_report() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = Captured::default();
    let w = sqlite_service::run(dir.path(), &mut out.clone())
        .await
        .expect("the example runs");
    check_walkthrough(&w, &out.text());
    assert!(dir.path().join("kintell.db").exists());
}

#[tokio::test]
async fn sqlite_service_twice_on_one_database_refuses_the_reimport() {
    let dir = tempfile::tempdir().expect("temporary directory");
    sqlite_service::run(dir.path(), &mut std::io::sink())
        .await
        .expect("first run");
    let out = Captured::default();
    let w = sqlite_service::run(dir.path(), &mut out.clone())
        .await
        .expect("second run");
    let printed = out.text();
    assert!(w.report.is_none());
    assert!(
        printed.contains("migrate: 0 migration(s) applied"),
        "{printed}"
    );
    assert!(
        printed.contains("catalogue: 0 inserted, 0 updated, 10 unchanged"),
        "{printed}"
    );
    assert!(printed.contains("already imported by batch"), "{printed}");
    assert_eq!(w.batches, 1);
    assert_eq!(w.reviews.len(), 1);
}

#[tokio::test]
async fn postgres_walks_through_on_a_fresh_database() {
    let Some(db) = fresh_pg("postgres_walks_through_on_a_fresh_database").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = Captured::default();
    let w = postgres::run(&db.url, dir.path(), &mut out.clone())
        .await
        .expect("the example runs");
    let printed = out.text();
    check_walkthrough(&w, &printed);
    assert!(!printed.contains("postgres@"), "the user is not printed");
}

#[test]
fn postgres_needs_a_postgres_url() {
    let err = postgres::database_url(None, None).expect_err("no URL");
    assert!(err.to_string().contains("KINTELL_DATABASE_URL"), "{err}");
    let err = postgres::database_url(Some("sqlite://x.db".into()), None).expect_err("not postgres");
    assert!(err.to_string().contains("not a PostgreSQL URL"), "{err}");
    let err = postgres::database_url(None, Some("  ".into())).expect_err("blank");
    assert!(err.to_string().contains("no database"), "{err}");
    assert_eq!(
        postgres::database_url(Some("postgres://a/b".into()), Some("postgres://c/d".into()))
            .expect("the argument wins"),
        "postgres://a/b"
    );
    assert_eq!(
        postgres::database_url(None, Some("postgresql://c/d".into())).expect("the variable"),
        "postgresql://c/d"
    );
}

#[test]
fn postgres_prints_no_password() {
    assert_eq!(
        postgres::without_user("postgres://me:secret@db.example:5432/kintell"),
        "postgres://…@db.example:5432/kintell"
    );
    assert_eq!(
        postgres::without_user("postgresql://db/kintell?application_name=a@b"),
        "postgresql://db/kintell?application_name=a@b"
    );
}

#[test]
fn custom_scoring_shows_where_the_policies_disagree() {
    let out = Captured::default();
    let comparisons = custom_scoring::run(&mut out.clone()).expect("the example runs");
    let decisions: Vec<(Decision, u8, Decision, u8)> = comparisons
        .iter()
        .map(|c| {
            (
                c.default.decision,
                c.default.confidence.get(),
                c.custom.decision,
                c.custom.confidence.get(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            // Olena, both tags: linked either way.
            (Decision::Auto, 100, Decision::Auto, 100),
            // Dmytro, half the tags: 90 is enough for the default `auto` (80), not for the custom one (95).
            (Decision::Auto, 90, Decision::Review, 90),
            // Lea, no tags: 80 without tag evidence is a review by default; 70 is below the custom review (75).
            (Decision::Review, 80, Decision::Ignored, 70),
            // New Year's Eve 23:30 UTC is 1 January in UTC+2: the 2025 campaign, recruiting and untargeted.
            (Decision::Auto, 100, Decision::Review, 80),
        ]
    );
    let year = |c: &custom_scoring::Comparison| c.custom.campaign;
    assert_ne!(year(&comparisons[3]), comparisons[3].default.campaign);
    // Every outcome explains itself: the reasons' points add up to the confidence.
    for c in &comparisons {
        for o in [&c.default, &c.custom] {
            let sum: i32 = o.reasons.iter().map(|r| r.points).sum();
            assert_eq!(sum, i32::from(o.confidence.get()));
        }
    }
    let printed = out.text();
    for expected in [
        "custom policy (example-tags-first), activity date 2025-01-01",
        "no_tag_evidence",
        "the policies disagree: auto under the default, review under the custom one",
        "linked without review: 3 of 4 under the default policy, 1 under the custom one",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
    custom_scoring::custom_policy()
        .expect("valid")
        .validate()
        .expect("storable");
}

#[tokio::test]
async fn progress_reports_scanning_then_every_chunk() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = Captured::default();
    let (report, snapshots) = progress::run(dir.path(), Box::new(out.clone()))
        .await
        .expect("the example runs");
    assert_eq!(report.batch.status, BatchStatus::Completed);
    assert_eq!(report.inserted + report.errors, progress::ROWS);
    assert_eq!(report.errors, progress::ROWS / 100);

    let importing: Vec<_> = snapshots
        .iter()
        .filter(|s| s.phase == ProgressPhase::Importing)
        .collect();
    let chunks = progress::ROWS.div_ceil(progress::CHUNK_SIZE as u64);
    assert!(
        importing.len() as u64 >= chunks,
        "{} importing reports for {chunks} chunks",
        importing.len()
    );
    let first_importing = snapshots
        .iter()
        .position(|s| s.phase == ProgressPhase::Importing)
        .expect("importing reports");
    assert!(first_importing > 0, "the pre-pass reports first");
    assert!(
        snapshots[first_importing..]
            .iter()
            .all(|s| s.phase == ProgressPhase::Importing),
        "scanning ends before importing starts"
    );
    assert!(
        importing
            .windows(2)
            .all(|w| w[0].rows_done <= w[1].rows_done),
        "progress never goes back"
    );
    let last = importing.last().expect("a last report");
    assert_eq!(
        (last.rows_done, last.rows_total),
        (progress::ROWS, progress::ROWS)
    );
    assert_eq!(last.fraction(), 1.0);

    let printed = out.text();
    assert_eq!(
        printed.lines().count(),
        snapshots.len(),
        "one line per report"
    );
    assert!(printed.contains("scanning "), "{printed}");
    assert!(
        printed.contains(&format!("{0} of {0} records", progress::ROWS)),
        "{printed}"
    );
}

#[tokio::test]
async fn custom_store_serves_every_service_and_counts_only_committed_rows() {
    let out = Captured::default();
    let o = custom_store::run(&mut out.clone())
        .await
        .expect("the example runs");
    // The services worked through the custom store exactly as on any other.
    assert!(o.dry_run.dry_run);
    assert_eq!((o.dry_run.inserted, o.dry_run.errors), (4, 2));
    assert_eq!(o.report.batch.status, BatchStatus::Completed);
    assert_eq!((o.report.inserted, o.report.errors), (4, 2));
    assert_eq!((o.reviews, o.pending_reviews), (1, 1));

    // Only the real import's rows were committed; the dry run's unit was rolled back.
    let a = &o.audit;
    let committed = |t: &str| a.committed_rows.get(t).copied().unwrap_or(0);
    assert_eq!(committed("kintell_sessions"), 4);
    assert_eq!(committed("ingestion_row_errors"), 2);
    assert_eq!(committed("companies"), 1);
    assert_eq!(committed("users"), 4);
    assert!(
        a.units_committed < a.units_begun,
        "the dry run did not commit"
    );
    let calls = |name: &str| a.calls.get(name).copied().unwrap_or(0);
    assert_eq!(calls("begin"), a.units_begun);
    assert_eq!(calls("uow.commit"), a.units_committed);
    assert!(calls("uow.rollback") >= 1);
    assert!(
        calls("load_catalog") >= 2,
        "the review queue and the report read the catalogue"
    );
    assert_eq!(calls("list_reviews"), 1);
    assert_eq!(calls("campaign_counts"), 1);

    let printed = out.text();
    for expected in [
        "dry run: would insert 4 and reject 2; session rows committed so far: 0",
        "kintell_sessions",
        "port calls:",
    ] {
        assert!(
            printed.contains(expected),
            "{expected:?} missing from:\n{printed}"
        );
    }
}

/// A fresh PostgreSQL database named with a UUID on the server of `KINTELL_TEST_DATABASE_URL`, dropped when this
/// value is dropped.
struct PgDb {
    url: String,
    admin_url: String,
    name: String,
}

async fn fresh_pg(test: &str) -> Option<PgDb> {
    use sqlx::Connection;
    let Ok(admin_url) = std::env::var("KINTELL_TEST_DATABASE_URL") else {
        println!("skipped: {test} needs PostgreSQL; set KINTELL_TEST_DATABASE_URL");
        return None;
    };
    let name = format!("kintell_example_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin_url)
        .await
        .expect("connect to the test server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    conn.close().await.expect("close the admin connection");
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (admin_url.as_str(), None),
    };
    let host_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[host_end..].find('/') {
        Some(i) => &base[..host_end + i],
        None => base,
    };
    let url = match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    };
    Some(PgDb {
        url,
        admin_url: admin_url.clone(),
        name,
    })
}

impl Drop for PgDb {
    fn drop(&mut self) {
        use sqlx::Connection;
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // A thread with its own runtime, so that dropping works inside the test's runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await?;
                conn.close().await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}
