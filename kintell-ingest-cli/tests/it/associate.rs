//! `associate backfill|runs|resume`, on SQLite and PostgreSQL; a run killed mid-way and resumed.

use crate::support::{Db, backends, fixture, json};
use predicates::str::contains;
use std::time::{Duration, Instant};

/// Loads the fixture catalogue and `n` sessions written straight into the table (as rows that predate the
/// tool would be): anna or olek with maria (acme) or lars (nordic-bank, no active campaign), mentoring or
/// language, spread over 2024; plus one session with no time at all.
fn seed(db: &Db, n: u32) {
    db.cmd()
        .args(["--quiet", "catalog", "import"])
        .arg(fixture("catalog.json"))
        .assert()
        .success();
    let person = |column: &str, even: &str, odd: &str, modulo: u32, g: &str| {
        format!(
            "(SELECT id FROM users WHERE email = CASE WHEN {g} % {modulo} = 0 THEN '{even}' ELSE '{odd}' END) AS {column}"
        )
    };
    let columns = |g: &str| {
        format!(
            "'s-' || {g}, CASE WHEN {g} % 3 = 0 THEN 'language' ELSE 'mentorship' END, {}, {}",
            person("p", "anna@example.com", "olek.petrenko@example.com", 2, g),
            person("v", "lars@nordicbank.no", "maria@acme.example", 5, g),
        )
    };
    let insert = "INSERT INTO kintell_sessions (id, external_session_id, session_type, participant_id, \
                  volunteer_id, scheduled_at, completed_at)";
    if db.is_postgres() {
        db.execute(&format!(
            "{insert} SELECT gen_random_uuid(), {}, t, t FROM generate_series(1, {n}) AS g, \
             LATERAL (SELECT TIMESTAMPTZ '2024-01-01 10:00:00+00' + ((g * 9) % 366) * INTERVAL '1 day' AS t) AS x",
            columns("g")
        ));
        db.execute(&format!(
            "{insert} SELECT gen_random_uuid(), {}, NULL, NULL FROM (SELECT 0 AS g) AS z",
            columns("g")
        ));
    } else {
        db.execute(&format!(
            "WITH RECURSIVE r(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM r WHERE g < {n}) \
             {insert} SELECT randomblob(16), {}, t, t FROM (SELECT g, \
             strftime('%Y-%m-%dT%H:%M:%S+00:00', '2024-01-01 10:00:00', '+' || ((g * 9) % 366) || ' days') AS t FROM r)",
            columns("g")
        ));
        db.execute(&format!(
            "{insert} SELECT randomblob(16), {}, NULL, NULL FROM (SELECT 0 AS g)",
            columns("g")
        ));
    }
}

/// What a backfill changes, by the sessions' external ids (the row ids differ between databases): each
/// session's link and association, and the enrolments.
fn state(db: &Db) -> Vec<String> {
    let text = |col: &str| {
        if db.is_postgres() {
            format!("COALESCE({col}::text, '-')")
        } else {
            format!("COALESCE(hex({col}), '-')")
        }
    };
    let mut rows = db.scalars(&format!(
        "SELECT s.external_session_id || ' ' || {} || ' ' || COALESCE(a.decision, '-') || ' ' || {} || ' ' || {} \
         || ' ' || COALESCE(CAST(a.confidence AS TEXT), '-') \
         FROM kintell_sessions s LEFT JOIN activity_associations a \
         ON a.activity_kind = 'kintell_session' AND a.activity_id = s.id ORDER BY s.external_session_id",
        text("s.program_instance_id"),
        text("a.campaign_id"),
        text("a.program_instance_id"),
    ));
    rows.extend(db.scalars(&format!(
        "SELECT u.email || ' ' || e.role || ' ' || {} || ' ' || CAST(e.enrolled_at AS TEXT) \
         FROM program_enrollments e JOIN users u ON u.id = e.user_id ORDER BY 1",
        text("e.program_instance_id"),
    )));
    rows
}

fn backfill_json(db: &Db, args: &[&str]) -> serde_json::Value {
    let out = db
        .cmd()
        .args(["--json", "associate", "backfill"])
        .args(args)
        .assert()
        .success();
    json(&out.get_output().stdout)
}

#[test]
fn backfill_prints_the_run_and_a_dry_run_writes_nothing() {
    for db in backends("backfill_prints_the_run_and_a_dry_run_writes_nothing") {
        seed(&db, 40);
        let before = state(&db);
        let dry = backfill_json(&db, &["--dry-run", "--batch-size", "7"]);
        assert_eq!(state(&db), before, "a dry run writes nothing");
        assert_eq!(dry["dry_run"], true);
        assert_eq!(dry["status"], "completed");
        let stats = dry["stats"].as_object().expect("stats");
        let mut keys: Vec<&str> = stats.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "auto",
                "avg_confidence",
                "errors",
                "histogram",
                "ignored",
                "none_no_candidates",
                "none_no_company",
                "review",
                "sample",
                "scanned",
                "unchanged"
            ]
        );
        assert_eq!(dry["stats"]["scanned"], 41);
        assert_eq!(dry["stats"]["errors"], 1, "the session without a time");
        assert_eq!(dry["stats"]["sample"].as_array().map(Vec::len), Some(20));
        let first = &dry["stats"]["sample"][0];
        assert_eq!(first["activity_kind"], "kintell_session");
        assert_eq!(
            first["before"],
            serde_json::json!({"decision": null, "campaign": null, "instance": null})
        );

        let real = backfill_json(&db, &[]);
        assert_eq!(real["dry_run"], false);
        let mut expected = dry["stats"].clone();
        if let Some(o) = expected.as_object_mut() {
            o.remove("sample");
        }
        assert_eq!(
            real["stats"], expected,
            "the dry run counted what the run did"
        );
        assert_ne!(state(&db), before);
        for decision in ["auto", "review", "none_no_candidates"] {
            assert!(
                real["stats"][decision].as_u64() > Some(0),
                "{decision}: {real}"
            );
        }

        let out = db
            .cmd()
            .args(["--json", "associate", "runs"])
            .assert()
            .success();
        let runs = json(&out.get_output().stdout);
        assert_eq!(runs.as_array().map(Vec::len), Some(2));
        assert_eq!(runs[0]["id"], real["id"], "newest first");

        // Human output, then a second run: only the rows still without an association (or with `none`) are read.
        db.cmd()
            .args(["associate", "backfill", "--entity", "sessions"])
            .assert()
            .success()
            .stdout(contains("status      completed"))
            .stdout(contains("none (no candidates)"))
            .stdout(contains("histogram"));
        db.cmd()
            .args(["associate", "runs"])
            .assert()
            .success()
            .stdout(contains("dry_run"))
            .stdout(contains("completed"));
        let id = real["id"].as_str().expect("id").to_owned();
        db.cmd()
            .args(["associate", "resume", &id])
            .assert()
            .code(2)
            .stderr(contains("is completed: there is nothing to resume"));
    }
}

#[test]
fn options_are_checked_and_a_live_run_is_refused() {
    let db = Db::sqlite();
    seed(&db, 5);
    db.cmd()
        .args(["associate", "backfill", "--batch-size", "0"])
        .assert()
        .code(2)
        .stderr(contains("the batch size must be between 1 and 100000"));
    db.cmd()
        .args(["associate", "backfill", "--policy-timezone", "-25:00"])
        .assert()
        .code(2)
        .stderr(contains("error: --policy-timezone"));
    db.cmd()
        .args(["associate", "backfill", "--company", "nope"])
        .assert()
        .code(2)
        .stderr(contains("no company nope"));
    db.cmd()
        .args(["associate", "backfill", "--entity", "users"])
        .assert()
        .code(2);
    db.cmd()
        .args([
            "associate",
            "resume",
            "01938f5e-0000-7000-8000-000000000000",
        ])
        .assert()
        .code(2)
        .stderr(contains("no backfill run"));
    let run = backfill_json(
        &db,
        &["--policy-timezone", "-05:00", "--start-date", "2024-02-01"],
    );
    let id = run["id"].as_str().expect("id");
    db.execute(&format!(
        "UPDATE association_runs SET status = 'running', completed_at = NULL, lease_owner = 'elsewhere:1:n', \
         lease_expires_at = '2999-01-01T00:00:00+00:00' WHERE hex(id) = upper(replace('{id}', '-', ''))"
    ));
    db.cmd()
        .args(["associate", "resume", id])
        .assert()
        .code(4)
        .stderr(contains("is being run by elsewhere:1:n"));
}

/// The run's status, checkpoint and completion, and the rows it has scanned.
fn progress(db: &Db) -> Option<(String, String, String, u64)> {
    let sql = if db.is_postgres() {
        "SELECT status || '|' || checkpoint::text || '|' || COALESCE(completed_at::text, '') || '|' || \
         (stats->>'scanned') FROM association_runs"
    } else {
        "SELECT status || '|' || checkpoint || '|' || COALESCE(completed_at, '') || '|' || \
         json_extract(stats, '$.scanned') FROM association_runs"
    };
    let row = db.scalars(sql).into_iter().next()?;
    let mut parts = row.split('|').map(str::to_owned);
    Some((
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?.parse().ok()?,
    ))
}

#[test]
fn a_killed_run_resumes_to_the_state_of_an_uninterrupted_one() {
    const SESSIONS: u32 = 300;
    for db in backends("a_killed_run_resumes_to_the_state_of_an_uninterrupted_one") {
        let reference = if db.is_postgres() {
            Db::postgres("a_killed_run_resumes_to_the_state_of_an_uninterrupted_one")
                .expect("a second database")
        } else {
            Db::sqlite()
        };
        seed(&reference, SESSIONS);
        let uninterrupted = backfill_json(&reference, &[]);

        seed(&db, SESSIONS);
        let mut child = db
            .process()
            .args(["--quiet", "associate", "backfill", "--batch-size", "3"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        // Poll the run until it has committed some pages, then kill the process.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((status, checkpoint, _, _)) = progress(&db)
                && status == "running"
                && checkpoint != "{}"
            {
                break;
            }
            assert!(
                child.try_wait().expect("wait").is_none(),
                "the run ended before it was seen mid-way"
            );
            assert!(Instant::now() < deadline, "the run never got going");
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let (status, checkpoint, completed_at, scanned) = progress(&db).expect("the run");
        assert_eq!(status, "running", "killed mid-way, the run is left running");
        assert_ne!(checkpoint, "{}");
        assert_eq!(completed_at, "");
        assert!(
            0 < scanned && scanned < u64::from(SESSIONS),
            "stopped mid-way: {scanned} of {SESSIONS} scanned"
        );

        let out = db
            .cmd()
            .args(["--json", "associate", "runs"])
            .assert()
            .success();
        let id = json(&out.get_output().stdout)[0]["id"]
            .as_str()
            .expect("id")
            .to_owned();
        // The killed process was of this host and no longer exists: its lease is taken over at once.
        let out = db
            .cmd()
            .args(["--json", "associate", "resume", &id])
            .assert()
            .success();
        let resumed = json(&out.get_output().stdout);
        assert_eq!(resumed["id"], id.as_str());
        assert_eq!(resumed["status"], "completed");
        assert_eq!(resumed["stats"], uninterrupted["stats"]);
        assert_eq!(state(&db), state(&reference));
    }
}
