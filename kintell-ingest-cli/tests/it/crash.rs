//! A worker killed mid-import (SIGKILL) leaves its batch `running` mid-way; running the same command again on
//! this host takes the batch over at once (its holder is a dead process of this host) and ends with exactly what
//! an uninterrupted import stores. While the first worker runs, a second import of the same file exits 4.

use crate::support::{Db, backends, json};
use kintell_ingest::synthetic::{SessionsSpec, write_sessions};
use predicates::str::contains;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Rows of the generated file: with chunks of [`CHUNK`] rows the import takes 400 transactions, long enough to be
/// seen mid-way, to be refused to a second worker and to be killed mid-way (with chunks of 40 a faster import
/// once finished before the second worker had started).
const ROWS: u64 = 4_000;
const CHUNK: u64 = 10;

/// How long any awaited condition may take before the test gives up.
const DEADLINE: Duration = Duration::from_secs(300);

/// A sessions file of [`ROWS`] rows, every 97th invalid.
fn generate(dir: &Path) -> PathBuf {
    let path = dir.join("sessions.csv");
    let file = std::fs::File::create(&path).expect("create the input");
    write_sessions(
        SessionsSpec::new(ROWS).bad_every(97),
        std::io::BufWriter::new(file),
    )
    .expect("generate the input");
    path
}

/// The import options every run of the test uses.
fn import_args(file: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["import", "sessions"].map(Into::into).to_vec();
    args.push(file.into());
    args.extend(
        ["--chunk-size", &CHUNK.to_string(), "--create-missing-users"]
            .iter()
            .map(Into::into),
    );
    args
}

/// The import as a child process of our own (so that it can be killed).
fn spawn(db: &Db, file: &Path) -> Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_kintell-ingest"))
        .env_remove("KINTELL_DATABASE_URL")
        .arg("--database-url")
        .arg(&db.url)
        .arg("--quiet")
        .args(import_args(file))
        .current_dir(db.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the import")
}

/// The only batch, as `(id, status, last_processed_row, total_rows, lease_owner)`.
#[derive(Debug, Clone, PartialEq)]
struct State {
    id: String,
    status: String,
    done: u64,
    total: u64,
    owner: Option<String>,
}

fn state(db: &Db) -> Option<State> {
    try_state(db).unwrap_or_else(|e| panic!("reading the batch: {e}"))
}

fn try_state(db: &Db) -> Result<Option<State>, String> {
    let rows = db.try_rows(&format!(
        "SELECT {}, status, CAST(last_processed_row AS TEXT), CAST(total_rows AS TEXT), lease_owner \
         FROM ingestion_batches",
        db.id_text("id")
    ))?;
    assert!(rows.len() <= 1, "one batch at most: {rows:?}");
    let Some(r) = rows.into_iter().next() else {
        return Ok(None);
    };
    let text = |i: usize| r[i].clone().unwrap_or_default();
    Ok(Some(State {
        id: text(0),
        status: text(1),
        done: text(2).parse().expect("a number"),
        total: text(3).parse().expect("a number"),
        owner: r[4].clone(),
    }))
}

fn mid_way(s: &State) -> bool {
    s.status == "running" && 0 < s.done && s.done < s.total
}

/// Polls the database until the batch is running mid-way (the child still alive), within the deadline.
fn wait_until_mid_way(db: &Db, child: &mut Child) -> State {
    let start = Instant::now();
    loop {
        // A failed query (a busy SQLite file) is a reason to look again.
        if let Ok(Some(s)) = try_state(db)
            && mid_way(&s)
        {
            return s;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the import ended ({status}) before it was seen mid-way: {:?}",
                state(db)
            );
        }
        assert!(
            start.elapsed() < DEADLINE,
            "never saw the batch mid-way: {:?}",
            state(db)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What the store holds about the import, without ids of its own and times: the sessions, the users, the row
/// errors; and the batch's counters.
fn stored(db: &Db) -> (Vec<String>, Vec<String>, Vec<String>) {
    let sessions = db.lines(&format!(
        "SELECT external_session_id, session_type, {}, {}, CAST(scheduled_at AS TEXT), \
         CAST(completed_at AS TEXT), CAST(duration_minutes AS TEXT), CAST(rating AS TEXT), feedback_text, \
         language_level, CAST(source_row_number AS TEXT), {}, CAST(topics AS TEXT), CAST(metadata AS TEXT) \
         FROM kintell_sessions ORDER BY external_session_id",
        db.id_text("participant_id"),
        db.id_text("volunteer_id"),
        db.id_text("program_instance_id"),
    ));
    let users = db.lines(&format!(
        "SELECT email, role, {}, first_name, last_name, CAST(tags AS TEXT) FROM users ORDER BY email",
        db.id_text("id")
    ));
    let errors = db.lines(
        "SELECT CAST(row_number AS TEXT), CAST(line_number AS TEXT), code, field, message, \
         CAST(raw_record AS TEXT) FROM ingestion_row_errors ORDER BY row_number",
    );
    (sessions, users, errors)
}

/// The report without what differs between two runs (ids, times, notices).
fn comparable(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let top = doc.as_object_mut().expect("object");
    top.remove("notices");
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
fn a_killed_import_resumes_and_ends_as_an_uninterrupted_one() {
    let test = "a_killed_import_resumes_and_ends_as_an_uninterrupted_one";
    for db in backends(test) {
        let file = generate(db.dir());
        db.cmd().args(["migrate", "up"]).assert().success();
        let mut child = spawn(&db, &file);
        let seen = wait_until_mid_way(&db, &mut child);
        let owner = seen.owner.clone().expect("a running batch has a lease");
        assert!(
            owner.contains(&format!(":{}:", child.id())),
            "{owner} names the child"
        );

        // A second worker is refused while the first verifiably runs (before and after the refusal).
        db.cmd()
            .args(import_args(&file))
            .assert()
            .code(4)
            .stdout("")
            .stderr(contains("error: this file is being imported by batch"))
            .stderr(contains(owner.as_str()));
        assert!(
            child.try_wait().expect("the child").is_none(),
            "still running"
        );

        child.kill().expect("SIGKILL");
        // Reaped, so that its process id is gone from this host.
        child.wait().expect("reap the child");
        let killed = state(&db).expect("the batch");
        assert!(mid_way(&killed), "stopped mid-way: {killed:?}");
        assert_eq!(killed.owner.as_deref(), Some(owner.as_str()));
        assert_eq!(killed.id, seen.id);
        assert!(killed.done >= seen.done);
        // What the killed worker committed is whole chunks.
        assert_eq!(killed.done % CHUNK, 0);
        assert_eq!(db.count("ingestion_batches"), 1);

        // The same command again: the dead holder's batch is taken over at once and completed.
        let out = db
            .cmd()
            .arg("--json")
            .args(import_args(&file))
            .timeout(DEADLINE)
            .assert()
            .code(1);
        let resumed = json(&out.get_output().stdout);
        assert_eq!(
            resumed["batch"]["id"].as_str().map(|s| s.replace('-', "")),
            Some(killed.id.clone())
        );
        assert_eq!(resumed["batch"]["status"], "completed");
        assert!(
            resumed["notices"]
                .as_array()
                .expect("notices")
                .iter()
                .any(|n| n.as_str().is_some_and(|n| n.starts_with("resuming batch"))),
            "{}",
            resumed["notices"]
        );
        assert_eq!(db.count("ingestion_batches"), 1);
        let lineage = db.lines(&format!(
            "SELECT DISTINCT {}, {} FROM kintell_sessions",
            db.id_text("batch_id"),
            db.id_text("first_batch_id")
        ));
        assert_eq!(lineage, [format!("{}|{}", killed.id, killed.id)]);

        // The same file into a fresh database of the same kind, uninterrupted.
        let twin = if db.is_sqlite() {
            Db::sqlite()
        } else {
            Db::postgres(test).expect("PostgreSQL is configured")
        };
        let out = twin
            .cmd()
            .arg("--json")
            .args(import_args(&file))
            .timeout(DEADLINE)
            .assert()
            .code(1);
        let whole = json(&out.get_output().stdout);
        assert_eq!(comparable(&resumed), comparable(&whole));
        let b = &whole["batch"];
        assert_eq!(b["total_rows"], ROWS);
        assert_eq!(b["last_processed_row"], ROWS);
        assert_eq!(b["error_rows"], ROWS / 97);
        let (sessions, users, errors) = stored(&db);
        let (twin_sessions, twin_users, twin_errors) = stored(&twin);
        assert_eq!(sessions.len() as u64, ROWS - ROWS / 97);
        assert_eq!(errors.len() as u64, ROWS / 97);
        assert!(sessions == twin_sessions, "the same sessions");
        assert!(users == twin_users, "the same users");
        assert!(errors == twin_errors, "the same row errors");
    }
}
