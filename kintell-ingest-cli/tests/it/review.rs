//! `review list|show|accept|reject` and `report campaigns`. Imports do not propose reviews yet (only explicit
//! links), so the review items are seeded through the library's unit of work on rows the CLI imported.

use crate::import::import_json;
use crate::support::{Db, backends, block_on, fixture, json, write};
use kintell_ingest::domain::{
    ActivityId, ActivityKind, Association, AssociationId, BatchId, CampaignId, Confidence,
    Decision, InstanceId, ProgramSlug,
};
use kintell_ingest::store::Store;
use predicates::str::contains;
use serde_json::{Value, json as j};

const INSTANCE: &str = "mentors-ukraine-2024-q4";
const CAMPAIGN: &str = "acme-mentors-2024";

/// Three sessions of catalogue people in the fourth quarter of 2024, under a file name that names no instance.
const SESSIONS: &str = "\
session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level
Q4-1,Mentorship,anna@example.com,maria@acme.example,2024-10-07T10:00:00Z,60,5,,
Q4-2,Mentorship,olek.petrenko@example.com,maria@acme.example,2024-10-14T10:00:00Z,90,4,,
Q4-3,Mentorship,anna@example.com,lars@nordicbank.no,2024-10-21T10:00:00Z,30,4,,
";

/// Review items proposing the Acme mentors campaign for the sessions `ids` of batch `batch`; their ids.
fn seed_reviews(db: &Db, ids: &[&str], batch: &str) -> Vec<String> {
    let rows = db.rows(&format!(
        "SELECT external_session_id, {} FROM kintell_sessions ORDER BY external_session_id",
        db.id_text("id")
    ));
    let activity = |external: &str| {
        rows.iter()
            .find(|r| r[0].as_deref() == Some(external))
            .and_then(|r| r[1].as_deref())
            .and_then(|hex| uuid::Uuid::parse_str(hex).ok())
            .expect("the session is stored")
    };
    let batch = BatchId(uuid::Uuid::parse_str(batch).expect("batch id"));
    let instance = InstanceId::stable(&ProgramSlug::parse(INSTANCE).expect("slug"));
    let associations: Vec<Association> = ids
        .iter()
        .map(|external| Association {
            id: AssociationId(uuid::Uuid::new_v4()),
            activity_kind: ActivityKind::KintellSession,
            activity_id: ActivityId(activity(external)),
            campaign_id: Some(CampaignId::stable(CAMPAIGN)),
            program_instance_id: Some(instance),
            confidence: Confidence::new(62).expect("confidence"),
            decision: Decision::Review,
            reasons: j!([{"code": "company_match", "points": 30, "detail": "acme"}]),
            policy_version: "v1".to_owned(),
            candidates: j!([{"campaign": CAMPAIGN, "total": 62, "confidence": 62}]),
            batch_id: Some(batch),
            run_id: None,
            decided_by: None,
            decided_at: None,
        })
        .collect();
    let url = db.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    // The import already associated these sessions (decision `none`): the upsert keeps each row's id, so the
    // items' ids are read back.
    block_on(async move {
        let store = Store::connect(&url).await.expect("connect");
        let mut unit = store.begin().await.expect("begin");
        unit.upsert_associations(&associations)
            .await
            .expect("associations");
        unit.commit().await.expect("commit");
        let mut out = Vec::new();
        for a in &associations {
            let stored = store
                .association_for(a.activity_kind, a.activity_id)
                .await
                .expect("read")
                .expect("stored");
            out.push(stored.id.0.to_string());
        }
        tx.send(out).expect("send");
    });
    rx.recv().expect("the ids")
}

fn run_json(db: &Db, args: &[&str]) -> Value {
    let out = db.cmd().arg("--json").args(args).assert().success();
    json(&out.get_output().stdout)
}

/// The campaign `key` of a `report campaigns --json` document.
fn campaign<'a>(report: &'a Value, key: &str) -> &'a Value {
    report
        .as_array()
        .expect("an array of campaigns")
        .iter()
        .find(|c| c["key"] == key)
        .unwrap_or_else(|| panic!("no campaign {key} in {report}"))
}

#[test]
fn review_items_are_listed_shown_accepted_and_rejected() {
    for db in backends("review_items_are_listed_shown_accepted_and_rejected") {
        db.cmd()
            .args(["catalog", "import"])
            .arg(fixture("catalog.json"))
            .assert()
            .success();
        let file = write(&db, "q4-sessions.csv", SESSIONS);
        let doc = import_json(&db, &["sessions"], &file, 0);
        assert_eq!(doc["batch"]["program_instance_id"], Value::Null);
        db.cmd()
            .args(["review", "list"])
            .assert()
            .success()
            .stdout("no items waiting for review\n");
        let batch = doc["batch"]["id"].as_str().expect("id");
        let items = seed_reviews(&db, &["Q4-1", "Q4-2"], batch);

        let listed = run_json(&db, &["review", "list"]);
        let mut ids: Vec<&str> = listed
            .as_array()
            .expect("an array")
            .iter()
            .map(|i| i["id"].as_str().expect("id"))
            .collect();
        ids.sort_unstable();
        let mut expected: Vec<&str> = items.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(ids, expected);
        assert!(listed.as_array().expect("array").iter().all(|i| {
            i["campaign"] == CAMPAIGN && i["instance"] == INSTANCE && i["confidence"] == 62
        }));
        assert_eq!(
            run_json(&db, &["review", "list", "--company", "acme"])
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        assert_eq!(
            run_json(&db, &["review", "list", "--company", "nordic-bank"])
                .as_array()
                .map(Vec::len),
            Some(0)
        );
        assert_eq!(
            run_json(&db, &["review", "list", "--to", "2024-10-10"])
                .as_array()
                .map(Vec::len),
            Some(1)
        );
        db.cmd()
            .args(["review", "list", "--company", "nobody"])
            .assert()
            .code(2)
            .stderr(contains("no company nobody"));

        let before = run_json(&db, &["report", "campaigns"]);
        let acme = campaign(&before, CAMPAIGN);
        assert_eq!(acme["pending_reviews"], 2);
        // The import linked both sessions automatically before the test turned them into review items.
        assert_eq!(acme["sessions"], 2);

        let (accept, reject) = (&items[0], &items[1]);
        let shown = run_json(&db, &["review", "show", accept]);
        assert_eq!(shown["id"], accept.as_str());
        assert_eq!(shown["decision"], "review");
        db.cmd()
            .args(["review", "show", accept])
            .assert()
            .success()
            .stdout(contains("company_match"));

        let accepted = run_json(&db, &["review", "accept", accept, "--by", "tester"]);
        assert_eq!(accepted["decision"], "accepted");
        assert_eq!(accepted["decided_by"], "tester");
        let rejected = run_json(&db, &["review", "reject", reject, "--by", "tester"]);
        assert_eq!(rejected["decision"], "rejected");
        assert_eq!(run_json(&db, &["review", "list"]), j!([]));
        db.cmd()
            .args(["review", "accept", accept, "--by", "tester"])
            .assert()
            .code(2)
            .stderr(contains("is not waiting for review"));
        db.cmd()
            .args(["review", "show", reject])
            .assert()
            .success()
            .stdout(contains("rejected"));
        let nobody = uuid::Uuid::new_v4().to_string();
        db.cmd()
            .args(["review", "show", &nobody])
            .assert()
            .code(2)
            .stderr(contains(format!("no review item {nobody}")));

        let after = run_json(&db, &["report", "campaigns"]);
        let acme = campaign(&after, CAMPAIGN);
        assert_eq!(acme["pending_reviews"], 0);
        assert_eq!(acme["sessions"], 1);
        assert_eq!(acme["session_minutes"], 60);
        let q4 = acme["instances"]
            .as_array()
            .expect("instances")
            .iter()
            .find(|i| i["slug"] == INSTANCE)
            .expect("the instance");
        assert_eq!(q4["sessions"], 1);
        let only_nordic = run_json(&db, &["report", "campaigns", "--company", "nordic-bank"]);
        assert!(
            only_nordic
                .as_array()
                .expect("array")
                .iter()
                .all(|c| c["company"] == "nordic-bank")
        );
        db.cmd()
            .args(["report", "campaigns"])
            .assert()
            .success()
            .stdout(contains(CAMPAIGN));
    }
}
