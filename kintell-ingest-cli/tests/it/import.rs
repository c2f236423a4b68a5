//! `import`: the upstream samples with `--json` in the documented shape, every exit code but 4 (see `crash.rs`),
//! forced re-imports, dry runs, `--errors-out`, and no progress bar without a terminal.

use crate::support::{Db, backends, fixture, json, write};
use predicates::prelude::*;
use predicates::str::contains;
use serde_json::Value;

/// The keys of `import --json`'s `batch` object (interfaces.md).
const BATCH_KEYS: [&str; 20] = [
    "id",
    "status",
    "file_name",
    "file_hash",
    "entity_kind",
    "format",
    "program_type",
    "program_instance_id",
    "total_rows",
    "success_rows",
    "inserted_rows",
    "updated_rows",
    "skipped_rows",
    "error_rows",
    "last_processed_row",
    "last_error",
    "error_summary",
    "csv_metadata",
    "started_at",
    "completed_at",
];

/// A sessions header and rows of people the import creates: two valid rows, one with a rating of `x` and a
/// formula in its feedback, one with an invalid email and a cell starting with `+`.
pub const MIXED_SESSIONS: &str = "\
session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level
S-1,Mentorship,anna@example.com,maria@acme.example,2024-10-01T10:00:00Z,60,5,fine,
S-2,Mentorship,anna@example.com,maria@acme.example,2024-10-02T10:00:00Z,60,x,=SUM(A1),
S-3,Mentorship,not-an-email,maria@acme.example,2024-10-03T10:00:00Z,60,4,+cmd,
S-4,Language Connect,olek@example.com,maria@acme.example,2024-10-04T10:00:00Z,45,4,good,B1
";

/// Checks `doc` against the `import --json` shape of interfaces.md; returns its batch.
pub fn check_shape(doc: &Value) -> &serde_json::Map<String, Value> {
    let top = doc.as_object().expect("an object");
    for key in ["batch", "associations", "notices"] {
        assert!(top.contains_key(key), "no {key} in {doc}");
    }
    let batch = doc["batch"].as_object().expect("batch is an object");
    let mut keys: Vec<&str> = batch.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = BATCH_KEYS.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "batch keys");
    let id = batch["id"].as_str().expect("id is a string");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "id {id}");
    let hash = batch["file_hash"].as_str().expect("file_hash is a string");
    assert!(
        hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "hash {hash}"
    );
    for key in [
        "status",
        "file_name",
        "entity_kind",
        "format",
        "program_type",
    ] {
        assert!(batch[key].is_string(), "{key}: {}", batch[key]);
    }
    for key in [
        "total_rows",
        "success_rows",
        "inserted_rows",
        "updated_rows",
        "skipped_rows",
        "error_rows",
        "last_processed_row",
    ] {
        assert!(batch[key].is_u64(), "{key}: {}", batch[key]);
    }
    assert!(batch["csv_metadata"].is_object());
    assert!(batch["error_summary"].is_object() || batch["error_summary"].is_null());
    for key in ["started_at", "completed_at"] {
        let v = &batch[key];
        assert!(
            v.is_null()
                || v.as_str()
                    .is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok()),
            "{key}: {v}"
        );
    }
    let assoc = doc["associations"]
        .as_object()
        .expect("associations is an object");
    let mut keys: Vec<&str> = assoc.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["auto", "explicit", "ignored", "none", "review"]);
    assert!(assoc.values().all(Value::is_u64));
    assert!(
        doc["notices"]
            .as_array()
            .expect("notices is an array")
            .iter()
            .all(Value::is_string)
    );
    batch
}

fn n(batch: &serde_json::Map<String, Value>, key: &str) -> u64 {
    batch[key].as_u64().unwrap_or_else(|| panic!("{key}"))
}

/// `import --json` of `args`, expecting `code`; the document.
pub fn import_json(db: &Db, args: &[&str], file: &std::path::Path, code: i32) -> Value {
    let out = db
        .cmd()
        .arg("--json")
        .arg("import")
        .args(args)
        .arg(file)
        .assert()
        .code(code);
    json(&out.get_output().stdout)
}

#[test]
fn upstream_samples_import_with_the_documented_json() {
    for db in backends("upstream_samples_import_with_the_documented_json") {
        for (entity, file, kind, rows) in [
            ("sessions", "kintell-sessions.csv", "kintell_sessions", 3),
            ("buddy-matches", "buddy-matches.csv", "buddy_matches", 5),
            (
                "course-completions",
                "course-completions.csv",
                "course_completions",
                4,
            ),
        ] {
            let doc = import_json(&db, &[entity, "--create-missing-users"], &fixture(file), 0);
            let b = check_shape(&doc);
            assert_eq!(b["status"], "completed", "{file}");
            assert_eq!(b["file_name"], file);
            assert_eq!(b["entity_kind"], kind);
            assert_eq!(b["format"], entity.replace("sessions", "kintell-sessions"));
            assert_eq!(b["last_error"], Value::Null);
            for key in [
                "total_rows",
                "success_rows",
                "inserted_rows",
                "last_processed_row",
            ] {
                assert_eq!(n(b, key), rows, "{file} {key}");
            }
            for key in ["updated_rows", "skipped_rows", "error_rows"] {
                assert_eq!(n(b, key), 0, "{file} {key}");
            }
            assert!(b["started_at"].is_string() && b["completed_at"].is_string());
            // The fixtures' people are created without a company: association finds none.
            assert_eq!(doc["associations"]["none"], rows, "{file}");
        }
        assert_eq!(db.count("kintell_sessions"), 3);
        assert_eq!(db.count("buddy_matches"), 5);
        assert_eq!(db.count("learning_progress"), 4);
        assert_eq!(db.count("ingestion_batches"), 3);
    }
}

#[test]
fn the_entity_is_detected_from_the_header() {
    let db = Db::sqlite();
    let doc = import_json(
        &db,
        &["--create-missing-users"],
        &fixture("buddy-matches.csv"),
        0,
    );
    assert_eq!(check_shape(&doc)["entity_kind"], "buddy_matches");
}

#[test]
fn rejected_rows_exit_1_with_the_report() {
    for db in backends("rejected_rows_exit_1_with_the_report") {
        let file = write(&db, "mixed.csv", MIXED_SESSIONS);
        let doc = import_json(&db, &["sessions", "--create-missing-users"], &file, 1);
        let b = check_shape(&doc);
        assert_eq!(b["status"], "completed");
        assert_eq!(
            (
                n(b, "inserted_rows"),
                n(b, "error_rows"),
                n(b, "total_rows")
            ),
            (2, 2, 4)
        );
        assert_eq!(b["error_summary"]["by_code"]["invalid_number"], 1);
        assert_eq!(b["error_summary"]["first"][0]["row"], 2);
        assert_eq!(db.count("kintell_sessions"), 2);
        assert_eq!(db.count("ingestion_row_errors"), 2);
        // Without --json: the summary on stdout, the exit code the same.
        db.cmd()
            .args(["import", "sessions", "--force", "--create-missing-users"])
            .arg(&file)
            .assert()
            .code(1)
            .stdout(contains("first rejected rows"))
            .stdout(contains("invalid_number"));
    }
}

#[test]
fn a_file_error_exits_1_and_prints_the_failed_batch() {
    for db in backends("a_file_error_exits_1_and_prints_the_failed_batch") {
        let file = write(&db, "odd.csv", "colour,flavour\nred,sweet\n");
        let doc = import_json(&db, &["sessions"], &file, 1);
        let b = check_shape(&doc);
        assert_eq!(b["status"], "failed");
        assert_eq!(b["format"], "unknown");
        assert_eq!(b["entity_kind"], "kintell_sessions");
        assert_eq!(n(b, "total_rows"), 0);
        let error = b["last_error"].as_str().expect("last_error");
        assert!(!error.is_empty());
        // A second attempt with the same bytes reuses the failed batch; stderr explains.
        let out = db
            .cmd()
            .args(["--json", "import", "sessions"])
            .arg(&file)
            .assert()
            .code(1)
            .stderr(contains("error: the file was refused"))
            .stderr(contains("cause: "));
        let again = json(&out.get_output().stdout);
        assert_eq!(again["batch"]["id"], doc["batch"]["id"]);
        assert_eq!(db.count("ingestion_batches"), 1);
        assert_eq!(db.count("kintell_sessions"), 0);
    }
}

#[test]
fn usage_and_runtime_errors_exit_2() {
    let db = Db::sqlite();
    let file = write(&db, "mixed.csv", MIXED_SESSIONS);
    let database = db.dir().join("cli.db");
    for (args, message) in [
        (vec!["--delimiter", "x"], "error: invalid --delimiter"),
        (vec!["--timezone", "25:00"], "error: invalid --timezone"),
        (
            vec!["--policy-timezone", "+25:00"],
            "error: invalid --policy-timezone",
        ),
        (vec!["--format", "excel"], "error: invalid --format"),
    ] {
        db.cmd()
            .args(["import", "sessions"])
            .args(&args)
            .arg(&file)
            .assert()
            .code(2)
            .stdout("")
            .stderr(contains(message))
            .stderr(contains("cause: "));
        assert!(!database.exists(), "{args:?} touched no database");
    }
    db.cmd()
        .args(["import", "sessions", "--chunk-size", "many"])
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("invalid value 'many'"));
    db.cmd()
        .args(["import", "sessions", "no-such-file.csv"])
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("error: cannot open no-such-file.csv"))
        .stderr(contains("cause: "));
    assert!(!database.exists());
    db.cmd()
        .args(["--json", "import", "parcels"])
        .arg(&file)
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains("unknown entity \"parcels\""));
    let mut unreachable = assert_cmd::Command::cargo_bin("kintell-ingest").expect("binary");
    unreachable
        .env_remove("KINTELL_DATABASE_URL")
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:1/x",
            "import",
            "sessions",
        ])
        .arg(&file)
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stdout("")
        .stderr(contains(
            "error: cannot open the database postgres://nobody@127.0.0.1:1/x",
        ))
        .stderr(contains("cause: "));
}

#[test]
fn a_completed_file_is_refused_with_exit_3_and_nothing_changes() {
    for db in backends("a_completed_file_is_refused_with_exit_3_and_nothing_changes") {
        let file = fixture("kintell-sessions.csv");
        let doc = import_json(&db, &["sessions", "--create-missing-users"], &file, 0);
        let id = doc["batch"]["id"].as_str().expect("id").to_owned();
        let before = db.counts();
        let rows_before = db.lines(&format!(
            "SELECT external_session_id, {}, CAST(updated_at AS TEXT) FROM kintell_sessions ORDER BY 1",
            db.id_text("batch_id")
        ));
        for json_flag in [false, true] {
            let mut cmd = db.cmd();
            if json_flag {
                cmd.arg("--json");
            }
            cmd.args(["import", "sessions", "--create-missing-users"])
                .arg(&file)
                .assert()
                .code(3)
                .stdout("")
                .stderr(contains(format!(
                    "error: this file was already imported by batch {id}"
                )));
        }
        // A dry run is refused the same way.
        db.cmd()
            .args(["import", "sessions", "--dry-run", "--create-missing-users"])
            .arg(&file)
            .assert()
            .code(3);
        assert_eq!(db.counts(), before);
        let rows_after = db.lines(&format!(
            "SELECT external_session_id, {}, CAST(updated_at AS TEXT) FROM kintell_sessions ORDER BY 1",
            db.id_text("batch_id")
        ));
        assert_eq!(rows_after, rows_before);
    }
}

#[test]
fn a_forced_reimport_reports_every_row_unchanged() {
    for db in backends("a_forced_reimport_reports_every_row_unchanged") {
        let file = write(&db, "mixed.csv", MIXED_SESSIONS);
        let first = import_json(&db, &["sessions", "--create-missing-users"], &file, 1);
        let before = db.counts();
        let forced = import_json(
            &db,
            &["sessions", "--create-missing-users", "--force"],
            &file,
            1,
        );
        let b = check_shape(&forced);
        assert_ne!(b["id"], first["batch"]["id"]);
        assert_eq!(b["status"], "completed");
        assert_eq!(
            (
                n(b, "inserted_rows"),
                n(b, "updated_rows"),
                n(b, "skipped_rows"),
                n(b, "error_rows")
            ),
            (0, 0, 2, 2)
        );
        assert!(
            forced["notices"].as_array().is_some_and(Vec::is_empty),
            "{}",
            forced["notices"]
        );
        let after = db.counts();
        for ((table, was), (_, is)) in before.iter().zip(&after) {
            let more = match *table {
                "ingestion_batches" => 1,
                "ingestion_row_errors" => 2,
                _ => 0,
            };
            assert_eq!(*is, was + more, "{table}");
        }
    }
}

/// The parts of a report that a dry run and a real run share (not the id, times or the dry-run flag).
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let top = doc.as_object_mut().expect("object");
    top.remove("dry_run");
    let b = top
        .get_mut("batch")
        .and_then(Value::as_object_mut)
        .expect("batch");
    for key in ["id", "started_at", "completed_at"] {
        b.remove(key);
    }
    doc
}

#[test]
fn a_dry_run_prints_the_real_report_and_stores_nothing() {
    for db in backends("a_dry_run_prints_the_real_report_and_stores_nothing") {
        db.cmd().args(["migrate", "up"]).assert().success();
        let file = write(&db, "mixed.csv", MIXED_SESSIONS);
        let before = db.counts();
        let dry = import_json(
            &db,
            &["sessions", "--create-missing-users", "--dry-run"],
            &file,
            1,
        );
        check_shape(&dry);
        assert_eq!(dry["dry_run"], true);
        assert_eq!(db.counts(), before, "a dry run stores nothing");
        db.cmd()
            .args(["import", "sessions", "--create-missing-users", "--dry-run"])
            .arg(&file)
            .assert()
            .code(1)
            .stdout(contains("(dry run: nothing stored)"));
        let real = import_json(&db, &["sessions", "--create-missing-users"], &file, 1);
        assert_eq!(real["dry_run"], false);
        assert_eq!(comparable(&dry), comparable(&real));
        assert_ne!(db.counts(), before);
    }
}

/// The error CSV of [`MIXED_SESSIONS`] with formulas escaped.
const ESCAPED_ERRORS: &str = "\
session_id,session_type,participant_email,volunteer_email,date,duration_min,rating,feedback_text,language_level,_error_row,_error_line,_error_code,_error_field,_error_message
S-2,Mentorship,anna@example.com,maria@acme.example,2024-10-02T10:00:00Z,60,x,'=SUM(A1),,2,3,invalid_number,rating,\"rating: \"\"x\"\" is not a valid decimal\"
";

#[test]
fn rejected_rows_are_exported_with_formulas_escaped() {
    for db in backends("rejected_rows_are_exported_with_formulas_escaped") {
        let file = write(&db, "mixed.csv", MIXED_SESSIONS);
        let errors_out = db.dir().join("rejected.csv");
        let doc = import_json(
            &db,
            &[
                "sessions",
                "--create-missing-users",
                "--errors-out",
                errors_out.to_str().expect("utf-8 path"),
            ],
            &file,
            1,
        );
        let id = doc["batch"]["id"].as_str().expect("id").to_owned();
        let out = db.cmd().args(["batches", "errors", &id]).assert().success();
        let csv = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
        let mut lines = csv.lines();
        assert!(
            ESCAPED_ERRORS.starts_with(lines.next().unwrap_or_default()),
            "{csv}"
        );
        assert!(
            csv.contains(ESCAPED_ERRORS.lines().nth(1).unwrap_or("?")),
            "{csv}"
        );
        // The invalid email's row: its `+cmd` is escaped too.
        assert!(csv.contains(",'+cmd,"), "{csv}");
        assert!(!csv.contains(",=SUM") && !csv.contains(",+cmd"), "{csv}");
        assert_eq!(csv.lines().count(), 3);
        // --errors-out wrote the same file.
        assert_eq!(
            std::fs::read_to_string(&errors_out).expect("--errors-out file"),
            csv
        );
        // Unescaped on request.
        let out = db
            .cmd()
            .args(["batches", "errors", &id, "--no-escape-formulas"])
            .assert()
            .success();
        let raw = String::from_utf8(out.get_output().stdout.clone()).expect("utf-8");
        assert!(
            raw.contains(",=SUM(A1),") && raw.contains(",+cmd,"),
            "{raw}"
        );
        assert!(!raw.contains('\''), "{raw}");
        // -o writes the file and records where.
        let path = db.dir().join("out.csv");
        db.cmd()
            .args(["batches", "errors", &id, "-o"])
            .arg(&path)
            .assert()
            .success()
            .stdout("")
            .stderr(contains("wrote 2 rejected row(s)"));
        assert_eq!(std::fs::read_to_string(&path).expect("-o file"), csv);
        let out = db
            .cmd()
            .args(["--json", "batches", "show", &id])
            .assert()
            .success();
        let shown = json(&out.get_output().stdout);
        let recorded = shown["error_file_path"].as_str().expect("error_file_path");
        assert!(recorded.ends_with("out.csv"), "{recorded}");
    }
}

#[test]
fn without_a_terminal_no_progress_bar_is_drawn() {
    let db = Db::sqlite();
    let file = db.dir().join("sessions.csv");
    kintell_ingest::synthetic::write_sessions(
        kintell_ingest::synthetic::SessionsSpec::new(2_000),
        std::fs::File::create(&file).expect("create"),
    )
    .expect("generate");
    db.cmd()
        .args([
            "import",
            "sessions",
            "--chunk-size",
            "100",
            "--create-missing-users",
        ])
        .arg(&file)
        .assert()
        .code(0)
        .stdout(contains("inserted"))
        .stderr(contains("importing [").not())
        .stderr(contains("checking [").not())
        .stderr(contains("rows/s").not());
}

/// An in-memory SQLite database shares one cache between the pool's connections, where a read on another
/// connection waits for an open write transaction: an import must never read outside the unit it holds.
#[test]
fn an_import_into_an_in_memory_sqlite_database_completes() {
    let mut cmd = assert_cmd::Command::cargo_bin("kintell-ingest").expect("binary");
    let out = cmd
        .env_remove("KINTELL_DATABASE_URL")
        .args([
            "--database-url",
            "sqlite::memory:",
            "--json",
            "import",
            "sessions",
            "--create-missing-users",
        ])
        .arg(fixture("kintell-sessions.csv"))
        .timeout(std::time::Duration::from_secs(120))
        .assert()
        .code(0);
    let doc = json(&out.get_output().stdout);
    assert_eq!(check_shape(&doc)["status"], "completed");
}
