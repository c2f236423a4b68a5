//! `catalog import FILE`.

use crate::cli::{CatalogCommand, Global};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use anyhow::Context;
use kintell_ingest::catalog::{CatalogError, CatalogImport};

pub async fn run(global: &Global, cmd: CatalogCommand) -> anyhow::Result<Exit> {
    match cmd {
        CatalogCommand::Import { file } => {
            let reader = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let store = super::open(global).await?;
            let report = CatalogImport::new(store)
                .run_reader(std::io::BufReader::new(reader), chrono::Utc::now())
                .await
                .map_err(|e| {
                    let exit = match e {
                        CatalogError::Syntax { .. } | CatalogError::Invalid { .. } => {
                            Exit::Rejected
                        }
                        CatalogError::Read { .. } | CatalogError::Store { .. } => Exit::Failure,
                    };
                    with_exit(exit, e).context(format!(
                        "catalog import of {} failed; nothing was written",
                        file.display()
                    ))
                })?;
            if global.json {
                emit_json(&report)?;
            } else {
                let mut t = Table::new(["kind", "inserted", "updated", "unchanged"]);
                for (kind, c) in [
                    ("companies", report.companies),
                    ("beneficiary_groups", report.beneficiary_groups),
                    ("campaigns", report.campaigns),
                    ("program_instances", report.program_instances),
                    ("users", report.users),
                ] {
                    t.row([
                        kind.to_owned(),
                        c.inserted.to_string(),
                        c.updated.to_string(),
                        c.unchanged.to_string(),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
    }
}
