//! The import pipeline on every store: the upstream samples, every re-import outcome, reject limits, forced and
//! changed re-imports, duplicates within and across chunks, dry runs, failures injected between any two port
//! calls, a stolen lease, pause and cancel, one call per table per chunk, the error CSV, the users export.
//!
//! Each check is an `async fn(&Backend)` in [`checks`]; `ingest_tests!` makes one test per check and backend. A
//! [`Backend`] hands out fresh stores, so a check can compare two runs on two stores.

pub mod probe;

use kintell_ingest::store::Store;
use std::future::Future;
use std::pin::Pin;

/// Keeps a temporary database alive.
pub type Guard = Box<dyn std::any::Any + Send>;

type Open = Box<dyn Fn() -> Pin<Box<dyn Future<Output = (Store, Guard)> + Send>> + Send + Sync>;

/// Fresh, migrated, empty stores of one backend.
pub struct Backend {
    open: Open,
}

impl Backend {
    /// A new empty store, and what keeps it alive.
    pub async fn fresh(&self) -> (Store, Guard) {
        (self.open)().await
    }
}

macro_rules! ingest_tests {
    ($backend:ident => $open:expr) => {
        mod $backend {
            use super::*;

            ingest_tests!(@each $open; [
                upstream_samples_import,
                unknown_users_are_row_errors_unless_created,
                a_completed_file_is_refused_unless_forced,
                forced_reimport_reports_every_row_unchanged,
                a_changed_row_is_updated_and_keeps_its_first_batch,
                notices_name_same_name_and_same_content_batches,
                paused_and_failed_batches_are_resumed_by_a_reimport,
                a_live_running_batch_refuses_and_an_expired_one_is_taken_over,
                a_dead_holder_on_this_host_is_taken_over_at_once,
                an_orphaned_pending_batch_is_resumed,
                concurrent_imports_of_a_new_file_make_one_batch,
                concurrent_resumes_of_a_paused_batch_make_one_run,
                reject_limits_write_nothing,
                file_errors_leave_one_failed_batch_per_content,
                duplicates_within_and_across_chunks,
                dry_run_reports_what_the_real_run_does_and_stores_nothing,
                a_failure_between_any_two_calls_then_a_resume_gives_the_same_rows,
                a_lease_stolen_between_chunks_makes_the_loser_write_nothing,
                pause_requests_are_honoured_between_chunks,
                cancel_requests_are_honoured_between_chunks,
                a_stop_signal_pauses_between_chunks_and_a_resume_completes,
                one_call_per_table_per_chunk,
                a_large_chunk_writes_its_associations_in_parts,
                the_error_csv_escapes_formulas,
                the_users_export_merges_with_stored_users,
                program_refs_and_explicit_instances_link_rows,
                matches_and_completions_link_and_enrol,
                resume_checks_the_bytes,
                legacy_adoption_is_idempotent,
                progress_is_reported_while_scanning_and_after_each_chunk,
                rows_without_an_instance_are_scored_and_human_decisions_stick,
                association_is_unavailable_without_a_catalogue,
            ]);
        }
    };
    (@each $open:expr; [$($check:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $check() {
                let open = $open;
                let test: &'static str = concat!(module_path!(), "::", stringify!($check));
                let Some(backend) = open(test) else {
                    return;
                };
                crate::ingest::checks::$check(&backend).await;
            }
        )*
    };
}

ingest_tests!(memory => |_test: &'static str| -> Option<Backend> {
    Some(Backend {
        open: Box::new(|| Box::pin(async { (Store::memory(), Box::new(()) as Guard) })),
    })
});
#[cfg(feature = "sqlite")]
ingest_tests!(sqlite => |_test: &'static str| -> Option<Backend> {
    Some(Backend {
        open: Box::new(|| {
            Box::pin(async {
                let db = crate::support::fresh_sqlite();
                let store = Store::connect(&db.url).await.expect("connect");
                store.migrate().await.expect("migrate");
                (store, Box::new(db) as Guard)
            })
        }),
    })
});
#[cfg(feature = "postgres")]
ingest_tests!(postgres => |test: &'static str| -> Option<Backend> {
    if std::env::var(crate::support::PG_ENV).is_err() {
        println!("skipped: {test} needs PostgreSQL; set {}", crate::support::PG_ENV);
        return None;
    }
    Some(Backend {
        open: Box::new(move || {
            Box::pin(async move {
                let db = crate::support::fresh_pg(test).await.expect("PostgreSQL is configured");
                let store = Store::connect(&db.url).await.expect("connect");
                store.migrate().await.expect("migrate");
                (store, Box::new(db) as Guard)
            })
        }),
    })
});

/// The checks.
pub mod checks {
    use super::Backend;
    use super::probe::Probe;
    use chrono::{DateTime, TimeDelta, TimeZone, Utc};
    use expect_test::{Expect, expect};
    use kintell_ingest::batch::LeaseOwner;
    use kintell_ingest::catalog::CatalogImport;
    use kintell_ingest::domain::{
        ActivityId, ActivityKind, BatchId, BatchRecord, BatchStatus, Decision, Email, EntityKind,
        ProgramSlug, SessionId,
    };
    use kintell_ingest::ingest::{
        Clock, ImportError, ImportReport, ImportRequest, ImportSource, Ingestor, STOPPED_REASON,
        StopSignal, stopped_by_signal, write_error_csv,
    };
    use kintell_ingest::ports::{BatchFilter, BatchGuard};
    use kintell_ingest::store::Store;
    use std::fmt::Write as _;
    use std::sync::{Arc, Mutex};

    /// A clock the test moves by hand.
    #[derive(Clone)]
    pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

    impl ManualClock {
        fn new() -> Self {
            ManualClock(Arc::new(Mutex::new(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
                    .single()
                    .expect("time"),
            )))
        }

        fn advance(&self, by: TimeDelta) {
            let mut t = self.0.lock().expect("clock");
            *t += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> DateTime<Utc> {
            *self.0.lock().expect("clock")
        }
    }

    /// The ingestor of a test: a manual clock, chunks of 2.
    fn ingestor(store: &Store, clock: &ManualClock) -> Ingestor {
        Ingestor::new(store.clone())
            .clock(Arc::new(clock.clone()))
            .chunk_size(2)
            .host("test-host")
    }

    async fn with_catalog(backend: &Backend) -> (Store, super::Guard) {
        let (store, guard) = backend.fresh().await;
        CatalogImport::new(store.clone())
            .run_json(crate::catalog::FIXTURE, ManualClock::new().now())
            .await
            .expect("catalogue");
        (store, guard)
    }

    const SESSIONS_HEADER: &str = "session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text";

    /// A `kintell-sessions` file of the catalogue's people, one line per `(id, rating)`; a rating of `x` makes the
    /// row invalid.
    fn sessions(rows: &[(&str, &str)]) -> Vec<u8> {
        let mut out = String::from(SESSIONS_HEADER);
        out.push('\n');
        for (i, (id, rating)) in rows.iter().enumerate() {
            let (participant, volunteer) = if i % 2 == 0 {
                ("anna@example.com", "maria@acme.example")
            } else {
                ("olek.petrenko@example.com", "lars@nordicbank.no")
            };
            let _ = writeln!(
                out,
                "{id},Mentorship,{participant},{volunteer},2024-10-{:02}T10:00:00Z,60,{rating},fine",
                i + 1
            );
        }
        out.into_bytes()
    }

    /// Five valid sessions with the file name of a catalogue instance (every row explicit).
    fn five() -> ImportRequest {
        ImportRequest::from_bytes(
            "mentors_for_ukraine_2024_q4.csv",
            sessions(&[
                ("S-1", "4"),
                ("S-2", "5"),
                ("S-3", "3"),
                ("S-4", "x"),
                ("S-5", "2"),
            ]),
        )
    }

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!(
            "{}/tests/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .expect("fixture")
    }

    /// The counters of a report, one line.
    fn render(r: &ImportReport) -> String {
        let b = &r.batch;
        let a = &r.associations;
        format!(
            "{} {} rows={} processed={} inserted={} updated={} skipped={} errors={} explicit={} auto={} review={} \
             ignored={} none={}{}",
            b.status,
            b.format,
            b.total_rows,
            b.last_processed_row,
            r.inserted,
            r.updated,
            r.skipped,
            r.errors,
            a.explicit,
            a.auto,
            a.review,
            a.ignored,
            a.none,
            b.last_error
                .as_deref()
                .map(|e| format!(" last_error={e:?}"))
                .unwrap_or_default()
        )
    }

    fn check(r: &ImportReport, expect: Expect) {
        expect.assert_eq(&render(r));
    }

    async fn import(ing: &Ingestor, req: ImportRequest) -> ImportReport {
        ing.import(req).await.expect("import")
    }

    /// Everything the store holds about the imports, without ids and times: batches (newest first, named b0, b1,
    /// …), their row errors, the sessions with these ids (lineage, link, association), counts.
    async fn state(store: &Store, session_ids: &[&str]) -> String {
        let mut out = String::new();
        let batches = store
            .list_batches(&BatchFilter::default())
            .await
            .expect("batches");
        let name = |id: Option<BatchId>| match id {
            None => "-".to_owned(),
            Some(id) => batches
                .iter()
                .position(|b| b.id == id)
                .map_or_else(|| "?".to_owned(), |i| format!("b{i}")),
        };
        for (i, b) in batches.iter().enumerate() {
            let _ = writeln!(
                out,
                "b{i}: {} {} {} total={} ins={} upd={} skip={} err={} done={} lease={} summary={} assoc={}",
                b.status,
                b.file_name,
                b.format,
                b.total_rows,
                b.inserted_rows,
                b.updated_rows,
                b.skipped_rows,
                b.error_rows,
                b.last_processed_row,
                b.lease_owner.is_some(),
                b.error_summary.clone().unwrap_or_default(),
                b.csv_metadata
                    .get("associations")
                    .cloned()
                    .unwrap_or_default(),
            );
            for e in store.row_errors(b.id, 0, 1000).await.expect("row errors") {
                let _ = writeln!(
                    out,
                    "  row {} line {} {} {:?}: {} {}",
                    e.row_number, e.line_number, e.code, e.field, e.message, e.raw_record
                );
            }
        }
        let ids: Vec<SessionId> = session_ids
            .iter()
            .map(|s| SessionId::parse(s).expect("id"))
            .collect();
        let mut unit = store.begin().await.expect("begin");
        let mut found = unit.stored_sessions(&ids).await.expect("sessions");
        unit.rollback().await.expect("rollback");
        found.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, row) in found {
            let lineage = store
                .activity_lineage(ActivityKind::KintellSession, row.id.into())
                .await
                .expect("lineage")
                .expect("stored");
            let assoc = store
                .association_for(ActivityKind::KintellSession, row.id.into())
                .await
                .expect("association");
            let _ = writeln!(
                out,
                "{id}: batch={} first={} row={:?} instance={} assoc={}",
                name(lineage.batch_id),
                name(lineage.first_batch_id),
                lineage.source_row_number,
                lineage.program_instance_id.is_some(),
                assoc.map_or_else(
                    || "-".to_owned(),
                    |a| format!(
                        "{} {} {} batch={}",
                        a.decision,
                        a.confidence.get(),
                        a.reasons,
                        name(a.batch_id)
                    )
                ),
            );
        }
        for kind in ActivityKind::ALL {
            let _ = writeln!(
                out,
                "{kind}: {}",
                store.count_activities(*kind).await.expect("count")
            );
        }
        let _ = writeln!(out, "users: {}", store.count_users().await.expect("users"));
        out
    }

    const FIVE: &[&str] = &["S-1", "S-2", "S-3", "S-4", "S-5"];

    /// What an uninterrupted import of [`five`] leaves.
    async fn uninterrupted_five(backend: &Backend) -> String {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        import(&ingestor(&store, &clock), five()).await;
        state(&store, FIVE).await
    }

    /// The upstream sample files import, people created on the way.
    pub async fn upstream_samples_import(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let mut out = String::new();
        for (file, entity) in [
            ("kintell-sessions.csv", EntityKind::KintellSessions),
            ("buddy-matches.csv", EntityKind::BuddyMatches),
            ("course-completions.csv", EntityKind::CourseCompletions),
        ] {
            let r = import(
                &ing,
                ImportRequest::from_path(format!(
                    "{}/tests/fixtures/{file}",
                    env!("CARGO_MANIFEST_DIR")
                ))
                .entity(entity)
                .create_missing_users(true),
            )
            .await;
            assert_eq!(r.batch.file_name, file);
            assert!(r.batch.started_at.is_some() && r.batch.completed_at.is_some());
            assert_eq!(r.batch.lease_owner, None);
            let _ = writeln!(out, "{file}: {}", render(&r));
        }
        expect![[r#"
            kintell-sessions.csv: completed kintell-sessions rows=3 processed=3 inserted=3 updated=0 skipped=0 errors=0 explicit=0 auto=0 review=0 ignored=0 none=3
            buddy-matches.csv: completed buddy-matches rows=5 processed=5 inserted=5 updated=0 skipped=0 errors=0 explicit=0 auto=0 review=0 ignored=0 none=5
            course-completions.csv: completed course-completions rows=4 processed=4 inserted=4 updated=0 skipped=0 errors=0 explicit=0 auto=0 review=0 ignored=0 none=4
        "#]]
        .assert_eq(&out);
        assert_eq!(
            store
                .count_activities(ActivityKind::KintellSession)
                .await
                .expect("count"),
            3
        );
        // Five catalogue users; alice, bob, charlie, diana from the sessions; ten people of the matches;
        // charlie and alice again and bob in the completions.
        assert_eq!(store.count_users().await.expect("users"), 5 + 4 + 10);
        let charlie = store
            .user_by_email(&Email::parse("charlie@volunteer.org").expect("email"))
            .await
            .expect("user")
            .expect("created");
        assert_eq!(charlie.role.as_str(), "volunteer");
        assert_eq!(charlie.company_id, None);
    }

    /// Unknown people are `unknown_user` row errors (the first unknown column in header order), unless created.
    pub async fn unknown_users_are_row_errors_unless_created(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let r = import(
            &ing,
            ImportRequest::from_bytes("s.csv", fixture("kintell-sessions.csv")),
        )
        .await;
        check(
            &r,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=0 updated=0 skipped=0 errors=3 explicit=0 auto=0 review=0 ignored=0 none=0"
            ],
        );
        let errors = store.row_errors(r.batch.id, 0, 10).await.expect("errors");
        let first = errors.first().expect("an error");
        assert_eq!(first.code, "unknown_user");
        assert_eq!(first.field.as_deref(), Some("participant_email"));
        assert_eq!(
            first
                .details
                .as_ref()
                .and_then(|d| d.as_array())
                .map(Vec::len),
            Some(2),
            "both people are unknown: {:?}",
            first.details
        );
        expect![[r#"{"by_code":{"unknown_user":3},"first":[{"code":"unknown_user","field":"participant_email","line":2,"message":"no user has the email alice@example.com","row":1},{"code":"unknown_user","field":"participant_email","line":3,"message":"no user has the email bob@example.com","row":2},{"code":"unknown_user","field":"participant_email","line":4,"message":"no user has the email alice@example.com","row":3}]}"#]]
        .assert_eq(&r.batch.error_summary.clone().unwrap_or_default().to_string());
        assert_eq!(store.count_users().await.expect("users"), 5);
    }

    /// A completed file is refused (also as a dry run) unless forced.
    pub async fn a_completed_file_is_refused_unless_forced(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let first = import(&ing, five()).await;
        for dry in [false, true] {
            match ing.import(five().dry_run(dry)).await {
                Err(ImportError::AlreadyImported { batch }) => assert_eq!(batch.id, first.batch.id),
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
        let forced = import(&ing, five().force(true)).await;
        assert_ne!(forced.batch.id, first.batch.id);
        // The newest completed batch refuses the next unforced attempt.
        match ing.import(five()).await {
            Err(ImportError::AlreadyImported { batch }) => assert_eq!(batch.id, forced.batch.id),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    /// A forced re-import creates a batch that finds every stored row unchanged and keeps their lineage.
    pub async fn forced_reimport_reports_every_row_unchanged(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let first = import(&ing, five()).await;
        check(
            &first,
            expect![
                "completed kintell-sessions rows=5 processed=5 inserted=4 updated=0 skipped=0 errors=1 explicit=4 auto=0 review=0 ignored=0 none=0"
            ],
        );
        let forced = import(&ing, five().force(true)).await;
        check(
            &forced,
            expect![
                "completed kintell-sessions rows=5 processed=5 inserted=0 updated=0 skipped=4 errors=1 explicit=4 auto=0 review=0 ignored=0 none=0"
            ],
        );
        expect![[r#"
            b0: completed mentors_for_ukraine_2024_q4.csv kintell-sessions total=5 ins=0 upd=0 skip=4 err=1 done=5 lease=false summary={"by_code":{"invalid_number":1},"first":[{"code":"invalid_number","field":"rating","line":5,"message":"rating: \"x\" is not a valid decimal","row":4}]} assoc={"auto":0,"explicit":4,"ignored":0,"none":0,"review":0}
              row 4 line 5 invalid_number Some("rating"): rating: "x" is not a valid decimal ["S-4","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-04T10:00:00Z","60","x","fine"]
            b1: completed mentors_for_ukraine_2024_q4.csv kintell-sessions total=5 ins=4 upd=0 skip=0 err=1 done=5 lease=false summary={"by_code":{"invalid_number":1},"first":[{"code":"invalid_number","field":"rating","line":5,"message":"rating: \"x\" is not a valid decimal","row":4}]} assoc={"auto":0,"explicit":4,"ignored":0,"none":0,"review":0}
              row 4 line 5 invalid_number Some("rating"): rating: "x" is not a valid decimal ["S-4","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-04T10:00:00Z","60","x","fine"]
            S-1: batch=b1 first=b1 row=Some(1) instance=true assoc=explicit 100 [{"code":"explicit_instance","detail":"programme instance e8ab74bc-e372-505e-bd9a-674effb51a5c named by the import","points":100}] batch=b0
            kintell_session: 4
            buddy_match: 0
            course_completion: 0
            users: 5
        "#]]
        .assert_eq(&state(&store, &["S-1"]).await);
    }

    /// A re-export with one changed row: that row is updated (new lineage, same first batch), the rest skipped.
    pub async fn a_changed_row_is_updated_and_keeps_its_first_batch(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        import(
            &ing,
            ImportRequest::from_bytes("export.csv", sessions(&[("S-1", "4"), ("S-2", "5")])),
        )
        .await;
        let second = import(
            &ing,
            ImportRequest::from_bytes(
                "export.csv",
                sessions(&[("S-0", "1"), ("S-1", "4"), ("S-2", "1")]),
            ),
        )
        .await;
        // S-0 takes anna's place, so S-1 moves to olek: changed; S-2 changes its rating.
        check(
            &second,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=1 updated=2 skipped=0 errors=0 explicit=0 auto=2 review=0 ignored=0 none=1"
            ],
        );
        let third = import(
            &ing,
            ImportRequest::from_bytes(
                "export-again.csv",
                sessions(&[("S-0", "1"), ("S-1", "4"), ("S-2", "2")]),
            ),
        )
        .await;
        check(
            &third,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=0 updated=1 skipped=2 errors=0 explicit=0 auto=2 review=0 ignored=0 none=1"
            ],
        );
        expect![[r#"
            b0: completed export-again.csv kintell-sessions total=3 ins=0 upd=1 skip=2 err=0 done=3 lease=false summary={"by_code":{},"first":[]} assoc={"auto":2,"explicit":0,"ignored":0,"none":1,"review":0}
            b1: completed export.csv kintell-sessions total=3 ins=1 upd=2 skip=0 err=0 done=3 lease=false summary={"by_code":{},"first":[]} assoc={"auto":2,"explicit":0,"ignored":0,"none":1,"review":0}
            b2: completed export.csv kintell-sessions total=2 ins=2 upd=0 skip=0 err=0 done=2 lease=false summary={"by_code":{},"first":[]} assoc={"auto":1,"explicit":0,"ignored":0,"none":1,"review":0}
            S-0: batch=b1 first=b1 row=Some(1) instance=true assoc=auto 100 [{"code":"company_match","detail":"the campaign belongs to the activity's company","points":30},{"code":"date_in_window","detail":"2024-10-01 within 2024-01-01..=2024-12-31","points":30},{"code":"tags_full","detail":"all group tags matched: refugees, ukrainian","points":40},{"code":"status_active","detail":"campaign status active","points":10},{"code":"instance_on_date","detail":"instance e8ab74bc-e372-505e-bd9a-674effb51a5c (active, 2024-10-01..=2024-12-31)","points":10},{"code":"capped","detail":"uncapped total 120 cut to 100","points":-20}] batch=b0
            S-1: batch=b1 first=b2 row=Some(2) instance=true assoc=none 0 [{"code":"no_candidates","detail":"no active campaign of company 77701343-21c1-595f-a6b5-ec33c6c5b792 for mentors_ukraine covers 2024-10-02","points":0}] batch=b0
            S-2: batch=b0 first=b2 row=Some(3) instance=true assoc=auto 100 [{"code":"company_match","detail":"the campaign belongs to the activity's company","points":30},{"code":"date_in_window","detail":"2024-10-03 within 2024-01-01..=2024-12-31","points":30},{"code":"tags_full","detail":"all group tags matched: refugees, ukrainian","points":40},{"code":"status_active","detail":"campaign status active","points":10},{"code":"instance_on_date","detail":"instance e8ab74bc-e372-505e-bd9a-674effb51a5c (active, 2024-10-01..=2024-12-31)","points":10},{"code":"capped","detail":"uncapped total 120 cut to 100","points":-20}] batch=b0
            kintell_session: 3
            buddy_match: 0
            course_completion: 0
            users: 5
        "#]]
        .assert_eq(&state(&store, &["S-0", "S-1", "S-2"]).await);
    }

    /// Notices: an earlier batch of the same name with other bytes, and of the same bytes under another name.
    pub async fn notices_name_same_name_and_same_content_batches(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let first = import(
            &ing,
            ImportRequest::from_bytes("a.csv", sessions(&[("S-1", "4")])),
        )
        .await;
        assert_eq!(first.notices, Vec::<String>::new());
        let renamed = import(
            &ing,
            ImportRequest::from_bytes("b.csv", sessions(&[("S-1", "4")])).force(true),
        )
        .await;
        assert_eq!(renamed.notices.len(), 1, "{:?}", renamed.notices);
        assert!(
            renamed.notices[0].contains(&format!(
                "batch {} (completed, 2026-01-01T00:00:00+00:00) imported the same content under the name \"a.csv\"",
                first.batch.id
            )),
            "{:?}",
            renamed.notices
        );
        let other = import(
            &ing,
            ImportRequest::from_bytes("a.csv", sessions(&[("S-1", "5")])),
        )
        .await;
        assert_eq!(other.notices.len(), 1, "{:?}", other.notices);
        assert!(
            other.notices[0]
                .contains("imported a file of the same name \"a.csv\" with different content"),
            "{:?}",
            other.notices
        );
        let json = other.to_json();
        assert_eq!(json["notices"], serde_json::json!(other.notices));
        let keys: Vec<&str> = json["batch"]
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        expect![[r#"["completed_at", "csv_metadata", "entity_kind", "error_rows", "error_summary", "file_hash", "file_name", "format", "id", "inserted_rows", "last_error", "last_processed_row", "program_instance_id", "program_type", "skipped_rows", "started_at", "status", "success_rows", "total_rows", "updated_rows"]"#]]
        .assert_eq(&format!("{keys:?}"));
        expect![[r#"{"auto":1,"explicit":0,"ignored":0,"none":0,"review":0}"#]]
            .assert_eq(&json["associations"].to_string());
    }

    /// Runs `req` with the store failing at the `n`-th port call; the error it gave.
    async fn fail_once(probe: &Probe, ing: &Ingestor, req: ImportRequest, n: usize) -> ImportError {
        probe.fail_at(n);
        let e = ing
            .import(req)
            .await
            .expect_err("the injected failure stops the import");
        probe.fail_at(usize::MAX);
        e
    }

    /// A paused batch and a failed one are resumed by importing the same bytes again, ending as an
    /// uninterrupted import would.
    pub async fn paused_and_failed_batches_are_resumed_by_a_reimport(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        // Paused after the first chunk.
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), &clock);
        let pauser = ing.clone();
        let store2 = store.clone();
        probe.hook(
            "get_batch",
            2,
            Box::new(move || {
                Box::pin(async move {
                    let id = only_batch(&store2).await.id;
                    pauser.request_pause(id).await.expect("pause");
                })
            }),
        );
        let paused = import(&ing, five()).await;
        check(
            &paused,
            expect![[
                r#"paused kintell-sessions rows=5 processed=2 inserted=2 updated=0 skipped=0 errors=0 explicit=2 auto=0 review=0 ignored=0 none=0 last_error="pause requested""#
            ]],
        );
        let resumed = import(&ing, five()).await;
        assert_eq!(resumed.batch.id, paused.batch.id);
        assert!(
            resumed
                .notices
                .iter()
                .any(|n| n.starts_with("resuming batch"))
        );
        check(
            &resumed,
            expect![
                "completed kintell-sessions rows=5 processed=5 inserted=4 updated=0 skipped=0 errors=1 explicit=4 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert_eq!(state(&store, FIVE).await, expected);

        // Failed in the second chunk.
        let (store, _g) = with_catalog(backend).await;
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), &clock);
        let position = call_number(&calls_of_five(backend).await, "uow.upsert_sessions", 2);
        let e = fail_once(&probe, &ing, five(), position).await;
        assert!(matches!(e, ImportError::Store(_)), "{e:?}");
        let failed = only_batch(&store).await;
        assert_eq!(failed.status, BatchStatus::Failed);
        assert_eq!(failed.last_processed_row, 2);
        assert!(
            failed
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("injected failure of uow.upsert_sessions")),
            "{:?}",
            failed.last_error
        );
        let resumed = import(&ing, five()).await;
        assert_eq!(resumed.batch.id, failed.id);
        assert_eq!(resumed.batch.last_error, None);
        assert_eq!(state(&store, FIVE).await, expected);
    }

    async fn only_batch(store: &Store) -> BatchRecord {
        let mut all = store
            .list_batches(&BatchFilter::default())
            .await
            .expect("batches");
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    /// Makes the batch look held by `owner` until `until` (as a worker that died or went away would leave it).
    async fn hold(store: &Store, batch: &BatchRecord, owner: &LeaseOwner, until: DateTime<Utc>) {
        let running = BatchRecord {
            status: BatchStatus::Running,
            lease_owner: Some(owner.to_string()),
            lease_expires_at: Some(until),
            last_error: None,
            ..batch.clone()
        };
        assert!(
            store
                .save_batch(&running, &BatchGuard::of(batch))
                .await
                .expect("save")
        );
    }

    /// A paused batch (after one chunk), for the lease tests.
    async fn paused_five(store: &Store, clock: &ManualClock) -> BatchRecord {
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), clock);
        let pauser = ing.clone();
        let store2 = store.clone();
        probe.hook(
            "get_batch",
            2,
            Box::new(move || {
                Box::pin(async move {
                    let id = only_batch(&store2).await.id;
                    pauser.request_pause(id).await.expect("pause");
                })
            }),
        );
        let paused = import(&ing, five()).await;
        assert_eq!(paused.batch.status, BatchStatus::Paused);
        paused.batch
    }

    /// A running batch whose lease is live refuses; once the lease has expired, it is taken over.
    pub async fn a_live_running_batch_refuses_and_an_expired_one_is_taken_over(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let batch = paused_five(&store, &clock).await;
        let owner = LeaseOwner::new("elsewhere", 77, "n1").expect("owner");
        let until = clock.now() + TimeDelta::seconds(30);
        hold(&store, &batch, &owner, until).await;
        let ing = ingestor(&store, &clock);
        for req in [five(), five().force(true), five().dry_run(true)] {
            match ing.import(req).await {
                Err(ImportError::InProgress {
                    batch: b,
                    owner: o,
                    until: u,
                }) => {
                    assert_eq!((b.id, o, u), (batch.id, owner.to_string(), until));
                }
                other => panic!("expected InProgress, got {other:?}"),
            }
        }
        match ing
            .resume(batch.id, ImportSource::from_bytes("x.csv", five_bytes()))
            .await
        {
            Err(ImportError::InProgress { .. }) => {}
            other => panic!("expected InProgress, got {other:?}"),
        }
        clock.advance(TimeDelta::seconds(30));
        let done = import(&ing, five()).await;
        assert_eq!(done.batch.id, batch.id);
        assert_eq!(done.batch.status, BatchStatus::Completed);
        assert_eq!(state(&store, FIVE).await, expected);
    }

    fn five_bytes() -> Vec<u8> {
        sessions(&[
            ("S-1", "4"),
            ("S-2", "5"),
            ("S-3", "3"),
            ("S-4", "x"),
            ("S-5", "2"),
        ])
    }

    /// A lease held by a process of this host that no longer exists is taken over before it expires; one held by
    /// a live process of this host is not.
    pub async fn a_dead_holder_on_this_host_is_taken_over_at_once(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let batch = paused_five(&store, &clock).await;
        let ing = ingestor(&store, &clock);
        let until = clock.now() + TimeDelta::seconds(30);
        let alive = LeaseOwner::new("test-host", std::process::id(), "other-run").expect("owner");
        hold(&store, &batch, &alive, until).await;
        assert!(matches!(
            ing.import(five()).await,
            Err(ImportError::InProgress { .. })
        ));
        if !std::path::Path::new("/proc/self").exists() {
            println!("skipped: telling a dead process needs /proc");
            return;
        }
        let stored = only_batch(&store).await;
        let dead = LeaseOwner::new("test-host", 4_000_000_000, "crashed").expect("owner");
        hold(&store, &stored, &dead, until).await;
        let done = import(&ing, five()).await;
        assert_eq!(done.batch.id, batch.id);
        assert_eq!(state(&store, FIVE).await, expected);
    }

    /// The port calls of an uninterrupted import of [`five`], on a store of its own.
    async fn calls_of_five(backend: &Backend) -> Vec<&'static str> {
        let (store, _g) = with_catalog(backend).await;
        let probe = Probe::new(store);
        import(&ingestor(&probe.store(), &ManualClock::new()), five()).await;
        probe.calls()
    }

    /// The 1-based number of the `nth` call named `name` in `calls`.
    fn call_number(calls: &[&str], name: &str, nth: usize) -> usize {
        calls
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == name)
            .nth(nth - 1)
            .map(|(i, _)| i + 1)
            .unwrap_or_else(|| panic!("no call {nth} of {name} in {calls:?}"))
    }

    /// A batch left `pending` (a crash between its creation and its start) is resumed once a lease's length has
    /// passed since its creation; before that it counts as being started by its creator.
    pub async fn an_orphaned_pending_batch_is_resumed(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        // The first guarded save of the repository is the batch's start.
        let start = call_number(&calls_of_five(backend).await, "save_batch", 1);
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), &clock);
        let e = fail_once(&probe, &ing, five(), start).await;
        assert!(matches!(e, ImportError::Store(_)), "{e:?}");
        let pending = only_batch(&store).await;
        assert_eq!(pending.status, BatchStatus::Pending);
        match ing.import(five()).await {
            Err(ImportError::InProgress { batch, until, .. }) => {
                assert_eq!(batch.id, pending.id);
                assert_eq!(until, pending.created_at + TimeDelta::seconds(60));
            }
            other => panic!("expected InProgress, got {other:?}"),
        }
        clock.advance(TimeDelta::seconds(60));
        let done = import(&ing, five()).await;
        assert_eq!(done.batch.id, pending.id);
        assert_eq!(state(&store, FIVE).await, expected);
    }

    /// How the loser of a race for one file ended: refused as in progress, or as already imported when it looked
    /// after the winner had finished; either way naming the winner's batch.
    fn refused_by(loser: Result<ImportReport, ImportError>, winner: BatchId) {
        match loser {
            Err(ImportError::InProgress { batch, .. } | ImportError::AlreadyImported { batch }) => {
                assert_eq!(batch.id, winner);
            }
            other => panic!("expected InProgress or AlreadyImported, got {other:?}"),
        }
    }

    /// Runs two imports of [`five`] through `ings`, started together behind a barrier; the winner's report and the
    /// loser's outcome.
    async fn race(ings: [Ingestor; 2]) -> (ImportReport, Result<ImportReport, ImportError>) {
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let tasks = ings.map(|ing| {
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                ing.import(five()).await
            })
        });
        let mut outcomes = Vec::new();
        for task in tasks {
            // A contender that never reaches the point where the other waits for it would hang the test.
            let outcome = tokio::time::timeout(std::time::Duration::from_secs(120), task)
                .await
                .expect("the contenders meet and end")
                .expect("the import task ends");
            outcomes.push(outcome);
        }
        let second = outcomes.pop().expect("two outcomes");
        let first = outcomes.pop().expect("two outcomes");
        match (first, second) {
            (Ok(winner), loser) | (loser, Ok(winner)) => (winner, loser),
            (a, b) => panic!("no import won: {a:?} / {b:?}"),
        }
    }

    /// Makes the first two calls named `name` (one per contender) wait for each other, so that both contenders
    /// have made their decision before either writes.
    fn meet_at(probe: &Probe, name: &'static str) {
        let meet = Arc::new(tokio::sync::Barrier::new(2));
        for nth in [1, 2] {
            let meet = meet.clone();
            probe.hook(
                name,
                nth,
                Box::new(move || {
                    Box::pin(async move {
                        meet.wait().await;
                    })
                }),
            );
        }
    }

    /// Two imports of the same new file started together make one batch and no duplicate row; the loser is
    /// refused (in progress, or already imported), never a store error. Once free-running, once with both
    /// contenders held until each has decided to create a batch (so the loser's creation hits the in-flight index
    /// and it decides again).
    pub async fn concurrent_imports_of_a_new_file_make_one_batch(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        for meet in [false, true] {
            let (store, _g) = with_catalog(backend).await;
            let clock = ManualClock::new();
            let probe = Probe::new(store.clone());
            if meet {
                // After both have read the batches of the file (and found none), before either creates one.
                meet_at(&probe, "batches_by_file_name");
            }
            let ing = ingestor(&probe.store(), &clock);
            let (winner, loser) = race([ing.clone(), ing]).await;
            assert_eq!(winner.batch.status, BatchStatus::Completed);
            refused_by(loser, winner.batch.id);
            let inserts = probe.counts().get("uow.insert_batch").copied();
            if meet {
                assert_eq!(inserts, Some(2), "both tried to create a batch");
            }
            assert_eq!(only_batch(&store).await.id, winner.batch.id);
            assert_eq!(state(&store, FIVE).await, expected, "meet={meet}");
        }
    }

    /// Two imports that both decided to resume the same paused batch: one takes it and finishes it, the other
    /// (its take refused by the guard) decides again and is refused.
    pub async fn concurrent_resumes_of_a_paused_batch_make_one_run(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let paused = paused_five(&store, &clock).await;
        let probe = Probe::new(store.clone());
        // Their first guarded save is the take.
        meet_at(&probe, "save_batch");
        let ing = ingestor(&probe.store(), &clock);
        let (winner, loser) = race([ing.clone(), ing]).await;
        assert_eq!(winner.batch.id, paused.id);
        assert_eq!(winner.batch.status, BatchStatus::Completed);
        refused_by(loser, paused.id);
        assert_eq!(state(&store, FIVE).await, expected);
    }

    /// Over a reject limit the batch fails before any data row: row errors recorded, counters 0, no rows, no
    /// users created, no instance created from the file name.
    pub async fn reject_limits_write_nothing(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let bytes = sessions(&[("S-1", "4"), ("S-2", "x"), ("S-3", "x"), ("S-4", "4")]);
        for (req, reason) in [
            (
                ImportRequest::from_bytes("kintell-lang-2031.csv", bytes.clone()).max_errors(1),
                "2 of 4 rows are invalid, more than the 1 allowed (max_errors)",
            ),
            (
                ImportRequest::from_bytes("kintell-lang-2031.csv", bytes.clone())
                    .max_error_ratio(0.25),
                "2 of 4 rows are invalid, a larger share than the 0.25 allowed (max_error_ratio)",
            ),
        ] {
            let e = ing
                .import(req.create_missing_users(true))
                .await
                .expect_err("refused");
            let ImportError::Rejected {
                reason: why,
                report,
            } = e
            else {
                panic!("expected a rejection, got {e:?}");
            };
            assert_eq!(why, reason);
            assert_eq!(
                render(&report),
                format!(
                    "failed kintell-sessions rows=4 processed=0 inserted=0 updated=0 skipped=0 errors=0 explicit=0 \
                     auto=0 review=0 ignored=0 none=0 last_error=\"refused: {reason}\""
                )
            );
        }
        // Both attempts used one batch.
        let batch = only_batch(&store).await;
        assert_eq!(batch.status, BatchStatus::Failed);
        assert_eq!(
            batch.last_error.as_deref(),
            Some(
                "refused: 2 of 4 rows are invalid, a larger share than the 0.25 allowed (max_error_ratio)"
            )
        );
        assert_eq!(batch.program_instance_id, None);
        expect![[r#"{"by_code":{"invalid_number":2},"first":[{"code":"invalid_number","field":"rating","line":3,"message":"rating: \"x\" is not a valid decimal","row":2},{"code":"invalid_number","field":"rating","line":4,"message":"rating: \"x\" is not a valid decimal","row":3}]}"#]]
        .assert_eq(&batch.error_summary.clone().unwrap_or_default().to_string());
        let errors = store.row_errors(batch.id, 0, 10).await.expect("errors");
        assert_eq!(
            errors.iter().map(|e| e.row_number).collect::<Vec<_>>(),
            vec![2, 3]
        );
        for kind in ActivityKind::ALL {
            assert_eq!(store.count_activities(*kind).await.expect("count"), 0);
        }
        assert_eq!(store.count_users().await.expect("users"), 5);
        let slug = ProgramSlug::parse("language-ukraine-2031").expect("slug");
        assert_eq!(store.instance_by_slug(&slug).await.expect("instance"), None);
        // Without limits the same bytes resume that batch.
        let done = import(
            &ing,
            ImportRequest::from_bytes("kintell-lang-2031.csv", bytes),
        )
        .await;
        assert_eq!(done.batch.id, batch.id);
        check(
            &done,
            expect![
                "completed kintell-sessions rows=4 processed=4 inserted=2 updated=0 skipped=0 errors=2 explicit=2 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert!(
            store
                .instance_by_slug(&slug)
                .await
                .expect("instance")
                .is_some()
        );
    }

    /// A file error leaves a failed batch; a later attempt with the same bytes reuses it; an unknown explicit
    /// instance is a file error too.
    pub async fn file_errors_leave_one_failed_batch_per_content(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let bytes = b"a,b\n1,2\n".to_vec();
        let mut ids = Vec::new();
        for _ in 0..2 {
            let e = ing
                .import(
                    ImportRequest::from_bytes("odd.csv", bytes.clone())
                        .entity(EntityKind::BuddyMatches),
                )
                .await
                .expect_err("refused");
            let ImportError::File { error, report } = e else {
                panic!("expected a file error, got {e:?}");
            };
            assert_eq!(error.code.as_str(), "missing_columns");
            let report = report.expect("a failed batch");
            assert_eq!(report.batch.status, BatchStatus::Failed);
            assert_eq!(report.batch.format, "unknown");
            assert_eq!(report.batch.entity_kind, EntityKind::BuddyMatches);
            assert_eq!(report.batch.program_type.as_str(), "buddy");
            assert!(
                report
                    .batch
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("missing_columns: "))
            );
            ids.push(report.batch.id);
        }
        assert_eq!(ids[0], ids[1]);
        // A header-only file is not an error: a completed batch of 0 rows.
        let empty = import(
            &ing,
            ImportRequest::from_bytes("empty.csv", format!("{SESSIONS_HEADER}\n").into_bytes()),
        )
        .await;
        check(
            &empty,
            expect![
                "completed kintell-sessions rows=0 processed=0 inserted=0 updated=0 skipped=0 errors=0 explicit=0 auto=0 review=0 ignored=0 none=0"
            ],
        );
        // A dry run records nothing.
        let e = ing
            .import(ImportRequest::from_bytes("other.csv", b"x\n".to_vec()).dry_run(true))
            .await
            .expect_err("refused");
        assert!(
            matches!(e, ImportError::File { report: Some(ref r), .. } if r.dry_run),
            "{e:?}"
        );
        let batches = store
            .list_batches(&BatchFilter::default())
            .await
            .expect("batches");
        assert_eq!(batches.len(), 2);
        assert!(batches.iter().any(|b| b.id == ids[0]));

        let e = ing
            .import(five().program_instance("no-such-instance"))
            .await
            .expect_err("refused");
        let ImportError::File { error, report } = e else {
            panic!("expected a file error, got {e:?}");
        };
        assert_eq!(error.code.as_str(), "unknown_program_instance");
        let report = report.expect("a failed batch");
        assert_eq!(report.batch.format, "kintell-sessions");
        assert_eq!(report.batch.total_rows, 5);
        assert_eq!(report.batch.last_processed_row, 0);
    }

    /// `duplicate_in_file` inside a chunk and across chunks (chunk size 2), naming the earlier stored row; a
    /// record duplicating only a rejected one is judged on its own. A forced re-import of the same bytes finds the
    /// same duplicates.
    pub async fn duplicates_within_and_across_chunks(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let bytes = sessions(&[
            ("S-1", "4"),
            ("S-1", "5"),
            ("S-2", "x"),
            ("S-1", "3"),
            ("S-2", "2"),
            ("S-2", "1"),
        ]);
        let req = || ImportRequest::from_bytes("dups.csv", bytes.clone());
        let first = import(&ing, req()).await;
        check(
            &first,
            expect![
                "completed kintell-sessions rows=6 processed=6 inserted=2 updated=0 skipped=0 errors=4 explicit=0 auto=2 review=0 ignored=0 none=0"
            ],
        );
        let forced = import(&ing, req().force(true)).await;
        check(
            &forced,
            expect![
                "completed kintell-sessions rows=6 processed=6 inserted=0 updated=0 skipped=2 errors=4 explicit=0 auto=2 review=0 ignored=0 none=0"
            ],
        );
        expect![[r#"
            b0: completed dups.csv kintell-sessions total=6 ins=0 upd=0 skip=2 err=4 done=6 lease=false summary={"by_code":{"duplicate_in_file":3,"invalid_number":1},"first":[{"code":"duplicate_in_file","field":"session_id","line":3,"message":"the same session_id as row 1, which was stored","row":2},{"code":"invalid_number","field":"rating","line":4,"message":"rating: \"x\" is not a valid decimal","row":3},{"code":"duplicate_in_file","field":"session_id","line":5,"message":"the same session_id as row 1, which was stored","row":4},{"code":"duplicate_in_file","field":"session_id","line":7,"message":"the same session_id as row 5, which was stored","row":6}]} assoc={"auto":2,"explicit":0,"ignored":0,"none":0,"review":0}
              row 2 line 3 duplicate_in_file Some("session_id"): the same session_id as row 1, which was stored ["S-1","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-02T10:00:00Z","60","5","fine"]
              row 3 line 4 invalid_number Some("rating"): rating: "x" is not a valid decimal ["S-2","Mentorship","anna@example.com","maria@acme.example","2024-10-03T10:00:00Z","60","x","fine"]
              row 4 line 5 duplicate_in_file Some("session_id"): the same session_id as row 1, which was stored ["S-1","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-04T10:00:00Z","60","3","fine"]
              row 6 line 7 duplicate_in_file Some("session_id"): the same session_id as row 5, which was stored ["S-2","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-06T10:00:00Z","60","1","fine"]
            b1: completed dups.csv kintell-sessions total=6 ins=2 upd=0 skip=0 err=4 done=6 lease=false summary={"by_code":{"duplicate_in_file":3,"invalid_number":1},"first":[{"code":"duplicate_in_file","field":"session_id","line":3,"message":"the same session_id as row 1, which was stored","row":2},{"code":"invalid_number","field":"rating","line":4,"message":"rating: \"x\" is not a valid decimal","row":3},{"code":"duplicate_in_file","field":"session_id","line":5,"message":"the same session_id as row 1, which was stored","row":4},{"code":"duplicate_in_file","field":"session_id","line":7,"message":"the same session_id as row 5, which was stored","row":6}]} assoc={"auto":2,"explicit":0,"ignored":0,"none":0,"review":0}
              row 2 line 3 duplicate_in_file Some("session_id"): the same session_id as row 1, which was stored ["S-1","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-02T10:00:00Z","60","5","fine"]
              row 3 line 4 invalid_number Some("rating"): rating: "x" is not a valid decimal ["S-2","Mentorship","anna@example.com","maria@acme.example","2024-10-03T10:00:00Z","60","x","fine"]
              row 4 line 5 duplicate_in_file Some("session_id"): the same session_id as row 1, which was stored ["S-1","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-04T10:00:00Z","60","3","fine"]
              row 6 line 7 duplicate_in_file Some("session_id"): the same session_id as row 5, which was stored ["S-2","Mentorship","olek.petrenko@example.com","lars@nordicbank.no","2024-10-06T10:00:00Z","60","1","fine"]
            S-1: batch=b1 first=b1 row=Some(1) instance=true assoc=auto 100 [{"code":"company_match","detail":"the campaign belongs to the activity's company","points":30},{"code":"date_in_window","detail":"2024-10-01 within 2024-01-01..=2024-12-31","points":30},{"code":"tags_full","detail":"all group tags matched: refugees, ukrainian","points":40},{"code":"status_active","detail":"campaign status active","points":10},{"code":"instance_on_date","detail":"instance e8ab74bc-e372-505e-bd9a-674effb51a5c (active, 2024-10-01..=2024-12-31)","points":10},{"code":"capped","detail":"uncapped total 120 cut to 100","points":-20}] batch=b0
            S-2: batch=b1 first=b1 row=Some(5) instance=true assoc=auto 100 [{"code":"company_match","detail":"the campaign belongs to the activity's company","points":30},{"code":"date_in_window","detail":"2024-10-05 within 2024-01-01..=2024-12-31","points":30},{"code":"tags_full","detail":"all group tags matched: refugees, ukrainian","points":40},{"code":"status_active","detail":"campaign status active","points":10},{"code":"instance_on_date","detail":"instance e8ab74bc-e372-505e-bd9a-674effb51a5c (active, 2024-10-01..=2024-12-31)","points":10},{"code":"capped","detail":"uncapped total 120 cut to 100","points":-20}] batch=b0
            kintell_session: 2
            buddy_match: 0
            course_completion: 0
            users: 5
        "#]]
        .assert_eq(&state(&store, &["S-1", "S-2"]).await);
    }

    /// The report without what differs between two runs of the same import (the batch id, the dry-run flag).
    fn comparable(r: &ImportReport) -> serde_json::Value {
        let mut v = r.to_json();
        v["batch"]["id"] = serde_json::Value::Null;
        v["dry_run"] = serde_json::Value::Null;
        v
    }

    /// A dry run reports exactly what the real run then reports, and leaves the store as it was: for a new file
    /// (users it would create are seen by its later chunks, an instance its file name would create by its
    /// chunks), and for a paused batch it would resume. A dry run of a completed file is refused like a real one.
    pub async fn dry_run_reports_what_the_real_run_does_and_stores_nothing(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let bytes = fixture("kintell-sessions.csv");
        let mut twice = bytes.clone();
        twice.extend(
            std::str::from_utf8(&bytes)
                .expect("utf-8")
                .lines()
                .skip(1)
                .map(|l| format!("{}\n", l.replace("KINTELL-", "AGAIN-")))
                .collect::<String>()
                .into_bytes(),
        );
        let ids = ["KINTELL-001", "KINTELL-002", "AGAIN-001", "S-1", "S-5"];
        for req in [
            five(),
            ImportRequest::from_bytes("kintell-lang-2030.csv", twice).create_missing_users(true),
        ] {
            let before = state(&store, &ids).await;
            let dry = import(&ing, req.clone().dry_run(true)).await;
            assert!(dry.dry_run);
            assert_eq!(state(&store, &ids).await, before);
            let real = import(&ing, req.clone()).await;
            assert!(!real.dry_run);
            assert_eq!(comparable(&dry), comparable(&real));
            assert!(matches!(
                ing.import(req.dry_run(true)).await,
                Err(ImportError::AlreadyImported { .. })
            ));
        }
        let slug = ProgramSlug::parse("language-ukraine-2030").expect("slug");
        assert!(
            store
                .instance_by_slug(&slug)
                .await
                .expect("instance")
                .is_some()
        );

        let (store, _g) = with_catalog(backend).await;
        let paused = paused_five(&store, &clock).await;
        let ing = ingestor(&store, &clock);
        let before = state(&store, FIVE).await;
        let dry = import(&ing, five().dry_run(true)).await;
        assert_eq!(dry.batch.id, paused.id);
        assert_eq!(state(&store, FIVE).await, before);
        let real = import(&ing, five()).await;
        assert_eq!(comparable(&dry), comparable(&real));
        assert_eq!(real.batch.status, BatchStatus::Completed);
    }

    /// For every port call of an import, a failure injected there, then the import run again (resuming the
    /// batch), leaves exactly the rows, counters, row errors and associations of an uninterrupted import.
    pub async fn a_failure_between_any_two_calls_then_a_resume_gives_the_same_rows(
        backend: &Backend,
    ) {
        let expected = uninterrupted_five(backend).await;
        let clock = ManualClock::new();
        let calls = {
            let (store, _g) = with_catalog(backend).await;
            let probe = Probe::new(store);
            import(&ingestor(&probe.store(), &clock), five()).await;
            probe.calls()
        };
        assert!(calls.len() > 30, "{calls:?}");
        for (n, call) in calls.iter().enumerate() {
            // A catalogue that cannot be loaded does not stop an import: its rows are stored unassociated (see
            // `association_is_unavailable_without_a_catalogue`).
            if *call == "load_catalog" {
                continue;
            }
            let (store, _g) = with_catalog(backend).await;
            let probe = Probe::new(store.clone());
            let ing = ingestor(&probe.store(), &clock);
            probe.fail_at(n + 1);
            let first = ing.import(five()).await;
            probe.fail_at(usize::MAX);
            match first {
                // Reading the batch back for the report is the one call whose failure does not matter.
                Ok(done) => assert_eq!(
                    (n + 1, *call, done.batch.status),
                    (calls.len(), "get_batch", BatchStatus::Completed)
                ),
                Err(e) => {
                    assert!(
                        matches!(e, ImportError::Store(_)),
                        "failure at call {} ({call}): {e:?}",
                        n + 1
                    );
                    // A batch left pending by a failed start counts as being started for a lease's length.
                    let batches = store
                        .list_batches(&BatchFilter::default())
                        .await
                        .expect("batches");
                    if batches.iter().any(|b| b.status == BatchStatus::Pending) {
                        clock.advance(TimeDelta::seconds(60));
                    }
                    let done = ing.import(five()).await.unwrap_or_else(|e| {
                        panic!("resume after a failure at call {} ({call}): {e:?}", n + 1)
                    });
                    assert_eq!(done.batch.status, BatchStatus::Completed);
                }
            }
            let got = state(&store, FIVE).await;
            assert_eq!(got, expected, "failure at call {} ({call})", n + 1);
        }
    }

    /// Another worker takes the batch over while this one is between chunks: its chunk is rolled back, it stops
    /// with `LeaseLost`, and the result is that of one uninterrupted import.
    pub async fn a_lease_stolen_between_chunks_makes_the_loser_write_nothing(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let loser = ingestor(&probe.store(), &clock);
        let winner = ingestor(&store, &clock);
        let thief_clock = clock.clone();
        let thief_store = store.clone();
        // The first unit of work creates the batch; the third is the loser's second chunk.
        probe.hook(
            "begin",
            3,
            Box::new(move || {
                Box::pin(async move {
                    thief_clock.advance(TimeDelta::seconds(61));
                    let b = only_batch(&thief_store).await;
                    assert_eq!(b.status, BatchStatus::Running);
                    let done = winner
                        .resume(b.id, ImportSource::from_bytes("any-name.csv", five_bytes()))
                        .await
                        .expect("the winner resumes");
                    assert_eq!(done.batch.status, BatchStatus::Completed);
                })
            }),
        );
        match loser.import(five()).await {
            Err(ImportError::LeaseLost { .. }) => {}
            other => panic!("expected LeaseLost, got {other:?}"),
        }
        assert!(probe.calls().contains(&"uow.rollback"));
        assert_eq!(state(&store, FIVE).await, expected);
    }

    /// Pause requests are honoured between chunks: recorded before the worker reads the batch, or during a chunk
    /// (the chunk is then rolled back). `resume` then finishes the batch as an uninterrupted import.
    pub async fn pause_requests_are_honoured_between_chunks(backend: &Backend) {
        let expected = uninterrupted_five(backend).await;
        // The first unit of work creates the batch; the third writes the second chunk.
        for (call, nth) in [("get_batch", 2), ("begin", 3)] {
            let (store, _g) = with_catalog(backend).await;
            let clock = ManualClock::new();
            let probe = Probe::new(store.clone());
            let ing = ingestor(&probe.store(), &clock);
            let pauser = ingestor(&store, &clock);
            let store2 = store.clone();
            probe.hook(
                call,
                nth,
                Box::new(move || {
                    Box::pin(async move {
                        let id = only_batch(&store2).await.id;
                        let b = pauser.request_pause(id).await.expect("pause");
                        assert_eq!(b.requested_action.map(|a| a.as_str()), Some("pause"));
                        // A second request changes nothing.
                        assert_eq!(pauser.request_pause(id).await.expect("pause again"), b);
                    })
                }),
            );
            let paused = import(&ing, five()).await;
            check(
                &paused,
                expect![[
                    r#"paused kintell-sessions rows=5 processed=2 inserted=2 updated=0 skipped=0 errors=0 explicit=2 auto=0 review=0 ignored=0 none=0 last_error="pause requested""#
                ]],
            );
            assert_eq!(paused.batch.requested_action, None);
            assert_eq!(paused.batch.lease_owner, None);
            assert!(matches!(
                ing.request_pause(paused.batch.id).await,
                Err(ImportError::Transition { .. })
            ));
            let done = ing
                .resume(
                    paused.batch.id,
                    ImportSource::from_bytes("y.csv", five_bytes()),
                )
                .await
                .expect("resume");
            assert_eq!(done.batch.status, BatchStatus::Completed);
            assert_eq!(state(&store, FIVE).await, expected, "request at {call}");
        }
    }

    /// A raised stop signal (a server shutting down) pauses the batch before its next chunk with the stop reason,
    /// its lease released; `on_start` saw the batch held before the first chunk; a resume ends as an
    /// uninterrupted import.
    pub async fn a_stop_signal_pauses_between_chunks_and_a_resume_completes(backend: &Backend) {
        use kintell_ingest::batch::{ProgressPhase, ProgressSnapshot};
        let expected = uninterrupted_five(backend).await;
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let stop = StopSignal::new();
        let started: Mutex<Vec<BatchRecord>> = Mutex::new(Vec::new());
        let on_start = |b: &BatchRecord| started.lock().expect("lock").push(b.clone());
        // Raised once the first chunk is written.
        let raise = |p: &ProgressSnapshot| {
            if p.phase == ProgressPhase::Importing && p.rows_done > 0 {
                stop.stop();
            }
        };
        let stopped = ing
            .import(five())
            .with_progress(&raise)
            .with_stop(&stop)
            .on_start(&on_start)
            .await
            .expect("import");
        check(
            &stopped,
            expect![[
                r#"paused kintell-sessions rows=5 processed=2 inserted=2 updated=0 skipped=0 errors=0 explicit=2 auto=0 review=0 ignored=0 none=0 last_error="stopped: the worker shut down; resume it to continue""#
            ]],
        );
        assert!(stopped_by_signal(&stopped.batch));
        assert_eq!(stopped.batch.last_error.as_deref(), Some(STOPPED_REASON));
        assert_eq!(stopped.batch.lease_owner, None);
        assert_eq!(only_batch(&store).await, stopped.batch);
        let seen = std::mem::take(&mut *started.lock().expect("lock"));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].id, stopped.batch.id);
        assert_eq!(seen[0].status, BatchStatus::Running);
        assert_eq!(seen[0].last_processed_row, 0);
        assert!(seen[0].lease_owner.is_some());

        let done = ing
            .resume(
                stopped.batch.id,
                ImportSource::from_bytes("y.csv", five_bytes()),
            )
            .on_start(&on_start)
            .await
            .expect("resume");
        assert_eq!(done.batch.status, BatchStatus::Completed);
        assert!(!stopped_by_signal(&done.batch));
        let seen = std::mem::take(&mut *started.lock().expect("lock"));
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].last_processed_row, 2);
        assert_eq!(state(&store, FIVE).await, expected);

        // A signal raised before the import does not stop a dry run (it keeps nothing) and is not told a start.
        let dry = ing
            .import(five().dry_run(true).force(true))
            .with_stop(&stop)
            .on_start(&on_start)
            .await
            .expect("dry run");
        assert_eq!(dry.batch.status, BatchStatus::Completed);
        assert!(started.lock().expect("lock").is_empty());
    }

    /// A cancel request stops the batch between chunks for good; what was committed stays, with its lineage.
    pub async fn cancel_requests_are_honoured_between_chunks(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), &clock);
        let canceller = ingestor(&store, &clock);
        let store2 = store.clone();
        probe.hook(
            "get_batch",
            3,
            Box::new(move || {
                Box::pin(async move {
                    let id = only_batch(&store2).await.id;
                    canceller.request_cancel(id).await.expect("cancel");
                })
            }),
        );
        let cancelled = import(&ing, five()).await;
        check(
            &cancelled,
            expect![
                "cancelled kintell-sessions rows=5 processed=4 inserted=3 updated=0 skipped=0 errors=1 explicit=3 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert_eq!(
            store
                .count_activities(ActivityKind::KintellSession)
                .await
                .expect("count"),
            3
        );
        assert!(matches!(
            ing.request_cancel(cancelled.batch.id).await,
            Err(ImportError::Transition { .. })
        ));
        assert!(matches!(
            ing.resume(
                cancelled.batch.id,
                ImportSource::from_bytes("z.csv", five_bytes())
            )
            .await,
            Err(ImportError::Transition { .. })
        ));
        // A cancelled batch does not refuse the file: a new import writes the rest.
        let again = import(&ing, five()).await;
        check(
            &again,
            expect![
                "completed kintell-sessions rows=5 processed=5 inserted=1 updated=0 skipped=3 errors=1 explicit=4 auto=0 review=0 ignored=0 none=0"
            ],
        );
        // A paused batch is cancelled at once.
        let paused = {
            let (store, _g) = with_catalog(backend).await;
            let b = paused_five(&store, &clock).await;
            let c = ingestor(&store, &clock)
                .request_cancel(b.id)
                .await
                .expect("cancel");
            (c.status, c.last_error)
        };
        assert_eq!(
            paused,
            (BatchStatus::Cancelled, Some("pause requested".to_owned()))
        );
    }

    /// Look-ups and upserts are one call per table per chunk, whatever the chunk's size.
    pub async fn one_call_per_table_per_chunk(backend: &Backend) {
        let mut seen = Vec::new();
        for (rows, chunk) in [(6u64, 2usize), (60, 20)] {
            let (store, _g) = with_catalog(backend).await;
            let clock = ManualClock::new();
            let probe = Probe::new(store.clone());
            let ing = ingestor(&probe.store(), &clock).chunk_size(chunk);
            let bytes = kintell_ingest::synthetic::SessionsSpec::new(rows)
                .bad_every(2)
                .to_bytes();
            let r = import(
                &ing,
                ImportRequest::from_bytes("mentors_for_ukraine_2024_q4.csv", bytes)
                    .create_missing_users(true),
            )
            .await;
            assert_eq!(r.batch.status, BatchStatus::Completed);
            let counts: Vec<String> = probe
                .counts()
                .into_iter()
                .map(|(name, n)| format!("{name}={n}"))
                .collect();
            seen.push(counts.join(" "));
        }
        assert_eq!(seen[0], seen[1]);
        expect!["batches_by_file_name=1 batches_by_hash=2 begin=4 get_batch=4 instance_by_slug=1 load_catalog=1 save_batch=2 uow.batches_by_hash=1 uow.commit=4 uow.insert_batch=1 uow.put_row_errors=3 uow.save_batch=3 uow.stored_sessions=3 uow.upsert_associations=3 uow.upsert_enrollments=3 uow.upsert_sessions=3 uow.upsert_users=3 uow.users_by_email=3"]
            .assert_eq(&seen[0]);
    }

    /// A chunk writes its association records in parts of 2,500 (their explanations weigh more than the rest of
    /// the chunk), one call each, and every stored row is associated.
    pub async fn a_large_chunk_writes_its_associations_in_parts(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let ing = ingestor(&probe.store(), &clock).chunk_size(6_000);
        let bytes = kintell_ingest::synthetic::SessionsSpec::new(6_000).to_bytes();
        let r = import(
            &ing,
            ImportRequest::from_bytes("mentors_for_ukraine_2024_q4.csv", bytes)
                .create_missing_users(true),
        )
        .await;
        check(
            &r,
            expect![
                "completed kintell-sessions rows=6000 processed=6000 inserted=6000 updated=0 skipped=0 errors=0 explicit=6000 auto=0 review=0 ignored=0 none=0"
            ],
        );
        let calls: Vec<(String, usize)> = probe
            .counts()
            .into_iter()
            .filter(|(name, _)| name.starts_with("uow.upsert_"))
            .map(|(name, n)| (name.to_string(), n))
            .collect();
        assert_eq!(
            calls,
            [
                ("uow.upsert_associations".to_owned(), 3),
                ("uow.upsert_enrollments".to_owned(), 1),
                ("uow.upsert_sessions".to_owned(), 1),
                ("uow.upsert_users".to_owned(), 1),
            ]
        );
        let forced = import(
            &ingestor(&store, &clock).chunk_size(6_000),
            ImportRequest::from_bytes(
                "mentors_for_ukraine_2024_q4.csv",
                kintell_ingest::synthetic::SessionsSpec::new(6_000).to_bytes(),
            )
            .create_missing_users(true)
            .force(true),
        )
        .await;
        check(
            &forced,
            expect![
                "completed kintell-sessions rows=6000 processed=6000 inserted=0 updated=0 skipped=6000 errors=0 explicit=6000 auto=0 review=0 ignored=0 none=0"
            ],
        );
    }

    /// The error CSV: the original header and values, then where and why; formula-like cells escaped.
    pub async fn the_error_csv_escapes_formulas(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let csv = "session_id;session_type;participant_email;volunteer_email;date;duration_min;note\n\
                   =HYPERLINK(\"x\");Mentorship;anna@example.com;maria@acme.example;2024-10-01;-5;+1\n\
                   S-2;Mentorship;@evil;maria@acme.example;2024-10-01;60;x;extra\n\
                   S-3;Mentorship;anna@example.com;maria@acme.example;2024-10-01;60;ok\n\
                   S-4;Mentorship;nobody@example.com;maria@acme.example;2024-10-01;60;ok\n";
        let r = import(
            &ing,
            ImportRequest::from_bytes("f.csv", csv.as_bytes().to_vec()),
        )
        .await;
        assert_eq!(r.errors, 3);
        let mut out = Vec::new();
        let n = write_error_csv(&store, r.batch.id, &mut out, true)
            .await
            .expect("csv");
        assert_eq!(n, 3);
        expect![[r#"
            session_id,session_type,participant_email,volunteer_email,date,duration_min,note,_extra_1,_error_row,_error_line,_error_code,_error_field,_error_message
            "'=HYPERLINK(""x"")",Mentorship,anna@example.com,maria@acme.example,2024-10-01,'-5,'+1,,1,2,out_of_range,duration_min,duration_min: -5 is outside the allowed range 1..=480
            S-2,Mentorship,'@evil,maria@acme.example,2024-10-01,60,x,extra,2,3,field_count,,"the record has 8 fields, the header has 7"
            S-4,Mentorship,nobody@example.com,maria@acme.example,2024-10-01,60,ok,,4,5,unknown_user,participant_email,no user has the email nobody@example.com
        "#]]
        .assert_eq(&String::from_utf8(out).expect("utf-8"));
        let mut raw = Vec::new();
        write_error_csv(&store, r.batch.id, &mut raw, false)
            .await
            .expect("csv");
        let raw = String::from_utf8(raw).expect("utf-8");
        assert!(raw.contains("\n\"=HYPERLINK(\"\"x\"\")\",Mentorship,anna@example.com,maria@acme.example,2024-10-01,-5,+1,"), "{raw}");
        assert!(matches!(
            write_error_csv(&store, BatchId(uuid::Uuid::nil()), Vec::new(), true).await,
            Err(kintell_ingest::ingest::ErrorCsvError::NotFound(_))
        ));
    }

    /// The users export: rows merged with stored users (empty values keep stored ones), journey flags, an
    /// unknown company, a repeated email.
    pub async fn the_users_export_merges_with_stored_users(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let csv = "Email,Name,Linkedin_URL,Verification status,Role when joined,Grant access,Joined_kg_at,company,tags\n\
                   maria@acme.example,,,verified,,,,,\n\
                   new.person@example.com,Nina Nova Novak,https://linkedin.example/nina,,Mentor,yes,\"Dec 14, 2025\",acme,\"Tech, Women\"\n\
                   anna@example.com,Anna,,,,no,,no-such-company,\n\
                   NEW.person@example.com,Nina,,,,,,,\n";
        let r = import(
            &ing,
            ImportRequest::from_bytes("users.csv", csv.as_bytes().to_vec()),
        )
        .await;
        check(
            &r,
            expect![
                "completed kintell-users rows=4 processed=4 inserted=1 updated=1 skipped=0 errors=2 explicit=0 auto=0 review=0 ignored=0 none=0"
            ],
        );
        let errors = store.row_errors(r.batch.id, 0, 10).await.expect("errors");
        let codes: Vec<(i64, &str, Option<&str>)> = errors
            .iter()
            .map(|e| (e.row_number, e.code.as_str(), e.field.as_deref()))
            .collect();
        assert_eq!(
            codes,
            vec![
                (3, "unknown_company", Some("company")),
                (4, "duplicate_in_file", Some("email"))
            ]
        );
        let maria = store
            .user_by_email(&Email::parse("maria@acme.example").expect("email"))
            .await
            .expect("user")
            .expect("stored");
        assert_eq!(maria.role.as_str(), "volunteer");
        assert_eq!(maria.first_name.as_ref().map(|n| n.as_str()), Some("Maria"));
        assert!(maria.company_id.is_some());
        expect![[
            r#"{"grant_access":false,"kintell_source":true,"verification_status":"verified"}"#
        ]]
        .assert_eq(&serde_json::Value::Object(maria.journey_flags).to_string());
        let nina = store
            .user_by_email(&Email::parse("new.person@example.com").expect("email"))
            .await
            .expect("user")
            .expect("created");
        assert_eq!(nina.role.as_str(), "volunteer");
        assert_eq!(nina.first_name.as_ref().map(|n| n.as_str()), Some("Nina"));
        assert_eq!(
            nina.last_name.as_ref().map(|n| n.as_str()),
            Some("Nova Novak")
        );
        assert_eq!(
            nina.tags
                .as_slice()
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>(),
            vec!["tech", "women"]
        );
        expect![[r#"{"grant_access":true,"joined_kg_at":"2025-12-14T00:00:00Z","kintell_source":true,"linkedin_url":"https://linkedin.example/nina","role_when_joined":"Mentor"}"#]]
            .assert_eq(&serde_json::Value::Object(nina.journey_flags).to_string());
        // The same export again, forced: nothing changes, the repeated email is still a duplicate.
        let again = import(
            &ing,
            ImportRequest::from_bytes("users.csv", csv.as_bytes().to_vec()).force(true),
        )
        .await;
        check(
            &again,
            expect![
                "completed kintell-users rows=4 processed=4 inserted=0 updated=0 skipped=2 errors=2 explicit=0 auto=0 review=0 ignored=0 none=0"
            ],
        );
    }

    /// An explicit instance links every row (rows' `program_ref` ignored); otherwise a row's `program_ref` links
    /// it, wins over the file name's instance, and an unknown one is a row error.
    pub async fn program_refs_and_explicit_instances_link_rows(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let csv = "session_id,participant_email,volunteer_email,scheduled_at,topics,program_ref\n\
                   L-1,anna@example.com,maria@acme.example,2024-05-01,grammar,language-ukraine-2024\n\
                   L-2,anna@example.com,maria@acme.example,2024-05-02,,\n\
                   L-3,anna@example.com,maria@acme.example,2024-05-03,,no-such-cohort\n";
        let r = import(
            &ing,
            ImportRequest::from_bytes("kintell-lang-2024.csv", csv.as_bytes().to_vec()),
        )
        .await;
        check(
            &r,
            expect![
                "completed language-v1 rows=3 processed=3 inserted=2 updated=0 skipped=0 errors=1 explicit=2 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert_eq!(r.batch.program_type.as_str(), "language_ukraine");
        let errors = store.row_errors(r.batch.id, 0, 10).await.expect("errors");
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].code.as_str(), errors[0].field.as_deref()),
            ("unknown_program_instance", Some("program_ref"))
        );
        let instance = |slug: &str| {
            let store = store.clone();
            let slug = ProgramSlug::parse(slug).expect("slug");
            async move {
                store
                    .instance_by_slug(&slug)
                    .await
                    .expect("instance")
                    .expect("exists")
            }
        };
        let catalogue = instance("language-ukraine-2024").await;
        let from_name = instance("language-ukraine-2024").await;
        assert_eq!(catalogue.id, from_name.id);
        let mut unit = store.begin().await.expect("begin");
        let found = unit
            .stored_sessions(&[
                SessionId::parse("L-1").expect("id"),
                SessionId::parse("L-2").expect("id"),
            ])
            .await
            .expect("sessions");
        unit.rollback().await.expect("rollback");
        for (id, row) in found {
            let a = store
                .association_for(ActivityKind::KintellSession, row.id.into())
                .await
                .expect("association")
                .expect("explicit");
            assert_eq!(a.decision.as_str(), "explicit", "{id}");
            assert_eq!(a.program_instance_id, Some(catalogue.id), "{id}");
            assert_eq!(a.campaign_id, catalogue.campaign_id, "{id}");
            assert_eq!(a.policy_version, "v1");
            assert_eq!(a.candidates, serde_json::json!([]));
        }
        // An explicit instance overrides every row's reference.
        let r = import(
            &ing,
            ImportRequest::from_bytes("other.csv", csv.as_bytes().to_vec())
                .program_instance("mentors-ukraine-2024-q4")
                .force(true),
        )
        .await;
        check(
            &r,
            expect![
                "completed language-v1 rows=3 processed=3 inserted=1 updated=2 skipped=0 errors=0 explicit=3 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert_eq!(r.batch.program_type.as_str(), "mentors_ukraine");
    }

    /// Buddy matches and course completions linked by an explicit instance: associations and enrolments.
    pub async fn matches_and_completions_link_and_enrol(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let matches = "participant_email,buddy_email,matched_at,status,ended_at\n\
                       anna@example.com,lars@nordicbank.no,2024-03-01,active,\n\
                       anna@example.com,anna@example.com,2024-03-02,active,\n\
                       anna@example.com,lars@nordicbank.no,2024-03-01T00:00:00Z,active,\n\
                       olek.petrenko@example.com,lars@nordicbank.no,2024-03-03,ended,\n";
        let r = import(
            &ing,
            ImportRequest::from_bytes("m.csv", matches.as_bytes().to_vec())
                .program_instance("nordic-buddy-berlin"),
        )
        .await;
        check(
            &r,
            expect![
                "completed buddy-matches rows=4 processed=4 inserted=1 updated=0 skipped=0 errors=3 explicit=1 auto=0 review=0 ignored=0 none=0"
            ],
        );
        let codes: Vec<String> = store
            .row_errors(r.batch.id, 0, 10)
            .await
            .expect("errors")
            .iter()
            .map(|e| format!("{} {}", e.row_number, e.code))
            .collect();
        assert_eq!(
            codes,
            vec!["2 same_person", "3 duplicate_in_file", "4 missing_field"]
        );
        let completions = "user_email,provider,course_id,completed_at\n\
                           anna@example.com,Coursera,ML-1,2025-02-01\n\
                           anna@example.com,coursera,ML-1,2025-02-02\n\
                           anna@example.com,coursera,ml-1,2025-02-03\n";
        let r = import(
            &ing,
            ImportRequest::from_bytes("c.csv", completions.as_bytes().to_vec())
                .program_instance("techcorp-open-courses"),
        )
        .await;
        check(
            &r,
            expect![
                "completed course-completions rows=3 processed=3 inserted=2 updated=0 skipped=0 errors=1 explicit=2 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert_eq!(r.batch.program_type.as_str(), "upskilling");
    }

    /// `resume` refuses other bytes, an unknown batch, and a completed one.
    pub async fn resume_checks_the_bytes(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let batch = paused_five(&store, &clock).await;
        let ing = ingestor(&store, &clock);
        match ing
            .resume(
                batch.id,
                ImportSource::from_bytes("five.csv", b"other".to_vec()),
            )
            .await
        {
            Err(ImportError::DifferentFile {
                batch: b, expected, ..
            }) => {
                assert_eq!((b, expected), (batch.id, batch.file_hash.clone()));
            }
            other => panic!("expected DifferentFile, got {other:?}"),
        }
        assert!(matches!(
            ing.resume(
                BatchId(uuid::Uuid::nil()),
                ImportSource::from_bytes("x", five_bytes())
            )
            .await,
            Err(ImportError::NotFound { .. })
        ));
        let path = std::env::temp_dir().join(format!(
            "kintell-ingest-missing-{}.csv",
            uuid::Uuid::new_v4()
        ));
        assert!(matches!(
            ing.resume(batch.id, ImportSource::from_path(&path)).await,
            Err(ImportError::Open { .. })
        ));
        let done = ing
            .resume(batch.id, ImportSource::from_bytes("five.csv", five_bytes()))
            .await
            .expect("resume");
        assert_eq!(done.batch.status, BatchStatus::Completed);
        assert!(matches!(
            ing.resume(batch.id, ImportSource::from_bytes("five.csv", five_bytes()))
                .await,
            Err(ImportError::Transition { .. })
        ));
    }

    /// Legacy adoption creates one legacy batch per table once, and adds to it later.
    pub async fn legacy_adoption_is_idempotent(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let first = ing.adopt_legacy(clock.now()).await.expect("adopt");
        assert_eq!(first.adopted(), 0);
        assert_eq!(first.adoptions.len(), 3);
        for a in &first.adoptions {
            assert_eq!(a.batch.file_name, "legacy_import");
            assert_eq!(a.batch.format, "legacy");
            assert_eq!(a.batch.status, BatchStatus::Completed);
            assert_eq!(
                a.batch.file_hash,
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            );
        }
        let second = ing.adopt_legacy(clock.now()).await.expect("adopt");
        let ids = |r: &kintell_ingest::ingest::LegacyReport| {
            r.adoptions.iter().map(|a| a.batch.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&first), ids(&second));
    }

    /// Progress: the pre-pass reports by bytes, then every committed chunk by rows.
    pub async fn progress_is_reported_while_scanning_and_after_each_chunk(backend: &Backend) {
        use kintell_ingest::batch::{ProgressPhase, ProgressSnapshot};
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let seen = Mutex::new(Vec::new());
        let observer = |p: &ProgressSnapshot| {
            seen.lock().expect("progress").push((
                p.phase,
                p.bytes_done,
                p.bytes_total,
                p.rows_done,
                p.rows_total,
            ));
        };
        let r = ing
            .import(five())
            .with_progress(&observer)
            .await
            .expect("import");
        let size = u64::try_from(r.batch.file_size_bytes.expect("size")).expect("size");
        let seen = seen.into_inner().expect("progress");
        let importing: Vec<u64> = seen
            .iter()
            .filter(|p| p.0 == ProgressPhase::Importing)
            .map(|p| p.3)
            .collect();
        assert_eq!(importing, vec![2, 4, 5]);
        assert_eq!(
            seen.first(),
            Some(&(ProgressPhase::Scanning, size, size, 5, 5)),
            "{seen:?}"
        );
        assert!(seen.iter().all(|p| p.2 == size && p.1 <= size));
    }

    /// The sessions of the scoring checks (file name with no instance in it): an auto case, a review case (no
    /// instance covers May), and a row of a company without campaigns.
    fn scored_sessions() -> ImportRequest {
        let csv = "session_id,session_type,participant_email,volunteer_email,date,duration_min\n\
                   S-AUTO,Mentorship,anna@example.com,maria@acme.example,2024-11-05T10:00:00Z,60\n\
                   S-REVIEW,Mentorship,anna@example.com,maria@acme.example,2024-05-02T10:00:00Z,60\n\
                   S-NONE,Language,anna@example.com,lars@nordicbank.no,2024-11-05T10:00:00Z,60\n";
        ImportRequest::from_bytes("sessions.csv", csv.as_bytes().to_vec())
    }

    async fn association_of(
        store: &Store,
        session: &str,
    ) -> (Decision, Option<String>, Option<String>) {
        let mut unit = store.begin().await.expect("begin");
        let id = SessionId::parse(session).expect("id");
        let stored = unit.stored_sessions(&[id]).await.expect("look up");
        let activity = ActivityId(stored.first().expect("stored").1.id);
        unit.rollback().await.expect("rollback");
        let a = store
            .association_for(ActivityKind::KintellSession, activity)
            .await
            .expect("association")
            .expect("an association row");
        let linked = store
            .activity_lineage(ActivityKind::KintellSession, activity)
            .await
            .expect("lineage")
            .expect("stored")
            .program_instance_id;
        let slug = |id: Option<kintell_ingest::domain::InstanceId>| async move {
            match id {
                None => None,
                Some(id) => store
                    .instance_by_id(id)
                    .await
                    .expect("instance")
                    .map(|i| i.slug.to_string()),
            }
        };
        (
            a.decision,
            slug(a.program_instance_id).await,
            slug(linked).await,
        )
    }

    /// Rows no instance names are scored against the catalogue: `auto` links the row and enrols its people,
    /// `review` and `none` leave it unlinked; a person's decision survives a forced re-import.
    pub async fn rows_without_an_instance_are_scored_and_human_decisions_stick(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let ing = ingestor(&store, &clock);
        let r = import(&ing, scored_sessions()).await;
        check(
            &r,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=3 updated=0 skipped=0 errors=0 explicit=0 auto=1 review=1 ignored=0 none=1"
            ],
        );
        let q4 = Some("mentors-ukraine-2024-q4".to_owned());
        assert_eq!(
            association_of(&store, "S-AUTO").await,
            (Decision::Auto, q4.clone(), q4.clone())
        );
        assert_eq!(
            association_of(&store, "S-REVIEW").await,
            (Decision::Review, None, None)
        );
        assert_eq!(
            association_of(&store, "S-NONE").await,
            (Decision::None, None, None)
        );

        let queue = kintell_ingest::review::ReviewQueue::new(store.clone());
        let items = queue
            .list(&kintell_ingest::ports::ReviewFilter::default())
            .await
            .expect("queue");
        assert_eq!(items.len(), 1);
        let reasons: Vec<&str> = items[0]
            .association
            .reasons
            .as_array()
            .expect("reasons")
            .iter()
            .filter_map(|r| r["code"].as_str())
            .collect();
        assert!(reasons.contains(&"no_instance"), "{reasons:?}");
        let slug = ProgramSlug::parse("mentors-ukraine-2024-q4").expect("slug");
        queue
            .accept(items[0].association.id, Some(&slug), "lead", clock.now())
            .await
            .expect("accept");

        let again = import(&ing, scored_sessions().force(true)).await;
        check(
            &again,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=0 updated=0 skipped=3 errors=0 explicit=0 auto=1 review=0 ignored=0 none=1"
            ],
        );
        assert_eq!(
            association_of(&store, "S-REVIEW").await,
            (Decision::Accepted, q4.clone(), q4.clone())
        );
        assert_eq!(
            association_of(&store, "S-AUTO").await,
            (Decision::Auto, q4.clone(), q4)
        );
    }

    /// A catalogue that cannot be loaded does not stop an import: the rows are stored with no association, and
    /// the batch says why.
    pub async fn association_is_unavailable_without_a_catalogue(backend: &Backend) {
        let (store, _g) = with_catalog(backend).await;
        let clock = ManualClock::new();
        let probe = Probe::new(store.clone());
        let calls = {
            let (other, _g2) = with_catalog(backend).await;
            let counting = Probe::new(other);
            import(&ingestor(&counting.store(), &clock), scored_sessions()).await;
            counting.calls()
        };
        let at = calls
            .iter()
            .position(|c| *c == "load_catalog")
            .expect("the catalogue is loaded");
        probe.fail_at(at + 1);
        let r = import(&ingestor(&probe.store(), &clock), scored_sessions()).await;
        check(
            &r,
            expect![
                "completed kintell-sessions rows=3 processed=3 inserted=3 updated=0 skipped=0 errors=0 explicit=0 auto=0 review=0 ignored=0 none=0"
            ],
        );
        assert!(
            r.batch.csv_metadata["association_unavailable"].is_string(),
            "{}",
            r.batch.csv_metadata
        );
        let id = SessionId::parse("S-AUTO").expect("id");
        let mut unit = store.begin().await.expect("begin");
        let stored = unit.stored_sessions(&[id]).await.expect("look up");
        unit.rollback().await.expect("rollback");
        let activity = ActivityId(stored.first().expect("stored").1.id);
        assert_eq!(
            store
                .association_for(ActivityKind::KintellSession, activity)
                .await
                .expect("read"),
            None
        );
    }
}
