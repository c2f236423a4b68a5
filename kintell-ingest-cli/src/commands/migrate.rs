//! `migrate up|down|status|verify`.

use crate::cli::{Global, MigrateCommand};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use anyhow::Context;

pub async fn run(global: &Global, cmd: MigrateCommand) -> anyhow::Result<Exit> {
    let store = super::connect(global).await?;
    let db = store
        .database()
        .context("the store has no database schema")?;
    match cmd {
        MigrateCommand::Up { steps } => {
            let applied = db.migrate_up(steps).await.context("migrate up failed")?;
            steps_output(global, "applied", &applied)
        }
        MigrateCommand::Down { all } => {
            let reverted = db.migrate_down(all).await.context("migrate down failed")?;
            steps_output(global, "reverted", &reverted)
        }
        MigrateCommand::Status => {
            let status = db
                .migrate_status()
                .await
                .context("cannot read the migration status")?;
            if global.json {
                emit_json(&status)?;
            } else {
                let mut t = Table::new(["version", "name", "applied_at", "note"]);
                for s in &status {
                    let note = match (s.known, s.checksum_mismatch) {
                        (false, _) => "unknown to this build",
                        (true, true) => "checksum differs from this build",
                        _ => "",
                    };
                    t.row([
                        format!("{:04}", s.version),
                        s.name.clone(),
                        s.applied_at.map_or_else(
                            || "pending".to_owned(),
                            |a| a.format("%Y-%m-%d %H:%M:%S").to_string(),
                        ),
                        note.to_owned(),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
        MigrateCommand::Verify => {
            let report = db
                .migrate_verify()
                .await
                .context("cannot read the schema")?;
            if global.json {
                emit_json(&report)?;
            } else if report.is_ok() {
                let extras = if report.extras.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({} object(s) not made by a migration: {})",
                        report.extras.len(),
                        report
                            .extras
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                emit(&format!(
                    "schema ok: {} migration(s) applied on {}{extras}\n",
                    report.applied.len(),
                    report.backend
                ))?;
            }
            if report.is_ok() {
                Ok(Exit::Success)
            } else {
                let problems: Vec<String> =
                    report.problems.iter().map(ToString::to_string).collect();
                Err(with_exit(
                    Exit::Failure,
                    anyhow::anyhow!(
                        "the schema does not match its migrations: {}",
                        problems.join("; ")
                    ),
                ))
            }
        }
    }
}

fn steps_output(
    global: &Global,
    verb: &str,
    steps: &[kintell_ingest::store::MigrationStep],
) -> anyhow::Result<Exit> {
    if global.json {
        emit_json(&serde_json::json!({ verb: steps }))?;
    } else if steps.is_empty() {
        emit(&format!("nothing {verb}: the schema is already there\n"))?;
    } else {
        let names: Vec<String> = steps.iter().map(ToString::to_string).collect();
        emit(&format!("{verb}: {}\n", names.join(", ")))?;
    }
    Ok(Exit::Success)
}
