//! The store contract: one suite of checks that every store (memory, SQLite, PostgreSQL) must pass.
//!
//! Each check is an `async fn(&Store)` in [`contract`] (and the catalogue import checks in
//! `crate::catalog::contract`); `contract_tests!` turns every check into one test per backend. Adding a backend is
//! one `contract_tests!` line at the bottom of this section.

use kintell_ingest::store::Store;

/// Instantiates every contract check as a test on one backend: `contract_tests!(name => open)`, where `open` is an
/// async closure taking the test's name and returning `Option<(Store, guard)>`. `None` skips the test (the closure
/// has printed `skipped: …`); the guard (a temporary database, say) lives until the test ends. A database
/// backend looks like `contract_tests!(postgres => |test: &'static str| async move { let db =
/// support::fresh_pg(test).await?; let store = …; Some((store, db)) });`.
macro_rules! contract_tests {
    ($backend:ident => $open:expr) => {
        mod $backend {
            use super::*;

            contract_tests!(@each $open; stores: [
                catalogue_upserts_count_each_row_once,
                instance_upserts_keep_created_at,
                look_ups_take_many_keys_and_see_the_units_writes,
                rollback_discards_every_write,
                dropping_a_unit_discards_every_write,
                commit_publishes_every_write_at_once,
                a_failed_write_then_rollback_leaves_nothing,
                constraint_violations_are_named_errors,
                batches_are_inserted_got_and_listed_newest_first,
                batches_are_found_by_hash_and_by_file_name,
                guarded_save_applies_only_when_the_guard_matches,
                one_in_flight_batch_per_entity_and_file,
                batch_counters_are_checked,
                associations_are_upserted_by_activity_and_keep_their_id,
                decided_associations_are_stored_as_their_records,
                human_and_explicit_decisions_are_sticky,
                catalogue_is_loaded_and_found,
                session_upserts_tell_outcomes_and_keep_lineage,
                match_upserts_tell_outcomes_and_keep_lineage,
                completion_upserts_tell_outcomes_and_keep_lineage,
                the_instance_of_an_activity_is_never_cleared,
                activity_writes_name_their_errors,
                user_rows_are_upserted_by_email_with_their_lineage,
                user_rows_name_their_errors,
                enrolments_are_idempotent_and_keep_the_earliest_time,
                row_errors_are_rewritten_and_paged,
                legacy_adoption_is_idempotent,
                large_calls_keep_every_rows_outcome,
                import_writes_are_all_or_nothing,
            ]);
            contract_tests!(@each $open; review: [
                review_queue_lists_pending_items_filtered_oldest_first,
                accepting_links_the_activity_enrols_its_people_and_is_final,
                accepting_another_instance_needs_the_same_campaign,
                rejecting_unlinks_only_the_proposed_instance,
                campaign_metrics_count_linked_activities_and_capacity,
            ]);
            contract_tests!(@each $open; backfill: [
                runs_are_stored_listed_and_saved_under_their_guard,
                backfill_pages_are_keyset_pages_with_what_scoring_needs,
                activities_are_linked_in_one_call,
                a_run_associates_links_enrols_and_counts,
                reruns_change_only_what_changed_and_never_unlink,
                filters_narrow_a_run_and_bad_options_are_refused,
                a_dry_run_writes_nothing_but_its_run,
                a_run_resumed_after_a_failure_at_any_call_ends_as_an_uninterrupted_one,
                a_page_is_one_call_per_table,
                a_run_refreshes_the_planners_statistics_first,
                two_workers_cannot_run_the_same_run,
                expired_or_dead_holders_are_taken_over,
            ]);
            contract_tests!(@each $open; webhooks: [
                deliveries_are_recorded_once_in_the_unit_that_writes_them,
                sessions_are_read_back_with_their_peoples_emails,
                a_completed_session_is_a_one_row_batch_stored_like_a_csv_row,
                a_replayed_delivery_answers_its_recorded_outcome_without_processing,
                a_booking_then_its_completion_is_one_session,
                a_rating_sets_rating_feedback_and_batch,
                a_rating_of_an_unknown_session_is_not_found_and_not_recorded,
                invalid_bodies_answer_the_csv_row_error_codes_and_write_nothing,
            ]);
            contract_tests!(@each $open; catalog: [
                catalog_fixture_imports_and_a_reimport_is_a_no_op,
                catalog_invalid_values_are_reported_with_their_paths,
                catalog_unknown_references_are_reported_with_their_paths,
                catalog_references_resolve_against_the_store,
                catalog_users_keep_fields_the_document_does_not_name,
                catalog_store_error_leaves_nothing_half_written,
                catalog_large_generated_catalogue_imports_in_one_call,
            ]);
        }
    };
    (@each $open:expr; $module:ident: [$($check:ident),* $(,)?]) => {
        $(
            #[tokio::test]
            async fn $check() {
                let open = $open;
                let test: &'static str = concat!(module_path!(), "::", stringify!($check));
                let Some((store, _guard)) = open(test).await else {
                    return;
                };
                crate::$module::contract::$check(&store).await;
            }
        )*
    };
}

contract_tests!(memory => |_test: &'static str| async { Some((Store::memory(), ())) });
#[cfg(feature = "sqlite")]
contract_tests!(sqlite => |_test: &'static str| async {
    let db = crate::support::fresh_sqlite();
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, db))
});
#[cfg(feature = "postgres")]
contract_tests!(postgres => |test: &'static str| async move {
    let db = crate::support::fresh_pg(test).await?;
    let store = Store::connect(&db.url).await.expect("connect");
    store.migrate().await.expect("migrate");
    Some((store, db))
});

/// The checks, each an `async fn(&Store)` on an empty, migrated store.
pub mod contract {
    use chrono::{DateTime, NaiveDate, Utc};
    use expect_test::{Expect, expect};
    use kintell_ingest::association::{DecidedAssociation, DecidedBy};
    use kintell_ingest::domain::{
        ActivityId, ActivityKind, ActivityLineage, Association, AssociationId, BatchId,
        BatchRecord, BatchStatus, BeneficiaryGroup, Campaign, CampaignId, CampaignStatus, Company,
        CompanyId, CompletionKey, CompletionRow, CompletionWrite, Confidence, CourseId, Decision,
        DurationMinutes, Email, Enrollment, EnrollmentRole, EntityKind, FinalScore, GroupId,
        GroupType, ImportMethod, InstanceId, InstanceStatus, Key, LanguageLevel, MatchKey,
        MatchRow, MatchStatus, MatchWrite, Name, NewBatch, PersonName, ProgramInstance,
        ProgramSlug, ProgramType, Provider, Rating, RequestedAction, RowErrorRecord, RowOutcome,
        RowSource, SessionId, SessionRow, SessionType, SessionWrite, StoredRow, Tags, User, UserId,
        UserRole, UserWrite, Written,
    };
    use kintell_ingest::ports::{
        BatchFilter, BatchGuard, StoreError, StoreResult, UnitOfWork, UpsertCounts,
    };
    use kintell_ingest::scoring::{CandidateSummary, Outcome, Reason, ReasonCode};
    use kintell_ingest::store::Store;
    use serde_json::json;
    use std::fmt::Write as _;
    use uuid::Uuid;

    // ---- fixtures -------------------------------------------------------------------------------------------

    /// A date, `YYYY-MM-DD`.
    pub fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    /// A UTC time, RFC 3339; whole seconds, so every backend stores it exactly.
    pub fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    /// A company with the stable id of its slug.
    pub fn company(slug: &str) -> Company {
        Company {
            id: CompanyId::stable(slug),
            slug: Key::parse(slug).expect("slug"),
            name: Name::parse(&format!("{slug} AS")).expect("name"),
        }
    }

    /// A beneficiary group with these tags.
    pub fn group(key: &str, tags: &[&str]) -> BeneficiaryGroup {
        BeneficiaryGroup {
            id: GroupId::stable(key),
            key: Key::parse(key).expect("key"),
            name: Name::parse(&format!("Group {key}")).expect("name"),
            group_type: GroupType::parse("refugees").expect("group type"),
            tags: Tags::from_raw(tags),
            is_active: true,
        }
    }

    /// A campaign of 2024.
    pub fn campaign(key: &str, company: &Company, group: &BeneficiaryGroup) -> Campaign {
        Campaign {
            id: CampaignId::stable(key),
            key: Key::parse(key).expect("key"),
            name: Name::parse(&format!("Campaign {key}")).expect("name"),
            company_id: company.id,
            beneficiary_group_id: group.id,
            program_type: Some(ProgramType::MentorsUkraine),
            start_date: date("2024-01-01"),
            end_date: date("2024-12-31"),
            status: CampaignStatus::Active,
            is_active: true,
            target_volunteers: 10,
            target_beneficiaries: 20,
            max_sessions: Some(500),
        }
    }

    /// An instance of the last quarter of 2024, of the campaign's company.
    pub fn instance(slug: &str, campaign: Option<&Campaign>) -> ProgramInstance {
        let slug = ProgramSlug::parse(slug).expect("slug");
        ProgramInstance {
            id: InstanceId::stable(&slug),
            program_name: Name::parse(&format!("Instance {slug}")).expect("name"),
            slug,
            program_type: ProgramType::MentorsUkraine,
            company_id: campaign.map(|c| c.company_id),
            campaign_id: campaign.map(|c| c.id),
            start_date: date("2024-10-01"),
            end_date: Some(date("2024-12-31")),
            status: InstanceStatus::Active,
            external_system: None,
            created_at: at("2024-09-01T08:00:00Z"),
        }
    }

    /// A volunteer, of `company` if given.
    pub fn user(email: &str, company: Option<&Company>) -> User {
        let email = Email::parse(email).expect("email");
        User {
            id: UserId::stable(&email),
            email,
            role: UserRole::Volunteer,
            first_name: Some(PersonName::parse("Anna").expect("name")),
            last_name: None,
            company_id: company.map(|c| c.id),
            tags: Tags::from_raw(["refugees"]),
            journey_flags: serde_json::Map::new(),
        }
    }

    /// A new sessions batch named `{label}.csv`; `n` orders ids as UUIDv7 would.
    pub fn new_batch(n: u128, label: &str, file_hash: &str, created_at: &str) -> NewBatch {
        NewBatch {
            id: BatchId(Uuid::from_u128(n)),
            file_name: format!("{label}.csv"),
            file_hash: file_hash.to_owned(),
            file_size_bytes: Some(1234),
            entity_kind: EntityKind::KintellSessions,
            format: "kintell-sessions".to_owned(),
            program_type: ProgramType::Kintell,
            program_instance_id: None,
            source_system: "kintell".to_owned(),
            import_method: ImportMethod::CsvUpload,
            total_rows: 10,
            csv_metadata: json!({"header": ["session_id", "date"], "unknown_columns": []}),
            imported_by_service: Some("contract".to_owned()),
            created_at: at(created_at),
        }
    }

    /// `batch` taken by `owner`, running, with `done` rows processed (all inserted).
    pub fn running(batch: &BatchRecord, owner: &str, done: i64) -> BatchRecord {
        BatchRecord {
            status: BatchStatus::Running,
            lease_owner: Some(owner.to_owned()),
            lease_expires_at: Some(at("2024-06-01T12:05:00Z")),
            started_at: Some(at("2024-06-01T12:00:00Z")),
            updated_at: at("2024-06-01T12:01:00Z"),
            last_processed_row: done,
            success_rows: done,
            inserted_rows: done,
            ..batch.clone()
        }
    }

    /// `batch` moved to `status`, lease released.
    pub fn finished(batch: &BatchRecord, status: BatchStatus) -> BatchRecord {
        BatchRecord {
            status,
            lease_owner: None,
            lease_expires_at: None,
            completed_at: Some(at("2024-06-01T13:00:00Z")),
            updated_at: at("2024-06-01T13:00:00Z"),
            last_error: (status == BatchStatus::Failed).then(|| "header is missing".to_owned()),
            ..batch.clone()
        }
    }

    /// An association of session `activity`.
    pub fn association(
        id: u128,
        activity: u128,
        decision: Decision,
        campaign: Option<&Campaign>,
        instance: Option<&ProgramInstance>,
    ) -> Association {
        let human = decision.is_human();
        Association {
            id: AssociationId(Uuid::from_u128(id)),
            activity_kind: ActivityKind::KintellSession,
            activity_id: ActivityId(Uuid::from_u128(activity)),
            campaign_id: campaign.map(|c| c.id),
            program_instance_id: instance.map(|i| i.id),
            confidence: Confidence::new(if decision == Decision::Explicit {
                100
            } else {
                85
            })
            .expect("confidence"),
            decision,
            reasons: json!([{"code": "company_match", "points": 40, "detail": "acme"}]),
            policy_version: "2024.1".to_owned(),
            candidates: json!([]),
            batch_id: None,
            run_id: None,
            decided_by: human.then(|| "reviewer@acme.example".to_owned()),
            decided_at: human.then(|| at("2024-06-02T09:00:00Z")),
        }
    }

    /// One write of a unit of work, or a batch ledger write (a transaction of its own).
    #[expect(
        clippy::large_enum_variant,
        reason = "a handful of test cases; boxing would only add noise to them"
    )]
    pub enum Write {
        /// `upsert_companies`.
        Companies(Vec<Company>),
        /// `upsert_groups`.
        Groups(Vec<BeneficiaryGroup>),
        /// `upsert_campaigns`.
        Campaigns(Vec<Campaign>),
        /// `upsert_instances`.
        Instances(Vec<ProgramInstance>),
        /// `upsert_users`.
        Users(Vec<User>),
        /// `upsert_associations`.
        Associations(Vec<Association>),
        /// `upsert_decided`.
        Decided(Vec<DecidedAssociation>),
        /// `BatchRepository::insert_batch`.
        InsertBatch(NewBatch),
        /// `BatchRepository::save_batch` with the guard of the stored row.
        SaveBatch(BatchRecord),
    }

    /// Applies a unit-of-work write.
    pub async fn apply(unit: &mut dyn UnitOfWork, write: &Write) -> StoreResult<UpsertCounts> {
        match write {
            Write::Companies(rows) => unit.upsert_companies(rows).await,
            Write::Groups(rows) => unit.upsert_groups(rows).await,
            Write::Campaigns(rows) => unit.upsert_campaigns(rows).await,
            Write::Instances(rows) => unit.upsert_instances(rows).await,
            Write::Users(rows) => unit.upsert_users(rows).await,
            Write::Associations(rows) => unit.upsert_associations(rows).await,
            Write::Decided(rows) => unit.upsert_decided(rows).await,
            Write::InsertBatch(_) | Write::SaveBatch(_) => {
                panic!("batch ledger writes are not unit-of-work writes")
            }
        }
    }

    /// Applies unit-of-work writes in one unit and commits; on an error rolls back and returns it.
    pub async fn commit(store: &Store, writes: &[Write]) -> StoreResult<Vec<UpsertCounts>> {
        let mut unit = store.begin().await?;
        let mut counts = Vec::new();
        for w in writes {
            match apply(&mut *unit, w).await {
                Ok(c) => counts.push(c),
                Err(e) => {
                    unit.rollback().await?;
                    return Err(e);
                }
            }
        }
        unit.commit().await?;
        Ok(counts)
    }

    /// Attempts one write on its own (a unit-of-work write is rolled back): `ok`, or the name of the error.
    async fn attempt(store: &Store, write: &Write) -> String {
        let result = match write {
            Write::InsertBatch(b) => store.insert_batch(b).await.map(drop),
            Write::SaveBatch(b) => match store.get_batch(b.id).await {
                Ok(Some(stored)) => store
                    .save_batch(b, &BatchGuard::of(&stored))
                    .await
                    .map(drop),
                Ok(None) => panic!("no stored batch to save over"),
                Err(e) => Err(e),
            },
            other => {
                let mut unit = store.begin().await.expect("begin");
                let r = apply(&mut *unit, other).await.map(drop);
                unit.rollback().await.expect("rollback");
                r
            }
        };
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => error_name(&e).to_owned(),
        }
    }

    /// The variant of a store error, as the contract names it.
    pub fn error_name(e: &StoreError) -> &'static str {
        match e {
            StoreError::Duplicate { .. } => "Duplicate",
            StoreError::Invalid { .. } => "Invalid",
            StoreError::MissingReference { .. } => "MissingReference",
            StoreError::Corrupt { .. } => "Corrupt",
            StoreError::Backend { .. } => "Backend",
        }
    }

    fn counts(c: &UpsertCounts) -> String {
        format!(
            "{} inserted, {} updated, {} unchanged",
            c.inserted, c.updated, c.unchanged
        )
    }

    /// The small catalogue most checks start from: acme (campaign `acme-2024`, instance `acme-q4`, volunteer
    /// anna) and beta (no campaign).
    pub struct Seed {
        /// `acme`.
        pub acme: Company,
        /// `beta`.
        pub beta: Company,
        /// `ua-refugees`.
        pub group: BeneficiaryGroup,
        /// `acme-2024`.
        pub campaign: Campaign,
        /// `acme-q4`.
        pub instance: ProgramInstance,
        /// `anna@acme.example`.
        pub anna: User,
    }

    impl Seed {
        /// Builds the rows without writing them.
        pub fn rows() -> Seed {
            let acme = company("acme");
            let group = group("ua-refugees", &["refugees", "ukrainian"]);
            let campaign = campaign("acme-2024", &acme, &group);
            let instance = instance("acme-q4", Some(&campaign));
            let anna = user("anna@acme.example", Some(&acme));
            Seed {
                acme,
                beta: company("beta"),
                group,
                campaign,
                instance,
                anna,
            }
        }

        /// The writes that store it.
        pub fn writes(&self) -> Vec<Write> {
            vec![
                Write::Companies(vec![self.acme.clone(), self.beta.clone()]),
                Write::Groups(vec![self.group.clone()]),
                Write::Campaigns(vec![self.campaign.clone()]),
                Write::Instances(vec![self.instance.clone()]),
                Write::Users(vec![self.anna.clone()]),
            ]
        }

        /// Builds and commits it.
        pub async fn store(store: &Store) -> Seed {
            let seed = Seed::rows();
            commit(store, &seed.writes()).await.expect("seed");
            seed
        }
    }

    /// Runs labelled writes one by one and compares `label: outcome` lines. Unit-of-work writes are rolled back;
    /// batch ledger writes are transactions of their own and stay when they succeed.
    async fn check_outcomes(store: &Store, cases: Vec<(&str, Write)>, expected: Expect) {
        let mut out = String::new();
        for (label, write) in &cases {
            writeln!(out, "{label}: {}", attempt(store, write).await).expect("write");
        }
        expected.assert_eq(&out);
    }

    // ---- catalogue upserts ------------------------------------------------------------------------------------

    /// Every upsert counts each row once: a first write inserts, the same write again changes nothing, a write
    /// with one changed row, one new and one as stored counts one of each.
    pub async fn catalogue_upserts_count_each_row_once(store: &Store) {
        let s = Seed::rows();
        let gamma = company("gamma");
        let acme_renamed = Company {
            name: Name::parse("Acme Group").expect("name"),
            ..s.acme.clone()
        };
        let refugees = group("refugees", &["refugees"]);
        let group_retagged = BeneficiaryGroup {
            tags: Tags::from_raw(["refugees", "women"]),
            ..s.group.clone()
        };
        let acme_2025 = campaign("acme-2025", &s.acme, &s.group);
        let campaign_paused = Campaign {
            status: CampaignStatus::Paused,
            max_sessions: None,
            ..s.campaign.clone()
        };
        let q1 = instance("acme-q1", Some(&s.campaign));
        let instance_ended = ProgramInstance {
            end_date: Some(date("2024-11-30")),
            ..s.instance.clone()
        };
        let bob = user("bob@acme.example", Some(&s.acme));
        let mut anna_flagged = s.anna.clone();
        anna_flagged
            .journey_flags
            .insert("kintell_source".to_owned(), json!("csv"));

        let rounds = [
            ("first", s.writes()),
            ("again", s.writes()),
            (
                "changed",
                vec![
                    Write::Companies(vec![acme_renamed, s.beta.clone(), gamma]),
                    Write::Groups(vec![group_retagged, refugees]),
                    Write::Campaigns(vec![campaign_paused, acme_2025]),
                    Write::Instances(vec![instance_ended, q1]),
                    Write::Users(vec![anna_flagged.clone(), bob]),
                ],
            ),
        ];
        let mut out = String::new();
        for (label, writes) in &rounds {
            let counts_of = commit(store, writes).await.expect("upserts");
            let kinds = ["companies", "groups", "campaigns", "instances", "users"];
            for (kind, c) in kinds.iter().zip(&counts_of) {
                writeln!(out, "{label} {kind}: {}", counts(c)).expect("write");
            }
        }
        expect![[r#"
            first companies: 2 inserted, 0 updated, 0 unchanged
            first groups: 1 inserted, 0 updated, 0 unchanged
            first campaigns: 1 inserted, 0 updated, 0 unchanged
            first instances: 1 inserted, 0 updated, 0 unchanged
            first users: 1 inserted, 0 updated, 0 unchanged
            again companies: 0 inserted, 0 updated, 2 unchanged
            again groups: 0 inserted, 0 updated, 1 unchanged
            again campaigns: 0 inserted, 0 updated, 1 unchanged
            again instances: 0 inserted, 0 updated, 1 unchanged
            again users: 0 inserted, 0 updated, 1 unchanged
            changed companies: 1 inserted, 1 updated, 1 unchanged
            changed groups: 1 inserted, 1 updated, 0 unchanged
            changed campaigns: 1 inserted, 1 updated, 0 unchanged
            changed instances: 1 inserted, 1 updated, 0 unchanged
            changed users: 1 inserted, 1 updated, 0 unchanged
        "#]]
        .assert_eq(&out);

        let catalog = store.load_catalog().await.expect("load");
        let acme = catalog.companies.iter().find(|c| c.id == s.acme.id);
        assert_eq!(acme.map(|c| c.name.as_str()), Some("Acme Group"));
        let stored = catalog.campaigns.iter().find(|c| c.id == s.campaign.id);
        assert_eq!(
            stored.map(|c| (c.status, c.max_sessions)),
            Some((CampaignStatus::Paused, None))
        );
        let anna = store.user_by_email(&s.anna.email).await.expect("user");
        assert_eq!(anna, Some(anna_flagged));
    }

    /// An instance keeps the `created_at` of its first write; a later write that differs only there is unchanged.
    pub async fn instance_upserts_keep_created_at(store: &Store) {
        let s = Seed::store(store).await;
        let later = at("2025-01-15T10:00:00Z");
        let rewritten = ProgramInstance {
            created_at: later,
            ..s.instance.clone()
        };
        let counted = commit(store, &[Write::Instances(vec![rewritten])])
            .await
            .expect("upsert");
        assert_eq!(counts(&counted[0]), "0 inserted, 0 updated, 1 unchanged");

        let renamed = ProgramInstance {
            program_name: Name::parse("Mentors Q4").expect("name"),
            status: InstanceStatus::Completed,
            created_at: later,
            ..s.instance.clone()
        };
        let counted = commit(store, &[Write::Instances(vec![renamed.clone()])])
            .await
            .expect("upsert");
        assert_eq!(counts(&counted[0]), "0 inserted, 1 updated, 0 unchanged");
        let stored = store
            .instance_by_slug(&s.instance.slug)
            .await
            .expect("instance");
        assert_eq!(
            stored,
            Some(ProgramInstance {
                created_at: s.instance.created_at,
                ..renamed
            })
        );
    }

    /// Look-ups take many keys in one call, ignore unknown and repeated keys, and see the unit's own writes.
    pub async fn look_ups_take_many_keys_and_see_the_units_writes(store: &Store) {
        let s = Seed::store(store).await;
        let mut unit = store.begin().await.expect("begin");
        let carl = user("carl@beta.example", Some(&s.beta));
        unit.upsert_users(std::slice::from_ref(&carl))
            .await
            .expect("upsert");

        let emails = [
            "ANNA@acme.example",
            "carl@beta.example",
            "nobody@acme.example",
            "anna@acme.example",
        ]
        .map(|e| Email::parse(e).expect("email"));
        let mut users = unit.users_by_email(&emails).await.expect("users");
        users.sort_by(|a, b| a.email.cmp(&b.email));
        assert_eq!(users, vec![s.anna.clone(), carl]);

        let keys = |ks: &[&str]| {
            ks.iter()
                .map(|k| Key::parse(k).expect("key"))
                .collect::<Vec<_>>()
        };
        let mut companies = unit
            .companies_by_slug(&keys(&["beta", "acme", "zeta", "acme"]))
            .await
            .expect("companies");
        companies.sort_by(|a, b| a.slug.cmp(&b.slug));
        assert_eq!(companies, vec![s.acme.clone(), s.beta.clone()]);

        let groups = unit
            .groups_by_key(&keys(&["ua-refugees", "nope"]))
            .await
            .expect("groups");
        assert_eq!(groups, vec![s.group.clone()]);
        let campaigns = unit
            .campaigns_by_key(&keys(&["acme-2024", "acme-1999"]))
            .await
            .expect("campaigns");
        assert_eq!(campaigns, vec![s.campaign.clone()]);

        let slugs = ["acme-q4", "acme-q3"].map(|x| ProgramSlug::parse(x).expect("slug"));
        let instances = unit.instances_by_slug(&slugs).await.expect("instances");
        assert_eq!(instances, vec![s.instance.clone()]);

        assert!(
            unit.users_by_email(&[])
                .await
                .expect("no emails")
                .is_empty()
        );
        unit.rollback().await.expect("rollback");
    }

    // ---- units of work ----------------------------------------------------------------------------------------

    /// Writes every kind of row and overwrites a batch inside one unit.
    async fn write_everything(unit: &mut dyn UnitOfWork, s: &Seed, batch: &BatchRecord) {
        for w in s.writes() {
            apply(unit, &w).await.expect("write");
        }
        let a = association(1, 100, Decision::Auto, Some(&s.campaign), Some(&s.instance));
        unit.upsert_associations(&[a]).await.expect("association");
        let saved = unit
            .save_batch(&running(batch, "worker-1", 3), &BatchGuard::of(batch))
            .await
            .expect("save");
        assert!(saved);
    }

    /// What the store shows outside any unit: catalogue sizes, users, the association, the batch's status.
    async fn visible(store: &Store, batch: BatchId) -> String {
        let c = store.load_catalog().await.expect("load");
        let users = store.count_users().await.expect("users");
        let assoc = store
            .association_for(
                ActivityKind::KintellSession,
                ActivityId(Uuid::from_u128(100)),
            )
            .await
            .expect("association");
        let b = store
            .get_batch(batch)
            .await
            .expect("batch")
            .expect("stored batch");
        format!(
            "{} companies, {} groups, {} campaigns, {} instances, {users} users, association: {}, batch {} at row {}",
            c.companies.len(),
            c.groups.len(),
            c.campaigns.len(),
            c.instances.len(),
            assoc.map_or("none", |a| a.decision.as_str()),
            b.status,
            b.last_processed_row,
        )
    }

    /// Writes then rollback: nothing is visible.
    pub async fn rollback_discards_every_write(store: &Store) {
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let mut unit = store.begin().await.expect("begin");
        write_everything(&mut *unit, &Seed::rows(), &batch).await;
        unit.rollback().await.expect("rollback");
        expect![[r#"0 companies, 0 groups, 0 campaigns, 0 instances, 0 users, association: none, batch pending at row 0"#]]
            .assert_eq(&visible(store, batch.id).await);
    }

    /// Writes then drop without commit: nothing is visible.
    pub async fn dropping_a_unit_discards_every_write(store: &Store) {
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let mut unit = store.begin().await.expect("begin");
        write_everything(&mut *unit, &Seed::rows(), &batch).await;
        drop(unit);
        expect![[r#"0 companies, 0 groups, 0 campaigns, 0 instances, 0 users, association: none, batch pending at row 0"#]]
            .assert_eq(&visible(store, batch.id).await);
    }

    /// Nothing is visible before commit, everything after.
    pub async fn commit_publishes_every_write_at_once(store: &Store) {
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let mut unit = store.begin().await.expect("begin");
        write_everything(&mut *unit, &Seed::rows(), &batch).await;
        expect![[r#"0 companies, 0 groups, 0 campaigns, 0 instances, 0 users, association: none, batch pending at row 0"#]]
            .assert_eq(&visible(store, batch.id).await);
        unit.commit().await.expect("commit");
        expect![[r#"2 companies, 1 groups, 1 campaigns, 1 instances, 1 users, association: auto, batch running at row 3"#]]
            .assert_eq(&visible(store, batch.id).await);
    }

    /// A write that fails inside a unit, then rollback: the unit's earlier writes are not visible either.
    pub async fn a_failed_write_then_rollback_leaves_nothing(store: &Store) {
        let s = Seed::rows();
        let mut unit = store.begin().await.expect("begin");
        unit.upsert_companies(std::slice::from_ref(&s.acme))
            .await
            .expect("company");
        let orphan = campaign("orphan", &s.acme, &s.group);
        let err = unit
            .upsert_campaigns(&[orphan])
            .await
            .expect_err("unknown group");
        assert_eq!(error_name(&err), "MissingReference", "{err}");
        unit.rollback().await.expect("rollback");
        assert_eq!(
            store.load_catalog().await.expect("load"),
            Default::default()
        );
    }

    // ---- constraints ------------------------------------------------------------------------------------------

    /// Unique keys are `Duplicate`, checks `Invalid`, foreign keys `MissingReference`, on every table the ports
    /// write; each case would be accepted but for its one fault.
    pub async fn constraint_violations_are_named_errors(store: &Store) {
        let s = Seed::store(store).await;
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let ghost_company = company("ghost");
        let ghost_group = group("ghost", &[]);
        let ghost_campaign = campaign("ghost", &s.acme, &s.group);
        let ghost_instance = instance("ghost", None);
        let stored_assoc =
            association(1, 100, Decision::Auto, Some(&s.campaign), Some(&s.instance));
        commit(store, &[Write::Associations(vec![stored_assoc])])
            .await
            .expect("association");

        let fresh = |key: &str| campaign(key, &s.acme, &s.group);
        let assoc = |activity: u128| {
            association(
                50 + activity,
                activity,
                Decision::Review,
                Some(&s.campaign),
                None,
            )
        };
        let cases = vec![
            (
                "company slug taken",
                Write::Companies(vec![Company {
                    id: CompanyId::stable("other"),
                    ..s.acme.clone()
                }]),
            ),
            (
                "group key taken",
                Write::Groups(vec![BeneficiaryGroup {
                    id: GroupId::stable("other"),
                    ..s.group.clone()
                }]),
            ),
            (
                "campaign key taken",
                Write::Campaigns(vec![Campaign {
                    id: CampaignId::stable("other"),
                    ..s.campaign.clone()
                }]),
            ),
            (
                "instance slug taken",
                Write::Instances(vec![ProgramInstance {
                    id: InstanceId(Uuid::from_u128(7)),
                    ..s.instance.clone()
                }]),
            ),
            (
                "user email taken",
                Write::Users(vec![User {
                    id: UserId(Uuid::from_u128(7)),
                    ..s.anna.clone()
                }]),
            ),
            (
                "campaign ends before it starts",
                Write::Campaigns(vec![Campaign {
                    end_date: date("2023-12-31"),
                    ..fresh("early")
                }]),
            ),
            (
                "campaign of one day",
                Write::Campaigns(vec![Campaign {
                    end_date: date("2024-01-01"),
                    ..fresh("one-day")
                }]),
            ),
            (
                "instance ends before it starts",
                Write::Instances(vec![ProgramInstance {
                    end_date: Some(date("2024-09-30")),
                    ..instance("early", Some(&s.campaign))
                }]),
            ),
            (
                "instance without end",
                Write::Instances(vec![ProgramInstance {
                    end_date: None,
                    ..instance("ongoing", Some(&s.campaign))
                }]),
            ),
            (
                "campaign of unknown company",
                Write::Campaigns(vec![campaign("c1", &ghost_company, &s.group)]),
            ),
            (
                "campaign of unknown group",
                Write::Campaigns(vec![campaign("c2", &s.acme, &ghost_group)]),
            ),
            (
                "instance of unknown campaign",
                Write::Instances(vec![instance("i1", Some(&ghost_campaign))]),
            ),
            (
                "instance of unknown company",
                Write::Instances(vec![ProgramInstance {
                    company_id: Some(ghost_company.id),
                    ..instance("i2", None)
                }]),
            ),
            (
                "instance of no company or campaign",
                Write::Instances(vec![instance("i3", None)]),
            ),
            (
                "user of unknown company",
                Write::Users(vec![user("ghost@ghost.example", Some(&ghost_company))]),
            ),
            (
                "user of no company",
                Write::Users(vec![user("free@example.com", None)]),
            ),
            (
                "association of unknown campaign",
                Write::Associations(vec![association(
                    60,
                    10,
                    Decision::Review,
                    Some(&ghost_campaign),
                    None,
                )]),
            ),
            (
                "association of unknown instance",
                Write::Associations(vec![association(
                    61,
                    11,
                    Decision::Auto,
                    Some(&s.campaign),
                    Some(&ghost_instance),
                )]),
            ),
            (
                "association of unknown batch",
                Write::Associations(vec![Association {
                    batch_id: Some(BatchId(Uuid::from_u128(99))),
                    ..assoc(12)
                }]),
            ),
            (
                "association of a stored batch",
                Write::Associations(vec![Association {
                    batch_id: Some(batch.id),
                    ..assoc(13)
                }]),
            ),
            (
                "association id taken by another activity",
                Write::Associations(vec![association(
                    1,
                    14,
                    Decision::Auto,
                    Some(&s.campaign),
                    None,
                )]),
            ),
            (
                "batch id taken",
                Write::InsertBatch(new_batch(1, "b", "h2", "2024-06-01T11:00:00Z")),
            ),
            (
                "batch of unknown instance",
                Write::InsertBatch(NewBatch {
                    program_instance_id: Some(ghost_instance.id),
                    ..new_batch(2, "c", "h3", "2024-06-01T11:00:00Z")
                }),
            ),
            (
                "batch of a stored instance",
                Write::InsertBatch(NewBatch {
                    program_instance_id: Some(s.instance.id),
                    ..new_batch(3, "d", "h4", "2024-06-01T11:00:00Z")
                }),
            ),
            (
                "batch saved with unknown instance",
                Write::SaveBatch(BatchRecord {
                    program_instance_id: Some(ghost_instance.id),
                    ..batch.clone()
                }),
            ),
        ];
        check_outcomes(
            store,
            cases,
            expect![[r#"
            company slug taken: Duplicate
            group key taken: Duplicate
            campaign key taken: Duplicate
            instance slug taken: Duplicate
            user email taken: Duplicate
            campaign ends before it starts: Invalid
            campaign of one day: ok
            instance ends before it starts: Invalid
            instance without end: ok
            campaign of unknown company: MissingReference
            campaign of unknown group: MissingReference
            instance of unknown campaign: MissingReference
            instance of unknown company: MissingReference
            instance of no company or campaign: ok
            user of unknown company: MissingReference
            user of no company: ok
            association of unknown campaign: MissingReference
            association of unknown instance: MissingReference
            association of unknown batch: MissingReference
            association of a stored batch: ok
            association id taken by another activity: Duplicate
            batch id taken: Duplicate
            batch of unknown instance: MissingReference
            batch of a stored instance: ok
            batch saved with unknown instance: MissingReference
        "#]],
        )
        .await;

        // The refused writes left the stored rows as they were.
        let catalog = store.load_catalog().await.expect("load");
        assert_eq!(catalog.companies.len(), 2);
        assert_eq!(catalog.campaigns, vec![s.campaign.clone()]);
        assert_eq!(store.get_batch(batch.id).await.expect("batch"), Some(batch));
    }

    // ---- batches ----------------------------------------------------------------------------------------------

    /// Inserted batches start pending with zero counters; get returns them as stored; list filters, limits and
    /// orders newest first by `created_at`, then id.
    pub async fn batches_are_inserted_got_and_listed_newest_first(store: &Store) {
        let b1 = store
            .insert_batch(&new_batch(1, "b1", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("b1");
        let b2 = store
            .insert_batch(&NewBatch {
                entity_kind: EntityKind::BuddyMatches,
                ..new_batch(2, "b2", "h2", "2024-06-01T11:00:00Z")
            })
            .await
            .expect("b2");
        let b3 = store
            .insert_batch(&new_batch(3, "b3", "h3", "2024-06-01T11:00:00Z"))
            .await
            .expect("b3");
        let b4 = store
            .insert_batch(&new_batch(4, "b4", "h4", "2024-06-01T09:00:00Z"))
            .await
            .expect("b4");
        let done = finished(&b4, BatchStatus::Completed);
        assert!(
            store
                .save_batch(&done, &BatchGuard::of(&b4))
                .await
                .expect("save")
        );

        assert_eq!(b1.status, BatchStatus::Pending);
        assert_eq!(
            (
                b1.success_rows,
                b1.inserted_rows,
                b1.updated_rows,
                b1.skipped_rows,
                b1.error_rows,
                b1.last_processed_row
            ),
            (0, 0, 0, 0, 0, 0)
        );
        assert_eq!(
            (b1.lease_owner.as_deref(), b1.started_at, b1.completed_at),
            (None, None, None)
        );
        assert_eq!(store.get_batch(b1.id).await.expect("get"), Some(b1.clone()));
        assert_eq!(store.get_batch(b4.id).await.expect("get"), Some(done));
        assert_eq!(
            store
                .get_batch(BatchId(Uuid::from_u128(42)))
                .await
                .expect("get"),
            None
        );
        assert_eq!(b3.created_at, b2.created_at);

        let list = |status: Option<BatchStatus>,
                    entity_kind: Option<EntityKind>,
                    limit: Option<u32>| async move {
            let filter = BatchFilter {
                status,
                entity_kind,
                limit,
            };
            let found = store.list_batches(&filter).await.expect("list");
            let names: Vec<&str> = found
                .iter()
                .map(|b| b.file_name.trim_end_matches(".csv"))
                .collect();
            format!("[{}]", names.join(" "))
        };
        let mut out = String::new();
        writeln!(out, "all: {}", list(None, None, None).await).expect("write");
        writeln!(
            out,
            "sessions: {}",
            list(None, Some(EntityKind::KintellSessions), None).await
        )
        .expect("write");
        writeln!(
            out,
            "pending: {}",
            list(Some(BatchStatus::Pending), None, None).await
        )
        .expect("write");
        writeln!(
            out,
            "completed: {}",
            list(Some(BatchStatus::Completed), None, None).await
        )
        .expect("write");
        writeln!(
            out,
            "pending sessions: {}",
            list(
                Some(BatchStatus::Pending),
                Some(EntityKind::KintellSessions),
                None
            )
            .await
        )
        .expect("write");
        writeln!(out, "newest two: {}", list(None, None, Some(2)).await).expect("write");
        writeln!(
            out,
            "failed: {}",
            list(Some(BatchStatus::Failed), None, None).await
        )
        .expect("write");
        expect![[r#"
            all: [b3 b2 b1 b4]
            sessions: [b3 b1 b4]
            pending: [b3 b2 b1]
            completed: [b4]
            pending sessions: [b3 b1]
            newest two: [b3 b2]
            failed: []
        "#]]
        .assert_eq(&out);
    }

    /// Batches of an entity by file hash and by file name, newest first.
    pub async fn batches_are_found_by_hash_and_by_file_name(store: &Store) {
        let first = store
            .insert_batch(&new_batch(1, "q4", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("first");
        assert!(
            store
                .save_batch(
                    &finished(&first, BatchStatus::Failed),
                    &BatchGuard::of(&first)
                )
                .await
                .expect("fail")
        );
        let again = store
            .insert_batch(&new_batch(2, "q4-copy", "h1", "2024-06-02T10:00:00Z"))
            .await
            .expect("again");
        let edited = store
            .insert_batch(&new_batch(3, "q4", "h2", "2024-06-03T10:00:00Z"))
            .await
            .expect("edited");
        store
            .insert_batch(&NewBatch {
                entity_kind: EntityKind::BuddyMatches,
                ..new_batch(4, "q4", "h1", "2024-06-04T10:00:00Z")
            })
            .await
            .expect("other entity");

        let ids = |found: Vec<BatchRecord>| found.iter().map(|b| b.id).collect::<Vec<_>>();
        let sessions = EntityKind::KintellSessions;
        assert_eq!(
            ids(store.batches_by_hash(sessions, "h1").await.expect("hash")),
            vec![again.id, first.id]
        );
        assert_eq!(
            ids(store.batches_by_hash(sessions, "h2").await.expect("hash")),
            vec![edited.id]
        );
        assert!(
            store
                .batches_by_hash(sessions, "h9")
                .await
                .expect("hash")
                .is_empty()
        );
        assert_eq!(
            ids(store
                .batches_by_file_name(sessions, "q4.csv")
                .await
                .expect("name")),
            vec![edited.id, first.id]
        );
        assert_eq!(
            ids(store
                .batches_by_file_name(EntityKind::BuddyMatches, "q4.csv")
                .await
                .expect("name")),
            vec![BatchId(Uuid::from_u128(4))]
        );
        assert!(
            store
                .batches_by_file_name(sessions, "Q4.csv")
                .await
                .expect("name")
                .is_empty()
        );

        // A unit sees the committed batches and its own, newest first; others see its own only once committed.
        let mut unit = store.begin().await.expect("begin");
        let own = unit
            .insert_batch(&new_batch(5, "q4", "h9", "2024-06-05T10:00:00Z"))
            .await
            .expect("insert in the unit");
        assert_eq!(
            ids(unit.batches_by_hash(sessions, "h9").await.expect("hash")),
            vec![own.id]
        );
        assert_eq!(
            ids(unit.batches_by_hash(sessions, "h1").await.expect("hash")),
            vec![again.id, first.id]
        );
        assert!(
            unit.batches_by_hash(EntityKind::KintellUsers, "h9")
                .await
                .expect("hash")
                .is_empty()
        );
        assert!(
            store
                .batches_by_hash(sessions, "h9")
                .await
                .expect("hash")
                .is_empty()
        );
        unit.rollback().await.expect("rollback");
        assert!(
            store
                .batches_by_hash(sessions, "h9")
                .await
                .expect("hash")
                .is_empty()
        );
    }

    /// A save applies only when the stored row still has the guard's owner, status and resume point; otherwise
    /// it returns false and changes nothing.
    pub async fn guarded_save_applies_only_when_the_guard_matches(store: &Store) {
        let pending = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let taken = running(&pending, "worker-1", 0);
        assert!(
            store
                .save_batch(&taken, &BatchGuard::of(&pending))
                .await
                .expect("take")
        );
        assert_eq!(
            store.get_batch(pending.id).await.expect("get"),
            Some(taken.clone())
        );

        let progressed = BatchRecord {
            error_summary: Some(json!({"by_code": {"invalid_email": 1}, "first": []})),
            error_rows: 1,
            ..running(&taken, "worker-1", 4)
        };
        let progressed = BatchRecord {
            last_processed_row: 5,
            ..progressed
        };
        let stale = [
            ("the pending row's guard", BatchGuard::of(&pending)),
            (
                "another owner",
                BatchGuard {
                    lease_owner: Some("worker-2".into()),
                    ..BatchGuard::of(&taken)
                },
            ),
            (
                "no owner",
                BatchGuard {
                    lease_owner: None,
                    ..BatchGuard::of(&taken)
                },
            ),
            (
                "another status",
                BatchGuard {
                    status: BatchStatus::Paused,
                    ..BatchGuard::of(&taken)
                },
            ),
            (
                "another resume point",
                BatchGuard {
                    last_processed_row: 3,
                    ..BatchGuard::of(&taken)
                },
            ),
            (
                "a request the writer has not seen",
                BatchGuard {
                    requested_action: Some(RequestedAction::Pause),
                    ..BatchGuard::of(&taken)
                },
            ),
        ];
        for (label, guard) in &stale {
            assert!(
                !store.save_batch(&progressed, guard).await.expect("save"),
                "{label}"
            );
            assert_eq!(
                store.get_batch(pending.id).await.expect("get"),
                Some(taken.clone()),
                "{label}"
            );
        }
        let unknown = BatchRecord {
            id: BatchId(Uuid::from_u128(9)),
            ..progressed.clone()
        };
        assert!(
            !store
                .save_batch(&unknown, &BatchGuard::of(&taken))
                .await
                .expect("save")
        );
        assert_eq!(store.get_batch(unknown.id).await.expect("get"), None);

        // Inside a unit: applied and seen by the unit, gone on rollback.
        let mut unit = store.begin().await.expect("begin");
        assert!(
            unit.save_batch(&progressed, &BatchGuard::of(&taken))
                .await
                .expect("save")
        );
        assert!(
            !unit
                .save_batch(&progressed, &BatchGuard::of(&taken))
                .await
                .expect("save again")
        );
        unit.rollback().await.expect("rollback");
        assert_eq!(
            store.get_batch(pending.id).await.expect("get"),
            Some(taken.clone())
        );

        assert!(
            store
                .save_batch(&progressed, &BatchGuard::of(&taken))
                .await
                .expect("save")
        );
        assert_eq!(
            store.get_batch(pending.id).await.expect("get"),
            Some(progressed)
        );
    }

    /// At most one pending, running or paused batch per entity and file hash; completed and failed ones do not
    /// count.
    pub async fn one_in_flight_batch_per_entity_and_file(store: &Store) {
        let first = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("first");
        let cases = vec![
            (
                "same file while the first is pending",
                Write::InsertBatch(new_batch(2, "a", "h1", "2024-06-01T10:01:00Z")),
            ),
            (
                "same file under another name",
                Write::InsertBatch(new_batch(3, "b", "h1", "2024-06-01T10:01:00Z")),
            ),
            (
                "same file, other entity",
                Write::InsertBatch(NewBatch {
                    entity_kind: EntityKind::KintellUsers,
                    ..new_batch(4, "a", "h1", "2024-06-01T10:01:00Z")
                }),
            ),
            (
                "other file",
                Write::InsertBatch(new_batch(5, "a", "h2", "2024-06-01T10:01:00Z")),
            ),
        ];
        check_outcomes(
            store,
            cases,
            expect![[r#"
            same file while the first is pending: Duplicate
            same file under another name: Duplicate
            same file, other entity: ok
            other file: ok
        "#]],
        )
        .await;

        let outcome = |label: &str, r: StoreResult<BatchRecord>| {
            format!(
                "{label}: {}\n",
                r.map_or_else(|e| error_name(&e).to_owned(), |b| b.status.to_string())
            )
        };
        let mut out = String::new();
        let run = running(&first, "w", 0);
        assert!(
            store
                .save_batch(&run, &BatchGuard::of(&first))
                .await
                .expect("run")
        );
        out += &outcome(
            "while running",
            store
                .insert_batch(&new_batch(6, "a", "h1", "2024-06-01T10:02:00Z"))
                .await,
        );
        let paused = BatchRecord {
            status: BatchStatus::Paused,
            lease_owner: None,
            ..run.clone()
        };
        assert!(
            store
                .save_batch(&paused, &BatchGuard::of(&run))
                .await
                .expect("pause")
        );
        out += &outcome(
            "while paused",
            store
                .insert_batch(&new_batch(7, "a", "h1", "2024-06-01T10:03:00Z"))
                .await,
        );
        let done = finished(&paused, BatchStatus::Completed);
        assert!(
            store
                .save_batch(&done, &BatchGuard::of(&paused))
                .await
                .expect("complete")
        );
        out += &outcome(
            "once completed",
            store
                .insert_batch(&new_batch(8, "a", "h1", "2024-06-01T10:04:00Z"))
                .await,
        );
        let second = store
            .get_batch(BatchId(Uuid::from_u128(8)))
            .await
            .expect("get")
            .expect("second");
        assert!(
            store
                .save_batch(
                    &finished(&second, BatchStatus::Failed),
                    &BatchGuard::of(&second)
                )
                .await
                .expect("fail")
        );
        out += &outcome(
            "once the second failed",
            store
                .insert_batch(&new_batch(9, "a", "h1", "2024-06-01T10:05:00Z"))
                .await,
        );
        let cancelled = store
            .insert_batch(&new_batch(10, "c", "h3", "2024-06-01T10:05:00Z"))
            .await
            .expect("third");
        assert!(
            store
                .save_batch(
                    &finished(&cancelled, BatchStatus::Cancelled),
                    &BatchGuard::of(&cancelled)
                )
                .await
                .expect("cancel")
        );
        out += &outcome(
            "once cancelled",
            store
                .insert_batch(&new_batch(11, "c", "h3", "2024-06-01T10:06:00Z"))
                .await,
        );
        expect![[r#"
            while running: Duplicate
            while paused: Duplicate
            once completed: pending
            once the second failed: pending
            once cancelled: pending
        "#]]
        .assert_eq(&out);

        // Moving a finished batch back in flight collides with the one in flight now.
        let revived = BatchRecord {
            status: BatchStatus::Running,
            completed_at: None,
            ..done.clone()
        };
        let err = store
            .save_batch(&revived, &BatchGuard::of(&done))
            .await
            .expect_err("collision");
        assert_eq!(error_name(&err), "Duplicate", "{err}");
        assert_eq!(store.get_batch(first.id).await.expect("get"), Some(done));
    }

    /// `success + error + skipped = last_processed_row <= total_rows` and `success = inserted + updated`.
    pub async fn batch_counters_are_checked(store: &Store) {
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let at_row = |last_processed_row,
                      success_rows,
                      inserted_rows,
                      updated_rows,
                      skipped_rows,
                      error_rows| {
            Write::SaveBatch(BatchRecord {
                last_processed_row,
                success_rows,
                inserted_rows,
                updated_rows,
                skipped_rows,
                error_rows,
                ..running(&batch, "w", 0)
            })
        };
        let cases = vec![
            ("counters add up", at_row(5, 3, 2, 1, 1, 1)),
            ("every row processed", at_row(10, 10, 10, 0, 0, 0)),
            ("processed is not the sum", at_row(6, 3, 2, 1, 1, 1)),
            ("beyond the total", at_row(11, 11, 11, 0, 0, 0)),
            (
                "success is not inserted + updated",
                at_row(5, 3, 1, 1, 1, 1),
            ),
            (
                "negative total",
                Write::InsertBatch(NewBatch {
                    total_rows: -1,
                    ..new_batch(2, "b", "h2", "2024-06-01T10:00:00Z")
                }),
            ),
            (
                "empty file",
                Write::InsertBatch(NewBatch {
                    total_rows: 0,
                    ..new_batch(3, "c", "h3", "2024-06-01T10:00:00Z")
                }),
            ),
        ];
        check_outcomes(
            store,
            cases,
            expect![[r#"
            counters add up: ok
            every row processed: ok
            processed is not the sum: Invalid
            beyond the total: Invalid
            success is not inserted + updated: Invalid
            negative total: Invalid
            empty file: ok
        "#]],
        )
        .await;
        assert_eq!(
            store
                .get_batch(BatchId(Uuid::from_u128(2)))
                .await
                .expect("get"),
            None
        );
    }

    // ---- associations -----------------------------------------------------------------------------------------

    /// One association per activity: an upsert of the same activity with a new id updates the stored row, which
    /// keeps its id.
    pub async fn associations_are_upserted_by_activity_and_keep_their_id(store: &Store) {
        let s = Seed::store(store).await;
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let first = Association {
            batch_id: Some(batch.id),
            candidates: json!([{"campaign": "acme-2024", "total": 85, "confidence": 85}]),
            ..association(1, 100, Decision::Auto, Some(&s.campaign), Some(&s.instance))
        };
        let other = association(2, 101, Decision::None, None, None);
        let match_ = Association {
            activity_kind: ActivityKind::BuddyMatch,
            ..association(3, 100, Decision::Review, Some(&s.campaign), None)
        };
        let c = commit(
            store,
            &[Write::Associations(vec![
                first.clone(),
                other.clone(),
                match_.clone(),
            ])],
        )
        .await
        .expect("insert");
        assert_eq!(counts(&c[0]), "3 inserted, 0 updated, 0 unchanged");
        let c = commit(
            store,
            &[Write::Associations(vec![first.clone(), other.clone()])],
        )
        .await
        .expect("again");
        assert_eq!(counts(&c[0]), "0 inserted, 0 updated, 2 unchanged");
        let same_with_new_id = Association {
            id: AssociationId(Uuid::from_u128(9)),
            ..first.clone()
        };
        let c = commit(store, &[Write::Associations(vec![same_with_new_id])])
            .await
            .expect("same");
        assert_eq!(counts(&c[0]), "0 inserted, 0 updated, 1 unchanged");

        let rescored = Association {
            id: AssociationId(Uuid::from_u128(10)),
            confidence: Confidence::new(60).expect("confidence"),
            decision: Decision::Review,
            program_instance_id: None,
            reasons: json!([{"code": "no_instance", "points": 0, "detail": null}]),
            ..first.clone()
        };
        let c = commit(store, &[Write::Associations(vec![rescored.clone()])])
            .await
            .expect("rescore");
        assert_eq!(counts(&c[0]), "0 inserted, 1 updated, 0 unchanged");

        let kept = Association {
            id: first.id,
            ..rescored.clone()
        };
        assert_eq!(
            store.get_association(first.id).await.expect("get"),
            Some(kept.clone())
        );
        assert_eq!(store.get_association(rescored.id).await.expect("get"), None);
        assert_eq!(
            store
                .association_for(ActivityKind::KintellSession, first.activity_id)
                .await
                .expect("for"),
            Some(kept)
        );
        assert_eq!(
            store
                .association_for(ActivityKind::BuddyMatch, first.activity_id)
                .await
                .expect("for"),
            Some(match_)
        );
        assert_eq!(
            store
                .association_for(ActivityKind::CourseCompletion, first.activity_id)
                .await
                .expect("for"),
            None
        );
        assert_eq!(
            store.get_association(other.id).await.expect("get"),
            Some(other)
        );
    }

    /// What an import or a backfill decided is stored as its record: the explanation written from the outcome reads
    /// back as the record's documents, on the new rows' path and on the stored rows' path, and writing the same
    /// association either way changes nothing.
    pub async fn decided_associations_are_stored_as_their_records(store: &Store) {
        let s = Seed::store(store).await;
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let reason = |code, points, detail: &str| Reason {
            code,
            points,
            detail: detail.to_owned().into(),
        };
        let confidence = |n| Confidence::new(n).expect("confidence");
        let auto = Outcome {
            decision: Decision::Auto,
            confidence: confidence(100),
            campaign: Some(s.campaign.id),
            instance: Some(s.instance.id),
            reasons: vec![
                reason(ReasonCode::CompanyMatch, 40, "company \"acme\"\tA\\S ✓"),
                reason(ReasonCode::DateInWindow, 70, "line\nbreak \u{1}"),
                reason(ReasonCode::Capped, -10, ""),
            ],
            candidates: vec![CandidateSummary {
                campaign: s.campaign.id,
                total: 110,
                confidence: confidence(100),
            }],
        };
        let none = Outcome {
            decision: Decision::None,
            confidence: confidence(0),
            campaign: None,
            instance: None,
            reasons: vec![reason(ReasonCode::NoCompany, 0, "no company")],
            candidates: Vec::new(),
        };
        let decided = |id: u128, activity: u128, kind, outcome: &Outcome| DecidedAssociation {
            id: AssociationId(Uuid::from_u128(id)),
            activity_kind: kind,
            activity_id: ActivityId(Uuid::from_u128(activity)),
            outcome: outcome.clone(),
            policy_version: "2024.1".to_owned(),
            decided_by: DecidedBy::Batch(batch.id),
        };
        let rows = vec![
            decided(1, 100, ActivityKind::KintellSession, &auto),
            decided(2, 101, ActivityKind::KintellSession, &none),
            decided(
                3,
                100,
                ActivityKind::BuddyMatch,
                &Outcome::explicit(s.instance.id, Some(s.campaign.id)),
            ),
        ];
        let c = commit(store, &[Write::Decided(rows.clone())])
            .await
            .expect("insert");
        assert_eq!(counts(&c[0]), "3 inserted, 0 updated, 0 unchanged");
        for d in &rows {
            assert_eq!(
                store.get_association(d.id).await.expect("get"),
                Some(d.to_record())
            );
        }
        let c = commit(store, &[Write::Decided(rows.clone())])
            .await
            .expect("again");
        assert_eq!(counts(&c[0]), "0 inserted, 0 updated, 3 unchanged");
        let records: Vec<Association> = rows.iter().map(DecidedAssociation::to_record).collect();
        let c = commit(store, &[Write::Associations(records)])
            .await
            .expect("as records");
        assert_eq!(counts(&c[0]), "0 inserted, 0 updated, 3 unchanged");

        let rescored = decided(9, 101, ActivityKind::KintellSession, &auto);
        let c = commit(store, &[Write::Decided(vec![rescored.clone()])])
            .await
            .expect("rescore");
        assert_eq!(counts(&c[0]), "0 inserted, 1 updated, 0 unchanged");
        assert_eq!(
            store.get_association(rows[1].id).await.expect("get"),
            Some(Association {
                id: rows[1].id,
                ..rescored.to_record()
            })
        );
    }

    /// Human decisions never change; `explicit` changes only for another `explicit`; sticky rows count unchanged.
    pub async fn human_and_explicit_decisions_are_sticky(store: &Store) {
        let s = Seed::store(store).await;
        let pairs = [
            (Decision::Accepted, Decision::Auto),
            (Decision::Accepted, Decision::Explicit),
            (Decision::Rejected, Decision::Review),
            (Decision::Rejected, Decision::Explicit),
            (Decision::Explicit, Decision::Auto),
            (Decision::Explicit, Decision::None),
            (Decision::Explicit, Decision::Explicit),
            (Decision::Auto, Decision::Review),
            (Decision::Review, Decision::Auto),
            (Decision::Ignored, Decision::Explicit),
            (Decision::None, Decision::Ignored),
        ];
        let activity = |i: usize| 1000 + i as u128;
        let stored: Vec<Association> = pairs
            .iter()
            .enumerate()
            .map(|(i, (before, _))| {
                association(
                    activity(i),
                    activity(i),
                    *before,
                    Some(&s.campaign),
                    Some(&s.instance),
                )
            })
            .collect();
        commit(store, &[Write::Associations(stored)])
            .await
            .expect("stored decisions");

        let mut out = String::new();
        for (i, (before, after)) in pairs.iter().enumerate() {
            let incoming = Association {
                reasons: json!([{"code": "rescored", "points": 1, "detail": null}]),
                policy_version: "2025.1".to_owned(),
                ..association(
                    5000 + i as u128,
                    activity(i),
                    *after,
                    Some(&s.campaign),
                    None,
                )
            };
            let c = commit(store, &[Write::Associations(vec![incoming])])
                .await
                .expect("upsert");
            let now = store
                .association_for(
                    ActivityKind::KintellSession,
                    ActivityId(Uuid::from_u128(activity(i))),
                )
                .await
                .expect("for")
                .expect("stored");
            writeln!(
                out,
                "{before} <- {after}: {}; stored {} (policy {}, id kept: {})",
                if c[0].unchanged == 1 {
                    "unchanged"
                } else if c[0].updated == 1 {
                    "updated"
                } else {
                    "?"
                },
                now.decision,
                now.policy_version,
                now.id == AssociationId(Uuid::from_u128(activity(i))),
            )
            .expect("write");
        }
        expect![[r#"
            accepted <- auto: unchanged; stored accepted (policy 2024.1, id kept: true)
            accepted <- explicit: unchanged; stored accepted (policy 2024.1, id kept: true)
            rejected <- review: unchanged; stored rejected (policy 2024.1, id kept: true)
            rejected <- explicit: unchanged; stored rejected (policy 2024.1, id kept: true)
            explicit <- auto: unchanged; stored explicit (policy 2024.1, id kept: true)
            explicit <- none: unchanged; stored explicit (policy 2024.1, id kept: true)
            explicit <- explicit: updated; stored explicit (policy 2025.1, id kept: true)
            auto <- review: updated; stored review (policy 2025.1, id kept: true)
            review <- auto: updated; stored auto (policy 2025.1, id kept: true)
            ignored <- explicit: updated; stored explicit (policy 2025.1, id kept: true)
            none <- ignored: updated; stored ignored (policy 2025.1, id kept: true)
        "#]]
        .assert_eq(&out);
    }

    // ---- catalogue reads --------------------------------------------------------------------------------------

    /// `load_catalog` returns every row as written; the single look-ups find by slug, id and email.
    pub async fn catalogue_is_loaded_and_found(store: &Store) {
        let s = Seed::store(store).await;
        let mut catalog = store.load_catalog().await.expect("load");
        catalog.companies.sort_by(|a, b| a.slug.cmp(&b.slug));
        assert_eq!(catalog.companies, vec![s.acme.clone(), s.beta.clone()]);
        assert_eq!(catalog.groups, vec![s.group.clone()]);
        assert_eq!(catalog.campaigns, vec![s.campaign.clone()]);
        assert_eq!(catalog.instances, vec![s.instance.clone()]);

        assert_eq!(
            store
                .instance_by_slug(&s.instance.slug)
                .await
                .expect("slug"),
            Some(s.instance.clone())
        );
        let unknown = ProgramSlug::parse("acme-q9").expect("slug");
        assert_eq!(store.instance_by_slug(&unknown).await.expect("slug"), None);
        assert_eq!(
            store.instance_by_id(s.instance.id).await.expect("id"),
            Some(s.instance.clone())
        );
        assert_eq!(
            store
                .instance_by_id(InstanceId::stable(&unknown))
                .await
                .expect("id"),
            None
        );
        assert_eq!(
            store.user_by_email(&s.anna.email).await.expect("email"),
            Some(s.anna.clone())
        );
        let nobody = Email::parse("nobody@acme.example").expect("email");
        assert_eq!(store.user_by_email(&nobody).await.expect("email"), None);
        assert_eq!(store.count_users().await.expect("count"), 1);
        for kind in ActivityKind::ALL {
            assert_eq!(store.count_activities(*kind).await.expect("count"), 0);
        }
        let lineage = store
            .activity_lineage(ActivityKind::KintellSession, ActivityId(Uuid::from_u128(1)))
            .await
            .expect("lineage");
        assert_eq!(lineage, None);
    }

    // ---- import writes: activities, users export, enrolments, row errors, legacy lineage -------------------

    /// Runs `$call` (which uses the unit `$unit`) in a unit of work: commits on success, rolls back on an error.
    macro_rules! in_unit {
        ($store:expr, $unit:ident => $call:expr) => {{
            let mut $unit = $store.begin().await.expect("begin");
            match $call.await {
                Ok(value) => {
                    $unit.commit().await.expect("commit");
                    Ok(value)
                }
                Err(e) => {
                    $unit.rollback().await.expect("rollback");
                    Err(e)
                }
            }
        }};
    }

    /// What the import-write checks start from: the seed (volunteer anna, instance `acme-q4`), participant
    /// olena, a second instance and two batches.
    pub struct Import {
        /// The seed.
        pub seed: Seed,
        /// `olena@example.com`, a participant of no company.
        pub olena: User,
        /// `beta-q4`, an instance of no campaign.
        pub other_instance: ProgramInstance,
        /// The first batch (id 1).
        pub first: BatchRecord,
        /// The second batch (id 2).
        pub second: BatchRecord,
    }

    impl Import {
        /// Stores it.
        pub async fn store(store: &Store) -> Import {
            let seed = Seed::store(store).await;
            let olena = User {
                role: UserRole::Participant,
                ..user("olena@example.com", None)
            };
            let other_instance = instance("beta-q4", None);
            commit(
                store,
                &[
                    Write::Users(vec![olena.clone()]),
                    Write::Instances(vec![other_instance.clone()]),
                ],
            )
            .await
            .expect("import fixture");
            let first = store
                .insert_batch(&new_batch(1, "first", "h1", "2024-06-01T10:00:00Z"))
                .await
                .expect("first batch");
            let second = store
                .insert_batch(&new_batch(2, "second", "h2", "2024-06-02T10:00:00Z"))
                .await
                .expect("second batch");
            Import {
                seed,
                olena,
                other_instance,
                first,
                second,
            }
        }
    }

    /// Row `row` of `batch`.
    pub fn source(batch: &BatchRecord, row: i64) -> RowSource {
        RowSource {
            batch_id: batch.id,
            source_row_number: row,
        }
    }

    /// The written row `id` (as a number) with this outcome.
    fn written(id: u128, outcome: RowOutcome) -> Written {
        Written {
            id: Uuid::from_u128(id),
            outcome,
        }
    }

    /// The lineage of activity `id` (as a number).
    async fn lineage_of(store: &Store, kind: ActivityKind, id: u128) -> Option<ActivityLineage> {
        store
            .activity_lineage(kind, ActivityId(Uuid::from_u128(id)))
            .await
            .expect("lineage")
    }

    fn lineage(
        batch: &BatchRecord,
        first: &BatchRecord,
        row: i64,
        instance: Option<&ProgramInstance>,
    ) -> Option<ActivityLineage> {
        Some(ActivityLineage {
            batch_id: Some(batch.id),
            first_batch_id: Some(first.id),
            source_row_number: Some(row),
            program_instance_id: instance.map(|i| i.id),
        })
    }

    /// A stored row as a look-up returns it.
    fn stored(id: u128, batch: &BatchRecord, row: i64) -> StoredRow {
        StoredRow {
            id: Uuid::from_u128(id),
            batch_id: Some(batch.id),
            source_row_number: Some(row),
        }
    }

    /// A mentoring session with olena and anna; `feedback` stands for the values that may change.
    pub fn session(
        t: &Import,
        id: u128,
        session_id: &str,
        feedback: &str,
        instance: Option<&ProgramInstance>,
        from: RowSource,
    ) -> SessionWrite {
        SessionWrite {
            id: ActivityId(Uuid::from_u128(id)),
            row: SessionRow {
                session_id: SessionId::parse(session_id).expect("session id"),
                session_type: SessionType::Mentorship,
                participant_email: t.olena.email.clone(),
                volunteer_email: t.seed.anna.email.clone(),
                scheduled_at: at("2024-10-02T09:00:00Z"),
                completed_at: Some(at("2024-10-02T10:00:00Z")),
                duration_minutes: Some(DurationMinutes::new(60).expect("duration")),
                rating: Some(Rating::from_hundredths(75).expect("rating")),
                feedback_text: Some(feedback.to_owned()),
                language_level: Some(LanguageLevel::B2),
                topics: Some(vec!["cv".to_owned(), "interviews".to_owned()]),
                metadata: json!({"focus_area": "careers"}).as_object().cloned(),
                program_ref: None,
            },
            participant_id: t.olena.id,
            volunteer_id: t.seed.anna.id,
            program_instance_id: instance.map(|i| i.id),
            source: from,
            now: at("2024-10-03T08:00:00Z"),
        }
    }

    /// A buddy match of olena with anna made at `matched_at`; `location` stands for the values that may change.
    pub fn buddy_match(
        t: &Import,
        id: u128,
        matched_at: &str,
        location: &str,
        instance: Option<&ProgramInstance>,
        from: RowSource,
    ) -> MatchWrite {
        let matched_at = at(matched_at);
        MatchWrite {
            id: ActivityId(Uuid::from_u128(id)),
            row: MatchRow {
                participant_email: t.olena.email.clone(),
                buddy_email: t.seed.anna.email.clone(),
                matched_at,
                status: MatchStatus::Active,
                language: Some("uk".to_owned()),
                interests: Some(vec!["hiking".to_owned()]),
                location: Some(location.to_owned()),
                external_match_id: Some("M-7".to_owned()),
                ended_at: None,
                end_reason: None,
            },
            key: MatchKey {
                participant_id: t.olena.id,
                buddy_id: t.seed.anna.id,
                matched_at,
            },
            program_instance_id: instance.map(|i| i.id),
            source: from,
            now: at("2024-10-03T08:00:00Z"),
        }
    }

    /// Olena's completion of course `course`; `score` (hundredths) stands for the values that may change.
    pub fn completion(
        t: &Import,
        id: u128,
        course: &str,
        score: i64,
        instance: Option<&ProgramInstance>,
        from: RowSource,
    ) -> CompletionWrite {
        let provider = Provider::parse("Coursera").expect("provider");
        let course_id = CourseId::parse(course).expect("course id");
        CompletionWrite {
            id: ActivityId(Uuid::from_u128(id)),
            row: CompletionRow {
                user_email: t.olena.email.clone(),
                provider: provider.clone(),
                course_id: course_id.clone(),
                course_name: Some(format!("Course {course}")),
                completed_at: at("2024-10-20T12:00:00Z"),
                final_score: Some(FinalScore::from_hundredths(score).expect("score")),
                credential_ref: Some("CRED-1".to_owned()),
            },
            key: CompletionKey {
                user_id: t.olena.id,
                provider,
                course_id,
            },
            program_instance_id: instance.map(|i| i.id),
            source: from,
            now: at("2024-10-21T08:00:00Z"),
        }
    }

    /// Sorted by key, for comparisons that ignore the order of a look-up.
    fn sorted<K: Ord, V>(mut v: Vec<(K, V)>) -> Vec<(K, V)> {
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Sessions: a first import inserts; a second one finds one row unchanged (all lineage kept), one changed
    /// (`first_batch_id` kept, `batch_id` and row number taken) and one new; an existing row keeps its id.
    /// Key look-ups return the stored ids and lineage, each key once, unknown keys left out.
    pub async fn session_upserts_tell_outcomes_and_keep_lineage(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let first = [
            session(&t, 1, "S-1", "good", None, source(&t.first, 1)),
            session(&t, 2, "S-2", "fine", None, source(&t.first, 2)),
        ];
        let w = in_unit!(store, u => u.upsert_sessions(&first)).expect("first import");
        assert_eq!(w, [written(1, Inserted), written(2, Inserted)]);
        let second = [
            session(&t, 11, "S-1", "good", None, source(&t.second, 4)),
            session(&t, 12, "S-2", "much better", None, source(&t.second, 5)),
            session(&t, 13, "S-3", "new", None, source(&t.second, 6)),
        ];
        let w = in_unit!(store, u => u.upsert_sessions(&second)).expect("second import");
        assert_eq!(
            w,
            [
                written(1, Unchanged),
                written(2, Updated),
                written(13, Inserted)
            ]
        );
        let kind = ActivityKind::KintellSession;
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.first, &t.first, 1, None)
        );
        assert_eq!(
            lineage_of(store, kind, 2).await,
            lineage(&t.second, &t.first, 5, None)
        );
        assert_eq!(
            lineage_of(store, kind, 13).await,
            lineage(&t.second, &t.second, 6, None)
        );
        assert_eq!(lineage_of(store, kind, 11).await, None);
        assert_eq!(store.count_activities(kind).await.expect("count"), 3);
        let ids = ["S-2", "S-1", "S-9", "S-2"].map(|s| SessionId::parse(s).expect("id"));
        let found = in_unit!(store, u => u.stored_sessions(&ids)).expect("look-up");
        assert_eq!(
            sorted(found),
            [
                (ids[1].clone(), stored(1, &t.first, 1)),
                (ids[0].clone(), stored(2, &t.second, 5)),
            ]
        );
        // A third import of the same file changes nothing.
        let w = in_unit!(store, u => u.upsert_sessions(&second)).expect("third import");
        assert_eq!(
            w,
            [
                written(1, Unchanged),
                written(2, Unchanged),
                written(13, Unchanged)
            ]
        );
        assert_eq!(
            lineage_of(store, kind, 2).await,
            lineage(&t.second, &t.first, 5, None)
        );
    }

    /// Buddy matches: the same outcomes and lineage on (participant, buddy, matched_at).
    pub async fn match_upserts_tell_outcomes_and_keep_lineage(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let (m1, m2, m3) = (
            "2024-10-01T09:00:00Z",
            "2024-10-05T09:00:00Z",
            "2024-10-09T09:00:00Z",
        );
        let first = [
            buddy_match(&t, 1, m1, "Oslo", None, source(&t.first, 1)),
            buddy_match(&t, 2, m2, "Oslo", None, source(&t.first, 2)),
        ];
        let w = in_unit!(store, u => u.upsert_matches(&first)).expect("first import");
        assert_eq!(w, [written(1, Inserted), written(2, Inserted)]);
        let second = [
            buddy_match(&t, 21, m3, "Oslo", None, source(&t.second, 1)),
            buddy_match(&t, 22, m2, "Bergen", None, source(&t.second, 2)),
            buddy_match(&t, 23, m1, "Oslo", None, source(&t.second, 3)),
        ];
        let w = in_unit!(store, u => u.upsert_matches(&second)).expect("second import");
        assert_eq!(
            w,
            [
                written(21, Inserted),
                written(2, Updated),
                written(1, Unchanged)
            ]
        );
        let kind = ActivityKind::BuddyMatch;
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.first, &t.first, 1, None)
        );
        assert_eq!(
            lineage_of(store, kind, 2).await,
            lineage(&t.second, &t.first, 2, None)
        );
        assert_eq!(
            lineage_of(store, kind, 21).await,
            lineage(&t.second, &t.second, 1, None)
        );
        assert_eq!(store.count_activities(kind).await.expect("count"), 3);
        let keys = [
            second[1].key,
            second[2].key,
            MatchKey {
                matched_at: at("2020-01-01T00:00:00Z"),
                ..second[0].key
            },
        ];
        let found = in_unit!(store, u => u.stored_matches(&keys)).expect("look-up");
        assert_eq!(
            sorted(found),
            sorted(vec![
                (keys[0], stored(2, &t.second, 2)),
                (keys[1], stored(1, &t.first, 1)),
            ])
        );
    }

    /// Course completions: the same outcomes and lineage on (user, provider, course).
    pub async fn completion_upserts_tell_outcomes_and_keep_lineage(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let first = [
            completion(&t, 1, "ML-101", 8750, None, source(&t.first, 1)),
            completion(&t, 2, "ML-102", 9000, None, source(&t.first, 2)),
        ];
        let w = in_unit!(store, u => u.upsert_completions(&first)).expect("first import");
        assert_eq!(w, [written(1, Inserted), written(2, Inserted)]);
        let second = [
            completion(&t, 31, "ML-101", 8750, None, source(&t.second, 3)),
            completion(&t, 32, "ML-102", 10_000, None, source(&t.second, 4)),
            completion(&t, 33, "ml-102", 9000, None, source(&t.second, 5)),
        ];
        let w = in_unit!(store, u => u.upsert_completions(&second)).expect("second import");
        // Course ids are case-sensitive: `ml-102` is another course.
        assert_eq!(
            w,
            [
                written(1, Unchanged),
                written(2, Updated),
                written(33, Inserted)
            ]
        );
        let kind = ActivityKind::CourseCompletion;
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.first, &t.first, 1, None)
        );
        assert_eq!(
            lineage_of(store, kind, 2).await,
            lineage(&t.second, &t.first, 4, None)
        );
        assert_eq!(
            lineage_of(store, kind, 33).await,
            lineage(&t.second, &t.second, 5, None)
        );
        let keys = [second[0].key.clone(), second[1].key.clone()];
        let found = in_unit!(store, u => u.stored_completions(&keys)).expect("look-up");
        assert_eq!(
            sorted(found),
            sorted(vec![
                (keys[0].clone(), stored(1, &t.first, 1)),
                (keys[1].clone(), stored(2, &t.second, 4)),
            ])
        );
    }

    /// A write without an instance never clears a stored link: with the same values it is unchanged, with other
    /// values it is updated and keeps the link; another instance is a change.
    pub async fn the_instance_of_an_activity_is_never_cleared(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let linked = Some(&t.seed.instance);
        let kind = ActivityKind::KintellSession;
        let w = in_unit!(store, u => u.upsert_sessions(&[session(&t, 1, "S-1", "good", linked, source(&t.first, 1))]))
            .expect("linked");
        assert_eq!(w, [written(1, Inserted)]);
        let w = in_unit!(store, u => u.upsert_sessions(&[session(&t, 2, "S-1", "good", None, source(&t.second, 1))]))
            .expect("no instance, same values");
        assert_eq!(w, [written(1, Unchanged)]);
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.first, &t.first, 1, linked)
        );
        let w = in_unit!(store, u => u.upsert_sessions(&[session(&t, 3, "S-1", "other", None, source(&t.second, 2))]))
            .expect("no instance, other values");
        assert_eq!(w, [written(1, Updated)]);
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.second, &t.first, 2, linked)
        );
        let moved = Some(&t.other_instance);
        let w = in_unit!(store, u => u.upsert_sessions(&[session(&t, 4, "S-1", "other", moved, source(&t.second, 3))]))
            .expect("another instance");
        assert_eq!(w, [written(1, Updated)]);
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.second, &t.first, 3, moved)
        );

        let kind = ActivityKind::BuddyMatch;
        let m = "2024-10-01T09:00:00Z";
        in_unit!(store, u => u.upsert_matches(&[buddy_match(&t, 5, m, "Oslo", linked, source(&t.first, 1))]))
            .expect("linked match");
        let w = in_unit!(store, u => u.upsert_matches(&[buddy_match(&t, 6, m, "Bergen", None, source(&t.second, 9))]))
            .expect("match without instance");
        assert_eq!(w, [written(5, Updated)]);
        assert_eq!(
            lineage_of(store, kind, 5).await,
            lineage(&t.second, &t.first, 9, linked)
        );
    }

    /// Activity writes refuse unknown people, instances and batches and row numbers below 1, with named errors;
    /// a refused write leaves nothing.
    pub async fn activity_writes_name_their_errors(store: &Store) {
        let t = Import::store(store).await;
        let stranger = UserId::stable(&Email::parse("stranger@example.com").expect("email"));
        let ok = session(&t, 1, "S-1", "good", None, source(&t.first, 1));
        let cases = [
            (
                "unknown participant",
                SessionWrite {
                    participant_id: stranger,
                    ..ok.clone()
                },
            ),
            (
                "unknown volunteer",
                SessionWrite {
                    volunteer_id: stranger,
                    ..ok.clone()
                },
            ),
            (
                "unknown instance",
                SessionWrite {
                    program_instance_id: Some(InstanceId(Uuid::from_u128(9))),
                    ..ok.clone()
                },
            ),
            (
                "unknown batch",
                SessionWrite {
                    source: RowSource {
                        batch_id: BatchId(Uuid::from_u128(9)),
                        source_row_number: 1,
                    },
                    ..ok.clone()
                },
            ),
            (
                "row 0",
                SessionWrite {
                    source: source(&t.first, 0),
                    ..ok.clone()
                },
            ),
        ];
        let mut out = String::new();
        for (label, row) in cases {
            let r = in_unit!(store, u => u.upsert_sessions(std::slice::from_ref(&row)));
            writeln!(out, "{label}: {}", r.err().map_or("ok", |e| error_name(&e))).expect("write");
        }
        let bad_match = MatchWrite {
            key: MatchKey {
                buddy_id: stranger,
                ..buddy_match(
                    &t,
                    2,
                    "2024-10-01T09:00:00Z",
                    "Oslo",
                    None,
                    source(&t.first, 1),
                )
                .key
            },
            ..buddy_match(
                &t,
                2,
                "2024-10-01T09:00:00Z",
                "Oslo",
                None,
                source(&t.first, 1),
            )
        };
        let r = in_unit!(store, u => u.upsert_matches(&[bad_match]));
        writeln!(
            out,
            "unknown buddy: {}",
            r.err().map_or("ok", |e| error_name(&e))
        )
        .expect("write");
        let mut bad_completion = completion(&t, 3, "ML-1", 100, None, source(&t.first, 1));
        bad_completion.key.user_id = stranger;
        let r = in_unit!(store, u => u.upsert_completions(&[bad_completion]));
        writeln!(
            out,
            "unknown learner: {}",
            r.err().map_or("ok", |e| error_name(&e))
        )
        .expect("write");
        expect![[r#"
            unknown participant: MissingReference
            unknown volunteer: MissingReference
            unknown instance: MissingReference
            unknown batch: MissingReference
            row 0: Invalid
            unknown buddy: MissingReference
            unknown learner: MissingReference
        "#]]
        .assert_eq(&out);
        for kind in ActivityKind::ALL {
            assert_eq!(store.count_activities(*kind).await.expect("count"), 0);
        }
    }

    /// A user of the users export, written by `from` at a fixed time.
    pub fn user_write(user: &User, from: RowSource) -> UserWrite {
        UserWrite {
            user: user.clone(),
            created_at: at("2023-12-14T00:00:00Z"),
            source: from,
            now: at("2024-06-01T10:00:00Z"),
        }
    }

    /// The users export: upserts by email (an existing user keeps its id), ensures the `kintell` external id with
    /// the write's lineage, and rewrites that lineage only when the user is inserted or changed.
    pub async fn user_rows_are_upserted_by_email_with_their_lineage(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let marta = User {
            role: UserRole::Participant,
            ..user("marta@example.com", None)
        };
        let petro = user("petro@acme.example", Some(&t.seed.acme));
        let anna = t.seed.anna.clone();
        let first = [
            user_write(&marta, source(&t.first, 1)),
            user_write(&petro, source(&t.first, 2)),
            user_write(&anna, source(&t.first, 3)),
        ];
        let w = in_unit!(store, u => u.upsert_user_rows(&first)).expect("first import");
        let id = |u: &User| u.id.uuid();
        assert_eq!(
            w,
            [
                Written {
                    id: id(&marta),
                    outcome: Inserted
                },
                Written {
                    id: id(&petro),
                    outcome: Inserted
                },
                // Stored by the catalogue with the same values: unchanged, but its external id is ensured.
                Written {
                    id: id(&anna),
                    outcome: Unchanged
                },
            ]
        );
        let emails = [
            marta.email.clone(),
            petro.email.clone(),
            anna.email.clone(),
            Email::parse("nobody@example.com").expect("email"),
            t.olena.email.clone(),
        ];
        let found = in_unit!(store, u => u.stored_user_sources(&emails)).expect("sources");
        let source_row = |u: &User, b: &BatchRecord, row| StoredRow {
            id: id(u),
            batch_id: Some(b.id),
            source_row_number: Some(row),
        };
        // Olena has no external id: she was never in the users export.
        assert_eq!(
            sorted(found),
            sorted(vec![
                (marta.email.clone(), source_row(&marta, &t.first, 1)),
                (petro.email.clone(), source_row(&petro, &t.first, 2)),
                (anna.email.clone(), source_row(&anna, &t.first, 3)),
            ])
        );

        let petro2 = User {
            tags: Tags::from_raw(["refugees", "tech"]),
            ..petro.clone()
        };
        // A stored user keeps its id, whatever id the write carries.
        let anna2 = User {
            id: UserId(Uuid::from_u128(77)),
            last_name: Some(PersonName::parse("Kowalska").expect("name")),
            ..anna.clone()
        };
        let second = [
            user_write(&marta, source(&t.second, 1)),
            user_write(&petro2, source(&t.second, 7)),
            user_write(&anna2, source(&t.second, 8)),
        ];
        let w = in_unit!(store, u => u.upsert_user_rows(&second)).expect("second import");
        assert_eq!(
            w,
            [
                Written {
                    id: id(&marta),
                    outcome: Unchanged
                },
                Written {
                    id: id(&petro),
                    outcome: Updated
                },
                Written {
                    id: id(&anna),
                    outcome: Updated
                },
            ]
        );
        let found = in_unit!(store, u => u.stored_user_sources(&emails[..3])).expect("sources");
        assert_eq!(
            sorted(found),
            sorted(vec![
                (marta.email.clone(), source_row(&marta, &t.first, 1)),
                (petro.email.clone(), source_row(&petro, &t.second, 7)),
                (anna.email.clone(), source_row(&anna, &t.second, 8)),
            ])
        );
        assert_eq!(
            store.user_by_email(&petro.email).await.expect("petro"),
            Some(petro2)
        );
        assert_eq!(
            store.user_by_email(&anna.email).await.expect("anna"),
            Some(User {
                id: anna.id,
                ..anna2
            })
        );
        assert_eq!(store.count_users().await.expect("count"), 4);
    }

    /// The users export refuses an unknown company, and an external id held by another user, with named errors.
    pub async fn user_rows_name_their_errors(store: &Store) {
        let t = Import::store(store).await;
        let marta = user("marta@example.com", None);
        let ghost = company("ghost");
        let r = in_unit!(store, u => u.upsert_user_rows(&[user_write(&User { company_id: Some(ghost.id), ..marta.clone() }, source(&t.first, 1))]));
        assert_eq!(r.err().map(|e| error_name(&e)), Some("MissingReference"));
        in_unit!(store, u => u.upsert_user_rows(&[user_write(&marta, source(&t.first, 1))]))
            .expect("marta");
        // Marta's address changes in the catalogue; her external id still names the old one.
        let renamed = User {
            email: Email::parse("marta.new@example.com").expect("email"),
            ..marta.clone()
        };
        commit(store, &[Write::Users(vec![renamed])])
            .await
            .expect("rename");
        let newcomer = User {
            id: UserId(Uuid::from_u128(99)),
            ..marta.clone()
        };
        let r = in_unit!(store, u => u.upsert_user_rows(&[user_write(&newcomer, source(&t.second, 1))]));
        match r {
            Err(StoreError::Duplicate { constraint }) => {
                assert_eq!(constraint, "user_external_ids_provider_external_id_key");
            }
            other => panic!("expected Duplicate, got {other:?}"),
        }
        assert_eq!(store.user_by_email(&marta.email).await.expect("read"), None);
    }

    /// An enrolment of `user` in the seed's instance.
    fn enrolment(
        t: &Import,
        id: u128,
        user: &User,
        role: EnrollmentRole,
        when: &str,
    ) -> Enrollment {
        Enrollment {
            id: Uuid::from_u128(id),
            user_id: user.id,
            program_instance_id: t.seed.instance.id,
            program_type: t.seed.instance.program_type,
            role,
            enrolled_at: at(when),
        }
    }

    /// Enrolments are idempotent on (user, instance, role): a later time changes nothing, an earlier one is
    /// taken; repeated keys in one call count as if written one after another.
    pub async fn enrolments_are_idempotent_and_keep_the_earliest_time(store: &Store) {
        use EnrollmentRole::{Participant, Volunteer};
        let t = Import::store(store).await;
        let (olena, anna) = (&t.olena, &t.seed.anna);
        let calls = [
            (
                "first",
                vec![
                    enrolment(&t, 1, olena, Participant, "2024-10-03T00:00:00Z"),
                    enrolment(&t, 2, anna, Volunteer, "2024-10-03T00:00:00Z"),
                ],
            ),
            (
                "later",
                vec![
                    enrolment(&t, 3, olena, Participant, "2024-10-05T00:00:00Z"),
                    enrolment(&t, 4, anna, Volunteer, "2024-10-03T00:00:00Z"),
                ],
            ),
            (
                "earlier",
                vec![enrolment(&t, 5, olena, Participant, "2024-10-01T00:00:00Z")],
            ),
            (
                "between",
                vec![enrolment(&t, 6, olena, Participant, "2024-10-02T00:00:00Z")],
            ),
            (
                "repeated",
                vec![
                    enrolment(&t, 7, anna, Volunteer, "2024-10-02T00:00:00Z"),
                    enrolment(&t, 8, anna, Volunteer, "2024-09-30T00:00:00Z"),
                    enrolment(&t, 9, anna, Volunteer, "2024-10-10T00:00:00Z"),
                    enrolment(&t, 10, olena, Volunteer, "2024-10-04T00:00:00Z"),
                ],
            ),
            (
                "after all that",
                vec![
                    enrolment(&t, 11, anna, Volunteer, "2024-09-30T00:00:00Z"),
                    enrolment(&t, 12, olena, Participant, "2024-10-01T00:00:00Z"),
                ],
            ),
        ];
        let mut out = String::new();
        for (label, rows) in &calls {
            let c = in_unit!(store, u => u.upsert_enrollments(rows)).expect("enrol");
            writeln!(out, "{label}: {}", counts(&c)).expect("write");
        }
        let stranger = User {
            id: UserId(Uuid::from_u128(9)),
            ..t.olena.clone()
        };
        let r = in_unit!(store, u => u.upsert_enrollments(&[enrolment(&t, 20, &stranger, Participant, "2024-10-01T00:00:00Z")]));
        writeln!(
            out,
            "unknown user: {}",
            r.err().map_or("ok", |e| error_name(&e))
        )
        .expect("write");
        let nowhere = Enrollment {
            program_instance_id: InstanceId(Uuid::from_u128(9)),
            ..enrolment(&t, 21, olena, Participant, "2024-10-01T00:00:00Z")
        };
        let r = in_unit!(store, u => u.upsert_enrollments(&[nowhere]));
        writeln!(
            out,
            "unknown instance: {}",
            r.err().map_or("ok", |e| error_name(&e))
        )
        .expect("write");
        expect![[r#"
            first: 2 inserted, 0 updated, 0 unchanged
            later: 0 inserted, 0 updated, 2 unchanged
            earlier: 0 inserted, 1 updated, 0 unchanged
            between: 0 inserted, 0 updated, 1 unchanged
            repeated: 1 inserted, 2 updated, 1 unchanged
            after all that: 0 inserted, 0 updated, 2 unchanged
            unknown user: MissingReference
            unknown instance: MissingReference
        "#]]
        .assert_eq(&out);
    }

    /// A row error of `batch`.
    pub fn row_error(batch: &BatchRecord, row: i64, code: &str) -> RowErrorRecord {
        RowErrorRecord {
            batch_id: batch.id,
            row_number: row,
            line_number: row + 1,
            code: code.to_owned(),
            field: Some("participant_email".to_owned()),
            message: format!("row {row}: {code}"),
            details: Some(
                json!([{"code": code, "field": "participant_email", "message": "no such user"}]),
            ),
            raw_record: json!(["S-1", "nobody@example.com", ""]),
        }
    }

    /// Row errors are rewritten, never duplicated (the last of a call wins), and read back by row number in
    /// pages; an unknown batch and a row number below 1 are named errors.
    pub async fn row_errors_are_rewritten_and_paged(store: &Store) {
        let t = Import::store(store).await;
        let rows = [
            row_error(&t.first, 3, "unknown_user"),
            row_error(&t.first, 1, "missing_field"),
            row_error(&t.second, 1, "invalid_enum"),
            row_error(&t.first, 2, "unknown_user"),
        ];
        in_unit!(store, u => u.put_row_errors(&rows)).expect("first pass");
        let rewritten = RowErrorRecord {
            field: None,
            details: None,
            ..row_error(&t.first, 2, "duplicate_in_file")
        };
        let again = [row_error(&t.first, 2, "unknown_user"), rewritten.clone()];
        in_unit!(store, u => u.put_row_errors(&again)).expect("resume");
        let page = |after, limit| store.row_errors(t.first.id, after, limit);
        assert_eq!(
            page(0, 10).await.expect("all"),
            [rows[1].clone(), rewritten.clone(), rows[0].clone()]
        );
        assert_eq!(
            page(0, 2).await.expect("page 1"),
            [rows[1].clone(), rewritten]
        );
        assert_eq!(page(2, 2).await.expect("page 2"), [rows[0].clone()]);
        assert_eq!(page(3, 2).await.expect("page 3"), []);
        assert_eq!(
            store.row_errors(t.second.id, 0, 10).await.expect("second"),
            [rows[2].clone()]
        );
        assert_eq!(
            store
                .row_errors(BatchId(Uuid::from_u128(9)), 0, 10)
                .await
                .expect("none"),
            []
        );
        let orphan = RowErrorRecord {
            batch_id: BatchId(Uuid::from_u128(9)),
            ..row_error(&t.first, 1, "x")
        };
        let r = in_unit!(store, u => u.put_row_errors(&[orphan]));
        assert_eq!(r.err().map(|e| error_name(&e)), Some("MissingReference"));
        let r = in_unit!(store, u => u.put_row_errors(&[row_error(&t.first, 0, "x")]));
        assert_eq!(r.err().map(|e| error_name(&e)), Some("Invalid"));
    }

    /// The batch that creates a legacy batch: whatever it names, the legacy marks are forced.
    pub fn legacy_new_batch(n: u128, created_at: &str) -> NewBatch {
        NewBatch {
            file_name: "whatever.csv".to_owned(),
            import_method: ImportMethod::CsvUpload,
            format: "kintell-sessions".to_owned(),
            file_hash: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .to_owned(),
            total_rows: 0,
            ..new_batch(n, "legacy", "", created_at)
        }
    }

    /// Legacy adoption creates one completed legacy batch per table and is idempotent; rows written by imports
    /// have a batch and are never adopted.
    pub async fn legacy_adoption_is_idempotent(store: &Store) {
        let t = Import::store(store).await;
        in_unit!(store, u => u.upsert_sessions(&[session(&t, 1, "S-1", "good", None, source(&t.first, 1))]))
            .expect("an imported session");
        let kind = ActivityKind::KintellSession;
        let (legacy, adopted) = store
            .adopt_legacy(kind, &legacy_new_batch(10, "2024-07-01T00:00:00Z"))
            .await
            .expect("adopt");
        assert_eq!(adopted, 0);
        assert_eq!(
            (
                legacy.id,
                legacy.file_name.as_str(),
                legacy.import_method,
                legacy.format.as_str(),
                legacy.entity_kind,
                legacy.status,
            ),
            (
                BatchId(Uuid::from_u128(10)),
                "legacy_import",
                ImportMethod::Legacy,
                "legacy",
                EntityKind::KintellSessions,
                BatchStatus::Completed,
            )
        );
        assert_eq!(
            (
                legacy.total_rows,
                legacy.success_rows,
                legacy.inserted_rows,
                legacy.last_processed_row
            ),
            (0, 0, 0, 0)
        );
        assert_eq!(
            store.get_batch(legacy.id).await.expect("get"),
            Some(legacy.clone())
        );
        let (again, adopted) = store
            .adopt_legacy(kind, &legacy_new_batch(11, "2024-07-02T00:00:00Z"))
            .await
            .expect("adopt again");
        assert_eq!((again, adopted), (legacy.clone(), 0));
        assert_eq!(
            store
                .get_batch(BatchId(Uuid::from_u128(11)))
                .await
                .expect("get"),
            None
        );
        let (matches, _) = store
            .adopt_legacy(
                ActivityKind::BuddyMatch,
                &legacy_new_batch(12, "2024-07-03T00:00:00Z"),
            )
            .await
            .expect("adopt matches");
        assert_eq!(
            (matches.id, matches.entity_kind),
            (BatchId(Uuid::from_u128(12)), EntityKind::BuddyMatches)
        );
        assert_eq!(
            lineage_of(store, kind, 1).await,
            lineage(&t.first, &t.first, 1, None)
        );
    }

    /// Calls too large for one statement's bind parameters are split, and every row still gets its own id,
    /// outcome and look-up answer: 3000 sessions (22 parameters a row, look-up included) exceed both backends'
    /// limits, 3000 users (12 a row) SQLite's.
    pub async fn large_calls_keep_every_rows_outcome(store: &Store) {
        use RowOutcome::*;
        let t = Import::store(store).await;
        let n: u128 = 3000;
        let row = |i: u128| i64::try_from(i + 1).expect("small");
        let first: Vec<SessionWrite> = (0..n)
            .map(|i| {
                session(
                    &t,
                    100 + i,
                    &format!("S-{i}"),
                    "good",
                    None,
                    source(&t.first, row(i)),
                )
            })
            .collect();
        let w = in_unit!(store, u => u.upsert_sessions(&first)).expect("first import");
        let want: Vec<Written> = (0..n).map(|i| written(100 + i, Inserted)).collect();
        assert_eq!(w, want);
        let feedback = |i: u128| {
            if i.is_multiple_of(2) {
                "good"
            } else {
                "better"
            }
        };
        let second: Vec<SessionWrite> = (0..n)
            .map(|i| {
                session(
                    &t,
                    10_000 + i,
                    &format!("S-{i}"),
                    feedback(i),
                    None,
                    source(&t.second, row(i)),
                )
            })
            .collect();
        let w = in_unit!(store, u => u.upsert_sessions(&second)).expect("second import");
        let want: Vec<Written> = (0..n)
            .map(|i| {
                written(
                    100 + i,
                    if i.is_multiple_of(2) {
                        Unchanged
                    } else {
                        Updated
                    },
                )
            })
            .collect();
        assert_eq!(w, want);
        let ids: Vec<SessionId> = second.iter().map(|s| s.row.session_id.clone()).collect();
        let found = in_unit!(store, u => u.stored_sessions(&ids)).expect("look-up");
        let found: std::collections::HashMap<SessionId, StoredRow> = found.into_iter().collect();
        assert_eq!(found.len(), ids.len());
        for (i, id) in (0..n).zip(&ids) {
            let batch = if i.is_multiple_of(2) {
                &t.first
            } else {
                &t.second
            };
            assert_eq!(
                found.get(id),
                Some(&stored(100 + i, batch, row(i))),
                "{id:?}"
            );
        }

        let users: Vec<UserWrite> = (0..n)
            .map(|i| {
                user_write(
                    &user(&format!("u{i}@example.com"), None),
                    source(&t.first, row(i)),
                )
            })
            .collect();
        let w = in_unit!(store, u => u.upsert_user_rows(&users)).expect("users");
        let want: Vec<Written> = users
            .iter()
            .map(|u| Written {
                id: u.user.id.uuid(),
                outcome: Inserted,
            })
            .collect();
        assert_eq!(w, want);
        let emails: Vec<Email> = users.iter().map(|u| u.user.email.clone()).collect();
        let found = in_unit!(store, u => u.stored_user_sources(&emails)).expect("sources");
        let found: std::collections::HashMap<Email, StoredRow> = found.into_iter().collect();
        assert_eq!(found.len(), emails.len());
        for (u, i) in users.iter().zip(0..n) {
            assert_eq!(
                found
                    .get(&u.user.email)
                    .map(|s| (s.id, s.source_row_number)),
                Some((u.user.id.uuid(), Some(row(i))))
            );
        }
    }

    /// Every new write of a unit is discarded by a rollback, by a failed later write, and by dropping the unit;
    /// the unit's own look-ups see its writes before it commits.
    pub async fn import_writes_are_all_or_nothing(store: &Store) {
        let t = Import::store(store).await;
        let marta = user("marta@example.com", None);
        let s = session(
            &t,
            1,
            "S-1",
            "good",
            Some(&t.seed.instance),
            source(&t.first, 1),
        );
        let m = buddy_match(
            &t,
            2,
            "2024-10-01T09:00:00Z",
            "Oslo",
            None,
            source(&t.first, 2),
        );
        let c = completion(&t, 3, "ML-1", 9000, None, source(&t.first, 3));
        let e = enrolment(
            &t,
            4,
            &t.olena,
            EnrollmentRole::Participant,
            "2024-10-02T00:00:00Z",
        );
        let err = row_error(&t.first, 5, "unknown_user");
        for ending in ["rollback", "failed write", "drop"] {
            let mut unit = store.begin().await.expect("begin");
            unit.upsert_user_rows(&[user_write(&marta, source(&t.first, 6))])
                .await
                .expect("user");
            unit.upsert_sessions(std::slice::from_ref(&s))
                .await
                .expect("session");
            unit.upsert_matches(std::slice::from_ref(&m))
                .await
                .expect("match");
            unit.upsert_completions(std::slice::from_ref(&c))
                .await
                .expect("completion");
            unit.upsert_enrollments(&[e]).await.expect("enrolment");
            unit.put_row_errors(std::slice::from_ref(&err))
                .await
                .expect("row error");
            let seen = unit
                .stored_sessions(std::slice::from_ref(&s.row.session_id))
                .await
                .expect("look-up");
            assert_eq!(seen, [(s.row.session_id.clone(), stored(1, &t.first, 1))]);
            let seen = unit
                .stored_user_sources(std::slice::from_ref(&marta.email))
                .await
                .expect("look-up");
            assert_eq!(seen.len(), 1);
            match ending {
                "rollback" => unit.rollback().await.expect("rollback"),
                "failed write" => {
                    let bad = SessionWrite {
                        volunteer_id: UserId(Uuid::from_u128(9)),
                        ..session(&t, 7, "S-2", "x", None, source(&t.first, 7))
                    };
                    let r = unit.upsert_sessions(&[bad]).await;
                    assert_eq!(r.err().map(|e| error_name(&e)), Some("MissingReference"));
                    unit.rollback().await.expect("rollback");
                }
                _ => drop(unit),
            }
            for kind in ActivityKind::ALL {
                assert_eq!(
                    store.count_activities(*kind).await.expect("count"),
                    0,
                    "{ending}"
                );
            }
            assert_eq!(
                store.user_by_email(&marta.email).await.expect("read"),
                None,
                "{ending}"
            );
            assert_eq!(
                store.row_errors(t.first.id, 0, 10).await.expect("read"),
                [],
                "{ending}"
            );
            // The enrolment is new again (probed in a unit that is rolled back).
            let mut probe = store.begin().await.expect("begin");
            let again = probe.upsert_enrollments(&[e]).await.expect("enrol");
            assert_eq!(again.inserted, 1, "{ending}: the enrolment was kept");
            probe.rollback().await.expect("rollback");
        }
    }
}

/// What only the SQL stores can get wrong: values a database holds that do not parse, text timestamps that must
/// order chronologically, and conditions that must hold in SQL rather than in a read-then-write race.
#[cfg(all(feature = "sqlite", feature = "postgres"))]
mod sql {
    use super::contract::{
        Seed, Write, association, at, commit, error_name, legacy_new_batch, new_batch, running,
    };
    use crate::support;
    use kintell_ingest::domain::{
        ActivityId, ActivityKind, ActivityLineage, BatchId, BatchStatus, Decision, EntityKind,
    };
    use kintell_ingest::ports::{BatchFilter, BatchGuard, UpsertCounts};
    use kintell_ingest::store::{Database, Store};
    use std::time::{Duration, Instant};
    use uuid::Uuid;

    async fn open_sqlite() -> (Store, support::SqliteDb) {
        let db = support::fresh_sqlite();
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        (store, db)
    }

    async fn open_pg(test: &str) -> Option<(Store, support::PgDb)> {
        let db = support::fresh_pg(test).await?;
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        Some((store, db))
    }

    /// Runs one statement with UUID parameters `$1`, `$2`, … (in order of appearance) on the store's database,
    /// behind the store's back.
    async fn raw_with(store: &Store, sql: &'static str, ids: &[Uuid]) {
        match store.database().expect("a database") {
            Database::Sqlite(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(pool).await.expect("raw sql");
            }
            Database::Postgres(pool) => {
                let mut q = sqlx::query(sql);
                for id in ids {
                    q = q.bind(*id);
                }
                q.execute(pool).await.expect("raw sql");
            }
        }
    }

    async fn raw(store: &Store, sql: &'static str, id: Uuid) {
        raw_with(store, sql, &[id]).await;
    }

    /// Activity counts and lineage read what the activity tables hold, whoever wrote it (here a row written by
    /// hand, the same text on both backends).
    async fn activity_counts_and_lineage_read_the_tables(store: &Store) {
        let s = Seed::store(store).await;
        let participant = super::contract::user("olena@example.com", None);
        commit(store, &[Write::Users(vec![participant.clone()])])
            .await
            .expect("participant");
        let batch = store
            .insert_batch(&new_batch(1, "matches", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let id = Uuid::from_u128(42);
        raw_with(
            store,
            "INSERT INTO buddy_matches (id, participant_id, buddy_id, matched_at, status, batch_id, \
             first_batch_id, source_row_number, program_instance_id) \
             VALUES ($1, $2, $3, '2024-06-01T10:00:00+00:00', 'active', $4, $5, 7, $6)",
            &[
                id,
                participant.id.uuid(),
                s.anna.id.uuid(),
                batch.id.uuid(),
                batch.id.uuid(),
                s.instance.id.uuid(),
            ],
        )
        .await;
        let mut counts = Vec::new();
        for kind in ActivityKind::ALL {
            counts.push(store.count_activities(*kind).await.expect("count"));
        }
        assert_eq!(counts, [0, 1, 0]);
        assert_eq!(
            store
                .activity_lineage(ActivityKind::BuddyMatch, ActivityId(id))
                .await
                .expect("lineage"),
            Some(ActivityLineage {
                batch_id: Some(batch.id),
                first_batch_id: Some(batch.id),
                source_row_number: Some(7),
                program_instance_id: Some(s.instance.id),
            })
        );
        assert_eq!(
            store
                .activity_lineage(ActivityKind::KintellSession, ActivityId(id))
                .await
                .expect("lineage"),
            None
        );
    }

    /// Rows that predate batches (written by hand, `batch_id` NULL) are adopted by the legacy batch of their
    /// table: batch and first batch set, counters equal to the rows adopted; a second run adopts nothing, and a
    /// run after more such rows appear adds them to the same batch.
    async fn legacy_rows_are_adopted_once(store: &Store) {
        let s = Seed::store(store).await;
        let olena = super::contract::user("olena@example.com", None);
        commit(store, &[Write::Users(vec![olena.clone()])])
            .await
            .expect("participant");
        let (one, two, three) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        raw_with(
            store,
            "INSERT INTO kintell_sessions (id, external_session_id, session_type, participant_id, volunteer_id) \
             VALUES ($1, 'legacy-1', 'mentorship', $2, $3), ($4, 'legacy-2', 'language', $2, $3)",
            &[one, olena.id.uuid(), s.anna.id.uuid(), two],
        )
        .await;
        let kind = ActivityKind::KintellSession;
        let (legacy, adopted) = store
            .adopt_legacy(kind, &legacy_new_batch(10, "2024-07-01T00:00:00Z"))
            .await
            .expect("adopt");
        assert_eq!(adopted, 2);
        assert_eq!(
            (
                legacy.status,
                legacy.total_rows,
                legacy.success_rows,
                legacy.inserted_rows,
                legacy.last_processed_row,
                legacy.updated_rows,
                legacy.error_rows,
                legacy.skipped_rows,
            ),
            (BatchStatus::Completed, 2, 2, 2, 2, 0, 0, 0)
        );
        assert_eq!(
            store.get_batch(legacy.id).await.expect("get"),
            Some(legacy.clone())
        );
        let adopted_lineage = Some(ActivityLineage {
            batch_id: Some(legacy.id),
            first_batch_id: Some(legacy.id),
            source_row_number: None,
            program_instance_id: None,
        });
        for id in [one, two] {
            assert_eq!(
                store
                    .activity_lineage(kind, ActivityId(id))
                    .await
                    .expect("lineage"),
                adopted_lineage
            );
        }
        let (again, adopted) = store
            .adopt_legacy(kind, &legacy_new_batch(11, "2024-07-02T00:00:00Z"))
            .await
            .expect("adopt again");
        assert_eq!((&again, adopted), (&legacy, 0));

        raw_with(
            store,
            "INSERT INTO kintell_sessions (id, external_session_id, session_type, participant_id, volunteer_id) \
             VALUES ($1, 'legacy-3', 'mentorship', $2, $3)",
            &[three, olena.id.uuid(), s.anna.id.uuid()],
        )
        .await;
        let (grown, adopted) = store
            .adopt_legacy(kind, &legacy_new_batch(12, "2024-07-03T00:00:00Z"))
            .await
            .expect("adopt the newcomer");
        assert_eq!(adopted, 1);
        assert_eq!(
            (
                grown.id,
                grown.total_rows,
                grown.success_rows,
                grown.inserted_rows,
                grown.last_processed_row
            ),
            (legacy.id, 3, 3, 3, 3)
        );
        assert_eq!(grown.updated_at, at("2024-07-03T00:00:00Z"));
        assert_eq!(grown.created_at, legacy.created_at);
        assert_eq!(store.get_batch(legacy.id).await.expect("get"), Some(grown));
        assert_eq!(
            store
                .activity_lineage(kind, ActivityId(three))
                .await
                .expect("lineage"),
            adopted_lineage
        );
        let (matches, adopted) = store
            .adopt_legacy(
                ActivityKind::BuddyMatch,
                &legacy_new_batch(13, "2024-07-03T00:00:00Z"),
            )
            .await
            .expect("adopt matches");
        assert_eq!(
            (matches.entity_kind, matches.total_rows, adopted),
            (EntityKind::BuddyMatches, 0, 0)
        );
    }

    /// A stored value that does not parse is `Corrupt`, naming table and column, never a panic or a default.
    async fn corrupt_values_name_their_table_and_column(store: &Store) {
        let s = Seed::store(store).await;
        raw(
            store,
            "UPDATE companies SET slug = '   ' WHERE id = $1",
            s.beta.id.uuid(),
        )
        .await;
        raw(
            store,
            "UPDATE users SET tags = '{\"not\": \"a list\"}' WHERE id = $1",
            s.anna.id.uuid(),
        )
        .await;
        let what = |e| match e {
            kintell_ingest::ports::StoreError::Corrupt { what } => what,
            other => panic!("expected Corrupt, got {other:?}"),
        };
        let load = what(store.load_catalog().await.expect_err("a blank slug"));
        assert!(load.starts_with("companies.slug: "), "{load}");
        let user = what(
            store
                .user_by_email(&s.anna.email)
                .await
                .expect_err("tags not a list"),
        );
        assert!(user.starts_with("users.tags: "), "{user}");
    }

    /// Batches list newest first by `created_at` however many fraction digits the times have (SQLite keeps them
    /// as text), and the times come back exactly.
    async fn batch_times_order_chronologically_and_round_trip(store: &Store) {
        let t = at("2024-06-01T10:00:00Z");
        // Later batches get smaller ids, so the order cannot come from the id tie-break.
        let times = [
            (9, t),
            (8, t + chrono::Duration::microseconds(1)),
            (7, t + chrono::Duration::milliseconds(1)),
            (6, t + chrono::Duration::microseconds(999_999)),
            (5, t + chrono::Duration::seconds(1)),
            (4, t + chrono::Duration::seconds(10)),
        ];
        for (n, created_at) in times {
            let batch = kintell_ingest::domain::NewBatch {
                created_at,
                ..new_batch(
                    n,
                    &format!("b{n}"),
                    &format!("h{n}"),
                    "2024-06-01T10:00:00Z",
                )
            };
            let stored = store.insert_batch(&batch).await.expect("insert");
            assert_eq!(stored.created_at, created_at);
        }
        let listed: Vec<u128> = store
            .list_batches(&BatchFilter::default())
            .await
            .expect("list")
            .iter()
            .map(|b| b.id.uuid().as_u128())
            .collect();
        assert_eq!(listed, [4, 5, 6, 7, 8, 9]);
    }

    /// Polls until another connection of the test database waits for a lock, so a contender is known to be
    /// blocked before the holder commits.
    async fn until_someone_waits_for_a_lock(store: &Store) {
        let Some(Database::Postgres(pool)) = store.database() else {
            panic!("PostgreSQL only");
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
            .fetch_one(pool)
            .await
            .expect("pg_stat_activity");
            if waiting > 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no contender ever waited for the lock"
            );
            tokio::task::yield_now().await;
        }
    }

    /// A rescoring that reaches a row while a reviewer's decision on it is uncommitted waits, then leaves the
    /// human decision alone: the stickiness is in the statement, not in an earlier read.
    async fn a_waiting_rescoring_never_overwrites_a_human_decision(store: &Store) {
        let s = Seed::store(store).await;
        let review = association(
            1,
            100,
            Decision::Review,
            Some(&s.campaign),
            Some(&s.instance),
        );
        commit(store, &[Write::Associations(vec![review.clone()])])
            .await
            .expect("review");

        let mut reviewer = store.begin().await.expect("begin");
        let accepted = kintell_ingest::domain::Association {
            decision: Decision::Accepted,
            decided_by: Some("reviewer@acme.example".to_owned()),
            decided_at: Some(at("2024-06-02T09:00:00Z")),
            ..review.clone()
        };
        reviewer
            .upsert_associations(std::slice::from_ref(&accepted))
            .await
            .expect("accept");

        let rescoring = {
            let store = store.clone();
            let auto = kintell_ingest::domain::Association {
                decision: Decision::Auto,
                policy_version: "2025.1".to_owned(),
                ..association(2, 100, Decision::Auto, Some(&s.campaign), Some(&s.instance))
            };
            tokio::spawn(async move {
                let mut unit = store.begin().await.expect("begin");
                let counts = unit.upsert_associations(&[auto]).await.expect("rescore");
                unit.commit().await.expect("commit");
                counts
            })
        };
        until_someone_waits_for_a_lock(store).await;
        reviewer.commit().await.expect("commit the decision");
        let counts = rescoring.await.expect("rescoring task");
        assert_eq!(
            counts,
            UpsertCounts {
                inserted: 0,
                updated: 0,
                unchanged: 1
            }
        );
        let stored = store
            .association_for(
                ActivityKind::KintellSession,
                ActivityId(Uuid::from_u128(100)),
            )
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(stored, accepted);
    }

    /// Two workers save over the same batch with the same guard; the second waits for the first and then finds
    /// the guard no longer matches: exactly one wins.
    async fn a_waiting_guarded_save_loses_to_the_first(store: &Store) {
        let batch = store
            .insert_batch(&new_batch(1, "a", "h1", "2024-06-01T10:00:00Z"))
            .await
            .expect("batch");
        let guard = BatchGuard::of(&batch);
        let mut first = store.begin().await.expect("begin");
        assert!(
            first
                .save_batch(&running(&batch, "worker-1", 0), &guard)
                .await
                .expect("first save")
        );
        let second = {
            let store = store.clone();
            let batch = running(&batch, "worker-2", 0);
            let guard = guard.clone();
            tokio::spawn(
                async move { store.save_batch(&batch, &guard).await.expect("second save") },
            )
        };
        until_someone_waits_for_a_lock(store).await;
        first.commit().await.expect("commit");
        assert!(!second.await.expect("second task"));
        let stored = store
            .get_batch(BatchId(Uuid::from_u128(1)))
            .await
            .expect("get");
        assert_eq!(
            stored.and_then(|b| b.lease_owner),
            Some("worker-1".to_owned())
        );
    }

    /// A rolled-back unit leaves SQLite writable at once: units take the write lock up front and give it back.
    async fn units_after_a_failed_one_can_write(store: &Store) {
        let s = Seed::rows();
        let mut unit = store.begin().await.expect("begin");
        let orphan = super::contract::campaign("orphan", &s.acme, &s.group);
        let err = unit
            .upsert_campaigns(&[orphan])
            .await
            .expect_err("unknown company");
        assert_eq!(error_name(&err), "MissingReference", "{err}");
        unit.rollback().await.expect("rollback");
        Seed::store(store).await;
        assert_eq!(store.load_catalog().await.expect("load").companies.len(), 2);
    }

    #[tokio::test]
    async fn sqlite_corrupt_values_name_their_table_and_column() {
        let (store, _db) = open_sqlite().await;
        corrupt_values_name_their_table_and_column(&store).await;
    }

    #[tokio::test]
    async fn postgres_corrupt_values_name_their_table_and_column() {
        if let Some((store, _db)) =
            open_pg("postgres_corrupt_values_name_their_table_and_column").await
        {
            corrupt_values_name_their_table_and_column(&store).await;
        }
    }

    #[tokio::test]
    async fn sqlite_legacy_rows_are_adopted_once() {
        let (store, _db) = open_sqlite().await;
        legacy_rows_are_adopted_once(&store).await;
    }

    #[tokio::test]
    async fn postgres_legacy_rows_are_adopted_once() {
        if let Some((store, _db)) = open_pg("postgres_legacy_rows_are_adopted_once").await {
            legacy_rows_are_adopted_once(&store).await;
        }
    }

    #[tokio::test]
    async fn sqlite_activity_counts_and_lineage_read_the_tables() {
        let (store, _db) = open_sqlite().await;
        activity_counts_and_lineage_read_the_tables(&store).await;
    }

    #[tokio::test]
    async fn postgres_activity_counts_and_lineage_read_the_tables() {
        let test = "postgres_activity_counts_and_lineage_read_the_tables";
        if let Some((store, _db)) = open_pg(test).await {
            activity_counts_and_lineage_read_the_tables(&store).await;
        }
    }

    #[tokio::test]
    async fn sqlite_batch_times_order_chronologically_and_round_trip() {
        let (store, _db) = open_sqlite().await;
        batch_times_order_chronologically_and_round_trip(&store).await;
    }

    #[tokio::test]
    async fn postgres_batch_times_order_chronologically_and_round_trip() {
        let test = "postgres_batch_times_order_chronologically_and_round_trip";
        if let Some((store, _db)) = open_pg(test).await {
            batch_times_order_chronologically_and_round_trip(&store).await;
        }
    }

    #[tokio::test]
    async fn sqlite_units_after_a_failed_one_can_write() {
        let (store, _db) = open_sqlite().await;
        units_after_a_failed_one_can_write(&store).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_waiting_rescoring_never_overwrites_a_human_decision() {
        let test = "postgres_a_waiting_rescoring_never_overwrites_a_human_decision";
        if let Some((store, _db)) = open_pg(test).await {
            a_waiting_rescoring_never_overwrites_a_human_decision(&store).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_a_waiting_guarded_save_loses_to_the_first() {
        let test = "postgres_a_waiting_guarded_save_loses_to_the_first";
        if let Some((store, _db)) = open_pg(test).await {
            a_waiting_guarded_save_loses_to_the_first(&store).await;
        }
    }
}
