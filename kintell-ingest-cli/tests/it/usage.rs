//! Global behaviour: help, bad options, unreachable databases, JSON output.

use assert_cmd::Command;
use predicates::str::contains;

fn bin() -> Command {
    let mut c = Command::cargo_bin("kintell-ingest").expect("the binary is built");
    c.env_remove("KINTELL_DATABASE_URL");
    c
}

#[test]
fn help_explains_each_command_with_an_example() {
    for args in [
        &["--help"][..],
        &["migrate", "--help"],
        &["migrate", "up", "--help"],
        &["migrate", "down", "--help"],
        &["migrate", "status", "--help"],
        &["migrate", "verify", "--help"],
        &["catalog", "--help"],
        &["catalog", "import", "--help"],
        &["associate", "--help"],
        &["associate", "backfill", "--help"],
        &["associate", "runs", "--help"],
        &["associate", "resume", "--help"],
        &["demo", "--help"],
        &["import", "--help"],
        &["batches", "--help"],
        &["batches", "list", "--help"],
        &["batches", "show", "--help"],
        &["batches", "errors", "--help"],
        &["batches", "resume", "--help"],
        &["batches", "pause", "--help"],
        &["batches", "cancel", "--help"],
        &["lineage", "--help"],
        &["lineage", "adopt-legacy", "--help"],
        &["review", "--help"],
        &["review", "list", "--help"],
        &["review", "show", "--help"],
        &["review", "accept", "--help"],
        &["review", "reject", "--help"],
        &["report", "--help"],
        &["report", "campaigns", "--help"],
    ] {
        bin()
            .args(args)
            .assert()
            .success()
            .stdout(contains("Example"))
            .stderr("");
    }
}

#[test]
fn a_bad_option_value_is_a_usage_error() {
    bin()
        .args(["migrate", "up", "--steps", "many"])
        .assert()
        .code(2)
        .stderr(contains("invalid value 'many'"));
    bin().args(["migrate", "sideways"]).assert().code(2);
}

#[test]
fn an_unreachable_database_is_a_runtime_error() {
    bin()
        .args([
            "--database-url",
            "postgres://nobody@127.0.0.1:9/none",
            "migrate",
            "status",
        ])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .code(2)
        .stderr(contains(
            "error: cannot open the database postgres://nobody@127.0.0.1:9/none",
        ))
        .stderr(contains("cause: "));
    bin()
        .args([
            "--database-url",
            "mysql://x@localhost/db",
            "migrate",
            "status",
        ])
        .assert()
        .code(2)
        .stderr(contains("error: cannot open the database"));
}

#[test]
fn the_database_url_comes_from_the_environment() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("env.db").display());
    bin()
        .env("KINTELL_DATABASE_URL", &url)
        .args(["migrate", "up"])
        .assert()
        .success();
    assert!(dir.path().join("env.db").exists());
}
