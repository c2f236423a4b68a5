//! `report campaigns`.

use crate::cli::{Global, ReportCommand};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use anyhow::Context;
use kintell_ingest::domain::Key;
use kintell_ingest::reports::{ReportError, Reports};

pub async fn run(global: &Global, cmd: ReportCommand) -> anyhow::Result<Exit> {
    match cmd {
        ReportCommand::Campaigns { company } => {
            let company = company
                .as_deref()
                .map(Key::parse)
                .transpose()
                .context("--company")?;
            let store = super::open(global).await?;
            let metrics = Reports::new(store)
                .campaigns(company.as_ref())
                .await
                .map_err(|e| match e {
                    ReportError::UnknownCompany(_) => with_exit(Exit::Failure, e),
                    ReportError::Store(_) => anyhow::Error::new(e),
                })?;
            if global.json {
                emit_json(&metrics)?;
                return Ok(Exit::Success);
            }
            if metrics.is_empty() {
                emit("no campaigns\n")?;
                return Ok(Exit::Success);
            }
            let mut t = Table::new([
                "campaign",
                "company",
                "status",
                "sessions",
                "hours",
                "matches",
                "completions",
                "participants",
                "volunteers",
                "reviews",
                "capacity",
            ]);
            for m in &metrics {
                let capacity = m.capacity.map_or_else(String::new, |c| {
                    let flag = if c.over_capacity {
                        " over"
                    } else if c.near_capacity {
                        " near"
                    } else {
                        ""
                    };
                    format!("{}/{} {:.0}%{flag}", c.used, c.limit, c.fraction() * 100.0)
                });
                t.row([
                    m.key.to_string(),
                    m.company.to_string(),
                    m.status.to_string(),
                    m.counts.sessions.to_string(),
                    hours(m.counts.session_minutes),
                    m.counts.matches.to_string(),
                    m.counts.completions.to_string(),
                    m.counts.participants.to_string(),
                    m.counts.volunteers.to_string(),
                    m.pending_reviews.to_string(),
                    capacity,
                ]);
                for i in &m.instances {
                    t.row([
                        format!("  {}", i.slug),
                        String::new(),
                        i.status.to_string(),
                        i.counts.sessions.to_string(),
                        hours(i.counts.session_minutes),
                        i.counts.matches.to_string(),
                        i.counts.completions.to_string(),
                        i.counts.participants.to_string(),
                        i.counts.volunteers.to_string(),
                        String::new(),
                        String::new(),
                    ]);
                }
            }
            emit(&t.render())?;
            Ok(Exit::Success)
        }
    }
}

/// Minutes as hours with one decimal, exactly rounded half up.
fn hours(minutes: u64) -> String {
    let tenths = (minutes * 10 + 30) / 60;
    format!("{}.{}", tenths / 10, tenths % 10)
}
