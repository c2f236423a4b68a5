//! `demo`: twice on a fresh database; the second run refuses every re-import and doubles nothing.

use crate::support::{backends, json};
use predicates::prelude::*;
use predicates::str::contains;

#[test]
fn demo_runs_twice_and_doubles_nothing() {
    for db in backends("demo_runs_twice_and_doubles_nothing") {
        db.cmd()
            .arg("demo")
            .assert()
            .success()
            .stdout(contains("imports"))
            .stdout(contains("first rejected rows"))
            .stdout(contains("campaigns"))
            .stdout(contains("re-import refused").not());
        let first = db.counts();
        assert!(
            first
                .iter()
                .any(|(t, n)| *t == "kintell_sessions" && *n > 0),
            "{first:?}"
        );
        db.cmd()
            .arg("demo")
            .assert()
            .success()
            .stdout(contains("re-import refused"));
        assert_eq!(db.counts(), first);
        let out = db.cmd().args(["--json", "demo"]).assert().success();
        let doc = json(&out.get_output().stdout);
        let imports = doc["imports"].as_array().expect("imports");
        assert!(!imports.is_empty());
        assert!(
            imports.iter().all(|i| i["refused"].is_string()),
            "{imports:?}"
        );
        assert_eq!(db.counts(), first);
    }
}

#[test]
fn demo_uses_its_own_database_by_default() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cmd = assert_cmd::Command::cargo_bin("kintell-ingest").expect("binary");
    cmd.env_remove("KINTELL_DATABASE_URL")
        .current_dir(dir.path())
        .args(["--quiet", "demo"])
        .assert()
        .success()
        .stdout(contains("sqlite://kintell-demo.db?mode=rwc"));
    assert!(dir.path().join("kintell-demo.db").exists());
    assert!(!dir.path().join("kintell.db").exists());
}
