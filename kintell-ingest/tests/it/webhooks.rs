//! Kintell webhooks: signatures, the three events, replays (also after a restart) and concurrent deliveries.
//!
//! The checks in [`contract`] run on every store through `contract_tests!` in `stores.rs`.

use chrono::{TimeZone, Utc};
use kintell_ingest::domain::{DeliveryId, WebhookEvent};
use kintell_ingest::ingest::Ingestor;
use kintell_ingest::store::Store;
use kintell_ingest::webhooks::{Delivery, SignatureError, WebhookHandler, sign, verify_signature};

const SECRET: &[u8] = b"whsec_test";

#[test]
fn a_signature_made_with_the_secret_verifies_within_the_tolerance() {
    let body = br#"{"session_id":"S-1"}"#;
    let t = Utc.with_ymd_and_hms(2025, 11, 1, 12, 0, 0).unwrap();
    let header = sign(SECRET, t.timestamp(), body).expect("sign");
    assert!(header.starts_with(&format!("t={},v1=", t.timestamp())));
    assert_eq!(verify_signature(SECRET, Some(&header), body, t), Ok(()));
    let later = t + chrono::TimeDelta::seconds(300);
    assert_eq!(verify_signature(SECRET, Some(&header), body, later), Ok(()));
    let earlier = t - chrono::TimeDelta::seconds(300);
    assert_eq!(
        verify_signature(SECRET, Some(&header), body, earlier),
        Ok(())
    );
}

#[test]
fn bad_signatures_are_refused_with_the_reason() {
    let body = br#"{"session_id":"S-1"}"#;
    let t = Utc.with_ymd_and_hms(2025, 11, 1, 12, 0, 0).unwrap();
    let header = sign(SECRET, t.timestamp(), body).expect("sign");
    let check = |h: Option<&str>, b: &[u8], now| verify_signature(SECRET, h, b, now);
    assert_eq!(check(None, body, t), Err(SignatureError::Missing));
    assert_eq!(
        check(Some(&header), br#"{"session_id":"S-2"}"#, t),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify_signature(b"another", Some(&header), body, t),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check(Some(&header), body, t + chrono::TimeDelta::seconds(301)),
        Err(SignatureError::Stale {
            timestamp: t.timestamp(),
            now: t.timestamp() + 301,
            tolerance: 300
        })
    );
    assert!(matches!(
        check(Some("v1=abcd"), body, t),
        Err(SignatureError::Malformed(_))
    ));
    assert!(matches!(
        check(Some(&format!("t={}", t.timestamp())), body, t),
        Err(SignatureError::Malformed(_))
    ));
    assert!(matches!(
        check(Some(&format!("t={},v1=zz", t.timestamp())), body, t),
        Err(SignatureError::Malformed(_))
    ));
    // A rotated secret: any v1 that matches is enough.
    let other = sign(b"old", t.timestamp(), body).expect("sign");
    let both = format!("{other},{}", header.split_once(',').expect("two parts").1);
    assert_eq!(check(Some(&both), body, t), Ok(()));
}

/// A delivery of `event` with `id` and `body`.
pub fn delivery(event: WebhookEvent, id: &str, body: &str) -> Delivery {
    Delivery {
        id: DeliveryId::parse(id).expect("delivery id"),
        event,
        body: body.as_bytes().to_vec(),
    }
}

/// A handler on `store` that creates missing users.
pub fn handler(store: &Store) -> WebhookHandler {
    WebhookHandler::new(Ingestor::new(store.clone())).create_missing_users(true)
}

pub const COMPLETED: &str = r#"{"session_id": "S-1", "session_type": "language",
  "participant_email": "Anna@Example.com", "volunteer_email": "olga@volunteer.org",
  "scheduled_at": "2025-10-01T10:00:00Z", "completed_at": "2025-10-01T11:00:00Z", "duration_minutes": 60,
  "topics": ["grammar", "travel"], "language_level": "b1"}"#;

/// Applies the same delivery id concurrently from several tasks behind a barrier; exactly one applies it.
async fn concurrent_deliveries(store: &Store) {
    let tasks = 6;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tasks));
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let h = handler(store);
        let barrier = barrier.clone();
        handles.push(tokio::spawn(async move {
            barrier.wait().await;
            h.handle(&delivery(
                WebhookEvent::SessionCompleted,
                "D-same",
                COMPLETED,
            ))
            .await
        }));
    }
    let mut applied = 0;
    let mut batches = std::collections::BTreeSet::new();
    for h in handles {
        let outcome = h.await.expect("task").expect("handled");
        assert_eq!(outcome.status, 200);
        if !outcome.replayed {
            applied += 1;
        }
        batches.insert(outcome.batch_id.expect("a batch"));
    }
    assert_eq!(applied, 1, "one delivery applied, the others replayed");
    assert_eq!(batches.len(), 1, "every answer names the one batch");
    assert_eq!(contract::webhook_batches(store).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_id_are_applied_once_in_memory() {
    concurrent_deliveries(&Store::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_id_are_applied_once_on_sqlite() {
    let db = crate::support::fresh_sqlite();
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    concurrent_deliveries(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_deliveries_of_one_id_are_applied_once_on_postgres() {
    let Some(db) =
        crate::support::fresh_pg("concurrent_deliveries_of_one_id_are_applied_once_on_postgres")
            .await
    else {
        return;
    };
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    concurrent_deliveries(&store).await;
}

/// A delivery applied by one store is replayed by a new store on the same database (a restarted server).
async fn replay_after_restart(url: &str) {
    let first = Store::connect(url).await.expect("connect");
    first.migrate().await.expect("migrate");
    let d = delivery(WebhookEvent::SessionCompleted, "D-restart", COMPLETED);
    let original = handler(&first).handle(&d).await.expect("applied");
    assert!(!original.replayed);
    if let Some(db) = first.database() {
        db.close().await;
    }
    drop(first);

    let second = Store::connect(url).await.expect("connect again");
    let again = handler(&second).handle(&d).await.expect("replayed");
    assert!(again.replayed);
    assert_eq!(again.status, original.status);
    assert_eq!(again.batch_id, original.batch_id);
    let mut expected = original.body.clone();
    expected["replayed"] = serde_json::Value::Bool(true);
    assert_eq!(again.body, expected);
    assert_eq!(contract::webhook_batches(&second).await, 1);
}

#[tokio::test]
async fn a_delivery_is_replayed_after_a_restart_on_sqlite() {
    let db = crate::support::fresh_sqlite();
    replay_after_restart(&db.url).await;
}

#[tokio::test]
async fn a_delivery_is_replayed_after_a_restart_on_postgres() {
    let Some(db) =
        crate::support::fresh_pg("a_delivery_is_replayed_after_a_restart_on_postgres").await
    else {
        return;
    };
    replay_after_restart(&db.url).await;
}

/// The checks every store passes.
pub mod contract {
    use super::{COMPLETED, delivery, handler};
    use chrono::{TimeZone, Utc};
    use kintell_ingest::domain::{
        ActivityKind, BatchStatus, DeliveryId, DeliveryRecord, EntityKind, ImportMethod, SessionId,
        SessionRow, WebhookEvent,
    };
    use kintell_ingest::ingest::{ImportRequest, Ingestor};
    use kintell_ingest::ports::{BatchFilter, StoreError};
    use kintell_ingest::store::Store;
    use kintell_ingest::webhooks::{WebhookError, WebhookHandler};

    /// How many batches webhooks wrote.
    pub async fn webhook_batches(store: &Store) -> usize {
        store
            .list_batches(&BatchFilter::default())
            .await
            .expect("batches")
            .iter()
            .filter(|b| b.import_method == ImportMethod::Webhook)
            .count()
    }

    /// The stored session with this external id, as a unit reads it.
    async fn session(
        store: &Store,
        id: &str,
    ) -> Option<(kintell_ingest::domain::ActivityId, SessionRow)> {
        let mut unit = store.begin().await.expect("begin");
        let found = unit
            .sessions_by_external_id(&[SessionId::parse(id).expect("id")])
            .await
            .expect("read");
        unit.rollback().await.expect("rollback");
        found.into_iter().next().map(|s| (s.id, s.row))
    }

    fn record(id: &str, batch: Option<kintell_ingest::domain::BatchId>) -> DeliveryRecord {
        DeliveryRecord {
            delivery_id: DeliveryId::parse(id).expect("id"),
            event: WebhookEvent::RatingCreated,
            received_at: Utc.with_ymd_and_hms(2025, 11, 1, 12, 0, 0).unwrap(),
            body_sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .to_owned(),
            response_status: 200,
            response_body: serde_json::json!({"row": "updated"}),
            batch_id: batch,
        }
    }

    pub async fn deliveries_are_recorded_once_in_the_unit_that_writes_them(store: &Store) {
        let applied = handler(store)
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-0", COMPLETED))
            .await
            .expect("applied");
        let batch = applied.batch_id;

        let mut unit = store.begin().await.expect("begin");
        let mine = record("D-1", batch);
        unit.insert_delivery(&mine).await.expect("insert");
        assert_eq!(
            unit.delivery(&mine.delivery_id).await.expect("read"),
            Some(mine.clone()),
            "a unit sees its own delivery"
        );
        unit.rollback().await.expect("rollback");
        let mut unit = store.begin().await.expect("begin");
        assert_eq!(unit.delivery(&mine.delivery_id).await.expect("read"), None);
        unit.insert_delivery(&mine).await.expect("insert");
        unit.commit().await.expect("commit");

        let mut unit = store.begin().await.expect("begin");
        assert_eq!(
            unit.delivery(&mine.delivery_id).await.expect("read"),
            Some(mine.clone())
        );
        let again = unit.insert_delivery(&mine).await;
        assert!(
            matches!(again, Err(StoreError::Duplicate { .. })),
            "{again:?}"
        );
        unit.rollback().await.expect("rollback");

        let bad = |f: fn(&mut DeliveryRecord)| {
            let mut r = record("D-bad", batch);
            f(&mut r);
            r
        };
        for (r, what) in [
            (bad(|r| r.response_status = 99), "status"),
            (bad(|r| r.body_sha256 = "XYZ".to_owned()), "hash"),
        ] {
            let mut unit = store.begin().await.expect("begin");
            let e = unit.insert_delivery(&r).await;
            assert!(
                matches!(e, Err(StoreError::Invalid { .. })),
                "{what}: {e:?}"
            );
            let _ = unit.rollback().await;
        }
        let mut unit = store.begin().await.expect("begin");
        let e = unit
            .insert_delivery(&record(
                "D-2",
                Some(kintell_ingest::domain::BatchId(uuid::Uuid::now_v7())),
            ))
            .await;
        assert!(
            matches!(e, Err(StoreError::MissingReference { .. })),
            "{e:?}"
        );
        let _ = unit.rollback().await;
    }

    pub async fn sessions_are_read_back_with_their_peoples_emails(store: &Store) {
        handler(store)
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-1", COMPLETED))
            .await
            .expect("applied");
        let (_, row) = session(store, "S-1").await.expect("stored");
        assert_eq!(row.participant_email.as_str(), "anna@example.com");
        assert_eq!(row.volunteer_email.as_str(), "olga@volunteer.org");
        assert_eq!(row.session_type.as_str(), "language");
        assert_eq!(row.duration_minutes.map(|d| d.get()), Some(60));
        assert_eq!(row.language_level.map(|l| l.as_str()), Some("B1"));
        assert_eq!(
            row.topics,
            Some(vec!["grammar".to_owned(), "travel".to_owned()])
        );
        assert_eq!(
            row.completed_at,
            Some(Utc.with_ymd_and_hms(2025, 10, 1, 11, 0, 0).unwrap())
        );
        assert!(session(store, "S-unknown").await.is_none());
    }

    pub async fn a_completed_session_is_a_one_row_batch_stored_like_a_csv_row(store: &Store) {
        let outcome = handler(store)
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-1", COMPLETED))
            .await
            .expect("applied");
        assert_eq!(outcome.status, 200);
        assert!(!outcome.replayed);
        assert_eq!(outcome.body["row"], "inserted");
        assert_eq!(outcome.body["session_id"], "S-1");
        assert_eq!(outcome.body["replayed"], false);
        let batch_id = outcome.batch_id.expect("batch");
        let batch = store
            .get_batch(batch_id)
            .await
            .expect("read")
            .expect("batch");
        assert_eq!(batch.file_name, "webhook:session-completed:D-1");
        use sha2::Digest;
        let hash: String = sha2::Sha256::digest(COMPLETED.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(batch.file_hash, hash);
        assert_eq!(batch.import_method, ImportMethod::Webhook);
        assert_eq!(batch.entity_kind, EntityKind::KintellSessions);
        assert_eq!(batch.status, BatchStatus::Completed);
        assert_eq!(
            (
                batch.total_rows,
                batch.inserted_rows,
                batch.last_processed_row,
                batch.error_rows
            ),
            (1, 1, 1, 0)
        );
        assert_eq!(batch.lease_owner, None);
        let (id, _) = session(store, "S-1").await.expect("stored");
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, id)
            .await
            .expect("lineage")
            .expect("row");
        assert_eq!(lineage.batch_id, Some(batch_id));
        assert_eq!(lineage.first_batch_id, Some(batch_id));
        assert_eq!(lineage.source_row_number, Some(1));

        // The same session as a language-v1 file row is found unchanged: stored exactly alike.
        let csv = "session_id,participant_email,volunteer_email,scheduled_at,completed_at,duration_minutes,\
                   language_level,topics\n\
                   S-1,anna@example.com,olga@volunteer.org,2025-10-01T10:00:00Z,2025-10-01T11:00:00Z,60,B1,\
                   \"grammar, travel\"\n";
        let report = Ingestor::new(store.clone())
            .import(
                ImportRequest::from_bytes("sessions.csv", csv.as_bytes().to_vec())
                    .entity(EntityKind::KintellSessions),
            )
            .await
            .expect("import");
        assert_eq!(
            (
                report.inserted,
                report.updated,
                report.skipped,
                report.errors
            ),
            (0, 0, 1, 0)
        );

        // Another delivery of the same bytes is a batch of its own: never refused as a re-import.
        let other = handler(store)
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-2", COMPLETED))
            .await
            .expect("applied");
        assert!(!other.replayed);
        assert_eq!(other.body["row"], "unchanged");
        assert_ne!(other.batch_id, Some(batch_id));
        assert_eq!(webhook_batches(store).await, 2);
    }

    pub async fn a_replayed_delivery_answers_its_recorded_outcome_without_processing(
        store: &Store,
    ) {
        let h = handler(store);
        let first = h
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-1", COMPLETED))
            .await
            .expect("applied");
        // The replay carries another body: it is not looked at.
        let changed = COMPLETED.replace("\"duration_minutes\": 60", "\"duration_minutes\": 90");
        let again = h
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-1", &changed))
            .await
            .expect("replayed");
        assert!(again.replayed);
        assert_eq!(again.status, 200);
        assert_eq!(again.batch_id, first.batch_id);
        assert_eq!(again.body["row"], "inserted");
        assert_eq!(again.body["replayed"], true);
        assert_eq!(webhook_batches(store).await, 1);
        let (_, row) = session(store, "S-1").await.expect("stored");
        assert_eq!(
            row.duration_minutes.map(|d| d.get()),
            Some(60),
            "not reprocessed"
        );
    }

    pub async fn a_booking_then_its_completion_is_one_session(store: &Store) {
        let h = handler(store);
        let booking = r#"{"booking_id": "S-1", "session_type": "mentorship",
            "participant_email": "anna@example.com", "volunteer_email": "olga@volunteer.org",
            "scheduled_at": "2025-10-01T10:00:00Z"}"#;
        let booked = h
            .handle(&delivery(WebhookEvent::BookingConfirmed, "D-1", booking))
            .await
            .expect("booked");
        assert_eq!(booked.body["row"], "inserted");
        let (id, row) = session(store, "S-1").await.expect("stored");
        assert_eq!((row.completed_at, row.duration_minutes), (None, None));
        assert_eq!(row.session_type.as_str(), "mentorship");

        let completion = COMPLETED.replace("\"language\"", "\"mentorship\"");
        let done = h
            .handle(&delivery(
                WebhookEvent::SessionCompleted,
                "D-2",
                &completion,
            ))
            .await
            .expect("completed");
        assert_eq!(done.body["row"], "updated");
        let (same, row) = session(store, "S-1").await.expect("stored");
        assert_eq!(same, id, "the booking's row is completed");
        assert_eq!(
            row.completed_at,
            Some(Utc.with_ymd_and_hms(2025, 10, 1, 11, 0, 0).unwrap())
        );
        assert_eq!(
            store
                .count_activities(ActivityKind::KintellSession)
                .await
                .expect("n"),
            1
        );
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, id)
            .await
            .expect("lineage")
            .expect("row");
        assert_eq!(lineage.first_batch_id, booked.batch_id);
        assert_eq!(lineage.batch_id, done.batch_id);

        // A late booking does not undo the completion.
        let late = h
            .handle(&delivery(WebhookEvent::BookingConfirmed, "D-3", booking))
            .await
            .expect("late booking");
        assert_eq!(late.body["row"], "unchanged");
        let (_, row) = session(store, "S-1").await.expect("stored");
        assert!(row.completed_at.is_some() && row.duration_minutes.is_some());
    }

    pub async fn a_rating_sets_rating_feedback_and_batch(store: &Store) {
        let h = handler(store);
        let done = h
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-1", COMPLETED))
            .await
            .expect("completed");
        let rating = r#"{"rating_id": "R-1", "session_id": "S-1", "from_role": "participant", "rating": 4,
            "feedback_text": "Very helpful", "created_at": "2025-10-02T09:00:00Z"}"#;
        let rated = h
            .handle(&delivery(WebhookEvent::RatingCreated, "D-2", rating))
            .await
            .expect("rated");
        assert_eq!(rated.body["row"], "updated");
        let (id, row) = session(store, "S-1").await.expect("stored");
        assert_eq!(row.rating.map(|r| r.to_string()).as_deref(), Some("0.75"));
        assert_eq!(row.feedback_text.as_deref(), Some("Very helpful"));
        assert_eq!(
            row.duration_minutes.map(|d| d.get()),
            Some(60),
            "the rest is kept"
        );
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, id)
            .await
            .expect("lineage")
            .expect("row");
        assert_eq!(lineage.batch_id, rated.batch_id);
        assert_eq!(lineage.first_batch_id, done.batch_id);
        let batch = store
            .get_batch(rated.batch_id.expect("batch"))
            .await
            .expect("read")
            .expect("batch");
        assert_eq!(batch.file_name, "webhook:rating-created:D-2");
        assert_eq!(
            (batch.updated_rows, batch.status),
            (1, BatchStatus::Completed)
        );

        // The last rating wins; a completion delivered again keeps it.
        let second = r#"{"rating_id": "R-2", "session_id": "S-1", "from_role": "volunteer", "rating": 1.5,
            "created_at": "2025-10-02T10:00:00Z"}"#;
        h.handle(&delivery(WebhookEvent::RatingCreated, "D-3", second))
            .await
            .expect("rated again");
        h.handle(&delivery(WebhookEvent::SessionCompleted, "D-4", COMPLETED))
            .await
            .expect("completed again");
        let (_, row) = session(store, "S-1").await.expect("stored");
        assert_eq!(row.rating.map(|r| r.to_string()).as_deref(), Some("0.13"));
        assert_eq!(row.feedback_text, None);
    }

    pub async fn a_rating_of_an_unknown_session_is_not_found_and_not_recorded(store: &Store) {
        let h = handler(store);
        let rating = r#"{"rating_id": "R-1", "session_id": "S-404", "from_role": "participant", "rating": 5,
            "created_at": "2025-10-02T09:00:00Z"}"#;
        let d = delivery(WebhookEvent::RatingCreated, "D-1", rating);
        let e = h.handle(&d).await.expect_err("unknown session");
        assert!(matches!(&e, WebhookError::UnknownSession { session_id } if session_id == "S-404"));
        assert_eq!((e.status(), e.code()), (404, "unknown_session"));
        assert_eq!(webhook_batches(store).await, 0);
        // Not recorded: once the session exists, a retry of the same delivery applies.
        let completed = COMPLETED.replace("S-1", "S-404");
        h.handle(&delivery(WebhookEvent::SessionCompleted, "D-2", &completed))
            .await
            .expect("completed");
        let retried = h.handle(&d).await.expect("applied on retry");
        assert!(!retried.replayed);
        assert_eq!(retried.body["row"], "updated");
    }

    pub async fn invalid_bodies_answer_the_csv_row_error_codes_and_write_nothing(store: &Store) {
        let h = handler(store);
        let cases = [
            (
                COMPLETED.replace("Anna@Example.com", "anna.example.com"),
                "invalid_email",
                Some("participant_email"),
            ),
            (
                COMPLETED.replace("\"completed_at\": \"2025-10-01T11:00:00Z\",", ""),
                "missing_field",
                Some("completed_at"),
            ),
            (
                COMPLETED.replace("\"duration_minutes\": 60", "\"duration_minutes\": 0"),
                "out_of_range",
                Some("duration_minutes"),
            ),
            (
                COMPLETED.replace(
                    "\"duration_minutes\": 60",
                    "\"duration_minutes\": \"sixty\"",
                ),
                "invalid_number",
                Some("duration_minutes"),
            ),
            (
                COMPLETED.replace("\"language\"", "\"chess\""),
                "unknown_session_type",
                Some("session_type"),
            ),
            (
                COMPLETED.replace("\"b1\"", "\"Z9\""),
                "invalid_enum",
                Some("language_level"),
            ),
            (
                COMPLETED.replace("2025-10-01T11:00:00Z", "2025-10-01T09:00:00Z"),
                "completed_before_scheduled",
                Some("completed_at"),
            ),
            (
                COMPLETED.replace("[\"grammar\", \"travel\"]", "[1, 2]"),
                "invalid_json",
                Some("topics"),
            ),
            ("{not json".to_owned(), "invalid_json", None),
            ("[1, 2]".to_owned(), "invalid_json", None),
        ];
        for (i, (body, code, field)) in cases.iter().enumerate() {
            let e = h
                .handle(&delivery(
                    WebhookEvent::SessionCompleted,
                    &format!("D-{i}"),
                    body,
                ))
                .await
                .expect_err(code);
            assert_eq!((e.status(), e.code()), (422, *code), "{body}");
            let WebhookError::Invalid { field: f, .. } = &e else {
                panic!("not an invalid body: {e:?}");
            };
            assert_eq!(f.as_deref(), *field, "{body}");
        }
        let booking = r#"{"session_type": "language", "participant_email": "anna@example.com",
            "volunteer_email": "olga@volunteer.org", "scheduled_at": "2025-10-01T10:00:00Z"}"#;
        let e = h
            .handle(&delivery(WebhookEvent::BookingConfirmed, "D-b", booking))
            .await
            .expect_err("no booking id");
        assert!(matches!(&e, WebhookError::Invalid { code, field, .. }
            if code == "missing_field" && field.as_deref() == Some("booking_id")));
        let rating = r#"{"rating_id": "R-1", "session_id": "S-1", "from_role": "mentor", "rating": 6,
            "created_at": "2025-10-02T09:00:00Z"}"#;
        let e = h
            .handle(&delivery(WebhookEvent::RatingCreated, "D-r", rating))
            .await
            .expect_err("bad rating");
        assert!(matches!(&e, WebhookError::Invalid { code, field, .. }
            if code == "invalid_enum" && field.as_deref() == Some("from_role")));

        // Unknown people are refused as in an import without "create missing users".
        let strict = WebhookHandler::new(Ingestor::new(store.clone()));
        let e = strict
            .handle(&delivery(WebhookEvent::SessionCompleted, "D-u", COMPLETED))
            .await
            .expect_err("unknown user");
        assert!(matches!(&e, WebhookError::Invalid { code, field, .. }
            if code == "unknown_user" && field.as_deref() == Some("participant_email")));

        assert_eq!(webhook_batches(store).await, 0);
        assert_eq!(
            store
                .count_activities(ActivityKind::KintellSession)
                .await
                .expect("n"),
            0
        );
        assert_eq!(store.count_users().await.expect("n"), 0);
        let mut unit = store.begin().await.expect("begin");
        assert_eq!(
            unit.delivery(&DeliveryId::parse("D-u").expect("id"))
                .await
                .expect("read"),
            None
        );
        let _ = unit.rollback().await;
    }
}
