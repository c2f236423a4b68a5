//! `lineage adopt-legacy`.

use crate::cli::{Global, LineageCommand};
use crate::exit::Exit;
use crate::output::{Table, emit, emit_json};
use kintell_ingest::ingest::Ingestor;

pub async fn run(global: &Global, cmd: LineageCommand) -> anyhow::Result<Exit> {
    match cmd {
        LineageCommand::AdoptLegacy => {
            let store = super::open(global).await?;
            let report = Ingestor::new(store)
                .imported_by("kintell-ingest-cli")
                .adopt_legacy(chrono::Utc::now())
                .await?;
            if global.json {
                emit_json(&report)?;
            } else {
                let mut t = Table::new(["table", "legacy batch", "adopted now", "rows in batch"]);
                for a in &report.adoptions {
                    t.row([
                        a.kind.to_string(),
                        a.batch.id.to_string(),
                        a.adopted.to_string(),
                        a.batch.total_rows.to_string(),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
    }
}
