//! The review queue and campaign metrics, as a contract every store passes (instantiated in `stores.rs`).

pub mod contract {
    use chrono::{DateTime, Utc};
    use kintell_ingest::catalog::CatalogImport;
    use kintell_ingest::domain::{
        ActivityId, ActivityKind, Association, AssociationId, BatchId, CampaignId, CompanyId,
        Confidence, CourseId, Decision, DurationMinutes, Email, Enrollment, EnrollmentRole,
        EntityKind, ImportMethod, InstanceId, Key, NewBatch, ProgramSlug, ProgramType, Provider,
        RowSource, SessionId, SessionRow, SessionType, SessionWrite, UserId,
    };
    use kintell_ingest::domain::{CompletionKey, CompletionRow, CompletionWrite};
    use kintell_ingest::ports::{ReviewFilter, UpsertCounts};
    use kintell_ingest::reports::{CapacityBasis, Reports};
    use kintell_ingest::review::{ReviewError, ReviewQuery, ReviewQueue};
    use kintell_ingest::store::Store;
    use serde_json::json;
    use uuid::Uuid;

    const CATALOGUE: &str = r#"{
      "companies": [{"key": "acme", "name": "Acme AS"}, {"key": "nordic", "name": "Nordic ASA"}],
      "beneficiary_groups": [{"key": "ua", "name": "Ukrainian refugees", "group_type": "refugees",
                              "tags": ["refugees"]}],
      "campaigns": [
        {"key": "acme-mentors", "name": "Acme mentors", "company": "acme", "beneficiary_group": "ua",
         "program_type": "mentors_ukraine", "start_date": "2024-01-01", "end_date": "2024-12-31",
         "status": "active", "max_sessions": 2},
        {"key": "acme-courses", "name": "Acme courses", "company": "acme", "beneficiary_group": "ua",
         "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "active",
         "target_beneficiaries": 4},
        {"key": "nordic-mentors", "name": "Nordic mentors", "company": "nordic", "beneficiary_group": "ua",
         "start_date": "2024-01-01", "end_date": "2024-12-31", "status": "active"}
      ],
      "program_instances": [
        {"slug": "mentors-q3", "campaign": "acme-mentors", "program_type": "mentors_ukraine",
         "program_name": "Mentors Q3", "start_date": "2024-07-01", "end_date": "2024-09-30"},
        {"slug": "mentors-q4", "campaign": "acme-mentors", "program_type": "mentors_ukraine",
         "program_name": "Mentors Q4", "start_date": "2024-10-01", "end_date": "2024-12-31"},
        {"slug": "courses-2024", "campaign": "acme-courses", "program_type": "upskilling",
         "program_name": "Courses 2024", "start_date": "2024-01-01"},
        {"slug": "nordic-2024", "campaign": "nordic-mentors", "program_type": "mentors_ukraine",
         "program_name": "Nordic 2024", "start_date": "2024-01-01"}
      ],
      "users": [
        {"email": "anna@example.com", "role": "participant", "tags": ["refugees"]},
        {"email": "olek@example.com", "role": "participant", "tags": ["refugees"]},
        {"email": "maria@acme.example", "role": "volunteer", "company": "acme"}
      ]
    }"#;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn user(email: &str) -> UserId {
        UserId::stable(&Email::parse(email).expect("email"))
    }

    fn slug(s: &str) -> ProgramSlug {
        ProgramSlug::parse(s).expect("slug")
    }

    fn instance(s: &str) -> InstanceId {
        InstanceId::stable(&slug(s))
    }

    fn campaign(key: &str) -> CampaignId {
        CampaignId::stable(key)
    }

    const BATCH: BatchId = BatchId(Uuid::from_u128(7));

    fn session(
        n: u128,
        participant: &str,
        minutes: u16,
        when: &str,
        linked: Option<&str>,
    ) -> SessionWrite {
        SessionWrite {
            id: ActivityId(Uuid::from_u128(n)),
            row: SessionRow {
                session_id: SessionId::parse(&format!("s-{n}")).expect("id"),
                session_type: SessionType::Mentorship,
                participant_email: Email::parse(participant).expect("email"),
                volunteer_email: Email::parse("maria@acme.example").expect("email"),
                scheduled_at: at(when),
                completed_at: Some(at(when)),
                duration_minutes: Some(
                    DurationMinutes::parse(&minutes.to_string()).expect("minutes"),
                ),
                rating: None,
                feedback_text: None,
                language_level: None,
                topics: None,
                metadata: None,
                program_ref: None,
            },
            participant_id: user(participant),
            volunteer_id: user("maria@acme.example"),
            program_instance_id: linked.map(instance),
            source: RowSource {
                batch_id: BATCH,
                source_row_number: n as i64,
            },
            now: at("2024-12-01T00:00:00Z"),
        }
    }

    fn association(
        n: u128,
        kind: ActivityKind,
        activity: u128,
        decision: Decision,
        campaign_key: Option<&str>,
        proposed: Option<&str>,
    ) -> Association {
        Association {
            id: AssociationId(Uuid::from_u128(1000 + n)),
            activity_kind: kind,
            activity_id: ActivityId(Uuid::from_u128(activity)),
            campaign_id: campaign_key.map(campaign),
            program_instance_id: proposed.map(instance),
            confidence: Confidence::new(70).expect("confidence"),
            decision,
            reasons: json!([{"code": "company_match", "points": 30, "detail": "acme"}]),
            policy_version: "v1".to_owned(),
            candidates: json!([{"campaign": "acme-mentors", "total": 70, "confidence": 70}]),
            batch_id: Some(BATCH),
            run_id: None,
            decided_by: None,
            decided_at: None,
        }
    }

    /// The catalogue; sessions 1 (linked to mentors-q4, 90 min), 2 (Sep, 60 min, review → mentors-q3), 3 (Nov,
    /// review → mentors-q4, already linked to it), 4 (Nov, review without instance); a completion 5 linked to
    /// courses-2024 (review → courses-2024 was decided before: auto).
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
                total_rows: 5,
                csv_metadata: json!({}),
                imported_by_service: None,
                created_at: at("2024-12-01T00:00:00Z"),
            })
            .await
            .expect("batch");
        let mut unit = store.begin().await.expect("begin");
        unit.upsert_sessions(&[
            session(
                1,
                "anna@example.com",
                90,
                "2024-10-15T10:00:00Z",
                Some("mentors-q4"),
            ),
            session(2, "olek@example.com", 60, "2024-09-10T10:00:00Z", None),
            session(
                3,
                "olek@example.com",
                45,
                "2024-11-02T10:00:00Z",
                Some("mentors-q4"),
            ),
            session(4, "anna@example.com", 30, "2024-11-20T10:00:00Z", None),
        ])
        .await
        .expect("sessions");
        unit.upsert_completions(&[CompletionWrite {
            id: ActivityId(Uuid::from_u128(5)),
            row: CompletionRow {
                user_email: Email::parse("olek@example.com").expect("email"),
                provider: Provider::parse("coursera").expect("provider"),
                course_id: CourseId::parse("ML-1").expect("course"),
                course_name: None,
                completed_at: at("2024-06-01T00:00:00Z"),
                final_score: None,
                credential_ref: None,
            },
            key: CompletionKey {
                user_id: user("olek@example.com"),
                provider: Provider::parse("coursera").expect("provider"),
                course_id: CourseId::parse("ML-1").expect("course"),
            },
            program_instance_id: Some(instance("courses-2024")),
            source: RowSource {
                batch_id: BATCH,
                source_row_number: 5,
            },
            now: at("2024-12-01T00:00:00Z"),
        }])
        .await
        .expect("completions");
        let session = ActivityKind::KintellSession;
        unit.upsert_associations(&[
            association(
                1,
                session,
                1,
                Decision::Explicit,
                Some("acme-mentors"),
                Some("mentors-q4"),
            ),
            association(
                2,
                session,
                2,
                Decision::Review,
                Some("acme-mentors"),
                Some("mentors-q3"),
            ),
            association(
                3,
                session,
                3,
                Decision::Review,
                Some("acme-mentors"),
                Some("mentors-q4"),
            ),
            association(4, session, 4, Decision::Review, Some("acme-mentors"), None),
            association(
                5,
                ActivityKind::CourseCompletion,
                5,
                Decision::Auto,
                Some("acme-courses"),
                Some("courses-2024"),
            ),
        ])
        .await
        .expect("associations");
        unit.commit().await.expect("commit");
    }

    fn ids(items: &[kintell_ingest::ports::ReviewItem]) -> Vec<u128> {
        items
            .iter()
            .map(|i| i.association.id.uuid().as_u128() - 1000)
            .collect()
    }

    pub async fn review_queue_lists_pending_items_filtered_oldest_first(store: &Store) {
        seed(store).await;
        let all = store
            .list_reviews(&ReviewFilter::default())
            .await
            .expect("list");
        assert_eq!(ids(&all), [2, 3, 4], "oldest activity first");
        let first = &all[0];
        assert_eq!(first.activity.participant_id, user("olek@example.com"));
        assert_eq!(
            first.activity.volunteer_id,
            Some(user("maria@acme.example"))
        );
        assert_eq!(first.activity.at, Some(at("2024-09-10T10:00:00Z")));
        assert_eq!(first.activity.program_instance_id, None);
        assert_eq!(
            all[1].activity.program_instance_id,
            Some(instance("mentors-q4"))
        );

        let filtered =
            |f: ReviewFilter| async move { ids(&store.list_reviews(&f).await.expect("list")) };
        let nov = ReviewFilter {
            from: Some("2024-11-02".parse().expect("date")),
            to: Some("2024-11-20".parse().expect("date")),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(nov).await, [3, 4], "both ends inclusive");
        let oct = ReviewFilter {
            to: Some("2024-11-01".parse().expect("date")),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(oct).await, [2]);
        let acme = ReviewFilter {
            company: Some(CompanyId::stable("acme")),
            limit: Some(2),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(acme).await, [2, 3]);
        let nordic = ReviewFilter {
            company: Some(CompanyId::stable("nordic")),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(nordic).await, Vec::<u128>::new());
        let completions = ReviewFilter {
            kind: Some(ActivityKind::CourseCompletion),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(completions).await, Vec::<u128>::new());
        let campaign_filter = ReviewFilter {
            campaign: Some(campaign("acme-mentors")),
            ..ReviewFilter::default()
        };
        assert_eq!(filtered(campaign_filter).await, [2, 3, 4]);

        let views = ReviewQueue::new(store.clone())
            .list_by(&ReviewQuery {
                company: Some(Key::parse("acme").expect("key")),
                ..ReviewQuery::default()
            })
            .await
            .expect("list by keys");
        let shown: Vec<(Option<&str>, Option<&str>)> = views
            .iter()
            .map(|v| {
                (
                    v.campaign.as_ref().map(Key::as_str),
                    v.instance.as_ref().map(ProgramSlug::as_str),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                (Some("acme-mentors"), Some("mentors-q3")),
                (Some("acme-mentors"), Some("mentors-q4")),
                (Some("acme-mentors"), None)
            ]
        );
        let unknown = ReviewQueue::new(store.clone())
            .list_by(&ReviewQuery {
                company: Some(Key::parse("nobody").expect("key")),
                ..ReviewQuery::default()
            })
            .await;
        assert!(matches!(unknown, Err(ReviewError::UnknownCompany(s)) if s == "nobody"));
    }

    /// Enrols the session's people in `slug` again in a unit that is rolled back: both already enrolled means
    /// nothing is inserted.
    async fn enrolled(store: &Store, slug_: &str, participant: &str, at_: &str) -> UpsertCounts {
        let mut unit = store.begin().await.expect("begin");
        let rows: Vec<Enrollment> = [
            (participant, EnrollmentRole::Participant),
            ("maria@acme.example", EnrollmentRole::Volunteer),
        ]
        .into_iter()
        .map(|(email, role)| Enrollment {
            id: Uuid::now_v7(),
            user_id: user(email),
            program_instance_id: instance(slug_),
            program_type: ProgramType::MentorsUkraine,
            role,
            enrolled_at: at(at_),
        })
        .collect();
        let counts = unit.upsert_enrollments(&rows).await.expect("enrol");
        unit.rollback().await.expect("rollback");
        counts
    }

    pub async fn accepting_links_the_activity_enrols_its_people_and_is_final(store: &Store) {
        seed(store).await;
        let queue = ReviewQueue::new(store.clone());
        let id = AssociationId(Uuid::from_u128(1002));
        let now = at("2024-12-02T09:00:00Z");
        let accepted = queue
            .accept(id, None, "  lead@acme.example ", now)
            .await
            .expect("accept");
        assert_eq!(accepted.decision, Decision::Accepted);
        assert_eq!(accepted.program_instance_id, Some(instance("mentors-q3")));
        assert_eq!(accepted.decided_by.as_deref(), Some("lead@acme.example"));
        assert_eq!(accepted.decided_at, Some(now));
        assert_eq!(
            store.get_association(id).await.expect("get"),
            Some(accepted.clone())
        );
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, ActivityId(Uuid::from_u128(2)))
            .await
            .expect("lineage")
            .expect("stored");
        assert_eq!(lineage.program_instance_id, Some(instance("mentors-q3")));
        let again = enrolled(
            store,
            "mentors-q3",
            "olek@example.com",
            "2024-09-10T10:00:00Z",
        )
        .await;
        assert_eq!(
            again,
            UpsertCounts {
                inserted: 0,
                updated: 0,
                unchanged: 2
            },
            "both people enrolled at the activity time"
        );

        let twice = queue.accept(id, None, "someone", now).await;
        assert!(matches!(
            twice,
            Err(ReviewError::NotPending {
                decision: Decision::Accepted,
                ..
            })
        ));
        let reject_after = queue.reject(id, "someone", now).await;
        assert!(matches!(reject_after, Err(ReviewError::NotPending { .. })));
        assert!(
            store
                .list_reviews(&ReviewFilter::default())
                .await
                .expect("list")
                .iter()
                .all(|i| i.association.id != id)
        );
    }

    pub async fn accepting_another_instance_needs_the_same_campaign(store: &Store) {
        seed(store).await;
        let queue = ReviewQueue::new(store.clone());
        let now = at("2024-12-02T09:00:00Z");
        let no_instance = AssociationId(Uuid::from_u128(1004));
        assert!(matches!(
            queue.accept(no_instance, None, "lead", now).await,
            Err(ReviewError::InstanceRequired(id)) if id == no_instance
        ));
        assert!(matches!(
            queue.accept(no_instance, Some(&slug("nordic-2024")), "lead", now).await,
            Err(ReviewError::OtherCampaign { instance }) if instance == "nordic-2024"
        ));
        assert!(matches!(
            queue
                .accept(no_instance, Some(&slug("no-such-instance")), "lead", now)
                .await,
            Err(ReviewError::UnknownInstance(_))
        ));
        assert!(matches!(
            queue
                .accept(no_instance, Some(&slug("mentors-q4")), " ", now)
                .await,
            Err(ReviewError::NoDecider)
        ));
        let unknown = AssociationId(Uuid::from_u128(99));
        assert!(
            matches!(queue.accept(unknown, None, "lead", now).await, Err(ReviewError::NotFound(id)) if id == unknown)
        );
        let pending = store
            .get_association(no_instance)
            .await
            .expect("get")
            .expect("stored");
        assert_eq!(pending.decision, Decision::Review, "refusals write nothing");

        let accepted = queue
            .accept(no_instance, Some(&slug("mentors-q4")), "lead", now)
            .await
            .expect("accept another instance of the campaign");
        assert_eq!(accepted.program_instance_id, Some(instance("mentors-q4")));
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, ActivityId(Uuid::from_u128(4)))
            .await
            .expect("lineage")
            .expect("stored");
        assert_eq!(lineage.program_instance_id, Some(instance("mentors-q4")));
    }

    pub async fn rejecting_unlinks_only_the_proposed_instance(store: &Store) {
        seed(store).await;
        let queue = ReviewQueue::new(store.clone());
        let now = at("2024-12-03T09:00:00Z");
        let linked = |n: u128| async move {
            store
                .activity_lineage(ActivityKind::KintellSession, ActivityId(Uuid::from_u128(n)))
                .await
                .expect("lineage")
                .expect("stored")
                .program_instance_id
        };
        let rejected = queue
            .reject(AssociationId(Uuid::from_u128(1003)), "lead", now)
            .await
            .expect("reject");
        assert_eq!(rejected.decision, Decision::Rejected);
        assert_eq!(rejected.decided_by.as_deref(), Some("lead"));
        assert_eq!(
            rejected.program_instance_id,
            Some(instance("mentors-q4")),
            "the proposal is kept"
        );
        assert_eq!(
            linked(3).await,
            None,
            "linked to the proposed instance: unlinked"
        );
        queue
            .reject(AssociationId(Uuid::from_u128(1002)), "lead", now)
            .await
            .expect("reject");
        assert_eq!(linked(2).await, None);
        assert_eq!(
            linked(1).await,
            Some(instance("mentors-q4")),
            "other activities keep their link"
        );
    }

    pub async fn campaign_metrics_count_linked_activities_and_capacity(store: &Store) {
        seed(store).await;
        let reports = Reports::new(store.clone());
        let all = reports.campaigns(None).await.expect("report");
        let keys: Vec<&str> = all.iter().map(|m| m.key.as_str()).collect();
        assert_eq!(keys, ["acme-courses", "acme-mentors", "nordic-mentors"]);

        let mentors = &all[1];
        assert_eq!(
            (mentors.counts.sessions, mentors.counts.session_minutes),
            (2, 135)
        );
        assert_eq!(
            (mentors.counts.participants, mentors.counts.volunteers),
            (2, 1)
        );
        assert_eq!(mentors.pending_reviews, 3);
        let capacity = mentors.capacity.expect("max_sessions 2");
        assert_eq!(
            (capacity.basis, capacity.used, capacity.limit),
            (CapacityBasis::MaxSessions, 2, 2)
        );
        assert!(capacity.near_capacity && !capacity.over_capacity);
        let per_instance: Vec<(&str, u64)> = mentors
            .instances
            .iter()
            .map(|i| (i.slug.as_str(), i.counts.sessions))
            .collect();
        assert_eq!(per_instance, [("mentors-q3", 0), ("mentors-q4", 2)]);

        let courses = &all[0];
        assert_eq!(
            (
                courses.counts.completions,
                courses.counts.participants,
                courses.counts.volunteers
            ),
            (1, 1, 0)
        );
        let capacity = courses.capacity.expect("target_beneficiaries 4");
        assert_eq!(
            (capacity.basis, capacity.used, capacity.limit),
            (CapacityBasis::TargetBeneficiaries, 1, 4)
        );
        assert_eq!(capacity.utilisation_basis_points, 2500);
        assert!(!capacity.near_capacity);
        assert_eq!(all[2].capacity, None, "no limits");
        assert_eq!(all[2].counts, Default::default());

        // Accepting the September session adds it to mentors-q3 and puts the campaign over capacity.
        ReviewQueue::new(store.clone())
            .accept(
                AssociationId(Uuid::from_u128(1002)),
                None,
                "lead",
                at("2024-12-02T00:00:00Z"),
            )
            .await
            .expect("accept");
        let acme = reports
            .campaigns(Some(&Key::parse("acme").expect("key")))
            .await
            .expect("report");
        assert_eq!(acme.len(), 2);
        let mentors = &acme[1];
        assert_eq!(
            (
                mentors.counts.sessions,
                mentors.counts.session_minutes,
                mentors.pending_reviews
            ),
            (3, 195, 2)
        );
        assert!(mentors.capacity.expect("capacity").over_capacity);
        let q3 = &mentors.instances[0];
        assert_eq!((q3.counts.sessions, q3.counts.participants), (1, 1));
        let unknown = reports
            .campaigns(Some(&Key::parse("nobody").expect("key")))
            .await;
        assert!(unknown.is_err());
    }
}
