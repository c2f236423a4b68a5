//! `review list|show|accept|reject`.

use crate::cli::{Global, ReviewCommand};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use anyhow::Context;
use kintell_ingest::domain::{ActivityKind, Association, AssociationId, Key, ProgramSlug};
use kintell_ingest::review::{ReviewError, ReviewQuery, ReviewQueue};

pub async fn run(global: &Global, cmd: ReviewCommand) -> anyhow::Result<Exit> {
    match cmd {
        ReviewCommand::List {
            company,
            campaign,
            kind,
            from,
            to,
            limit,
        } => {
            let query = ReviewQuery {
                company: company
                    .as_deref()
                    .map(Key::parse)
                    .transpose()
                    .context("--company")?,
                campaign: campaign
                    .as_deref()
                    .map(Key::parse)
                    .transpose()
                    .context("--campaign")?,
                kind: kind
                    .as_deref()
                    .map(ActivityKind::parse)
                    .transpose()
                    .context("--kind")?,
                from,
                to,
                limit,
            };
            let store = super::open(global).await?;
            let items = ReviewQueue::new(store)
                .list_by(&query)
                .await
                .map_err(usage)?;
            if global.json {
                emit_json(&items)?;
            } else if items.is_empty() {
                emit("no items waiting for review\n")?;
            } else {
                let mut t = Table::new([
                    "id",
                    "kind",
                    "date",
                    "campaign",
                    "instance",
                    "confidence",
                    "reasons",
                ]);
                for i in &items {
                    t.row([
                        i.id.to_string(),
                        i.activity_kind.to_string(),
                        i.activity_at
                            .map(|d| d.date_naive().to_string())
                            .unwrap_or_default(),
                        i.campaign
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        i.instance
                            .as_ref()
                            .map(ToString::to_string)
                            .unwrap_or_default(),
                        i.confidence.to_string(),
                        reason_codes(&i.reasons),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
        ReviewCommand::Show { id } => {
            let store = super::open(global).await?;
            let association = ReviewQueue::new(store)
                .show(AssociationId(id))
                .await
                .map_err(usage)?;
            render(global, &association)?;
            Ok(Exit::Success)
        }
        ReviewCommand::Accept { id, instance, by } => {
            let instance = instance
                .as_deref()
                .map(ProgramSlug::parse)
                .transpose()
                .context("--instance")?;
            let store = super::open(global).await?;
            let association = ReviewQueue::new(store)
                .accept(
                    AssociationId(id),
                    instance.as_ref(),
                    &by,
                    chrono::Utc::now(),
                )
                .await
                .map_err(usage)?;
            render(global, &association)?;
            Ok(Exit::Success)
        }
        ReviewCommand::Reject { id, by } => {
            let store = super::open(global).await?;
            let association = ReviewQueue::new(store)
                .reject(AssociationId(id), &by, chrono::Utc::now())
                .await
                .map_err(usage)?;
            render(global, &association)?;
            Ok(Exit::Success)
        }
    }
}

/// A refused review operation is a usage error (exit 2), like an unknown id; a store failure too.
fn usage(e: ReviewError) -> anyhow::Error {
    with_exit(Exit::Failure, e)
}

fn reason_codes(reasons: &serde_json::Value) -> String {
    reasons
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r.get("code").and_then(serde_json::Value::as_str))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn render(global: &Global, a: &Association) -> anyhow::Result<()> {
    if global.json {
        return emit_json(a);
    }
    let mut out = String::new();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
    out.push_str(&format!("id          {}\n", a.id));
    out.push_str(&format!(
        "activity    {} {}\n",
        a.activity_kind, a.activity_id
    ));
    out.push_str(&format!("decision    {}\n", a.decision));
    out.push_str(&format!("confidence  {}\n", a.confidence.get()));
    out.push_str(&format!(
        "campaign    {}\n",
        opt(a.campaign_id.map(|c| c.to_string()))
    ));
    out.push_str(&format!(
        "instance    {}\n",
        opt(a.program_instance_id.map(|i| i.to_string()))
    ));
    if let Some(by) = &a.decided_by {
        out.push_str(&format!(
            "decided     by {by} at {}\n",
            opt(a.decided_at.map(|d| d.to_rfc3339()))
        ));
    }
    let mut reasons = Table::new(["reason", "points", "detail"]);
    for r in a.reasons.as_array().into_iter().flatten() {
        reasons.row([
            r.get("code")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
            r.get("points").map(ToString::to_string).unwrap_or_default(),
            r.get("detail")
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_owned(),
        ]);
    }
    out.push('\n');
    out.push_str(&reasons.render());
    let mut candidates = Table::new(["candidate", "total", "confidence"]);
    for c in a.candidates.as_array().into_iter().flatten() {
        candidates.row([
            c.get("campaign").map(plain).unwrap_or_default(),
            c.get("total").map(ToString::to_string).unwrap_or_default(),
            c.get("confidence")
                .map(ToString::to_string)
                .unwrap_or_default(),
        ]);
    }
    out.push('\n');
    out.push_str(&candidates.render());
    emit(&out)?;
    Ok(())
}

fn plain(v: &serde_json::Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
}
