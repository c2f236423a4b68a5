//! Every route in-process: its success, and every error status it owns.

use crate::on_both;
use crate::support::{
    Env, TOKEN, authed, batch_id, get, post_empty, post_json, send, upload, wait_batch,
};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use kintell_ingest::domain::{
    ActivityId, ActivityKind, Association, AssociationId, BatchStatus, CampaignId, Confidence,
    Decision, InstanceId, ProgramSlug, SessionId,
};
use serde_json::json;
use std::time::Duration;

/// Three sessions of catalogue people (the third invalid: rating 9).
const SESSIONS: &str = "\
session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level
Q4-1,Mentorship,anna@example.com,maria@acme.example,2024-10-07T10:00:00Z,60,5,,
Q4-2,Mentorship,olek.petrenko@example.com,maria@acme.example,2024-10-14T10:00:00Z,90,4,,
Q4-3,Mentorship,anna@example.com,lars@nordicbank.no,2024-10-21T10:00:00Z,30,9,=cmd,
";

const WAIT: Duration = Duration::from_secs(60);

async fn imported(env: &Env, csv: &str) -> serde_json::Value {
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?file_name=q4.csv",
        csv.to_owned(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let batch = answer.json();
    wait_batch(&env.store, batch_id(&batch), WAIT, |b| {
        b.status == BatchStatus::Completed
    })
    .await;
    batch
}

#[tokio::test]
async fn v1_routes_need_the_token_and_other_routes_do_not() {
    let db = crate::support::fresh(crate::support::Backend::Sqlite, "auth")
        .await
        .expect("db");
    let env = Env::new(db).await;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Bearer t0ken-for-test"),
        Some("Basic dDBrZW4="),
    ] {
        for (method, uri) in [
            ("GET", "/v1/batches"),
            ("POST", "/v1/imports/sessions"),
            ("GET", "/v1/nowhere"),
        ] {
            let mut r = Request::builder().method(method).uri(uri);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            let answer = send(&env.state, r.body(Body::empty()).expect("request")).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{auth:?} {uri}");
            assert_eq!(answer.code(), "unauthorized");
            assert_eq!(answer.headers["www-authenticate"], "Bearer");
        }
    }
    let answer = get(&env.state, "/v1/batches").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!([]));
    let answer = get(&env.state, "/v1/nowhere").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    for uri in ["/health", "/metrics", "/openapi.json"] {
        let r = Request::get(uri).body(Body::empty()).expect("request");
        assert_eq!(send(&env.state, r).await.status, StatusCode::OK, "{uri}");
    }
}

async fn an_upload_is_imported_and_its_batch_served(env: Env) {
    let batch = imported(&env, SESSIONS).await;
    let id = batch_id(&batch);
    assert_eq!(batch["file_name"], "q4.csv");
    assert_eq!(batch["status"], "running");
    let shown = get(&env.state, &format!("/v1/batches/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    let shown = shown.json();
    assert_eq!(shown["status"], "completed");
    assert_eq!(
        (
            shown["total_rows"].as_i64(),
            shown["inserted_rows"].as_i64(),
            shown["error_rows"].as_i64()
        ),
        (Some(3), Some(2), Some(1))
    );
    let listed = get(&env.state, "/v1/batches?status=completed&limit=5")
        .await
        .json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["id"], shown["id"]);
    assert_eq!(
        get(&env.state, "/v1/batches?status=paused").await.json(),
        json!([])
    );
    let bad = get(&env.state, "/v1/batches?status=sleeping").await;
    assert_eq!(
        (bad.status, bad.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_option")
    );

    // The error CSV, with formulas escaped unless asked not to.
    let csv = get(&env.state, &format!("/v1/batches/{id}/errors")).await;
    assert_eq!(csv.status, StatusCode::OK);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/csv")
    );
    assert_eq!(
        csv.headers["content-disposition"],
        format!("attachment; filename=\"batch-{id}-errors.csv\"").as_str()
    );
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].ends_with("_error_row,_error_line,_error_code,_error_field,_error_message"),
        "{text}"
    );
    assert!(
        lines[1].starts_with("Q4-3,") && lines[1].contains(",'=cmd,"),
        "{text}"
    );
    let raw = get(
        &env.state,
        &format!("/v1/batches/{id}/errors?no_escape_formulas=true"),
    )
    .await
    .text();
    assert!(raw.contains(",=cmd,"), "{raw}");

    // The spooled file is gone with the completed batch; the same bytes again are refused, naming the batch.
    crate::support::eventually(WAIT, "the spool file is deleted", || {
        env.spooled().is_empty()
    })
    .await;
    let again = upload(&env.state, "/v1/imports/sessions", SESSIONS.to_owned()).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "already_imported");
    let body = again.json();
    assert_eq!(body["error"]["batch"]["id"], shown["id"]);
    assert!(
        body["error"]["message"]
            .as_str()
            .expect("message")
            .contains(&id.to_string())
    );
    assert!(env.spooled().is_empty(), "{:?}", env.spooled());

    // Illegal transitions name state and event.
    for (action, event) in [
        ("pause", "RequestPause"),
        ("cancel", "RequestCancel"),
        ("resume", "Resume"),
    ] {
        let refused = post_empty(&env.state, &format!("/v1/batches/{id}/{action}")).await;
        assert_eq!(
            refused.status,
            StatusCode::CONFLICT,
            "{action}: {}",
            refused.text()
        );
        let e = refused.json();
        assert_eq!(e["error"]["code"], "illegal_transition", "{e}");
        assert_eq!(e["error"]["state"], "completed");
        assert_eq!(e["error"]["event"], event);
    }

    // The metrics count the rows and the routes by template.
    let metrics = metrics(&env.state).await;
    for line in [
        "ingest_rows_total{entity=\"kintell_sessions\",outcome=\"inserted\"} 2",
        "ingest_rows_total{entity=\"kintell_sessions\",outcome=\"rejected\"} 1",
        "ingest_batches_total{status=\"completed\"} 1",
        "association_decisions_total{decision=\"auto\"} ",
        "http_server_requests_total{service=\"kintell-ingest-http\",endpoint=\"/v1/batches/{id}\",status=\"200\"} 1",
        "http_server_requests_total{service=\"kintell-ingest-http\",endpoint=\"/v1/imports/{entity}\",status=\"409\"} 1",
        "http_server_request_duration_seconds_count{service=\"kintell-ingest-http\",endpoint=\"/v1/batches/{id}/pause\",status=\"409\"} 1",
        "webhook_signature_failures_total 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}
on_both!(an_upload_is_imported_and_its_batch_served);

async fn upload_errors_have_their_statuses(env: Env) {
    // A header that is no export: 400 with the file error, and a failed batch row; the spool file is deleted.
    let bad = upload(
        &env.state,
        "/v1/imports/sessions",
        "foo,bar\n1,2\n".to_owned(),
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text());
    let body = bad.json();
    assert_eq!(body["error"]["code"], "file_error");
    assert!(body["error"]["file_code"].is_string(), "{body}");
    assert_eq!(body["error"]["batch"]["status"], "failed");
    let id = batch_id(&body["error"]["batch"]);
    let stored = env
        .store
        .get_batch(id)
        .await
        .expect("read")
        .expect("a failed batch row");
    assert_eq!(stored.status, BatchStatus::Failed);
    assert!(stored.last_error.is_some());
    assert!(env.spooled().is_empty(), "{:?}", env.spooled());

    // 415 for another media type or none.
    for content_type in [Some("application/json"), None] {
        let mut r = authed("POST", "/v1/imports/sessions");
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        let answer = send(&env.state, r.body(Body::from(SESSIONS)).expect("request")).await;
        assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert_eq!(answer.code(), "unsupported_media_type");
    }

    // 413 when the body passes the limit, announced or not; nothing is left in the upload directory.
    let small = env.state.clone().with_max_upload_bytes(100);
    let answer = upload(&small, "/v1/imports/sessions", SESSIONS.to_owned()).await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    let stream = futures_body(SESSIONS.as_bytes().chunks(40).map(|c| c.to_vec()).collect());
    let answer = upload(&small, "/v1/imports/sessions", stream).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(env.spooled().is_empty(), "{:?}", env.spooled());

    // 404 for an unknown entity; 400 for a bad option or an unknown one.
    let answer = upload(&env.state, "/v1/imports/meetings", SESSIONS.to_owned()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?delimiter=pipe",
        SESSIONS.to_owned(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_option")
    );
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?forse=true",
        SESSIONS.to_owned(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );

    // The reject limits: 422 with the failed batch, no row stored.
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?max_errors=0",
        SESSIONS.to_owned(),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, "rejected")
    );
    assert_eq!(
        env.store
            .count_activities(ActivityKind::KintellSession)
            .await
            .expect("count"),
        0
    );

    // A dry run answers the report and stores nothing.
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?dry_run=true&file_name=dry.csv",
        SESSIONS.to_owned(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let report = answer.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["batch"]["inserted_rows"], 2);
    assert_eq!(
        env.store
            .count_activities(ActivityKind::KintellSession)
            .await
            .expect("count"),
        0
    );
}
on_both!(upload_errors_have_their_statuses);

/// A body sent in pieces (no Content-Length).
fn futures_body(chunks: Vec<Vec<u8>>) -> Body {
    let stream = tokio_stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    Body::from_stream(stream)
}

async fn multipart_uploads_take_the_file_part(env: Env) {
    let boundary = "XyZ123";
    let body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"from-part.csv\"\r\nContent-Type: text/csv\r\n\r\n{SESSIONS}\r\n\
         --{boundary}--\r\n"
    );
    let answer = send(
        &env.state,
        authed("POST", "/v1/imports/sessions")
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(Body::from(body))
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    let batch = answer.json();
    assert_eq!(batch["file_name"], "from-part.csv");
    let done = wait_batch(&env.store, batch_id(&batch), WAIT, |b| {
        b.status == BatchStatus::Completed
    })
    .await;
    assert_eq!(done.inserted_rows, 2);

    let answer = send(
        &env.state,
        authed("POST", "/v1/imports/sessions")
            .header("content-type", format!("multipart/form-data; boundary={boundary}"))
            .body(Body::from(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nx\r\n--{boundary}--\r\n")))
            .expect("request"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.text().contains("file"), "{}", answer.text());
}
on_both!(multipart_uploads_take_the_file_part);

async fn unknown_ids_are_404_and_bad_ids_400(env: Env) {
    let unknown = uuid::Uuid::new_v4();
    for uri in [
        format!("/v1/batches/{unknown}"),
        format!("/v1/batches/{unknown}/errors"),
        format!("/v1/associations/runs/{unknown}"),
        format!("/v1/reviews/{unknown}"),
    ] {
        let answer = get(&env.state, &uri).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
    for uri in [
        format!("/v1/batches/{unknown}/pause"),
        format!("/v1/batches/{unknown}/cancel"),
        format!("/v1/batches/{unknown}/resume"),
        format!("/v1/associations/runs/{unknown}/resume"),
    ] {
        let answer = post_empty(&env.state, &uri).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::NOT_FOUND, "not_found"),
            "{uri}"
        );
    }
    for uri in [
        format!("/v1/reviews/{unknown}/accept"),
        format!("/v1/reviews/{unknown}/reject"),
    ] {
        let answer = post_json(&env.state, &uri, json!({"by": "tester"})).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
    let answer = get(&env.state, "/v1/batches/not-a-uuid").await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
}
on_both!(unknown_ids_are_404_and_bad_ids_400);

async fn a_stopped_batch_is_resumed_from_its_spooled_file(env: Env) {
    // A server that has begun shutting down stops every import before its first chunk.
    env.state.shutdown().await;
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?file_name=q4.csv",
        SESSIONS.to_owned(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.text());
    assert_eq!(answer.json()["status"], "running");
    let id = batch_id(&answer.json());
    let stopped = wait_batch(
        &env.store,
        id,
        WAIT,
        kintell_ingest::ingest::stopped_by_signal,
    )
    .await;
    assert_eq!(
        (stopped.last_processed_row, stopped.lease_owner.clone()),
        (0, None)
    );
    assert_eq!(
        env.spooled().len(),
        1,
        "the spooled file stays for the resume"
    );

    // Another server on the same database and data directory.
    let state = kintell_ingest_http::AppState::new(env.store.clone())
        .with_token(Some(TOKEN.to_owned()))
        .with_data_dir(env.data.path());
    let again = post_empty(&state, &format!("/v1/batches/{id}/pause")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["error"]["state"], "paused");
    assert_eq!(again.json()["error"]["event"], "RequestPause");
    let resumed = post_empty(&state, &format!("/v1/batches/{id}/resume")).await;
    assert_eq!(resumed.status, StatusCode::ACCEPTED, "{}", resumed.text());
    assert_eq!(resumed.json()["status"], "running");
    let done = wait_batch(&env.store, id, WAIT, |b| b.status == BatchStatus::Completed).await;
    assert_eq!((done.inserted_rows, done.error_rows), (2, 1));
    crate::support::eventually(WAIT, "the spool file is deleted", || {
        env.spooled().is_empty()
    })
    .await;
}
on_both!(a_stopped_batch_is_resumed_from_its_spooled_file);

async fn cancel_deletes_the_spooled_file_and_resume_needs_it(env: Env) {
    // A failed batch that started: seeded as a paused one through the library, with its spooled copy.
    let answer = upload(
        &env.state,
        "/v1/imports/sessions?file_name=q4.csv",
        SESSIONS.to_owned(),
    )
    .await;
    let id = batch_id(&answer.json());
    let done = wait_batch(&env.store, id, WAIT, |b| b.status == BatchStatus::Completed).await;
    // Another file, spooled by hand and stopped by a pause request before it starts.
    let other = SESSIONS.replace("Q4-", "Q5-");
    let ingestor = kintell_ingest::ingest::Ingestor::new(env.store.clone());
    let path = env.data.path().join("other.csv");
    std::fs::write(&path, &other).expect("write");
    let stop = kintell_ingest::ingest::StopSignal::new();
    stop.stop();
    let paused = ingestor
        .import(
            kintell_ingest::ingest::ImportRequest::from_path(&path)
                .entity(kintell_ingest::domain::EntityKind::KintellSessions),
        )
        .with_stop(&stop)
        .await
        .expect("import");
    assert_eq!(paused.batch.status, BatchStatus::Paused);
    // No spooled copy: 409.
    let refused = post_empty(
        &env.state,
        &format!("/v1/batches/{}/resume", paused.batch.id),
    )
    .await;
    assert_eq!(
        (refused.status, refused.code().as_str()),
        (StatusCode::CONFLICT, "no_spooled_input")
    );
    // With its spooled copy, a cancel deletes it.
    std::fs::create_dir_all(env.state.uploads_dir()).expect("mkdir");
    let spool = env.state.uploads_dir().join(&paused.batch.file_hash);
    std::fs::rename(&path, &spool).expect("spool");
    let cancelled = post_empty(
        &env.state,
        &format!("/v1/batches/{}/cancel", paused.batch.id),
    )
    .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text());
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert!(!spool.exists());
    assert_eq!(done.status, BatchStatus::Completed);
}
on_both!(cancel_deletes_the_spooled_file_and_resume_needs_it);

async fn backfill_runs_are_started_listed_shown_and_resumed(env: Env) {
    imported(&env, SESSIONS).await;
    let run = post_empty(
        &env.state,
        "/v1/associations/backfill?dry_run=true&entity=sessions&company=acme&start_date=2024-01-01",
    )
    .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text());
    let run = run.json();
    assert_eq!(run["status"], "completed");
    assert_eq!(run["dry_run"], true);
    let id = run["id"].as_str().expect("id").to_owned();
    let runs = get(&env.state, "/v1/associations/runs").await.json();
    assert_eq!(runs[0]["id"], run["id"]);
    let shown = get(&env.state, &format!("/v1/associations/runs/{id}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json()["id"], run["id"]);
    let resumed = post_empty(&env.state, &format!("/v1/associations/runs/{id}/resume")).await;
    assert_eq!(
        (resumed.status, resumed.code().as_str()),
        (StatusCode::CONFLICT, "not_resumable")
    );
    let bad = post_empty(&env.state, "/v1/associations/backfill?entity=meetings").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let unknown = post_empty(&env.state, "/v1/associations/backfill?company=nobody").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (StatusCode::BAD_REQUEST, "unknown_company")
    );
}
on_both!(backfill_runs_are_started_listed_shown_and_resumed);

async fn review_items_are_listed_shown_accepted_and_rejected(env: Env) {
    let batch = imported(&env, SESSIONS).await;
    let batch = batch_id(&batch);
    // Review items seeded through the library on the imported sessions.
    let ids: Vec<SessionId> = ["Q4-1", "Q4-2"]
        .iter()
        .map(|s| SessionId::parse(s).expect("id"))
        .collect();
    let mut unit = env.store.begin().await.expect("begin");
    let stored = unit.stored_sessions(&ids).await.expect("sessions");
    let instance =
        InstanceId::stable(&ProgramSlug::parse("mentors-ukraine-2024-q4").expect("slug"));
    let associations: Vec<Association> = stored
        .iter()
        .map(|(_, row)| Association {
            id: AssociationId(uuid::Uuid::new_v4()),
            activity_kind: ActivityKind::KintellSession,
            activity_id: ActivityId::from(row.id),
            campaign_id: Some(CampaignId::stable("acme-mentors-2024")),
            program_instance_id: Some(instance),
            confidence: Confidence::new(62).expect("confidence"),
            decision: Decision::Review,
            reasons: json!([{"code": "company_match", "points": 30, "detail": "acme"}]),
            policy_version: "v1".to_owned(),
            candidates: json!([{"campaign": "acme-mentors-2024", "total": 62, "confidence": 62}]),
            batch_id: Some(batch),
            run_id: None,
            decided_by: None,
            decided_at: None,
        })
        .collect();
    unit.upsert_associations(&associations)
        .await
        .expect("associations");
    unit.commit().await.expect("commit");

    let items = get(
        &env.state,
        "/v1/reviews?company=acme&kind=kintell_session&from=2024-10-01&limit=10",
    )
    .await;
    assert_eq!(items.status, StatusCode::OK, "{}", items.text());
    let items = items.json();
    let items = items.as_array().expect("array");
    assert_eq!(items.len(), 2, "{items:?}");
    let first = items[0]["id"].as_str().expect("id").to_owned();
    let second = items[1]["id"].as_str().expect("id").to_owned();
    let shown = get(&env.state, &format!("/v1/reviews/{first}")).await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json()["decision"], "review");

    let no_by = post_json(
        &env.state,
        &format!("/v1/reviews/{first}/accept"),
        json!({}),
    )
    .await;
    assert_eq!(
        (no_by.status, no_by.code().as_str()),
        (StatusCode::BAD_REQUEST, "invalid_request")
    );
    let wrong = post_json(
        &env.state,
        &format!("/v1/reviews/{first}/accept"),
        json!({"by": "ops", "program_instance": "nordic-buddy-berlin"}),
    )
    .await;
    assert_eq!(
        (wrong.status, wrong.code().as_str()),
        (StatusCode::BAD_REQUEST, "other_campaign")
    );
    let accepted = post_json(
        &env.state,
        &format!("/v1/reviews/{first}/accept"),
        json!({"by": "ops", "program_instance": "mentors-ukraine-2024-q4"}),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
    assert_eq!(accepted.json()["decision"], "accepted");
    assert_eq!(accepted.json()["decided_by"], "ops");
    let twice = post_json(
        &env.state,
        &format!("/v1/reviews/{first}/accept"),
        json!({"by": "ops"}),
    )
    .await;
    assert_eq!(
        (twice.status, twice.code().as_str()),
        (StatusCode::CONFLICT, "not_pending")
    );
    let rejected = post_json(
        &env.state,
        &format!("/v1/reviews/{second}/reject"),
        json!({"by": "ops"}),
    )
    .await;
    assert_eq!(rejected.status, StatusCode::OK, "{}", rejected.text());
    assert_eq!(rejected.json()["decision"], "rejected");
    assert_eq!(get(&env.state, "/v1/reviews").await.json(), json!([]));
    let bad = get(&env.state, "/v1/reviews?kind=meeting").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let metrics = metrics(&env.state).await;
    assert!(
        metrics.contains("association_decisions_total{decision=\"accepted\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("association_decisions_total{decision=\"rejected\"} 1"),
        "{metrics}"
    );
}
on_both!(review_items_are_listed_shown_accepted_and_rejected);

async fn campaign_metrics_are_reported(env: Env) {
    imported(&env, SESSIONS).await;
    let report = get(&env.state, "/v1/campaigns/metrics?company=acme").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let report = report.json();
    let keys: Vec<&str> = report
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|c| c["key"].as_str())
        .collect();
    assert!(keys.contains(&"acme-mentors-2024"), "{keys:?}");
    let unknown = get(&env.state, "/v1/campaigns/metrics?company=nobody").await;
    assert_eq!(
        (unknown.status, unknown.code().as_str()),
        (StatusCode::BAD_REQUEST, "unknown_company")
    );
}
on_both!(campaign_metrics_are_reported);

#[tokio::test]
async fn the_openapi_document_describes_every_route() {
    let r = Request::get("/openapi.json")
        .body(Body::empty())
        .expect("request");
    let state = kintell_ingest_http::AppState::new(kintell_ingest::store::Store::memory());
    let answer = send(&state, r).await;
    assert_eq!(answer.status, StatusCode::OK);
    let doc = answer.json();
    assert!(doc["openapi"].as_str().expect("version").starts_with("3."));
    let mut routes: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("item").keys() {
            routes.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes.sort();
    let mut expected = vec![
        "GET /health",
        "GET /ready",
        "GET /metrics",
        "GET /openapi.json",
        "POST /v1/imports/{entity}",
        "GET /v1/batches",
        "GET /v1/batches/{id}",
        "GET /v1/batches/{id}/errors",
        "POST /v1/batches/{id}/resume",
        "POST /v1/batches/{id}/pause",
        "POST /v1/batches/{id}/cancel",
        "POST /v1/associations/backfill",
        "GET /v1/associations/runs",
        "GET /v1/associations/runs/{id}",
        "POST /v1/associations/runs/{id}/resume",
        "GET /v1/reviews",
        "GET /v1/reviews/{id}",
        "POST /v1/reviews/{id}/accept",
        "POST /v1/reviews/{id}/reject",
        "GET /v1/campaigns/metrics",
        "POST /v1/webhooks/kintell/{event}",
    ];
    expected.sort_unstable();
    assert_eq!(routes, expected);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["paths"]["/v1/imports/{entity}"]["post"]["responses"]["413"].is_object());
}

#[tokio::test]
async fn the_server_router_serves_the_webhooks_without_the_token_and_counts_bad_signatures() {
    let store = kintell_ingest::store::Store::memory();
    store.migrate().await.expect("migrate");
    let disabled =
        kintell_ingest_http::AppState::new(store.clone()).with_token(Some(TOKEN.to_owned()));
    let request = || {
        Request::post("/v1/webhooks/kintell/session-completed")
            .header("content-type", "application/json")
            .header("x-delivery-id", "d-1")
            .header("x-kintell-signature", "t=1,v1=00")
            .body(Body::from("{}"))
            .expect("request")
    };
    let answer = send(&disabled, request()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text());

    let state = disabled.with_webhook_secret(Some(b"s3cret"));
    let answer = send(&state, request()).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text());
    assert_ne!(
        answer.code(),
        "unauthorized",
        "judged by the signature, not the token"
    );
    let metrics = metrics(&state).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "webhook_signature_failures_total 1"),
        "{metrics}"
    );
}

/// The Prometheus text of `/metrics` (a route without authentication).
async fn metrics(state: &kintell_ingest_http::AppState) -> String {
    send(
        state,
        Request::get("/metrics")
            .body(Body::empty())
            .expect("request"),
    )
    .await
    .text()
}
