//! `batches list|show|pause|cancel` (the error CSV is tested with `import`, resume with the SIGKILL test).

use crate::import::{MIXED_SESSIONS, import_json};
use crate::support::{backends, fixture, json, write};
use predicates::str::contains;

#[test]
fn list_and_show_print_the_ledger() {
    for db in backends("list_and_show_print_the_ledger") {
        db.cmd()
            .args(["batches", "list"])
            .assert()
            .success()
            .stdout("no batches\n");
        let mixed = write(&db, "mixed.csv", MIXED_SESSIONS);
        let first = import_json(&db, &["sessions", "--create-missing-users"], &mixed, 1);
        let second = import_json(
            &db,
            &["buddy-matches", "--create-missing-users"],
            &fixture("buddy-matches.csv"),
            0,
        );
        let odd = write(&db, "odd.csv", "colour\nred\n");
        let failed = import_json(&db, &["sessions"], &odd, 1);

        let out = db
            .cmd()
            .args(["--json", "batches", "list"])
            .assert()
            .success();
        let all = json(&out.get_output().stdout);
        let ids: Vec<&serde_json::Value> = all
            .as_array()
            .expect("an array")
            .iter()
            .map(|b| &b["id"])
            .collect();
        // Newest first.
        assert_eq!(
            ids,
            [
                &failed["batch"]["id"],
                &second["batch"]["id"],
                &first["batch"]["id"]
            ]
        );
        let out = db
            .cmd()
            .args([
                "--json",
                "batches",
                "list",
                "--status",
                "completed",
                "--limit",
                "1",
            ])
            .assert()
            .success();
        let completed = json(&out.get_output().stdout);
        assert_eq!(completed.as_array().map(Vec::len), Some(1));
        assert_eq!(completed[0]["id"], second["batch"]["id"]);
        db.cmd()
            .args(["batches", "list", "--status", "done"])
            .assert()
            .code(2)
            .stderr(contains("invalid --status"));

        let id = first["batch"]["id"].as_str().expect("id");
        let out = db
            .cmd()
            .args(["--json", "batches", "show", id])
            .assert()
            .success();
        let shown = json(&out.get_output().stdout);
        assert_eq!(shown["id"], id);
        assert_eq!(shown["status"], "completed");
        assert_eq!(shown["error_rows"], 2);
        assert_eq!(shown["lease_owner"], serde_json::Value::Null);
        assert_eq!(shown["error_summary"], first["batch"]["error_summary"]);
        db.cmd()
            .args(["batches", "show", id])
            .assert()
            .success()
            .stdout(contains("mixed.csv"))
            .stdout(contains("rejected rows by code"))
            .stdout(contains("invalid_email"));
        let nobody = uuid::Uuid::new_v4().to_string();
        db.cmd()
            .args(["batches", "show", &nobody])
            .assert()
            .code(2)
            .stderr(contains(format!("error: batch {nobody} does not exist")));
        db.cmd()
            .args(["batches", "show", "not-a-uuid"])
            .assert()
            .code(2);
    }
}

#[test]
fn pause_and_cancel_refuse_a_completed_batch_and_cancel_a_failed_one() {
    for db in backends("pause_and_cancel_refuse_a_completed_batch_and_cancel_a_failed_one") {
        let doc = import_json(
            &db,
            &["sessions", "--create-missing-users"],
            &fixture("kintell-sessions.csv"),
            0,
        );
        let id = doc["batch"]["id"].as_str().expect("id");
        let before = db.counts();
        for (command, event) in [("pause", "RequestPause"), ("cancel", "RequestCancel")] {
            db.cmd()
                .args(["batches", command, id])
                .assert()
                .code(2)
                .stdout("")
                .stderr(contains(format!(
                    "error: batch {id}: cannot {event} a batch that is completed"
                )));
        }
        assert_eq!(db.counts(), before);
        let out = db
            .cmd()
            .args(["--json", "batches", "show", id])
            .assert()
            .success();
        assert_eq!(json(&out.get_output().stdout)["status"], "completed");

        // A failed batch (a file error) has no worker: cancelling it is immediate; pausing it is illegal.
        let odd = write(&db, "odd.csv", "colour\nred\n");
        let failed = import_json(&db, &["sessions"], &odd, 1);
        let failed_id = failed["batch"]["id"].as_str().expect("id");
        db.cmd()
            .args(["batches", "pause", failed_id])
            .assert()
            .code(2)
            .stderr(contains("a batch that is failed"));
        let out = db
            .cmd()
            .args(["--json", "batches", "cancel", failed_id])
            .assert()
            .success();
        assert_eq!(json(&out.get_output().stdout)["status"], "cancelled");
        db.cmd()
            .args(["batches", "cancel", failed_id])
            .assert()
            .code(2)
            .stderr(contains("a batch that is cancelled"));
    }
}
