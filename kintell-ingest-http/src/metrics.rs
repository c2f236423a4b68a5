//! The Prometheus metrics of `GET /metrics`: request counts and durations per matched route, and the library's
//! per-outcome counts of the imports, reviews and backfills this process ran.
//!
//! Names and labels are those of the specification: `http_server_requests_total` and
//! `http_server_request_duration_seconds` (`service`, `endpoint` = the matched route template, `status`),
//! `ingest_rows_total{entity,outcome}`, `ingest_batches_total{status}`, `association_decisions_total{decision}`,
//! `webhook_signature_failures_total`. Counters start at 0 with the process; a request matching no route counts
//! under the endpoint `unmatched`.
//!
//! An import's rows count what this process's run of the batch did (the batch's counters at the end minus those
//! when the run took it), so a resumed batch is not counted twice; `outcome` is `inserted`, `updated`, `skipped`
//! or `rejected`. `ingest_batches_total` counts runs ended here by the status they left the batch in (a file
//! error or a reject limit counts as `failed`; a refusal creates no run and is not counted).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use kintell_ingest::domain::BatchRecord;
use kintell_ingest::ingest::{AssociationCounts, ImportReport};

use crate::AppState;

/// The `service` label.
pub const SERVICE: &str = "kintell-ingest-http";

/// Upper bounds of the duration histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(String, u16), Histogram>,
    rows: BTreeMap<(String, &'static str), u64>,
    batches: BTreeMap<String, u64>,
    decisions: BTreeMap<&'static str, u64>,
}

/// The registry; shared by every handler through [`AppState`].
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        // A panic while holding the lock cannot leave the counters inconsistent beyond one observation.
        let mut guard = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Records one request.
    pub fn observe_request(&self, endpoint: &str, status: u16, seconds: f64) {
        self.with(|c| {
            let h = c.requests.entry((endpoint.to_owned(), status)).or_default();
            h.count += 1;
            h.sum += seconds;
            for (slot, bound) in h.buckets.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *slot += 1;
                }
            }
        });
    }

    /// Records the end of an import run: `start` is the batch as the run took it (`None` when the run ended
    /// before taking one), `end` the batch it left.
    pub fn observe_import(&self, start: Option<&BatchRecord>, end: &ImportReport) {
        let b = &end.batch;
        let before = |f: fn(&BatchRecord) -> i64| start.map_or(0, f);
        let delta = |now: i64, then: i64| u64::try_from(now.saturating_sub(then)).unwrap_or(0);
        let entity = b.entity_kind.as_str().to_owned();
        let rows = [
            (
                "inserted",
                delta(b.inserted_rows, before(|s| s.inserted_rows)),
            ),
            ("updated", delta(b.updated_rows, before(|s| s.updated_rows))),
            ("skipped", delta(b.skipped_rows, before(|s| s.skipped_rows))),
            ("rejected", delta(b.error_rows, before(|s| s.error_rows))),
        ];
        let then = start
            .map(|s| ImportReport::of_batch(s.clone(), Vec::new(), false).associations)
            .unwrap_or_default();
        let now = end.associations;
        self.with(|c| {
            for (outcome, n) in rows {
                *c.rows.entry((entity.clone(), outcome)).or_default() += n;
            }
            *c.batches.entry(b.status.as_str().to_owned()).or_default() += 1;
            for (decision, n) in decisions(now, then) {
                *c.decisions.entry(decision).or_default() += n;
            }
        });
    }

    /// Counts decisions made outside imports (a review, a backfill).
    pub fn observe_decisions(&self, counts: &[(&'static str, u64)]) {
        self.with(|c| {
            for (decision, n) in counts {
                *c.decisions.entry(decision).or_default() += n;
            }
        });
    }

    /// The Prometheus text exposition.
    pub fn render(&self, webhook_signature_failures: &AtomicU64) -> String {
        let mut out = String::new();
        self.with(|c| {
            out.push_str("# HELP http_server_requests_total HTTP requests answered.\n");
            out.push_str("# TYPE http_server_requests_total counter\n");
            for ((endpoint, status), h) in &c.requests {
                let _ = writeln!(
                    out,
                    "http_server_requests_total{{{}}} {}",
                    labels(endpoint, *status),
                    h.count
                );
            }
            out.push_str(
                "# HELP http_server_request_duration_seconds Time to answer HTTP requests.\n",
            );
            out.push_str("# TYPE http_server_request_duration_seconds histogram\n");
            for ((endpoint, status), h) in &c.requests {
                let l = labels(endpoint, *status);
                for (bound, n) in BUCKETS.iter().zip(h.buckets) {
                    let _ = writeln!(
                        out,
                        "http_server_request_duration_seconds_bucket{{{l},le=\"{bound}\"}} {n}"
                    );
                }
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {}",
                    h.count
                );
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_sum{{{l}}} {}",
                    h.sum
                );
                let _ = writeln!(
                    out,
                    "http_server_request_duration_seconds_count{{{l}}} {}",
                    h.count
                );
            }
            out.push_str("# HELP ingest_rows_total Rows imported by this process, by outcome.\n");
            out.push_str("# TYPE ingest_rows_total counter\n");
            for ((entity, outcome), n) in &c.rows {
                let _ = writeln!(
                    out,
                    "ingest_rows_total{{entity=\"{}\",outcome=\"{outcome}\"}} {n}",
                    escape(entity)
                );
            }
            out.push_str(
                "# HELP ingest_batches_total Import runs ended by this process, by the status they left.\n",
            );
            out.push_str("# TYPE ingest_batches_total counter\n");
            for (status, n) in &c.batches {
                let _ = writeln!(
                    out,
                    "ingest_batches_total{{status=\"{}\"}} {n}",
                    escape(status)
                );
            }
            out.push_str(
                "# HELP association_decisions_total Association decisions made by this process.\n",
            );
            out.push_str("# TYPE association_decisions_total counter\n");
            for (decision, n) in &c.decisions {
                let _ = writeln!(
                    out,
                    "association_decisions_total{{decision=\"{decision}\"}} {n}"
                );
            }
        });
        out.push_str(
            "# HELP webhook_signature_failures_total Webhook deliveries refused for their signature.\n",
        );
        out.push_str("# TYPE webhook_signature_failures_total counter\n");
        let _ = writeln!(
            out,
            "webhook_signature_failures_total {}",
            webhook_signature_failures.load(Ordering::Relaxed)
        );
        out
    }
}

/// What the association counts grew by.
fn decisions(now: AssociationCounts, then: AssociationCounts) -> [(&'static str, u64); 5] {
    [
        ("explicit", now.explicit.saturating_sub(then.explicit)),
        ("auto", now.auto.saturating_sub(then.auto)),
        ("review", now.review.saturating_sub(then.review)),
        ("ignored", now.ignored.saturating_sub(then.ignored)),
        ("none", now.none.saturating_sub(then.none)),
    ]
}

fn labels(endpoint: &str, status: u16) -> String {
    format!(
        "service=\"{SERVICE}\",endpoint=\"{}\",status=\"{status}\"",
        escape(endpoint)
    )
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The middleware timing every request, by the route it matched.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(
        &endpoint,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
