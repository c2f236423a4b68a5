//! Backfill runs as stored in `association_runs`: the run record, its checkpoint (last id per entity) and its
//! statistics, with the exact JSON shapes of the specification.

use super::{
    ActivityId, ActivityKind, BackfillEntity, BatchStatus, CampaignId, CompanyId, Decision,
};
use super::{InstanceId, RunId};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// The longest sample of changes a dry run keeps.
pub const SAMPLE_LIMIT: usize = 20;

/// What a new run is created with; it starts `pending`, with an empty checkpoint and zeroed statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    /// UUIDv7 chosen by the caller.
    pub id: RunId,
    /// Whether the run only reports what it would change.
    pub dry_run: bool,
    /// Which activities it re-associates.
    pub entity: BackfillEntity,
    /// Only activities of this company (the volunteer's, else the participant's).
    pub company_id: Option<CompanyId>,
    /// Only activities on or after this activity date.
    pub start_date: Option<NaiveDate>,
    /// Only activities on or before this activity date.
    pub end_date: Option<NaiveDate>,
    /// Skip activities that already have an association other than `none`.
    pub only_unassociated: bool,
    /// Activities per page (and per transaction); at least 1.
    pub batch_size: u32,
    /// Creation time (also the first `updated_at`).
    pub created_at: DateTime<Utc>,
}

/// A row of `association_runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Id (UUIDv7).
    pub id: RunId,
    /// Whether the run only reports what it would change.
    pub dry_run: bool,
    /// Which activities it re-associates.
    pub entity: BackfillEntity,
    /// Only activities of this company.
    pub company_id: Option<CompanyId>,
    /// Only activities on or after this activity date.
    pub start_date: Option<NaiveDate>,
    /// Only activities on or before this activity date.
    pub end_date: Option<NaiveDate>,
    /// Skip activities that already have an association other than `none`.
    pub only_unassociated: bool,
    /// Activities per page.
    pub batch_size: u32,
    /// Lifecycle status, in the batches' vocabulary.
    pub status: BatchStatus,
    /// The last activity id processed per entity: where a resume continues.
    pub checkpoint: RunCheckpoint,
    /// What the run has counted so far.
    pub stats: RunStats,
    /// The worker holding the run (`host:pid:nonce`).
    pub lease_owner: Option<String>,
    /// Until when it holds it.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// First start.
    pub started_at: Option<DateTime<Utc>>,
    /// Completion.
    pub completed_at: Option<DateTime<Utc>>,
    /// Creation.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

impl RunRecord {
    /// The record a [`NewRun`] is stored as.
    pub fn new(run: &NewRun) -> Self {
        RunRecord {
            id: run.id,
            dry_run: run.dry_run,
            entity: run.entity,
            company_id: run.company_id,
            start_date: run.start_date,
            end_date: run.end_date,
            only_unassociated: run.only_unassociated,
            batch_size: run.batch_size,
            status: BatchStatus::Pending,
            checkpoint: RunCheckpoint::default(),
            stats: RunStats::new(run.dry_run),
            lease_owner: None,
            lease_expires_at: None,
            started_at: None,
            completed_at: None,
            created_at: run.created_at,
            updated_at: run.created_at,
        }
    }
}

/// The condition under which a run row may be overwritten: the lease owner and status the writer last saw. The
/// owner names one invocation (its nonce), so a worker that lost its lease never matches again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunGuard {
    /// The lease owner the row must still have (`None`: no owner).
    pub lease_owner: Option<String>,
    /// The status the row must still have.
    pub status: BatchStatus,
}

impl RunGuard {
    /// The guard matching `run` as it is now.
    pub fn of(run: &RunRecord) -> Self {
        RunGuard {
            lease_owner: run.lease_owner.clone(),
            status: run.status,
        }
    }

    /// Whether a stored row satisfies the guard.
    pub fn matches(&self, stored: &RunRecord) -> bool {
        stored.lease_owner == self.lease_owner && stored.status == self.status
    }
}

/// `association_runs.checkpoint`: the last activity id processed per entity, `{"sessions": id, …}`; an entity not
/// started yet has no key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCheckpoint {
    /// The last session processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<ActivityId>,
    /// The last buddy match processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<ActivityId>,
    /// The last course completion processed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<ActivityId>,
}

impl RunCheckpoint {
    /// The last id processed of `kind`.
    pub fn get(&self, kind: ActivityKind) -> Option<ActivityId> {
        match kind {
            ActivityKind::KintellSession => self.sessions,
            ActivityKind::BuddyMatch => self.matches,
            ActivityKind::CourseCompletion => self.completions,
        }
    }

    /// Records `id` as the last processed of `kind`.
    pub fn set(&mut self, kind: ActivityKind, id: ActivityId) {
        let slot = match kind {
            ActivityKind::KintellSession => &mut self.sessions,
            ActivityKind::BuddyMatch => &mut self.matches,
            ActivityKind::CourseCompletion => &mut self.completions,
        };
        *slot = Some(id);
    }

    /// Whether no entity has been started.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_none() && self.matches.is_none() && self.completions.is_none()
    }
}

impl BackfillEntity {
    /// The activity kinds a run of this entity goes through, in order.
    pub const fn kinds(self) -> &'static [ActivityKind] {
        match self {
            BackfillEntity::Sessions => &[ActivityKind::KintellSession],
            BackfillEntity::Matches => &[ActivityKind::BuddyMatch],
            BackfillEntity::Completions => &[ActivityKind::CourseCompletion],
            BackfillEntity::All => &[
                ActivityKind::KintellSession,
                ActivityKind::BuddyMatch,
                ActivityKind::CourseCompletion,
            ],
        }
    }
}

/// An association as the backfill compares it: decision, campaign and instance (all `None` when there is none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssociationState {
    /// The decision.
    pub decision: Option<Decision>,
    /// The campaign.
    pub campaign: Option<CampaignId>,
    /// The programme instance.
    pub instance: Option<InstanceId>,
}

/// One change a dry run would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleChange {
    /// The activity's kind.
    pub activity_kind: ActivityKind,
    /// The activity.
    pub activity_id: ActivityId,
    /// Its association before.
    pub before: AssociationState,
    /// Its association after.
    pub after: AssociationState,
}

/// How a scanned row came out, for [`RunStats::count`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tally {
    /// Same decision, campaign and instance as before (or a human or explicit decision left alone).
    Unchanged,
    /// Changed to `auto`.
    Auto,
    /// Changed to `review`.
    Review,
    /// Changed to `ignored`.
    Ignored,
    /// Changed to `none` for want of a company.
    NoneNoCompany,
    /// Changed to `none` for want of candidates.
    NoneNoCandidates,
    /// Could not be associated (no activity time).
    Error,
}

/// `association_runs.stats`: exactly the keys of the specification — `scanned`, `unchanged`, `auto`, `review`,
/// `ignored`, `none_no_company`, `none_no_candidates`, `errors`, `avg_confidence` (over rows that had candidates;
/// `null` when none had), `histogram` (ten counts, confidence 0–9, 10–19, …, 90–100, over the same rows) and, for
/// dry runs only, `sample` (up to [`SAMPLE_LIMIT`] changes).
///
/// The average is kept as the exact sum of confidences; the stored average has full precision, so a resumed run
/// recovers the sum (average × rows in the histogram, rounded) and continues with the same figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "StatsWire", try_from = "StatsWire")]
pub struct RunStats {
    /// Rows read.
    pub scanned: u64,
    /// Rows whose decision, campaign and instance stay as they were.
    pub unchanged: u64,
    /// Rows changed to `auto`.
    pub auto: u64,
    /// Rows changed to `review`.
    pub review: u64,
    /// Rows changed to `ignored`.
    pub ignored: u64,
    /// Rows changed to `none` for want of a company.
    pub none_no_company: u64,
    /// Rows changed to `none` for want of candidates.
    pub none_no_candidates: u64,
    /// Rows that could not be associated.
    pub errors: u64,
    /// Confidences of the rows that had candidates, in ten buckets.
    pub histogram: [u64; 10],
    /// The first changes a dry run would make; `None` for a real run.
    pub sample: Option<Vec<SampleChange>>,
    confidence_sum: u64,
}

impl RunStats {
    /// Zeroed statistics; a dry run's carry an empty sample.
    pub fn new(dry_run: bool) -> Self {
        RunStats {
            scanned: 0,
            unchanged: 0,
            auto: 0,
            review: 0,
            ignored: 0,
            none_no_company: 0,
            none_no_candidates: 0,
            errors: 0,
            histogram: [0; 10],
            sample: dry_run.then(Vec::new),
            confidence_sum: 0,
        }
    }

    /// Counts one scanned row.
    pub fn count(&mut self, tally: Tally) {
        self.scanned += 1;
        let slot = match tally {
            Tally::Unchanged => &mut self.unchanged,
            Tally::Auto => &mut self.auto,
            Tally::Review => &mut self.review,
            Tally::Ignored => &mut self.ignored,
            Tally::NoneNoCompany => &mut self.none_no_company,
            Tally::NoneNoCandidates => &mut self.none_no_candidates,
            Tally::Error => &mut self.errors,
        };
        *slot += 1;
    }

    /// Adds the confidence of a row that had candidates to the average and the histogram.
    pub fn score(&mut self, confidence: u8) {
        let bucket = usize::from(confidence / 10).min(9);
        if let Some(b) = self.histogram.get_mut(bucket) {
            *b += 1;
        }
        self.confidence_sum += u64::from(confidence);
    }

    /// Keeps a change in the sample, if this is a dry run and the sample has room.
    pub fn sample(&mut self, change: SampleChange) {
        if let Some(sample) = &mut self.sample
            && sample.len() < SAMPLE_LIMIT
        {
            sample.push(change);
        }
    }

    /// Rows that had candidates.
    pub fn scored(&self) -> u64 {
        self.histogram.iter().sum()
    }

    /// The average confidence of the rows that had candidates; `None` when none had.
    pub fn avg_confidence(&self) -> Option<f64> {
        let n = self.scored();
        // Display figures: the loss of precision above 2^53 rows does not matter.
        (n > 0).then(|| self.confidence_sum as f64 / n as f64)
    }
}

/// The stored shape of [`RunStats`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsWire {
    #[serde(default)]
    scanned: u64,
    #[serde(default)]
    unchanged: u64,
    #[serde(default)]
    auto: u64,
    #[serde(default)]
    review: u64,
    #[serde(default)]
    ignored: u64,
    #[serde(default)]
    none_no_company: u64,
    #[serde(default)]
    none_no_candidates: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    avg_confidence: Option<f64>,
    #[serde(default)]
    histogram: [u64; 10],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sample: Option<Vec<SampleChange>>,
}

impl From<RunStats> for StatsWire {
    fn from(s: RunStats) -> Self {
        StatsWire {
            avg_confidence: s.avg_confidence(),
            scanned: s.scanned,
            unchanged: s.unchanged,
            auto: s.auto,
            review: s.review,
            ignored: s.ignored,
            none_no_company: s.none_no_company,
            none_no_candidates: s.none_no_candidates,
            errors: s.errors,
            histogram: s.histogram,
            sample: s.sample,
        }
    }
}

/// Statistics that no run could have counted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStats {
    /// The parts do not add up to `scanned`.
    #[error("the counts of the outcomes do not add up to scanned")]
    Parts,
    /// An average outside 0..=100, or one without scored rows (or scored rows without one).
    #[error("avg_confidence does not fit the histogram")]
    Average,
    /// More changes in the sample than it keeps.
    #[error("the sample holds more than {SAMPLE_LIMIT} changes")]
    Sample,
}

impl TryFrom<StatsWire> for RunStats {
    type Error = InvalidStats;

    fn try_from(w: StatsWire) -> Result<Self, InvalidStats> {
        let parts = [
            w.unchanged,
            w.auto,
            w.review,
            w.ignored,
            w.none_no_company,
            w.none_no_candidates,
            w.errors,
        ]
        .iter()
        .try_fold(0u64, |acc, n| acc.checked_add(*n));
        if parts != Some(w.scanned) {
            return Err(InvalidStats::Parts);
        }
        let scored = w
            .histogram
            .iter()
            .try_fold(0u64, |acc, n| acc.checked_add(*n))
            .ok_or(InvalidStats::Average)?;
        let confidence_sum = match w.avg_confidence {
            None if scored == 0 => 0,
            Some(avg) if scored > 0 && (0.0..=100.0).contains(&avg) => {
                // The sum of integer confidences, recovered from the full-precision average.
                (avg * scored as f64).round() as u64
            }
            _ => return Err(InvalidStats::Average),
        };
        if w.sample.as_ref().is_some_and(|s| s.len() > SAMPLE_LIMIT) {
            return Err(InvalidStats::Sample);
        }
        Ok(RunStats {
            scanned: w.scanned,
            unchanged: w.unchanged,
            auto: w.auto,
            review: w.review,
            ignored: w.ignored,
            none_no_company: w.none_no_company,
            none_no_candidates: w.none_no_candidates,
            errors: w.errors,
            histogram: w.histogram,
            sample: w.sample,
            confidence_sum,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn stats_have_exactly_the_specified_keys() {
        let mut s = RunStats::new(false);
        s.count(Tally::Auto);
        s.score(85);
        s.count(Tally::Review);
        s.score(70);
        s.count(Tally::NoneNoCompany);
        assert_eq!(
            serde_json::to_value(&s).expect("serialises"),
            json!({
                "scanned": 3, "unchanged": 0, "auto": 1, "review": 1, "ignored": 0, "none_no_company": 1,
                "none_no_candidates": 0, "errors": 0, "avg_confidence": 77.5,
                "histogram": [0, 0, 0, 0, 0, 0, 0, 1, 1, 0]
            })
        );
        let dry = RunStats::new(true);
        let v = serde_json::to_value(&dry).expect("serialises");
        assert_eq!(v["sample"], json!([]));
        assert_eq!(v["avg_confidence"], json!(null));
    }

    #[test]
    fn an_empty_document_is_zero_and_inconsistent_ones_are_refused() {
        let s: RunStats = serde_json::from_value(json!({})).expect("defaults");
        assert_eq!(s, RunStats::new(false));
        for bad in [
            json!({"scanned": 2, "auto": 1}),
            json!({"scanned": 1, "auto": 1, "avg_confidence": 80.0}),
            json!({"histogram": [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]}),
            json!({"bogus": 1}),
        ] {
            assert!(
                serde_json::from_value::<RunStats>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn checkpoints_name_the_entities() {
        let mut c = RunCheckpoint::default();
        assert_eq!(serde_json::to_value(c).expect("serialises"), json!({}));
        let id = ActivityId(uuid::Uuid::from_u128(7));
        c.set(ActivityKind::BuddyMatch, id);
        assert_eq!(
            serde_json::to_value(c).expect("serialises"),
            json!({"matches": "00000000-0000-0000-0000-000000000007"})
        );
        assert_eq!(c.get(ActivityKind::BuddyMatch), Some(id));
        assert!(serde_json::from_value::<RunCheckpoint>(json!({"users": null})).is_err());
    }

    proptest! {
        /// Statistics read back from their JSON continue with the same average and histogram.
        #[test]
        fn stats_round_trip_through_json(confidences in prop::collection::vec(0u8..=100, 0..300)) {
            let mut s = RunStats::new(false);
            for c in &confidences {
                s.count(Tally::Review);
                s.score(*c);
            }
            let back: RunStats = serde_json::from_str(&serde_json::to_string(&s).expect("serialises"))
                .expect("parses");
            prop_assert_eq!(&back, &s);
        }
    }
}
