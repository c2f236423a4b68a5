//! `migrate up|down|status|verify` on both backends.

use crate::support::{backends, json};
use predicates::str::contains;

#[test]
fn up_status_verify_down_round_trip() {
    for db in backends("up_status_verify_down_round_trip") {
        let out = db
            .cmd()
            .args(["--json", "migrate", "status"])
            .assert()
            .success();
        let status = json(&out.get_output().stdout);
        let rows = status.as_array().expect("an array of migrations");
        assert_eq!(rows.len(), 9);
        assert!(rows.iter().all(|m| m["applied"] == false));

        let out = db
            .cmd()
            .args(["--json", "migrate", "up"])
            .assert()
            .success();
        let applied = json(&out.get_output().stdout);
        assert_eq!(applied["applied"].as_array().map(Vec::len), Some(9));

        db.cmd()
            .args(["migrate", "up"])
            .assert()
            .success()
            .stdout(contains("nothing applied"));
        db.cmd()
            .args(["migrate", "verify"])
            .assert()
            .success()
            .stdout(contains("schema ok: 9 migration(s) applied"));

        let out = db
            .cmd()
            .args(["--json", "migrate", "down"])
            .assert()
            .success();
        let reverted = json(&out.get_output().stdout);
        assert_eq!(reverted["reverted"][0]["version"], 9);
        let out = db
            .cmd()
            .args(["--json", "migrate", "status"])
            .assert()
            .success();
        let status = json(&out.get_output().stdout);
        let applied: Vec<bool> = status
            .as_array()
            .expect("array")
            .iter()
            .map(|m| m["applied"] == true)
            .collect();
        assert_eq!(
            applied,
            [true, true, true, true, true, true, true, true, false]
        );

        db.cmd()
            .args(["migrate", "down", "--all"])
            .assert()
            .success();
        let out = db
            .cmd()
            .args(["--json", "migrate", "status"])
            .assert()
            .success();
        let status = json(&out.get_output().stdout);
        assert!(
            status
                .as_array()
                .expect("array")
                .iter()
                .all(|m| m["applied"] == false)
        );
        db.cmd()
            .args(["migrate", "up", "--steps", "3"])
            .assert()
            .success();
        let out = db
            .cmd()
            .args(["--json", "migrate", "status"])
            .assert()
            .success();
        let status = json(&out.get_output().stdout);
        let applied = status
            .as_array()
            .expect("array")
            .iter()
            .filter(|m| m["applied"] == true)
            .count();
        assert_eq!(applied, 3);
    }
}

#[test]
fn verify_fails_after_an_index_is_dropped_by_hand() {
    for db in backends("verify_fails_after_an_index_is_dropped_by_hand") {
        db.cmd().args(["migrate", "up"]).assert().success();
        db.execute("DROP INDEX program_instances_status_idx");
        db.cmd()
            .args(["migrate", "verify"])
            .assert()
            .code(2)
            .stderr(contains("error: the schema does not match its migrations"))
            .stderr(contains("program_instances_status_idx"));
        let out = db
            .cmd()
            .args(["--json", "migrate", "verify"])
            .assert()
            .code(2);
        let report = json(&out.get_output().stdout);
        assert!(!report["problems"].as_array().expect("problems").is_empty());
    }
}
