//! Catalogue import: the fixture, re-imports, problems with their JSON paths, atomicity, a large catalogue.
//!
//! The checks that need a store are in [`contract`] and run on every backend through `contract_tests!` in
//! `stores.rs`; the tests here need no particular store.

use crate::stores::contract::at;
use expect_test::expect;
use kintell_ingest::catalog::{CatalogError, CatalogImport, MAX_PROBLEMS};
use kintell_ingest::store::Store;

/// The hand-written fixture: three companies, three groups, four campaigns, four instances, five users.
pub const FIXTURE: &str = include_str!("../fixtures/catalog.json");

/// The catalogue checks every store must pass.
pub mod contract {
    use super::FIXTURE;
    use crate::stores::contract::{Write, at, commit, company, instance};
    use expect_test::{Expect, expect};
    use kintell_ingest::catalog::{CatalogError, CatalogImport, CatalogReport};
    use kintell_ingest::domain::{
        CampaignId, CompanyId, Email, GroupId, InstanceId, Key, PersonName, ProgramSlug, Tags,
        User, UserId, UserRole,
    };
    use kintell_ingest::ports::{StoreError, UpsertCounts};
    use kintell_ingest::store::Store;
    use serde_json::json;
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use uuid::Uuid;

    fn counts(c: &UpsertCounts) -> String {
        format!("{}/{}/{}", c.inserted, c.updated, c.unchanged)
    }

    /// `kind: inserted/updated/unchanged` for every kind.
    pub fn render_report(r: &CatalogReport) -> String {
        format!(
            "companies {}, groups {}, campaigns {}, instances {}, users {}",
            counts(&r.companies),
            counts(&r.beneficiary_groups),
            counts(&r.campaigns),
            counts(&r.program_instances),
            counts(&r.users)
        )
    }

    /// The outcome of an import: its counts, or its problems one per line.
    pub fn render_outcome(outcome: &Result<CatalogReport, CatalogError>) -> String {
        match outcome {
            Ok(r) => format!("ok: {}\n", render_report(r)),
            Err(CatalogError::Invalid { problems, total }) => {
                let mut out = format!("{total} problems\n");
                for p in problems {
                    writeln!(out, "{p}").expect("write");
                }
                out
            }
            Err(e) => format!("error: {e}\n"),
        }
    }

    /// Imports `doc` and compares the rendered outcome.
    async fn check_import(store: &Store, doc: &str, expected: Expect) {
        let outcome = CatalogImport::new(store.clone())
            .run_json(doc, at("2024-09-01T08:00:00Z"))
            .await;
        expected.assert_eq(&render_outcome(&outcome));
    }

    /// The stored catalogue, one line per row, references by key.
    async fn render_catalogue(store: &Store, emails: &[&str]) -> String {
        let c = store.load_catalog().await.expect("load");
        let companies: HashMap<CompanyId, &str> = c
            .companies
            .iter()
            .map(|x| (x.id, x.slug.as_str()))
            .collect();
        let groups: HashMap<GroupId, &str> =
            c.groups.iter().map(|x| (x.id, x.key.as_str())).collect();
        let campaigns: HashMap<CampaignId, &str> =
            c.campaigns.iter().map(|x| (x.id, x.key.as_str())).collect();
        let company =
            |id: Option<CompanyId>| id.map_or("-", |id| companies.get(&id).copied().unwrap_or("?"));
        let mut lines = Vec::new();
        for x in &c.companies {
            lines.push(format!("company {}: {}", x.slug, x.name));
        }
        for x in &c.groups {
            let tags: Vec<&str> = x.tags.as_slice().iter().map(|t| t.as_str()).collect();
            lines.push(format!(
                "group {}: {} ({}) tags [{}] active {}",
                x.key,
                x.name,
                x.group_type,
                tags.join(" "),
                x.is_active
            ));
        }
        for x in &c.campaigns {
            lines.push(format!(
                "campaign {}: {} of {} for {}, {} {}..{} {} active {} targets {}/{} max {}",
                x.key,
                x.name,
                company(Some(x.company_id)),
                groups.get(&x.beneficiary_group_id).copied().unwrap_or("?"),
                x.program_type.map_or("any type", |t| t.as_str()),
                x.start_date,
                x.end_date,
                x.status,
                x.is_active,
                x.target_volunteers,
                x.target_beneficiaries,
                x.max_sessions.map_or("-".to_owned(), |m| m.to_string()),
            ));
        }
        for x in &c.instances {
            lines.push(format!(
                "instance {}: {} of {} / {}, {} {}..{} {} from {} created {}",
                x.slug,
                x.program_name,
                company(x.company_id),
                x.campaign_id
                    .map_or("-", |id| campaigns.get(&id).copied().unwrap_or("?")),
                x.program_type,
                x.start_date,
                x.end_date.map_or("ongoing".to_owned(), |d| d.to_string()),
                x.status,
                x.external_system.as_deref().unwrap_or("-"),
                x.created_at.to_rfc3339(),
            ));
        }
        for e in emails {
            let email = Email::parse(e).expect("email");
            let Some(u) = store.user_by_email(&email).await.expect("user") else {
                lines.push(format!("user {email}: none"));
                continue;
            };
            let tags: Vec<&str> = u.tags.as_slice().iter().map(|t| t.as_str()).collect();
            lines.push(format!(
                "user {}: {} {} {} of {} tags [{}] flags {}{}",
                u.email,
                u.role,
                u.first_name.as_ref().map_or("-", |n| n.as_str()),
                u.last_name.as_ref().map_or("-", |n| n.as_str()),
                company(u.company_id),
                tags.join(" "),
                serde_json::Value::Object(u.journey_flags.clone()),
                if u.id == UserId::stable(&u.email) {
                    ""
                } else {
                    " (id not stable)"
                },
            ));
        }
        // Stores return rows in no promised order.
        lines.sort();
        lines.join("\n")
    }

    const FIXTURE_EMAILS: [&str; 5] = [
        "anna@example.com",
        "olek.petrenko@example.com",
        "lars@nordicbank.no",
        "maria@acme.example",
        "hr@techcorp.example",
    ];

    /// The fixture loads with its defaults and stable ids; importing it again changes nothing, `created_at`
    /// included.
    pub async fn catalog_fixture_imports_and_a_reimport_is_a_no_op(store: &Store) {
        let import = CatalogImport::new(store.clone());
        let first = import
            .run_json(FIXTURE, at("2024-09-01T08:00:00Z"))
            .await
            .expect("import");
        expect!["companies 3/0/0, groups 3/0/0, campaigns 4/0/0, instances 4/0/0, users 5/0/0"]
            .assert_eq(&render_report(&first));
        let again = import
            .run_json(FIXTURE, at("2025-02-01T08:00:00Z"))
            .await
            .expect("re-import");
        expect!["companies 0/0/3, groups 0/0/3, campaigns 0/0/4, instances 0/0/4, users 0/0/5"]
            .assert_eq(&render_report(&again));

        expect![[r#"
            campaign acme-language-2024: Acme language support 2024 of acme for ua-refugees, language_ukraine 2024-03-01..2024-11-30 recruiting active true targets 0/0 max -
            campaign acme-mentors-2024: Acme mentors for Ukraine 2024 of acme for ua-refugees, mentors_ukraine 2024-01-01..2024-12-31 active active true targets 20/100 max 500
            campaign nordic-buddy-2024: Nordic buddies of nordic-bank for newcomers-berlin, buddy 2024-01-01..2025-06-30 draft active false targets 0/0 max -
            campaign techcorp-upskilling-2025: TechCorp upskilling of techcorp for women-in-tech, any type 2025-01-01..2025-12-31 planned active true targets 0/0 max -
            company acme: Acme AS
            company nordic-bank: Nordic Bank ASA
            company techcorp: TechCorp GmbH
            group newcomers-berlin: Newcomers in Berlin (newcomers) tags [berlin integration newcomers] active true
            group ua-refugees: Ukrainian refugees (refugees) tags [refugees ukrainian] active true
            group women-in-tech: Women in tech (women) tags [tech women] active false
            instance language-ukraine-2024: Language for Ukraine 2024 of acme / acme-language-2024, language_ukraine 2024-03-01..ongoing planned from - created 2024-09-01T08:00:00+00:00
            instance mentors-ukraine-2024-q4: Mentors for Ukraine - Q4 2024 of acme / acme-mentors-2024, mentors_ukraine 2024-10-01..2024-12-31 active from - created 2024-09-01T08:00:00+00:00
            instance nordic-buddy-berlin: Buddies in Berlin of nordic-bank / nordic-buddy-2024, buddy 2024-02-01..ongoing active from kintell created 2024-09-01T08:00:00+00:00
            instance techcorp-open-courses: Open courses of techcorp / -, upskilling 2025-01-15..2025-06-30 paused from - created 2024-09-01T08:00:00+00:00
            user anna@example.com: participant - - of - tags [refugees ukrainian] flags {}
            user hr@techcorp.example: company_user - - of techcorp tags [] flags {}
            user lars@nordicbank.no: volunteer - - of nordic-bank tags [] flags {}
            user maria@acme.example: volunteer Maria - of acme tags [] flags {}
            user olek.petrenko@example.com: participant Oleksandr Petrenko of - tags [refugees] flags {}"#]]
        .assert_eq(&render_catalogue(store, &FIXTURE_EMAILS).await);

        // Every id is the stable id of its key.
        let c = store.load_catalog().await.expect("load");
        assert!(
            c.companies
                .iter()
                .all(|x| x.id == CompanyId::stable(x.slug.as_str()))
        );
        assert!(
            c.groups
                .iter()
                .all(|x| x.id == GroupId::stable(x.key.as_str()))
        );
        assert!(
            c.campaigns
                .iter()
                .all(|x| x.id == CampaignId::stable(x.key.as_str()))
        );
        assert!(
            c.instances
                .iter()
                .all(|x| x.id == InstanceId::stable(&x.slug))
        );
        assert_eq!(
            c.campaigns
                .iter()
                .find(|x| x.key.as_str() == "acme-mentors-2024")
                .map(|x| x.id.uuid().to_string()),
            Some(
                uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_URL,
                    b"kintell-ingest:campaign:acme-mentors-2024"
                )
                .to_string()
            )
        );
    }

    /// Values that are missing, malformed or out of range, duplicate keys and unknown names, each reported at its
    /// JSON path; nothing is written.
    pub async fn catalog_invalid_values_are_reported_with_their_paths(store: &Store) {
        let campaign = |extra: serde_json::Value| {
            let mut c = json!({"key": "c", "name": "C", "company": "acme", "beneficiary_group": "g",
                               "start_date": "2024-01-01", "end_date": "2024-12-31"});
            if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
                for (k, v) in extra {
                    c.insert(k.clone(), v.clone());
                }
            }
            c
        };
        let doc = json!({
            "companies": [
                {"key": "acme", "name": "Acme"},
                {"key": "acme", "name": "Acme again"},
                {"name": "No key"},
                {"key": "  ", "name": "Blank"},
                "beta",
            ],
            "beneficiary_groups": [
                {"key": "g", "name": "G", "group_type": "refugees", "tags": ["refugees", 3]},
                {"key": "g2", "name": "G2", "group_type": "refugees", "is_active": "yes"},
            ],
            "campaigns": [
                campaign(json!({"key": "c1", "start_date": "2024-02-30"})),
                campaign(json!({"key": "c2", "status": "running"})),
                campaign(json!({"key": "c3", "start_date": "2024-05-01", "end_date": "2024-04-30"})),
                campaign(json!({"key": "c4", "max_sessions": -5, "target_volunteers": 2.5})),
                campaign(json!({"key": "c5", "program_type": "chess", "is_active": null})),
                campaign(json!({"key": "c6", "name": null, "nmae": "typo"})),
            ],
            "program_instances": [
                {"slug": "Bad Slug!", "program_type": "buddy", "program_name": "I", "start_date": "2024-01-01"},
                {"slug": "i2", "program_type": "buddy", "program_name": "I2", "start_date": "2024-06-01",
                 "end_date": "2024-05-31", "status": "done"},
            ],
            "users": [
                {"email": "not-an-email", "role": "volunteer"},
                {"email": "x@y.example", "role": "boss", "tags": "refugees"},
                {"email": "X@Y.example", "role": "admin"},
            ],
            "extra": 1,
        });
        check_import(store, &doc.to_string(), expect![[r#"
            22 problems
            $.extra: unknown section (expected one of: companies, beneficiary_groups, campaigns, program_instances, users)
            $.companies[1].key: duplicate company "acme" (first at $.companies[0].key)
            $.companies[2].key: is required
            $.companies[3].key: key is empty
            $.companies[4]: expected an object, found a string
            $.beneficiary_groups[0].tags: tag 1 is a number, not a string
            $.beneficiary_groups[1].is_active: expected true or false, found a string
            $.campaigns[0].start_date: "2024-02-30" is not a date (expected YYYY-MM-DD)
            $.campaigns[1].status: "running" is not a valid campaign status (expected one of: draft, planned, recruiting, active, paused, completed, closed)
            $.campaigns[2].end_date: 2024-04-30 is before start_date 2024-05-01
            $.campaigns[3].target_volunteers: 2.5 is not a whole number
            $.campaigns[3].max_sessions: -5 is negative
            $.campaigns[4].program_type: "chess" is not a valid program type (expected one of: mentors_ukraine, language_ukraine, buddy, upskilling, kintell)
            $.campaigns[5].nmae: unknown field (expected one of: key, name, company, beneficiary_group, program_type, start_date, end_date, status, is_active, target_volunteers, target_beneficiaries, max_sessions)
            $.campaigns[5].name: is required
            $.program_instances[0].slug: "Bad Slug!" is not a valid programme slug: only letters, digits, '-', '_' and '.' are allowed
            $.program_instances[1].end_date: 2024-05-31 is before start_date 2024-06-01
            $.program_instances[1].status: "done" is not a valid programme instance status (expected one of: planned, active, paused, completed, cancelled)
            $.users[0].email: "not-an-email" is not a valid email: it must contain exactly one @
            $.users[1].role: "boss" is not a valid user role (expected one of: participant, volunteer, company_user, admin)
        "#]]).await;
        // The problems past the first twenty are counted, not listed.
        check_import(store, &json!({"users": doc["users"], "campaigns": [campaign(json!({"key": "c7", "end_date": "2023-01-01"}))]}).to_string(), expect![[r#"
            7 problems
            $.campaigns[0].end_date: 2023-01-01 is before start_date 2024-01-01
            $.users[0].email: "not-an-email" is not a valid email: it must contain exactly one @
            $.users[1].role: "boss" is not a valid user role (expected one of: participant, volunteer, company_user, admin)
            $.users[1].tags: expected an array of strings, found a string
            $.users[2].email: duplicate user "x@y.example" (first at $.users[1].email)
            $.campaigns[0].company: unknown company "acme"
            $.campaigns[0].beneficiary_group: unknown beneficiary group "g"
        "#]]).await;
        check_import(
            store,
            "[1, 2]",
            expect![[r#"
            1 problems
            $: expected an object, found an array
        "#]],
        )
        .await;
        check_import(
            store,
            r#"{"companies": {"key": "acme"}, "users": null}"#,
            expect![[r#"
            1 problems
            $.companies: expected an array, found an object
        "#]],
        )
        .await;
        assert_eq!(
            store.load_catalog().await.expect("load"),
            Default::default()
        );
        assert_eq!(store.count_users().await.expect("users"), 0);
    }

    /// References to keys neither in the document nor in the store are reported at their paths, as is an
    /// instance naming a company that is not its campaign's; nothing is written.
    pub async fn catalog_unknown_references_are_reported_with_their_paths(store: &Store) {
        let doc = json!({
            "companies": [{"key": "acme", "name": "Acme"}, {"key": "beta", "name": "Beta"}],
            "beneficiary_groups": [{"key": "g", "name": "G", "group_type": "refugees"}],
            "campaigns": [
                {"key": "c1", "name": "C1", "company": "acme", "beneficiary_group": "g",
                 "start_date": "2024-01-01", "end_date": "2024-12-31"},
                {"key": "c2", "name": "C2", "company": "umbrella", "beneficiary_group": "nope",
                 "start_date": "2024-01-01", "end_date": "2024-12-31"},
            ],
            "program_instances": [
                {"slug": "i1", "campaign": "c9", "program_type": "buddy", "program_name": "I1", "start_date": "2024-01-01"},
                {"slug": "i2", "campaign": "c1", "company": "beta", "program_type": "buddy", "program_name": "I2",
                 "start_date": "2024-01-01"},
                {"slug": "i3", "campaign": "c1", "company": "acme", "program_type": "buddy", "program_name": "I3",
                 "start_date": "2024-01-01"},
                {"slug": "i4", "campaign": "c2", "program_type": "buddy", "program_name": "I4", "start_date": "2024-01-01"},
                {"slug": "i5", "company": "initech", "program_type": "buddy", "program_name": "I5", "start_date": "2024-01-01"},
            ],
            "users": [
                {"email": "a@umbrella.example", "role": "volunteer", "company": "umbrella"},
                {"email": "b@acme.example", "role": "volunteer", "company": "acme"},
                {"email": "not-an-email", "role": "volunteer", "company": "umbrella"},
            ],
        });
        check_import(
            store,
            &doc.to_string(),
            expect![[r#"
            8 problems
            $.users[2].email: "not-an-email" is not a valid email: it must contain exactly one @
            $.campaigns[1].company: unknown company "umbrella"
            $.campaigns[1].beneficiary_group: unknown beneficiary group "nope"
            $.program_instances[0].campaign: unknown campaign "c9"
            $.program_instances[1].company: company "beta" is not the company of campaign "c1"
            $.program_instances[4].company: unknown company "initech"
            $.users[0].company: unknown company "umbrella"
            $.users[2].company: unknown company "umbrella"
        "#]],
        )
        .await;
        assert_eq!(
            store.load_catalog().await.expect("load"),
            Default::default()
        );
        assert_eq!(store.count_users().await.expect("users"), 0);
    }

    /// Keys the document does not define are found in the store; an instance of a stored campaign takes that
    /// campaign's company, and must not name another.
    pub async fn catalog_references_resolve_against_the_store(store: &Store) {
        let import = CatalogImport::new(store.clone());
        let now = at("2024-09-01T08:00:00Z");
        let base = json!({
            "companies": [{"key": "acme", "name": "Acme"}, {"key": "beta", "name": "Beta"}],
            "beneficiary_groups": [{"key": "g", "name": "G", "group_type": "refugees", "tags": ["refugees"]}],
        });
        import.run_json(&base.to_string(), now).await.expect("base");
        let campaigns = json!({
            "campaigns": [{"key": "c1", "name": "C1", "company": "acme", "beneficiary_group": "g",
                           "start_date": "2024-01-01", "end_date": "2024-12-31"}],
        });
        let r = import
            .run_json(&campaigns.to_string(), now)
            .await
            .expect("campaigns");
        expect!["companies 0/0/0, groups 0/0/0, campaigns 1/0/0, instances 0/0/0, users 0/0/0"]
            .assert_eq(&render_report(&r));
        let instances = json!({
            "program_instances": [{"slug": "i1", "campaign": "c1", "program_type": "mentors_ukraine",
                                   "program_name": "I1", "start_date": "2024-10-01"}],
            "users": [{"email": "v@beta.example", "role": "volunteer", "company": "beta"}],
        });
        let r = import
            .run_json(&instances.to_string(), now)
            .await
            .expect("instances");
        expect!["companies 0/0/0, groups 0/0/0, campaigns 0/0/0, instances 1/0/0, users 1/0/0"]
            .assert_eq(&render_report(&r));
        let stored = store
            .instance_by_slug(&ProgramSlug::parse("i1").expect("slug"))
            .await
            .expect("get")
            .expect("i1");
        assert_eq!(stored.company_id, Some(CompanyId::stable("acme")));
        assert_eq!(stored.campaign_id, Some(CampaignId::stable("c1")));

        let wrong = json!({
            "program_instances": [{"slug": "i2", "campaign": "c1", "company": "beta", "program_type": "buddy",
                                   "program_name": "I2", "start_date": "2024-10-01"}],
        });
        check_import(
            store,
            &wrong.to_string(),
            expect![[r#"
            1 problems
            $.program_instances[0].company: company "beta" is not the company of campaign "c1"
        "#]],
        )
        .await;
    }

    /// A user the store already has keeps its id, journey flags and every field the document does not name;
    /// `null` clears a field.
    pub async fn catalog_users_keep_fields_the_document_does_not_name(store: &Store) {
        let acme = company("acme");
        let mut flags = serde_json::Map::new();
        flags.insert("kintell_source".to_owned(), json!("csv"));
        let olek = User {
            id: UserId(Uuid::from_u128(5)),
            email: Email::parse("olek@example.com").expect("email"),
            role: UserRole::Volunteer,
            first_name: Some(PersonName::parse("Olek").expect("name")),
            last_name: Some(PersonName::parse("Petrenko").expect("name")),
            company_id: Some(acme.id),
            tags: Tags::from_raw(["mentor"]),
            journey_flags: flags,
        };
        commit(
            store,
            &[Write::Companies(vec![acme]), Write::Users(vec![olek])],
        )
        .await
        .expect("seed");

        let doc = json!({"users": [{"email": "OLEK@example.com", "role": "participant", "last_name": null}]});
        check_import(
            store,
            &doc.to_string(),
            expect![[r#"
            ok: companies 0/0/0, groups 0/0/0, campaigns 0/0/0, instances 0/0/0, users 0/1/0
        "#]],
        )
        .await;
        check_import(
            store,
            &doc.to_string(),
            expect![[r#"
            ok: companies 0/0/0, groups 0/0/0, campaigns 0/0/0, instances 0/0/0, users 0/0/1
        "#]],
        )
        .await;
        expect![[r#"company acme: acme AS
user olek@example.com: participant Olek - of acme tags [mentor] flags {"kintell_source":"csv"} (id not stable)"#]]
            .assert_eq(&render_catalogue(store, &["olek@example.com"]).await);

        let doc = json!({"users": [{"email": "olek@example.com", "role": "participant", "company": null,
                                    "tags": null, "first_name": "Oleksandr"}]});
        check_import(
            store,
            &doc.to_string(),
            expect![[r#"
            ok: companies 0/0/0, groups 0/0/0, campaigns 0/0/0, instances 0/0/0, users 0/1/0
        "#]],
        )
        .await;
        expect![[r#"company acme: acme AS
user olek@example.com: participant Oleksandr - of - tags [] flags {"kintell_source":"csv"} (id not stable)"#]]
            .assert_eq(&render_catalogue(store, &["olek@example.com"]).await);
    }

    /// A store error in the middle of the writes (a slug held by an instance with another id) leaves nothing
    /// of the import behind.
    pub async fn catalog_store_error_leaves_nothing_half_written(store: &Store) {
        let squatter = kintell_ingest::domain::ProgramInstance {
            id: InstanceId(Uuid::from_u128(1)),
            ..instance("mentors-ukraine-2024-q4", None)
        };
        commit(store, &[Write::Instances(vec![squatter.clone()])])
            .await
            .expect("seed");
        let err = CatalogImport::new(store.clone())
            .run_json(FIXTURE, at("2024-09-01T08:00:00Z"))
            .await
            .expect_err("slug taken");
        assert!(
            matches!(
                err,
                CatalogError::Store {
                    source: StoreError::Duplicate { .. }
                }
            ),
            "{err:?}"
        );
        let c = store.load_catalog().await.expect("load");
        assert!(c.companies.is_empty() && c.groups.is_empty() && c.campaigns.is_empty());
        assert_eq!(c.instances, vec![squatter]);
        assert_eq!(store.count_users().await.expect("users"), 0);
    }

    /// A catalogue of the benchmark's shape (100 companies × 100 campaigns, 60 groups, instances, 25,000 users)
    /// imports in one call.
    pub async fn catalog_large_generated_catalogue_imports_in_one_call(store: &Store) {
        let doc = super::generated_catalogue(100, 100, 5_000, 20_000);
        let len = |section: &str| doc[section].as_array().map_or(0, |a| a.len() as u64);
        let report = CatalogImport::new(store.clone())
            .run_json(&doc.to_string(), at("2024-09-01T08:00:00Z"))
            .await
            .expect("import");
        let inserted = |n| UpsertCounts {
            inserted: n,
            updated: 0,
            unchanged: 0,
        };
        assert_eq!(
            report,
            CatalogReport {
                companies: inserted(100),
                beneficiary_groups: inserted(60),
                campaigns: inserted(10_000),
                program_instances: inserted(len("program_instances")),
                users: inserted(25_000),
            }
        );
        assert!(len("program_instances") > 10_000);
        let c = store.load_catalog().await.expect("load");
        assert_eq!(
            (
                c.companies.len(),
                c.groups.len(),
                c.campaigns.len(),
                c.instances.len() as u64
            ),
            (100, 60, 10_000, len("program_instances"))
        );
        // Read in pages: every row once, in id order.
        assert!(c.campaigns.windows(2).all(|w| w[0].id < w[1].id));
        assert!(c.instances.windows(2).all(|w| w[0].id < w[1].id));
        assert_eq!(store.count_users().await.expect("users"), 25_000);
        let v = store
            .user_by_email(&Email::parse("volunteer4321@volunteer.org").expect("email"))
            .await
            .expect("user")
            .expect("volunteer");
        assert_eq!(v.company_id, Some(CompanyId::stable("company-21")));
        let key = Key::parse("campaign-7-42").expect("key");
        assert!(c.campaigns.iter().any(|x| x.key == key));
    }
}

/// A catalogue shaped like the benchmark generator's: `companies` × `per_company` campaigns over 60 groups, 0 to 3
/// instances per campaign, volunteers of company `i % companies`, participants with 0 to 4 tags. Deterministic.
pub fn generated_catalogue(
    companies: usize,
    per_company: usize,
    volunteers: usize,
    participants: usize,
) -> serde_json::Value {
    use serde_json::json;
    const TAGS: [&str; 15] = [
        "refugees",
        "ukrainian",
        "syrian",
        "integration",
        "language_support",
        "employment",
        "women",
        "tech",
        "youth",
        "newcomers",
        "professionals",
        "norway",
        "berlin",
        "students",
        "seniors",
    ];
    const STATUSES: [&str; 9] = [
        "draft",
        "planned",
        "recruiting",
        "active",
        "active",
        "active",
        "paused",
        "completed",
        "closed",
    ];
    // xorshift64*: enough spread for test data, no dependency.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move |n: usize| -> usize {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1) as u64) as usize
    };
    let day0 = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("day 0");
    let day = |d: usize| (day0 + chrono::Days::new(d as u64)).to_string();
    let tags = |next: &mut dyn FnMut(usize) -> usize, k: usize| -> Vec<&str> {
        (0..k).map(|_| TAGS[next(TAGS.len())]).collect()
    };

    let company_rows: Vec<_> = (0..companies)
        .map(|c| json!({"key": format!("company-{c}"), "name": format!("Company {c}")}))
        .collect();
    let groups: Vec<_> = (0..60)
        .map(|g| {
            let k = next(7);
            json!({"key": format!("group-{g}"), "name": format!("Group {g}"), "group_type": "other",
                   "tags": tags(&mut next, k)})
        })
        .collect();
    let mut campaigns = Vec::new();
    let mut instances = Vec::new();
    for c in 0..companies {
        for m in 0..per_company {
            let start = next(700);
            let end = start + 14 + next(226);
            let key = format!("campaign-{c}-{m}");
            let group = format!("group-{}", next(60));
            let program_type = ["mentors_ukraine", "language_ukraine"][next(2)];
            let status = STATUSES[next(STATUSES.len())];
            let is_active = next(10) != 0;
            let max_sessions = [None, Some(50), Some(200), Some(1000)][next(4)];
            campaigns.push(json!({
                "key": key, "name": format!("Campaign {c}/{m}"), "company": format!("company-{c}"),
                "beneficiary_group": group, "program_type": program_type,
                "start_date": day(start), "end_date": day(end), "status": status,
                "is_active": is_active, "max_sessions": max_sessions,
            }));
            for i in 0..[0, 1, 1, 2, 3][next(5)] {
                let s = start + next(end - start);
                let e = (next(10) != 0).then(|| day(s + 7 + next(193)));
                let status = ["planned", "active", "active", "paused", "completed"][next(5)];
                instances.push(json!({
                    "slug": format!("{key}-i{i}"), "campaign": key, "program_type": "mentors_ukraine",
                    "program_name": format!("Instance {key}/{i}"), "start_date": day(s), "end_date": e,
                    "status": status,
                }));
            }
        }
    }
    let mut users = Vec::with_capacity(volunteers + participants);
    for v in 0..volunteers {
        users.push(
            json!({"email": format!("volunteer{v}@volunteer.org"), "role": "volunteer",
                          "company": format!("company-{}", v % companies.max(1)), "tags": []}),
        );
    }
    for p in 0..participants {
        let k = [0, 1, 2, 2, 3, 4][next(6)];
        users.push(
            json!({"email": format!("participant{p}@example.com"), "role": "participant",
                          "company": null, "tags": tags(&mut next, k)}),
        );
    }
    json!({"companies": company_rows, "beneficiary_groups": groups, "campaigns": campaigns,
           "program_instances": instances, "users": users})
}

fn memory_import() -> (Store, CatalogImport) {
    let store = Store::memory();
    (store.clone(), CatalogImport::new(store))
}

#[tokio::test]
async fn malformed_json_reports_line_and_column() {
    let (_, import) = memory_import();
    let err = import
        .run_json(
            "{\n  \"companies\": [\n    {\"key\": \"acme\",}\n  ]\n}",
            at("2024-09-01T08:00:00Z"),
        )
        .await
        .expect_err("syntax");
    let CatalogError::Syntax { line, column, .. } = &err else {
        panic!("expected a syntax error, got {err:?}");
    };
    assert_eq!((*line, *column), (3, 20));
    expect!["the catalogue is not valid JSON (line 3, column 20)"].assert_eq(&err.to_string());
    let source = std::error::Error::source(&err).map(ToString::to_string);
    expect![[r#"Some("trailing comma at line 3 column 20")"#]].assert_eq(&format!("{source:?}"));

    let err = import
        .run_json("{\"companies\": [", at("2024-09-01T08:00:00Z"))
        .await
        .expect_err("eof");
    assert!(
        matches!(
            err,
            CatalogError::Syntax {
                line: 1,
                column: 15,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_failing_reader_is_a_read_error() {
    struct Broken;
    impl std::io::Read for Broken {
        fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk on fire"))
        }
    }
    let (_, import) = memory_import();
    let err = import
        .run_reader(Broken, at("2024-09-01T08:00:00Z"))
        .await
        .expect_err("read");
    let CatalogError::Read { source } = &err else {
        panic!("expected a read error, got {err:?}");
    };
    assert!(source.to_string().contains("disk on fire"), "{source}");
}

#[tokio::test]
async fn a_reader_imports_like_a_string() {
    let (store, import) = memory_import();
    let from_reader = import
        .run_reader(FIXTURE.as_bytes(), at("2024-09-01T08:00:00Z"))
        .await
        .expect("reader");
    let (other, import) = memory_import();
    let from_str = import
        .run_json(FIXTURE, at("2024-09-01T08:00:00Z"))
        .await
        .expect("string");
    assert_eq!(from_reader, from_str);
    assert_eq!(
        store.load_catalog().await.expect("load"),
        other.load_catalog().await.expect("load")
    );
}

#[tokio::test]
async fn many_problems_are_capped_and_counted() {
    let (_, import) = memory_import();
    let users: Vec<_> = (0..MAX_PROBLEMS + 5)
        .map(|i| serde_json::json!({"email": format!("user{i}"), "role": "volunteer"}))
        .collect();
    let err = import
        .run_json(
            &serde_json::json!({"users": users}).to_string(),
            at("2024-09-01T08:00:00Z"),
        )
        .await
        .expect_err("invalid");
    let CatalogError::Invalid { problems, total } = &err else {
        panic!("expected problems, got {err:?}");
    };
    assert_eq!((problems.len(), *total), (MAX_PROBLEMS, MAX_PROBLEMS + 5));
    let message = err.to_string();
    assert!(
        message.starts_with(
            "the catalogue has 25 problems: $.users[0].email: \"user0\" is not a valid email"
        ),
        "{message}"
    );
    assert!(message.ends_with("; and 5 more"), "{message}");
}

#[tokio::test]
async fn the_report_serialises_for_the_cli() {
    let (_, import) = memory_import();
    let report = import
        .run_json(FIXTURE, at("2024-09-01T08:00:00Z"))
        .await
        .expect("import");
    expect![[r#"{"companies":{"inserted":3,"updated":0,"unchanged":0},"beneficiary_groups":{"inserted":3,"updated":0,"unchanged":0},"campaigns":{"inserted":4,"updated":0,"unchanged":0},"program_instances":{"inserted":4,"updated":0,"unchanged":0},"users":{"inserted":5,"updated":0,"unchanged":0}}"#]]
        .assert_eq(&serde_json::to_string(&report).expect("json"));
    assert_eq!(report.total().inserted, 19);
}
