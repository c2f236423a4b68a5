//! The historical backfill, as a contract every store passes (instantiated in `stores.rs`): the run ledger and the
//! page ports, then whole runs — associations, links, enrolments, statistics, dry runs, resume after a failure at
//! every call, leases.

pub mod contract {
    use crate::ingest::probe::Probe;
    use chrono::{DateTime, TimeDelta, Utc};
    use expect_test::{Expect, expect};
    use kintell_ingest::backfill::{Backfill, BackfillError, BackfillOptions, Clock};
    use kintell_ingest::catalog::CatalogImport;
    use kintell_ingest::domain::MatchWrite;
    use kintell_ingest::domain::{
        ActivityId, ActivityKind, Association, AssociationId, AssociationState, BackfillEntity,
        BatchId, BatchStatus, CampaignId, CompanyId, CompletionKey, CompletionRow, CompletionWrite,
        Confidence, CourseId, Decision, Email, EntityKind, ImportMethod, InstanceId, Key, MatchKey,
        MatchRow, MatchStatus, NewBatch, NewRun, ProgramSlug, ProgramType, Provider, RowSource,
        RunGuard, RunId, RunRecord, SessionId, SessionRow, SessionType, SessionWrite,
        TimeZoneOffset, UserId,
    };
    use kintell_ingest::ports::{BackfillFilter, StoreError};
    use kintell_ingest::store::Store;
    use serde_json::json;
    use std::fmt::Write as _;
    use std::sync::Arc;
    use uuid::Uuid;

    const CATALOGUE: &str = r#"{
      "companies": [{"key": "acme", "name": "Acme AS"}, {"key": "nordic", "name": "Nordic ASA"}],
      "beneficiary_groups": [
        {"key": "ua", "name": "Ukrainian refugees", "group_type": "refugees", "tags": ["refugees"]},
        {"key": "open", "name": "Anyone", "group_type": "open", "tags": []}
      ],
      "campaigns": [
        {"key": "acme-mentors", "name": "Acme mentors", "company": "acme", "beneficiary_group": "ua",
         "program_type": "mentors_ukraine", "start_date": "2024-01-01", "end_date": "2024-12-31",
         "status": "active"},
        {"key": "acme-open", "name": "Acme open", "company": "acme", "beneficiary_group": "open",
         "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "active"},
        {"key": "nordic-buddy", "name": "Nordic buddies", "company": "nordic", "beneficiary_group": "ua",
         "program_type": "buddy", "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "recruiting"}
      ],
      "program_instances": [
        {"slug": "mentors-2024", "campaign": "acme-mentors", "program_type": "mentors_ukraine",
         "program_name": "Mentors 2024", "start_date": "2024-01-01"},
        {"slug": "open-2024", "campaign": "acme-open", "program_type": "upskilling",
         "program_name": "Open 2024", "start_date": "2024-01-01"}
      ],
      "users": [
        {"email": "anna@example.com", "role": "participant", "tags": ["refugees"]},
        {"email": "olek@example.com", "role": "participant", "tags": []},
        {"email": "kate@example.com", "role": "participant", "company": "acme", "tags": ["refugees"]},
        {"email": "maria@acme.example", "role": "volunteer", "company": "acme"},
        {"email": "lars@nordic.example", "role": "volunteer", "company": "nordic"},
        {"email": "ivan@example.com", "role": "volunteer"}
      ]
    }"#;

    const BATCH: BatchId = BatchId(Uuid::from_u128(7));

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn user(name: &str) -> UserId {
        let email = match name {
            "maria" => "maria@acme.example".to_owned(),
            "lars" => "lars@nordic.example".to_owned(),
            other => format!("{other}@example.com"),
        };
        UserId::stable(&Email::parse(&email).expect("email"))
    }

    fn email(id: UserId) -> Email {
        let names = ["anna", "olek", "kate", "maria", "lars", "ivan"];
        let name = names
            .iter()
            .find(|n| user(n) == id)
            .expect("a fixture user");
        let e = match *name {
            "maria" => "maria@acme.example".to_owned(),
            "lars" => "lars@nordic.example".to_owned(),
            other => format!("{other}@example.com"),
        };
        Email::parse(&e).expect("email")
    }

    fn instance(slug: &str) -> InstanceId {
        InstanceId::stable(&ProgramSlug::parse(slug).expect("slug"))
    }

    fn activity(n: u128) -> ActivityId {
        ActivityId(Uuid::from_u128(n))
    }

    fn source(n: u128) -> RowSource {
        RowSource {
            batch_id: BATCH,
            source_row_number: i64::try_from(n).expect("row"),
        }
    }

    /// Session `n` of `participant` with `volunteer`, completed at `when`.
    fn session(
        n: u128,
        participant: &str,
        volunteer: &str,
        kind: SessionType,
        when: &str,
    ) -> SessionWrite {
        let (p, v) = (user(participant), user(volunteer));
        SessionWrite {
            id: activity(n),
            row: SessionRow {
                session_id: SessionId::parse(&format!("s-{n}")).expect("id"),
                session_type: kind,
                participant_email: email(p),
                volunteer_email: email(v),
                scheduled_at: at(when),
                completed_at: Some(at(when)),
                duration_minutes: None,
                rating: None,
                feedback_text: None,
                language_level: None,
                topics: None,
                metadata: None,
                program_ref: None,
            },
            participant_id: p,
            volunteer_id: v,
            program_instance_id: None,
            source: source(n),
            now: at("2025-01-10T00:00:00Z"),
        }
    }

    fn buddy_match(n: u128, participant: &str, buddy: &str, when: &str) -> MatchWrite {
        let (p, b) = (user(participant), user(buddy));
        MatchWrite {
            id: activity(n),
            row: MatchRow {
                participant_email: email(p),
                buddy_email: email(b),
                matched_at: at(when),
                status: MatchStatus::Active,
                language: None,
                interests: None,
                location: None,
                external_match_id: None,
                ended_at: None,
                end_reason: None,
            },
            key: MatchKey {
                participant_id: p,
                buddy_id: b,
                matched_at: at(when),
            },
            program_instance_id: None,
            source: source(n),
            now: at("2025-01-10T00:00:00Z"),
        }
    }

    fn completion(n: u128, learner: &str, when: &str) -> CompletionWrite {
        let provider = Provider::parse("coursera").expect("provider");
        let course = CourseId::parse(&format!("C-{n}")).expect("course");
        CompletionWrite {
            id: activity(n),
            row: CompletionRow {
                user_email: email(user(learner)),
                provider: provider.clone(),
                course_id: course.clone(),
                course_name: None,
                completed_at: at(when),
                final_score: None,
                credential_ref: None,
            },
            key: CompletionKey {
                user_id: user(learner),
                provider,
                course_id: course,
            },
            program_instance_id: None,
            source: source(n),
            now: at("2025-01-10T00:00:00Z"),
        }
    }

    /// The sessions (1–9), matches (21–22) and completions (31–32) of the fixture.
    fn activities() -> (Vec<SessionWrite>, Vec<MatchWrite>, Vec<CompletionWrite>) {
        use SessionType::{Language, Mentorship};
        (
            vec![
                // auto: acme-mentors, full tags.
                session(1, "anna", "maria", Mentorship, "2024-03-01T10:00:00Z"),
                // auto: acme-open (untargeted, 90) beats acme-mentors (no shared tag, 80).
                session(2, "olek", "maria", Mentorship, "2024-03-02T10:00:00Z"),
                // none: no company.
                session(3, "anna", "ivan", Mentorship, "2024-03-03T10:00:00Z"),
                // none: before every campaign.
                session(4, "anna", "maria", Mentorship, "2023-06-01T10:00:00Z"),
                // auto: a language session, only acme-open (no programme type) takes it.
                session(5, "anna", "maria", Language, "2024-04-01T10:00:00Z"),
                // accepted by a person, linked to mentors-2024: sticky.
                session(6, "anna", "maria", Mentorship, "2024-07-01T10:00:00Z"),
                // explicit, linked to open-2024: sticky.
                session(7, "anna", "maria", Mentorship, "2024-08-01T10:00:00Z"),
                // auto in UTC; in +02:00 its date is 2025-01-01, after every campaign.
                session(8, "anna", "maria", Mentorship, "2024-12-31T23:30:00Z"),
                // stored `none`, still none: nordic has no mentoring campaign.
                session(9, "olek", "lars", Mentorship, "2024-09-01T10:00:00Z"),
            ],
            vec![
                // review: nordic-buddy has no instance.
                buddy_match(21, "anna", "lars", "2024-05-01T10:00:00Z"),
                // review: no instance, no tag evidence.
                buddy_match(22, "olek", "lars", "2024-05-02T10:00:00Z"),
            ],
            vec![
                // auto: kate's own company, acme-open.
                completion(31, "kate", "2024-06-01T10:00:00Z"),
                // none: no company.
                completion(32, "anna", "2024-06-02T10:00:00Z"),
            ],
        )
    }

    fn stored(
        n: u128,
        decision: Decision,
        campaign: Option<&str>,
        inst: Option<&str>,
    ) -> Association {
        let human = decision.is_human();
        Association {
            id: AssociationId(Uuid::from_u128(1000 + n)),
            activity_kind: ActivityKind::KintellSession,
            activity_id: activity(n),
            campaign_id: campaign.map(CampaignId::stable),
            program_instance_id: inst.map(instance),
            confidence: Confidence::new(match decision {
                Decision::Explicit => 100,
                Decision::None => 0,
                _ => 70,
            })
            .expect("confidence"),
            decision,
            reasons: json!([{"code": "fixture", "points": 0, "detail": ""}]),
            policy_version: "v0".to_owned(),
            candidates: json!([]),
            batch_id: Some(BATCH),
            run_id: None,
            decided_by: human.then(|| "reviewer@acme.example".to_owned()),
            decided_at: human.then(|| at("2024-12-01T00:00:00Z")),
        }
    }

    /// The decisions stored before any backfill: session 6 accepted and 7 explicit (both linked), 9 `none`.
    async fn decisions(store: &Store) {
        let mut unit = store.begin().await.expect("begin");
        unit.upsert_associations(&[
            stored(
                6,
                Decision::Accepted,
                Some("acme-mentors"),
                Some("mentors-2024"),
            ),
            stored(7, Decision::Explicit, Some("acme-open"), Some("open-2024")),
            stored(9, Decision::None, None, None),
        ])
        .await
        .expect("associations");
        let links = [
            (activity(6), instance("mentors-2024")),
            (activity(7), instance("open-2024")),
        ];
        unit.set_activity_instances(ActivityKind::KintellSession, &links)
            .await
            .expect("links");
        unit.commit().await.expect("commit");
    }

    /// Stores the catalogue, the activities and the earlier decisions.
    async fn seed(store: &Store) {
        CatalogImport::new(store.clone())
            .run_json(CATALOGUE, at("2024-01-01T00:00:00Z"))
            .await
            .expect("catalogue");
        store
            .insert_batch(&NewBatch {
                id: BATCH,
                file_name: "seed.csv".to_owned(),
                file_hash: "0".repeat(64),
                file_size_bytes: None,
                entity_kind: EntityKind::KintellSessions,
                format: "kintell-sessions".to_owned(),
                program_type: ProgramType::Kintell,
                program_instance_id: None,
                source_system: "kintell".to_owned(),
                import_method: ImportMethod::CsvUpload,
                total_rows: 32,
                csv_metadata: json!({}),
                imported_by_service: None,
                created_at: at("2025-01-10T00:00:00Z"),
            })
            .await
            .expect("batch");
        let (sessions, matches, completions) = activities();
        let mut unit = store.begin().await.expect("begin");
        unit.upsert_sessions(&sessions).await.expect("sessions");
        unit.upsert_matches(&matches).await.expect("matches");
        unit.upsert_completions(&completions)
            .await
            .expect("completions");
        unit.commit().await.expect("commit");
        decisions(store).await;
    }

    /// Every activity of the fixture.
    fn all_activities() -> Vec<(ActivityKind, u128)> {
        let mut v: Vec<(ActivityKind, u128)> =
            (1..=9).map(|n| (ActivityKind::KintellSession, n)).collect();
        v.extend([21, 22].map(|n| (ActivityKind::BuddyMatch, n)));
        v.extend([31, 32].map(|n| (ActivityKind::CourseCompletion, n)));
        v
    }

    fn name_of_instance(id: Option<InstanceId>) -> String {
        match id {
            None => "-".to_owned(),
            Some(id) => ["mentors-2024", "open-2024"]
                .into_iter()
                .find(|s| instance(s) == id)
                .unwrap_or("?")
                .to_owned(),
        }
    }

    fn name_of_campaign(id: Option<CampaignId>) -> String {
        match id {
            None => "-".to_owned(),
            Some(id) => ["acme-mentors", "acme-open", "nordic-buddy"]
                .into_iter()
                .find(|c| CampaignId::stable(c) == id)
                .unwrap_or("?")
                .to_owned(),
        }
    }

    fn name_of_user(id: UserId) -> &'static str {
        ["anna", "olek", "kate", "maria", "lars", "ivan"]
            .into_iter()
            .find(|n| user(n) == id)
            .unwrap_or("?")
    }

    /// What a backfill may change, through the ports (so the same on every store), ids of new rows left out: each
    /// activity's link and association, and the enrolments of each instance.
    async fn state(store: &Store) -> String {
        let mut out = String::new();
        for (kind, n) in all_activities() {
            let link = store
                .activity_lineage(kind, activity(n))
                .await
                .expect("lineage")
                .and_then(|l| l.program_instance_id);
            let a = store
                .association_for(kind, activity(n))
                .await
                .expect("association");
            let shown = match a {
                None => "no association".to_owned(),
                Some(a) => {
                    let codes: Vec<&str> = a
                        .reasons
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| r["code"].as_str())
                        .collect();
                    format!(
                        "{} {} {} {} [{}] {}",
                        a.decision,
                        name_of_campaign(a.campaign_id),
                        name_of_instance(a.program_instance_id),
                        a.confidence.get(),
                        codes.join(","),
                        a.policy_version,
                    )
                }
            };
            writeln!(out, "{n:>2} link {:<12} {shown}", name_of_instance(link)).expect("write");
        }
        for slug in ["mentors-2024", "open-2024"] {
            for e in store
                .enrollments_of(instance(slug))
                .await
                .expect("enrolments")
            {
                writeln!(
                    out,
                    "enrolled {slug} {} {} {} {}",
                    name_of_user(e.user_id),
                    e.role,
                    e.program_type,
                    e.enrolled_at.date_naive()
                )
                .expect("write");
            }
        }
        out
    }

    /// The statistics of a run, one line.
    fn stats_line(run: &RunRecord) -> String {
        let s = &run.stats;
        format!(
            "scanned {} unchanged {} auto {} review {} ignored {} none_no_company {} none_no_candidates {} \
             errors {} avg {} histogram {:?}",
            s.scanned,
            s.unchanged,
            s.auto,
            s.review,
            s.ignored,
            s.none_no_company,
            s.none_no_candidates,
            s.errors,
            s.avg_confidence()
                .map_or_else(|| "-".to_owned(), |a| format!("{a:.2}")),
            s.histogram
        )
    }

    fn fixed(t: DateTime<Utc>) -> Arc<dyn Clock> {
        Arc::new(move || t)
    }

    const T0: &str = "2025-02-01T12:00:00Z";

    fn backfill(store: &Store) -> Backfill {
        Backfill::new(store.clone())
            .clock(fixed(at(T0)))
            .host("worker-a")
    }

    async fn check_run(store: &Store, options: BackfillOptions, stats: Expect, after: Expect) {
        let run = backfill(store).run(options).await.expect("run");
        assert_eq!(run.status, BatchStatus::Completed);
        assert_eq!(run.lease_owner, None);
        stats.assert_eq(&stats_line(&run));
        after.assert_eq(&state(store).await);
    }

    // ---- the ports ----------------------------------------------------------------------------------------------

    fn new_run(n: u128, created_at: &str) -> NewRun {
        NewRun {
            id: RunId(Uuid::from_u128(n)),
            dry_run: false,
            entity: BackfillEntity::All,
            company_id: Some(CompanyId::stable("acme")),
            start_date: Some("2024-01-01".parse().expect("date")),
            end_date: Some("2024-06-30".parse().expect("date")),
            only_unassociated: true,
            batch_size: 500,
            created_at: at(created_at),
        }
    }

    /// Runs are inserted pending with zeroed statistics, read back as written, listed newest first, and saved only
    /// under a matching guard; the table's checks are named errors.
    pub async fn runs_are_stored_listed_and_saved_under_their_guard(store: &Store) {
        let first = store
            .insert_run(&new_run(1, "2025-01-01T00:00:00Z"))
            .await
            .expect("insert");
        assert_eq!(first, RunRecord::new(&new_run(1, "2025-01-01T00:00:00Z")));
        assert_eq!(first.status, BatchStatus::Pending);
        assert_eq!(
            serde_json::to_value(&first.stats).expect("json")["scanned"],
            json!(0)
        );
        store
            .insert_run(&new_run(2, "2025-01-02T00:00:00Z"))
            .await
            .expect("insert");
        let listed: Vec<u128> = store
            .list_runs(None)
            .await
            .expect("list")
            .iter()
            .map(|r| r.id.0.as_u128())
            .collect();
        assert_eq!(listed, [2, 1]);
        assert_eq!(store.list_runs(Some(1)).await.expect("list").len(), 1);

        let mut running = first.clone();
        running.status = BatchStatus::Running;
        running.lease_owner = Some("h:1:a".to_owned());
        running.lease_expires_at = Some(at("2025-01-01T00:01:00Z"));
        running.started_at = Some(at("2025-01-01T00:00:00Z"));
        running.updated_at = at("2025-01-01T00:00:30Z");
        running
            .checkpoint
            .set(ActivityKind::BuddyMatch, activity(21));
        running.stats.count(kintell_ingest::domain::Tally::Review);
        running.stats.score(65);
        assert!(
            store
                .save_run(&running, &RunGuard::of(&first))
                .await
                .expect("save")
        );
        assert_eq!(
            store.get_run(first.id).await.expect("get"),
            Some(running.clone())
        );
        // The guard of the pending row no longer matches; neither does another owner's.
        assert!(
            !store
                .save_run(&first, &RunGuard::of(&first))
                .await
                .expect("save")
        );
        let thief = RunGuard {
            lease_owner: Some("h:2:b".to_owned()),
            status: BatchStatus::Running,
        };
        assert!(!store.save_run(&first, &thief).await.expect("save"));
        let mut unit = store.begin().await.expect("begin");
        let mut done = running.clone();
        done.status = BatchStatus::Completed;
        done.lease_owner = None;
        done.lease_expires_at = None;
        done.completed_at = Some(at("2025-01-01T00:02:00Z"));
        assert!(
            unit.save_run(&done, &RunGuard::of(&running))
                .await
                .expect("save")
        );
        unit.rollback().await.expect("rollback");
        assert_eq!(store.get_run(first.id).await.expect("get"), Some(running));
        assert_eq!(
            store.get_run(RunId(Uuid::from_u128(9))).await.expect("get"),
            None
        );

        let name = |e: StoreError| match e {
            StoreError::Duplicate { .. } => "Duplicate",
            StoreError::Invalid { .. } => "Invalid",
            _ => "other",
        };
        let again = store.insert_run(&new_run(1, "2025-01-03T00:00:00Z")).await;
        assert_eq!(again.map_err(name).err(), Some("Duplicate"));
        let empty = NewRun {
            batch_size: 0,
            ..new_run(3, "2025-01-03T00:00:00Z")
        };
        assert_eq!(
            store.insert_run(&empty).await.map_err(name).err(),
            Some("Invalid")
        );
        let backwards = NewRun {
            start_date: Some("2024-07-01".parse().expect("date")),
            ..new_run(4, "2025-01-03T00:00:00Z")
        };
        assert_eq!(
            store.insert_run(&backwards).await.map_err(name).err(),
            Some("Invalid")
        );
    }

    async fn page_ids(
        store: &Store,
        kind: ActivityKind,
        after: Option<u128>,
        filter: &BackfillFilter,
        limit: u32,
    ) -> Vec<u128> {
        let mut unit = store.begin().await.expect("begin");
        let rows = unit
            .backfill_page(kind, after.map(activity), filter, limit)
            .await
            .expect("page");
        unit.rollback().await.expect("rollback");
        let count = store
            .count_backfill(kind, after.map(activity), filter)
            .await
            .expect("count");
        assert!(count >= rows.len() as u64, "the count covers the page");
        rows.iter().map(|r| r.id.0.as_u128()).collect()
    }

    /// A page is the rows above the checkpoint by id, at most the limit, filtered by company (the volunteer's,
    /// else the participant's), activity time and association; each with what scoring needs.
    pub async fn backfill_pages_are_keyset_pages_with_what_scoring_needs(store: &Store) {
        seed(store).await;
        let session = ActivityKind::KintellSession;
        let all = BackfillFilter::default();
        assert_eq!(page_ids(store, session, None, &all, 4).await, [1, 2, 3, 4]);
        assert_eq!(
            page_ids(store, session, Some(4), &all, 4).await,
            [5, 6, 7, 8]
        );
        assert_eq!(page_ids(store, session, Some(8), &all, 4).await, [9]);
        assert_eq!(
            page_ids(store, session, Some(9), &all, 4).await,
            Vec::<u128>::new()
        );
        let unassociated = BackfillFilter {
            only_unassociated: true,
            ..all
        };
        assert_eq!(
            page_ids(store, session, None, &unassociated, 100).await,
            [1, 2, 3, 4, 5, 8, 9],
            "accepted and explicit rows are skipped, `none` ones kept"
        );
        let nordic = BackfillFilter {
            company: Some(CompanyId::stable("nordic")),
            ..all
        };
        assert_eq!(page_ids(store, session, None, &nordic, 100).await, [9]);
        assert_eq!(
            page_ids(store, ActivityKind::BuddyMatch, None, &nordic, 100).await,
            [21, 22]
        );
        let acme = BackfillFilter {
            company: Some(CompanyId::stable("acme")),
            ..all
        };
        assert_eq!(
            page_ids(store, ActivityKind::CourseCompletion, None, &acme, 100).await,
            [31],
            "a completion's company is its learner's"
        );
        let march = BackfillFilter {
            from: Some(at("2024-03-02T00:00:00Z")),
            until: Some(at("2024-03-03T10:00:00Z")),
            ..all
        };
        assert_eq!(
            page_ids(store, session, None, &march, 100).await,
            [2],
            "from inclusive, until exclusive"
        );
        let counted = store
            .count_backfill(session, Some(activity(2)), &unassociated)
            .await
            .expect("count");
        assert_eq!(counted, 5);

        let mut unit = store.begin().await.expect("begin");
        let rows = unit
            .backfill_page(session, Some(activity(5)), &all, 2)
            .await
            .expect("page");
        let matches = unit
            .backfill_page(ActivityKind::BuddyMatch, None, &all, 1)
            .await
            .expect("page");
        let completions = unit
            .backfill_page(ActivityKind::CourseCompletion, None, &all, 1)
            .await
            .expect("page");
        unit.rollback().await.expect("rollback");
        let mut out = String::new();
        for r in rows.iter().chain(&matches).chain(&completions) {
            writeln!(
                out,
                "{} {} {} {} p={} {:?} {:?} v={:?} {:?} link={} stored={:?}/{}/{}",
                r.id.0.as_u128(),
                r.kind,
                r.program,
                r.at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                name_of_user(r.participant_id),
                r.participant_company.map(|_| "company"),
                r.participant_tags
                    .as_slice()
                    .iter()
                    .map(|t| t.as_str())
                    .collect::<Vec<_>>(),
                r.volunteer_id.map(name_of_user),
                r.volunteer_company
                    .map(|c| if c == CompanyId::stable("acme") {
                        "acme"
                    } else {
                        "nordic"
                    }),
                name_of_instance(r.program_instance_id),
                r.association.decision,
                name_of_campaign(r.association.campaign),
                name_of_instance(r.association.instance),
            )
            .expect("write");
        }
        expect![[r#"
            6 kintell_session mentors_ukraine 2024-07-01T10:00:00+00:00 p=anna None ["refugees"] v=Some("maria") Some("acme") link=mentors-2024 stored=Some(Accepted)/acme-mentors/mentors-2024
            7 kintell_session mentors_ukraine 2024-08-01T10:00:00+00:00 p=anna None ["refugees"] v=Some("maria") Some("acme") link=open-2024 stored=Some(Explicit)/acme-open/open-2024
            21 buddy_match buddy 2024-05-01T10:00:00+00:00 p=anna None ["refugees"] v=Some("lars") Some("nordic") link=- stored=None/-/-
            31 course_completion upskilling 2024-06-01T10:00:00+00:00 p=kate Some("company") ["refugees"] v=None None link=- stored=None/-/-
        "#]]
        .assert_eq(&out);
    }

    /// Links many activities at once (a repeated id takes its last instance); counts the rows that exist; an
    /// unknown instance is a missing reference. Enrolments are read per instance.
    pub async fn activities_are_linked_in_one_call(store: &Store) {
        seed(store).await;
        let session = ActivityKind::KintellSession;
        let mut unit = store.begin().await.expect("begin");
        let found = unit
            .set_activity_instances(
                session,
                &[
                    (activity(1), instance("open-2024")),
                    (activity(2), instance("open-2024")),
                    (activity(1), instance("mentors-2024")),
                    (activity(99), instance("open-2024")),
                ],
            )
            .await
            .expect("links");
        assert_eq!(found, 2);
        unit.commit().await.expect("commit");
        let link = |n| async move {
            store
                .activity_lineage(session, activity(n))
                .await
                .expect("lineage")
                .and_then(|l| l.program_instance_id)
        };
        assert_eq!(link(1).await, Some(instance("mentors-2024")));
        assert_eq!(link(2).await, Some(instance("open-2024")));
        assert_eq!(link(3).await, None);
        let mut unit = store.begin().await.expect("begin");
        let unknown = InstanceId(Uuid::from_u128(5));
        let refused = unit
            .set_activity_instances(session, &[(activity(3), unknown)])
            .await;
        assert!(
            matches!(refused, Err(StoreError::MissingReference { .. })),
            "{refused:?}"
        );
        unit.rollback().await.expect("rollback");
        assert!(
            store
                .enrollments_of(instance("mentors-2024"))
                .await
                .expect("enrolments")
                .is_empty()
        );
    }

    // ---- whole runs ---------------------------------------------------------------------------------------------

    /// A default run associates the rows without an association (or with `none`), links and enrols for `auto`,
    /// leaves human and explicit decisions alone, and counts every row once.
    pub async fn a_run_associates_links_enrols_and_counts(store: &Store) {
        seed(store).await;
        check_run(
            store,
            BackfillOptions::default().batch_size(2),
            expect!["scanned 11 unchanged 1 auto 5 review 2 ignored 0 none_no_company 2 none_no_candidates 1 errors 0 avg 90.71 histogram [0, 0, 0, 0, 0, 0, 1, 0, 0, 6]"],
            expect![[r#"
                 1 link mentors-2024 auto acme-mentors mentors-2024 100 [company_match,date_in_window,tags_full,status_active,instance_on_date,capped] v1
                 2 link open-2024    auto acme-open open-2024 90 [company_match,date_in_window,tags_untargeted,status_active,instance_on_date] v1
                 3 link -            none - - 0 [no_company] v1
                 4 link -            none - - 0 [no_candidates] v1
                 5 link open-2024    auto acme-open open-2024 90 [company_match,date_in_window,tags_untargeted,status_active,instance_on_date] v1
                 6 link mentors-2024 accepted acme-mentors mentors-2024 70 [fixture] v0
                 7 link open-2024    explicit acme-open open-2024 100 [fixture] v0
                 8 link mentors-2024 auto acme-mentors mentors-2024 100 [company_match,date_in_window,tags_full,status_active,instance_on_date,capped] v1
                 9 link -            none - - 0 [fixture] v0
                21 link -            review nordic-buddy - 100 [company_match,date_in_window,tags_full,status_recruiting,capped,no_instance] v1
                22 link -            review nordic-buddy - 65 [company_match,date_in_window,status_recruiting,no_instance,no_tag_evidence] v1
                31 link open-2024    auto acme-open open-2024 90 [company_match,date_in_window,tags_untargeted,status_active,instance_on_date] v1
                32 link -            none - - 0 [no_company] v1
                enrolled mentors-2024 anna participant mentors_ukraine 2024-03-01
                enrolled mentors-2024 maria volunteer mentors_ukraine 2024-03-01
                enrolled open-2024 anna participant upskilling 2024-04-01
                enrolled open-2024 kate participant upskilling 2024-06-01
                enrolled open-2024 maria volunteer upskilling 2024-03-02
                enrolled open-2024 olek participant upskilling 2024-03-02
            "#]],
        )
        .await;
        let runs = store.list_runs(None).await.expect("runs");
        let run = runs.first().expect("the run");
        assert_eq!(
            store
                .association_for(ActivityKind::KintellSession, activity(1))
                .await
                .expect("association")
                .and_then(|a| a.run_id),
            Some(run.id)
        );
        assert_eq!(
            serde_json::to_value(run.checkpoint).expect("json"),
            json!({
                "sessions": activity(9), "matches": activity(22), "completions": activity(32)
            })
        );
        let keys: Vec<String> = serde_json::to_value(&run.stats)
            .expect("json")
            .as_object()
            .expect("an object")
            .keys()
            .cloned()
            .collect();
        expect![[r#"["auto", "avg_confidence", "errors", "histogram", "ignored", "none_no_candidates", "none_no_company", "review", "scanned", "unchanged"]"#]]
            .assert_eq(&format!("{keys:?}"));
    }

    /// Re-running over every row changes nothing (every row unchanged, nothing rewritten); another policy time
    /// zone moves one date out of every campaign: its association becomes `none` but its link stays.
    pub async fn reruns_change_only_what_changed_and_never_unlink(store: &Store) {
        seed(store).await;
        let first = backfill(store)
            .run(BackfillOptions::default())
            .await
            .expect("first run");
        let before = state(store).await;
        let again = backfill(store)
            .run(BackfillOptions::default().all_rows())
            .await
            .expect("second run");
        expect!["scanned 13 unchanged 13 auto 0 review 0 ignored 0 none_no_company 0 none_no_candidates 0 errors 0 avg 90.71 histogram [0, 0, 0, 0, 0, 0, 1, 0, 0, 6]"]
            .assert_eq(&stats_line(&again));
        assert_eq!(state(store).await, before);
        let kept = store
            .association_for(ActivityKind::KintellSession, activity(1))
            .await
            .expect("association")
            .and_then(|a| a.run_id);
        assert_eq!(
            kept,
            Some(first.id),
            "an unchanged association is not rewritten"
        );

        let east = TimeZoneOffset::parse("+02:00").expect("offset");
        let moved = backfill(store)
            .run(BackfillOptions::default().all_rows().policy_timezone(east))
            .await
            .expect("third run");
        expect!["scanned 13 unchanged 12 auto 0 review 0 ignored 0 none_no_company 0 none_no_candidates 1 errors 0 avg 89.17 histogram [0, 0, 0, 0, 0, 0, 1, 0, 0, 5]"]
            .assert_eq(&stats_line(&moved));
        let after = state(store).await;
        let line8 = after
            .lines()
            .find(|l| l.starts_with(" 8 "))
            .unwrap_or_default();
        assert_eq!(line8, " 8 link mentors-2024 none - - 0 [no_candidates] v1");
    }

    /// The company and date filters narrow a run; an unknown company and bad options are refused before any
    /// run is recorded.
    pub async fn filters_narrow_a_run_and_bad_options_are_refused(store: &Store) {
        seed(store).await;
        let nordic = backfill(store)
            .run(BackfillOptions::default().company(Key::parse("nordic").expect("key")))
            .await
            .expect("nordic");
        expect!["scanned 3 unchanged 1 auto 0 review 2 ignored 0 none_no_company 0 none_no_candidates 0 errors 0 avg 82.50 histogram [0, 0, 0, 0, 0, 0, 1, 0, 0, 1]"]
            .assert_eq(&stats_line(&nordic));
        assert_eq!(nordic.company_id, Some(CompanyId::stable("nordic")));
        let march = backfill(store)
            .run(
                BackfillOptions::default()
                    .entity(BackfillEntity::Sessions)
                    .start_date("2024-03-02".parse().expect("date"))
                    .end_date("2024-03-03".parse().expect("date")),
            )
            .await
            .expect("march");
        expect!["scanned 2 unchanged 0 auto 1 review 0 ignored 0 none_no_company 1 none_no_candidates 0 errors 0 avg 90.00 histogram [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]"]
            .assert_eq(&stats_line(&march));
        let b = backfill(store);
        let unknown = b
            .run(BackfillOptions::default().company(Key::parse("nope").expect("key")))
            .await;
        assert!(
            matches!(unknown, Err(BackfillError::UnknownCompany(_))),
            "{unknown:?}"
        );
        let zero = b.run(BackfillOptions::default().batch_size(0)).await;
        assert!(
            matches!(zero, Err(BackfillError::InvalidOption(_))),
            "{zero:?}"
        );
        let backwards = b
            .run(
                BackfillOptions::default()
                    .start_date("2024-03-02".parse().expect("date"))
                    .end_date("2024-03-01".parse().expect("date")),
            )
            .await;
        assert!(
            matches!(backwards, Err(BackfillError::InvalidOption(_))),
            "{backwards:?}"
        );
        assert_eq!(store.list_runs(None).await.expect("runs").len(), 2);
    }

    /// A checksum of every table a backfill may write, read through SQL (`None` on the in-memory store).
    async fn tables_checksum(store: &Store) -> Option<String> {
        const TABLES: [&str; 5] = [
            "activity_associations",
            "kintell_sessions",
            "buddy_matches",
            "learning_progress",
            "program_enrollments",
        ];
        let db = store.database()?;
        let mut out = String::new();
        if let Some(pool) = db.as_postgres() {
            for table in TABLES {
                let sum: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
                )))
                .fetch_one(pool)
                .await
                .expect("checksum");
                writeln!(out, "{table} {sum}").expect("write");
            }
        }
        if let Some(pool) = db.as_sqlite() {
            for table in TABLES {
                let columns: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT name FROM pragma_table_info('{table}')"
                )))
                .fetch_all(pool)
                .await
                .expect("columns");
                let row = columns
                    .iter()
                    .map(|c| format!("quote(\"{c}\")"))
                    .collect::<Vec<_>>()
                    .join(" || ',' || ");
                let all: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT group_concat(r, '|') FROM (SELECT {row} AS r FROM {table} ORDER BY 1)"
                )))
                .fetch_one(pool)
                .await
                .expect("checksum");
                writeln!(out, "{table} {}", all.unwrap_or_default()).expect("write");
            }
        }
        Some(out)
    }

    /// A dry run is recorded as a run with its statistics and a sample of the changes it would make, and writes
    /// nothing else; its statistics are those of the real run that follows.
    pub async fn a_dry_run_writes_nothing_but_its_run(store: &Store) {
        seed(store).await;
        let (before, sums) = (state(store).await, tables_checksum(store).await);
        let dry = backfill(store)
            .run(BackfillOptions::default().dry_run(true).batch_size(3))
            .await
            .expect("dry run");
        assert!(dry.dry_run);
        assert_eq!(dry.status, BatchStatus::Completed);
        assert_eq!(state(store).await, before);
        assert_eq!(tables_checksum(store).await, sums);
        assert_eq!(
            store.get_run(dry.id).await.expect("get").as_ref(),
            Some(&dry)
        );
        let sample = dry.stats.sample.clone().unwrap_or_default();
        assert_eq!(sample.len() as u64, dry.stats.scanned - dry.stats.unchanged);
        let first = sample.first().expect("a change");
        assert_eq!(
            (
                first.activity_kind,
                first.activity_id,
                first.before,
                first.after
            ),
            (
                ActivityKind::KintellSession,
                activity(1),
                AssociationState::default(),
                AssociationState {
                    decision: Some(Decision::Auto),
                    campaign: Some(CampaignId::stable("acme-mentors")),
                    instance: Some(instance("mentors-2024")),
                }
            )
        );
        let json = serde_json::to_value(&dry.stats).expect("json");
        assert_eq!(
            json["sample"][0]["before"],
            json!({"decision": null, "campaign": null, "instance": null})
        );
        let real = backfill(store)
            .run(BackfillOptions::default())
            .await
            .expect("real run");
        assert_eq!(stats_line(&real), stats_line(&dry));
        assert_eq!(real.stats.sample, None);
        assert_ne!(state(store).await, before);
    }

    /// How the fixture is brought back to its state before any backfill: a new memory store, or the SQL tables
    /// emptied of what a backfill writes and the earlier decisions stored again.
    async fn reset(store: &Store) -> Store {
        let Some(db) = store.database() else {
            let fresh = Store::memory();
            seed(&fresh).await;
            return fresh;
        };
        let statements = [
            "DELETE FROM activity_associations",
            "DELETE FROM program_enrollments",
            "DELETE FROM association_runs",
            "UPDATE kintell_sessions SET program_instance_id = NULL",
            "UPDATE buddy_matches SET program_instance_id = NULL",
            "UPDATE learning_progress SET program_instance_id = NULL",
        ];
        for sql in statements {
            if let Some(pool) = db.as_postgres() {
                sqlx::query(sql).execute(pool).await.expect("reset");
            }
            if let Some(pool) = db.as_sqlite() {
                sqlx::query(sql).execute(pool).await.expect("reset");
            }
        }
        decisions(store).await;
        store.clone()
    }

    /// How injected failures go on.
    #[derive(Debug, Clone, Copy)]
    enum Mode {
        /// One call fails.
        Once,
        /// Every call from one on fails, as for a process that crashed there.
        Crash,
    }

    /// A run that fails at any call — once, or for good as a crashed process would — and is then resumed (or, when
    /// it failed before its run was recorded, started again) ends with the state and statistics of an
    /// uninterrupted run.
    pub async fn a_run_resumed_after_a_failure_at_any_call_ends_as_an_uninterrupted_one(
        store: &Store,
    ) {
        seed(store).await;
        let options = BackfillOptions::default().batch_size(2);
        let reference = backfill(store)
            .run(options.clone())
            .await
            .expect("reference run");
        let expected = (state(store).await, stats_line(&reference));
        let modes: &[Mode] = if store.database().is_some() {
            &[Mode::Crash]
        } else {
            &[Mode::Crash, Mode::Once]
        };
        for &mode in modes {
            let mut n = 1;
            loop {
                let store = reset(store).await;
                let probe = Probe::new(store.clone());
                match mode {
                    Mode::Once => probe.fail_at(n),
                    Mode::Crash => probe.crash_at(n),
                }
                let first = backfill(&probe.store()).run(options.clone()).await;
                if let Ok(run) = first {
                    // The failure was absorbed (a rollback's), or N is past the last call of a run.
                    assert_eq!(
                        (state(&store).await, stats_line(&run)),
                        expected,
                        "{mode:?} at call {n}"
                    );
                    if n > probe.calls().len() {
                        assert!(n > 20, "{mode:?}: a run makes more calls than {n}");
                        break;
                    }
                    n += 1;
                    continue;
                }
                let later = at(T0) + TimeDelta::minutes(5);
                let resumer = Backfill::new(store.clone())
                    .clock(fixed(later))
                    .host("worker-b");
                let runs = store.list_runs(None).await.expect("runs");
                let done = match runs.first() {
                    Some(run) => {
                        let resumed = resumer.resume(run.id).await;
                        let resumed = resumed
                            .unwrap_or_else(|e| panic!("{mode:?} at call {n}: resume failed: {e}"));
                        assert_eq!(resumed.id, run.id);
                        resumed
                    }
                    None => resumer.run(options.clone()).await.expect("a new run"),
                };
                assert_eq!(done.status, BatchStatus::Completed, "{mode:?} at call {n}");
                assert_eq!(
                    (state(&store).await, stats_line(&done)),
                    expected,
                    "{mode:?} at call {n}"
                );
                n += 1;
            }
        }
    }

    /// The calls of a run: the catalogue once, then per page one call per table, whatever the page's size.
    pub async fn a_page_is_one_call_per_table(store: &Store) {
        seed(store).await;
        let probe = Probe::new(store.clone());
        backfill(&probe.store())
            .run(BackfillOptions::default().batch_size(4))
            .await
            .expect("run");
        expect![[r#"
            load_catalog
            insert_run
            save_run
            prepare_backfill
            count_backfill
            count_backfill
            count_backfill
            begin
              backfill_page
              upsert_associations
              set_activity_instances
              upsert_enrollments
              save_run
              commit
            begin
              backfill_page
              upsert_associations
              set_activity_instances
              upsert_enrollments
              save_run
              commit
            begin
              backfill_page
              upsert_associations
              save_run
              commit
            begin
              backfill_page
              upsert_associations
              set_activity_instances
              upsert_enrollments
              save_run
              commit
            save_run
        "#]]
        .assert_eq(&probe.calls().iter().fold(String::new(), |mut out, call| {
            match call.strip_prefix("uow.") {
                Some(in_unit) => writeln!(out, "  {in_unit}"),
                None => writeln!(out, "{call}"),
            }
            .expect("write");
            out
        }));
    }

    /// A run refreshes the planner's statistics of the tables its pages read before the first page, so a page is
    /// planned from the table's real size even right after a bulk import (PostgreSQL: `ANALYZE`; the other stores
    /// need nothing and the run is the same).
    pub async fn a_run_refreshes_the_planners_statistics_first(store: &Store) {
        seed(store).await;
        let pg = store.database().and_then(|db| db.as_postgres().cloned());
        let analysed = |pool: sqlx::PgPool| async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stats WHERE tablename IN ('kintell_sessions', 'activity_associations', 'users')",
            )
            .fetch_one(&pool)
            .await
            .expect("pg_stats");
            n
        };
        if let Some(pool) = pg.clone() {
            // A few rows, far below autovacuum's thresholds: no statistics yet.
            assert_eq!(analysed(pool).await, 0, "no statistics before the run");
        }
        let run = backfill(store)
            .run(BackfillOptions::default().entity(BackfillEntity::Sessions))
            .await
            .expect("run");
        assert_eq!(run.status, BatchStatus::Completed);
        if let Some(pool) = pg {
            assert!(analysed(pool).await > 0, "the run analysed its tables");
        }
    }

    /// Two workers resuming the same run at the same moment: exactly one runs it, the other is refused.
    pub async fn two_workers_cannot_run_the_same_run(store: &Store) {
        seed(store).await;
        let pending = store
            .insert_run(&NewRun {
                id: RunId(Uuid::now_v7()),
                dry_run: false,
                entity: BackfillEntity::All,
                company_id: None,
                start_date: None,
                end_date: None,
                only_unassociated: true,
                batch_size: 3,
                created_at: at(T0),
            })
            .await
            .expect("run");
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for host in ["worker-a", "worker-b"] {
            let (store, barrier, id) = (store.clone(), Arc::clone(&barrier), pending.id);
            tasks.push(tokio::spawn(async move {
                let b = backfill(&store).host(host);
                barrier.wait().await;
                b.resume(id).await
            }));
        }
        let mut won = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(run) => {
                    won += 1;
                    assert_eq!(run.status, BatchStatus::Completed);
                }
                Err(BackfillError::Busy { .. } | BackfillError::NotResumable { .. }) => {}
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
        assert_eq!(won, 1);
        expect!["scanned 11 unchanged 1 auto 5 review 2 ignored 0 none_no_company 2 none_no_candidates 1 errors 0 avg 90.71 histogram [0, 0, 0, 0, 0, 0, 1, 0, 0, 6]"]
            .assert_eq(&stats_line(&store.get_run(pending.id).await.expect("get").expect("run")));
    }

    /// A pid no process has: a child that has exited.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    }

    /// A running run held by `owner` until `until`, at its start.
    async fn held(store: &Store, n: u128, owner: &str, until: DateTime<Utc>) -> RunRecord {
        let pending = store
            .insert_run(&NewRun {
                id: RunId(Uuid::from_u128(n)),
                dry_run: true,
                entity: BackfillEntity::Matches,
                company_id: None,
                start_date: None,
                end_date: None,
                only_unassociated: true,
                batch_size: 10,
                created_at: at(T0),
            })
            .await
            .expect("run");
        let running = RunRecord {
            status: BatchStatus::Running,
            lease_owner: Some(owner.to_owned()),
            lease_expires_at: Some(until),
            started_at: Some(at(T0)),
            ..pending.clone()
        };
        assert!(
            store
                .save_run(&running, &RunGuard::of(&pending))
                .await
                .expect("hold")
        );
        running
    }

    /// A live lease of another worker refuses a resume; an expired one, or one held by a dead process of this
    /// host, is taken over. Completed runs are not resumed.
    pub async fn expired_or_dead_holders_are_taken_over(store: &Store) {
        seed(store).await;
        let t0 = at(T0);
        let alive = held(store, 1, "elsewhere:1:n", t0 + TimeDelta::seconds(60)).await;
        let early = Backfill::new(store.clone())
            .clock(fixed(t0 + TimeDelta::seconds(30)))
            .host("here");
        let refused = early.resume(alive.id).await;
        assert!(
            matches!(&refused, Err(BackfillError::Busy { owner, .. }) if owner == "elsewhere:1:n"),
            "{refused:?}"
        );
        let late = Backfill::new(store.clone())
            .clock(fixed(t0 + TimeDelta::seconds(60)))
            .host("here");
        let taken = late.resume(alive.id).await.expect("taken over at expiry");
        assert_eq!(
            (taken.status, taken.stats.review),
            (BatchStatus::Completed, 2)
        );
        let again = late.resume(alive.id).await;
        assert!(
            matches!(
                again,
                Err(BackfillError::NotResumable {
                    status: BatchStatus::Completed,
                    ..
                })
            ),
            "{again:?}"
        );

        if !std::path::Path::new("/proc/self").exists() {
            println!("skipped: the dead-holder check needs /proc");
            return;
        }
        let dead = held(
            store,
            2,
            &format!("here:{}:n", dead_pid()),
            t0 + TimeDelta::hours(1),
        )
        .await;
        let taken = early
            .resume(dead.id)
            .await
            .expect("a dead holder is taken over at once");
        assert_eq!(taken.status, BatchStatus::Completed);
        let mine = held(
            store,
            3,
            &format!("here:{}:n", std::process::id()),
            t0 + TimeDelta::hours(1),
        )
        .await;
        assert!(
            matches!(early.resume(mine.id).await, Err(BackfillError::Busy { .. })),
            "a live process keeps its run"
        );
        assert!(matches!(
            early.resume(RunId(Uuid::from_u128(99))).await,
            Err(BackfillError::NotFound(_))
        ));
    }
}
