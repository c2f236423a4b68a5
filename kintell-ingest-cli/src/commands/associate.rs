//! `associate backfill|runs|resume`, with the progress bar on stderr.

use crate::cli::{AssociateCommand, Entity, Global};
use crate::exit::{Exit, with_exit};
use crate::output::{Table, emit, emit_json};
use crate::progress::Bar;
use anyhow::Context;
use kintell_ingest::backfill::{Backfill, BackfillError, BackfillOptions};
use kintell_ingest::domain::{BackfillEntity, Key, RunId, RunRecord, TimeZoneOffset};
use kintell_ingest::scoring::ScoringPolicy;

pub async fn run(global: &Global, cmd: AssociateCommand) -> anyhow::Result<Exit> {
    match cmd {
        AssociateCommand::Backfill {
            dry_run,
            entity,
            company,
            start_date,
            end_date,
            all_rows,
            batch_size,
            policy_timezone,
        } => {
            let mut options = BackfillOptions::default()
                .dry_run(dry_run)
                .entity(match entity {
                    Entity::Sessions => BackfillEntity::Sessions,
                    Entity::Matches => BackfillEntity::Matches,
                    Entity::Completions => BackfillEntity::Completions,
                    Entity::All => BackfillEntity::All,
                })
                .batch_size(batch_size);
            if let Some(slug) = company {
                options = options.company(Key::parse(&slug).context("--company")?);
            }
            if let Some(d) = start_date {
                options = options.start_date(d);
            }
            if let Some(d) = end_date {
                options = options.end_date(d);
            }
            if all_rows {
                options = options.all_rows();
            }
            if let Some(tz) = timezone(policy_timezone.as_deref())? {
                options = options.policy_timezone(tz);
            }
            let store = super::open(global).await?;
            let bar = Bar::associating(global.quiet || global.json);
            let result = Backfill::new(store).run(options).with_progress(&bar).await;
            bar.finish();
            let run = result.map_err(refused)?;
            render(global, &run)
        }
        AssociateCommand::Runs => {
            let store = super::open(global).await?;
            let runs = Backfill::new(store).runs().await.map_err(refused)?;
            if global.json {
                emit_json(&runs)?;
            } else if runs.is_empty() {
                emit("no backfill runs\n")?;
            } else {
                let mut t = Table::new([
                    "id", "status", "dry_run", "entity", "scanned", "changed", "errors", "created",
                ]);
                for r in &runs {
                    let s = &r.stats;
                    t.row([
                        r.id.to_string(),
                        r.status.to_string(),
                        if r.dry_run { "yes" } else { "no" }.to_owned(),
                        r.entity.to_string(),
                        s.scanned.to_string(),
                        changed(r).to_string(),
                        s.errors.to_string(),
                        r.created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    ]);
                }
                emit(&t.render())?;
            }
            Ok(Exit::Success)
        }
        AssociateCommand::Resume {
            run,
            policy_timezone,
        } => {
            let tz = timezone(policy_timezone.as_deref())?.unwrap_or_default();
            let store = super::open(global).await?;
            let bar = Bar::associating(global.quiet || global.json);
            let result = Backfill::new(store)
                .policy(ScoringPolicy::with_timezone(tz))
                .resume(RunId(run))
                .with_progress(&bar)
                .await;
            bar.finish();
            let run = result.map_err(refused)?;
            render(global, &run)
        }
    }
}

fn timezone(s: Option<&str>) -> anyhow::Result<Option<TimeZoneOffset>> {
    s.map(TimeZoneOffset::parse)
        .transpose()
        .context("--policy-timezone")
}

/// A run held by a live worker exits 4, like an import of a file being imported; every other refusal 2.
fn refused(e: BackfillError) -> anyhow::Error {
    match e {
        BackfillError::Busy { .. } => with_exit(Exit::Busy, e),
        e => with_exit(Exit::Failure, e),
    }
}

/// Rows whose association changed (or would change, in a dry run).
fn changed(r: &RunRecord) -> u64 {
    let s = &r.stats;
    s.scanned - s.unchanged - s.errors
}

fn render(global: &Global, r: &RunRecord) -> anyhow::Result<Exit> {
    if global.json {
        emit_json(r)?;
        return Ok(Exit::Success);
    }
    let dash = || "-".to_owned();
    let s = &r.stats;
    let mut out = String::new();
    out.push_str(&format!("run         {}\n", r.id));
    out.push_str(&format!(
        "status      {}{}\n",
        r.status,
        if r.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    ));
    out.push_str(&format!("entity      {}\n", r.entity));
    out.push_str(&format!(
        "company     {}\n",
        r.company_id.map_or_else(dash, |c| c.to_string())
    ));
    out.push_str(&format!(
        "dates       {} to {}\n",
        r.start_date.map_or_else(dash, |d| d.to_string()),
        r.end_date.map_or_else(dash, |d| d.to_string())
    ));
    out.push_str(&format!(
        "rows        {}\n",
        if r.only_unassociated {
            "only those without an association"
        } else {
            "all"
        }
    ));
    out.push('\n');
    let mut t = Table::new(["outcome", "rows"]);
    for (name, n) in [
        ("scanned", s.scanned),
        ("unchanged", s.unchanged),
        ("auto", s.auto),
        ("review", s.review),
        ("ignored", s.ignored),
        ("none (no company)", s.none_no_company),
        ("none (no candidates)", s.none_no_candidates),
        ("errors", s.errors),
    ] {
        t.row([name.to_owned(), n.to_string()]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\naverage confidence {}\n",
        s.avg_confidence().map_or_else(dash, |a| format!(
            "{a:.1} over {} rows with candidates",
            s.scored()
        ))
    ));
    let buckets: Vec<String> = s
        .histogram
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{}-{}: {n}", i * 10, if i == 9 { 100 } else { i * 10 + 9 }))
        .collect();
    out.push_str(&format!("histogram  {}\n", buckets.join("  ")));
    if let Some(sample) = s.sample.as_deref().filter(|s| !s.is_empty()) {
        let mut t = Table::new([
            "kind",
            "activity",
            "before",
            "after",
            "campaign after",
            "instance after",
        ]);
        for c in sample {
            let decision = |d: Option<kintell_ingest::domain::Decision>| {
                d.map_or_else(|| "(none stored)".to_owned(), |d| d.to_string())
            };
            t.row([
                c.activity_kind.to_string(),
                c.activity_id.to_string(),
                decision(c.before.decision),
                decision(c.after.decision),
                c.after.campaign.map_or_else(dash, |x| x.to_string()),
                c.after.instance.map_or_else(dash, |x| x.to_string()),
            ]);
        }
        out.push_str("\nsample of the changes:\n");
        out.push_str(&t.render());
    }
    emit(&out)?;
    Ok(Exit::Success)
}
