//! `demo`: the bundled catalogue and sample files imported into a demo database, then what an operator looks at.

use crate::cli::{DEMO_DATABASE_URL, Global};
use crate::exit::Exit;
use crate::output::{Table, emit, emit_json};
use kintell_ingest::catalog::CatalogImport;
use kintell_ingest::domain::EntityKind;
use kintell_ingest::ingest::{ImportError, ImportReport, ImportRequest, Ingestor};
use kintell_ingest::reports::Reports;
use kintell_ingest::review::{ReviewQuery, ReviewQueue};
use serde_json::{Value, json};

/// The bundled catalogue.
const CATALOG: &str = include_str!("../../demo/catalog.json");

/// The bundled files, in the order they are imported: users first, so that sessions find their people.
const FILES: &[(&str, EntityKind, &str)] = &[
    (
        "kintell-users.csv",
        EntityKind::KintellUsers,
        include_str!("../../demo/kintell-users.csv"),
    ),
    (
        "mentors_for_ukraine_2024_q4.csv",
        EntityKind::KintellSessions,
        include_str!("../../demo/mentors_for_ukraine_2024_q4.csv"),
    ),
    (
        "kintell-sessions-2024.csv",
        EntityKind::KintellSessions,
        include_str!("../../demo/kintell-sessions-2024.csv"),
    ),
    (
        "buddy-matches.csv",
        EntityKind::BuddyMatches,
        include_str!("../../demo/buddy-matches.csv"),
    ),
    (
        "course-completions.csv",
        EntityKind::CourseCompletions,
        include_str!("../../demo/course-completions.csv"),
    ),
];

/// What became of one bundled file.
enum Outcome {
    Imported(Box<ImportReport>),
    Refused(String),
}

pub async fn run(global: &Global) -> anyhow::Result<Exit> {
    let url = global.database_url_or(DEMO_DATABASE_URL);
    let store = super::open_at(global, url).await?;
    let now = chrono::Utc::now();
    let catalog = CatalogImport::new(store.clone())
        .run_json(CATALOG, now)
        .await?;
    let ingestor = Ingestor::new(store.clone()).imported_by("kintell-ingest demo");
    let mut outcomes = Vec::new();
    for (name, entity, text) in FILES {
        let request = ImportRequest::from_bytes(*name, text.as_bytes().to_vec()).entity(*entity);
        let outcome = match ingestor.import(request).await {
            Ok(report) => Outcome::Imported(Box::new(report)),
            Err(ImportError::AlreadyImported { batch }) => Outcome::Refused(format!(
                "already imported by batch {} (completed {}); nothing was imported again",
                batch.id,
                batch
                    .completed_at
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default()
            )),
            Err(e) => return Err(e.into()),
        };
        outcomes.push((*name, outcome));
    }
    let reviews = ReviewQueue::new(store.clone())
        .list_by(&ReviewQuery::default())
        .await?;
    let campaigns = Reports::new(store.clone()).campaigns(None).await?;

    if global.json {
        let imports: Vec<Value> = outcomes
            .iter()
            .map(|(name, o)| match o {
                Outcome::Imported(r) => json!({"file": name, "report": r.to_json()}),
                Outcome::Refused(why) => json!({"file": name, "refused": why}),
            })
            .collect();
        emit_json(&json!({
            "database": super::redact(url),
            "catalog": catalog,
            "imports": imports,
            "review_queue": reviews,
            "campaigns": campaigns,
        }))?;
        return Ok(Exit::Success);
    }

    let mut out = format!("demo database: {}\n\n", super::redact(url));
    let c = catalog.total();
    out.push_str(&format!(
        "catalogue: {} inserted, {} updated, {} unchanged\n\n",
        c.inserted, c.updated, c.unchanged
    ));
    out.push_str("imports\n");
    let mut t = Table::new([
        "file",
        "status",
        "rows",
        "inserted",
        "updated",
        "unchanged",
        "rejected",
        "explicit",
        "auto",
        "review",
        "none",
    ]);
    let mut rejected = Vec::new();
    let mut refusals = Vec::new();
    for (name, outcome) in &outcomes {
        match outcome {
            Outcome::Imported(r) => {
                let a = &r.associations;
                t.row([
                    name.to_string(),
                    r.batch.status.to_string(),
                    r.batch.total_rows.to_string(),
                    r.inserted.to_string(),
                    r.updated.to_string(),
                    r.skipped.to_string(),
                    r.errors.to_string(),
                    a.explicit.to_string(),
                    a.auto.to_string(),
                    a.review.to_string(),
                    a.none.to_string(),
                ]);
                let first = r
                    .batch
                    .error_summary
                    .as_ref()
                    .and_then(|s| s.get("first"))
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                rejected.extend(first.into_iter().map(|e| (name.to_string(), e)));
            }
            Outcome::Refused(why) => {
                t.row([name.to_string(), "refused".to_owned()]);
                refusals.push(format!("{name}: {why}"));
            }
        }
    }
    out.push_str(&t.render());
    for r in &refusals {
        out.push_str(&format!("  re-import refused: {r}\n"));
    }
    if !rejected.is_empty() {
        out.push_str("\nfirst rejected rows\n");
        let mut t = Table::new(["file", "row", "line", "code", "field", "message"]);
        for (file, e) in rejected.iter().take(10) {
            let cell = |k: &str| match e.get(k) {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(v) => v.to_string(),
            };
            t.row([
                file.clone(),
                cell("row"),
                cell("line"),
                cell("code"),
                cell("field"),
                cell("message"),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push_str("\nreview queue\n");
    if reviews.is_empty() {
        out.push_str("  (empty)\n");
    } else {
        let mut t = Table::new(["id", "kind", "date", "campaign", "instance", "confidence"]);
        for r in &reviews {
            t.row([
                r.id.to_string(),
                r.activity_kind.to_string(),
                r.activity_at
                    .map(|d| d.date_naive().to_string())
                    .unwrap_or_default(),
                r.campaign
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                r.instance
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
                r.confidence.to_string(),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push_str("\ncampaigns\n");
    let mut t = Table::new([
        "campaign",
        "sessions",
        "matches",
        "completions",
        "participants",
        "reviews",
        "capacity",
    ]);
    for m in &campaigns {
        t.row([
            m.key.to_string(),
            m.counts.sessions.to_string(),
            m.counts.matches.to_string(),
            m.counts.completions.to_string(),
            m.counts.participants.to_string(),
            m.pending_reviews.to_string(),
            m.capacity.map_or_else(String::new, |c| {
                format!("{}/{} {:.0}%", c.used, c.limit, c.fraction() * 100.0)
            }),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nnext: kintell-ingest --database-url '{}' batches list | review list | report campaigns\n",
        super::redact(url)
    ));
    emit(&out)?;
    Ok(Exit::Success)
}
