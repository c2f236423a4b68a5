//! `catalog import FILE`.

use crate::support::{backends, fixture, json};
use predicates::str::contains;

#[test]
fn import_then_reimport_changes_nothing() {
    for db in backends("import_then_reimport_changes_nothing") {
        let catalog = fixture("catalog.json");
        let out = db
            .cmd()
            .arg("--json")
            .args(["catalog", "import"])
            .arg(&catalog)
            .assert()
            .success();
        let first = json(&out.get_output().stdout);
        assert!(first["companies"]["inserted"].as_u64() > Some(0));
        assert_eq!(first["campaigns"]["updated"], 0);

        let out = db
            .cmd()
            .arg("--json")
            .args(["catalog", "import"])
            .arg(&catalog)
            .assert()
            .success();
        let second = json(&out.get_output().stdout);
        for kind in [
            "companies",
            "beneficiary_groups",
            "campaigns",
            "program_instances",
            "users",
        ] {
            assert_eq!(second[kind]["inserted"], 0, "{kind}");
            assert_eq!(second[kind]["updated"], 0, "{kind}");
            assert_eq!(second[kind]["unchanged"], first[kind]["inserted"], "{kind}");
        }

        db.cmd()
            .args(["catalog", "import"])
            .arg(&catalog)
            .assert()
            .success()
            .stdout(contains("kind"))
            .stdout(contains("campaigns"));
    }
}

#[test]
fn an_invalid_catalogue_is_rejected_with_its_json_paths() {
    let db = crate::support::Db::sqlite();
    let bad = db.dir().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"companies": [{"key": "acme", "name": "Acme"}],
            "campaigns": [{"key": "c1", "name": "C", "company": "nope", "beneficiary_group": "g",
                           "start_date": "2024-01-01", "end_date": "2023-01-01"}]}"#,
    )
    .expect("write");
    db.cmd()
        .args(["catalog", "import"])
        .arg(&bad)
        .assert()
        .code(1)
        .stdout("")
        .stderr(contains("error: catalog import of"))
        .stderr(contains("$.campaigns[0].company"));
    // Nothing was written: the valid company of the same document is not there either.
    let out = db
        .cmd()
        .arg("--json")
        .args(["catalog", "import"])
        .arg(fixture("catalog.json"))
        .assert()
        .success();
    let report = json(&out.get_output().stdout);
    assert_eq!(report["companies"]["updated"], 0);

    std::fs::write(&bad, "{ not json").expect("write");
    db.cmd()
        .args(["catalog", "import"])
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(contains("not valid JSON (line 1, column 3)"));
}

#[test]
fn a_missing_file_is_a_usage_error() {
    let db = crate::support::Db::sqlite();
    db.cmd()
        .args(["catalog", "import", "no-such-file.json"])
        .assert()
        .code(2)
        .stderr(contains("error: cannot open no-such-file.json"))
        .stderr(contains("cause: "));
}
