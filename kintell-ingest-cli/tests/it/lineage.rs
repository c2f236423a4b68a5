//! `lineage adopt-legacy`.

use crate::import::import_json;
use crate::support::{backends, fixture, json};

#[test]
fn adopt_legacy_links_unbatched_rows_once() {
    for db in backends("adopt_legacy_links_unbatched_rows_once") {
        import_json(
            &db,
            &["sessions", "--create-missing-users"],
            &fixture("kintell-sessions.csv"),
            0,
        );
        // Rows as they were before batches existed.
        db.execute(
            "UPDATE kintell_sessions SET batch_id = NULL, first_batch_id = NULL, source_row_number = NULL",
        );
        let adopt = || {
            let out = db
                .cmd()
                .args(["--json", "lineage", "adopt-legacy"])
                .assert()
                .success();
            json(&out.get_output().stdout)
        };
        let session = |report: &serde_json::Value| {
            report["adoptions"]
                .as_array()
                .expect("adoptions")
                .iter()
                .find(|a| a["kind"] == "kintell_session")
                .cloned()
                .expect("the sessions' adoption")
        };
        let first = adopt();
        let adopted = session(&first);
        assert_eq!(adopted["adopted"], 3);
        assert_eq!(adopted["batch"]["file_name"], "legacy_import");
        assert_eq!(adopted["batch"]["status"], "completed");
        assert_eq!(adopted["batch"]["total_rows"], 3);
        let counts = db.counts();
        let unbatched =
            "SELECT CAST(COUNT(*) AS TEXT) FROM kintell_sessions WHERE batch_id IS NULL";
        assert_eq!(db.lines(unbatched), ["0"]);

        let second = adopt();
        let again = session(&second);
        assert_eq!(again["adopted"], 0);
        assert_eq!(again["batch"]["id"], adopted["batch"]["id"]);
        assert_eq!(again["batch"]["total_rows"], 3);
        assert!(
            second["adoptions"]
                .as_array()
                .expect("adoptions")
                .iter()
                .all(|a| a["adopted"] == 0)
        );
        assert_eq!(db.counts(), counts);
        db.cmd()
            .args(["lineage", "adopt-legacy"])
            .assert()
            .success()
            .stdout(predicates::str::contains("legacy batch"));
        assert_eq!(db.counts(), counts);
    }
}
