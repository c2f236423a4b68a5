//! The review-queue and campaign-metrics reads of the in-memory store (a child module of `memory`, so it reads
//! the tables directly).

use super::{Tables, view};
use crate::domain::{
    ActivityId, ActivityKind, Association, CampaignId, CompanyId, Decision, InstanceId, UserId,
};
use crate::ports::{ActivityCounts, ActivitySummary, CampaignCounts, ReviewFilter, ReviewItem};
use chrono::{DateTime, NaiveTime, Utc};
use std::collections::{HashMap, HashSet};

/// The people, time and link of one activity as a unit sees it (`over` on top of `base`).
pub(super) fn summary(
    base: &Tables,
    over: &Tables,
    kind: ActivityKind,
    id: ActivityId,
) -> Option<ActivitySummary> {
    match kind {
        ActivityKind::KintellSession => {
            view(&base.sessions, &over.sessions)
                .get(id)
                .map(|s| ActivitySummary {
                    participant_id: s.values.participant_id,
                    volunteer_id: Some(s.values.volunteer_id),
                    at: Some(s.values.completed_at.unwrap_or(s.values.scheduled_at)),
                    program_instance_id: s.program_instance_id,
                })
        }
        ActivityKind::BuddyMatch => {
            view(&base.matches, &over.matches)
                .get(id)
                .map(|m| ActivitySummary {
                    participant_id: m.values.key.participant_id,
                    volunteer_id: Some(m.values.key.buddy_id),
                    at: Some(m.values.key.matched_at),
                    program_instance_id: m.program_instance_id,
                })
        }
        ActivityKind::CourseCompletion => {
            view(&base.completions, &over.completions)
                .get(id)
                .map(|c| ActivitySummary {
                    participant_id: c.values.key.user_id,
                    volunteer_id: None,
                    at: Some(c.values.completed_at),
                    program_instance_id: c.program_instance_id,
                })
        }
    }
}

fn campaign_company(t: &Tables, campaign: CampaignId) -> Option<CompanyId> {
    t.campaigns.rows.get(&campaign).map(|c| c.company_id)
}

/// The review queue over committed tables.
pub(super) fn list_reviews(t: &Tables, filter: &ReviewFilter) -> Vec<ReviewItem> {
    let empty = Tables::default();
    let from = filter.from.map(|d| d.and_time(NaiveTime::MIN).and_utc());
    let to = filter
        .to
        .and_then(|d| d.succ_opt())
        .map(|d| d.and_time(NaiveTime::MIN).and_utc());
    let wanted = |a: &Association| {
        a.decision == Decision::Review
            && filter.kind.is_none_or(|k| k == a.activity_kind)
            && filter.campaign.is_none_or(|c| a.campaign_id == Some(c))
            && filter.company.is_none_or(|company| {
                a.campaign_id.and_then(|c| campaign_company(t, c)) == Some(company)
            })
    };
    let mut items: Vec<ReviewItem> = t
        .associations
        .rows
        .values()
        .filter(|a| wanted(a))
        .filter_map(|a| {
            let activity = summary(t, &empty, a.activity_kind, a.activity_id)?;
            let at = activity.at;
            let in_range = from.is_none_or(|f| at.is_some_and(|at| at >= f))
                && to.is_none_or(|end| at.is_some_and(|at| at < end));
            in_range.then(|| ReviewItem {
                association: a.clone(),
                activity,
            })
        })
        .collect();
    let last = DateTime::<Utc>::MAX_UTC;
    items.sort_by(|a, b| {
        (a.activity.at.unwrap_or(last), a.association.id)
            .cmp(&(b.activity.at.unwrap_or(last), b.association.id))
    });
    if let Some(limit) = filter.limit {
        items.truncate(limit as usize);
    }
    items
}

#[derive(Default)]
struct Acc {
    counts: ActivityCounts,
    participants: HashSet<UserId>,
    volunteers: HashSet<UserId>,
}

impl Acc {
    fn add(&mut self, kind: ActivityKind, a: &ActivitySummary, minutes: u64) {
        match kind {
            ActivityKind::KintellSession => {
                self.counts.sessions += 1;
                self.counts.session_minutes += minutes;
            }
            ActivityKind::BuddyMatch => self.counts.matches += 1,
            ActivityKind::CourseCompletion => self.counts.completions += 1,
        }
        self.participants.insert(a.participant_id);
        if let Some(v) = a.volunteer_id {
            self.volunteers.insert(v);
        }
    }

    fn finish(mut self) -> ActivityCounts {
        self.counts.participants = self.participants.len() as u64;
        self.counts.volunteers = self.volunteers.len() as u64;
        self.counts
    }
}

/// Counts per campaign and instance over committed tables.
pub(super) fn campaign_counts(t: &Tables, company: Option<CompanyId>) -> CampaignCounts {
    let empty = Tables::default();
    let wanted =
        |c: CampaignId| company.is_none_or(|company| campaign_company(t, c) == Some(company));
    let mut linked: Vec<(ActivityKind, ActivityId, u64)> = Vec::new();
    linked.extend(
        t.sessions
            .rows
            .values()
            .filter(|s| s.program_instance_id.is_some())
            .map(|s| {
                let minutes = s.values.duration_minutes.map_or(0, |d| u64::from(d.get()));
                (ActivityKind::KintellSession, s.id, minutes)
            }),
    );
    linked.extend(
        t.matches
            .rows
            .values()
            .filter(|m| m.program_instance_id.is_some())
            .map(|m| (ActivityKind::BuddyMatch, m.id, 0)),
    );
    linked.extend(
        t.completions
            .rows
            .values()
            .filter(|c| c.program_instance_id.is_some())
            .map(|c| (ActivityKind::CourseCompletion, c.id, 0)),
    );
    let mut campaigns: HashMap<CampaignId, Acc> = HashMap::new();
    let mut instances: HashMap<InstanceId, Acc> = HashMap::new();
    for (kind, id, minutes) in linked {
        let Some(activity) = summary(t, &empty, kind, id) else {
            continue;
        };
        let Some(instance) = activity.program_instance_id else {
            continue;
        };
        let Some(campaign) = t.instances.rows.get(&instance).and_then(|i| i.campaign_id) else {
            continue;
        };
        if !wanted(campaign) {
            continue;
        }
        campaigns
            .entry(campaign)
            .or_default()
            .add(kind, &activity, minutes);
        instances
            .entry(instance)
            .or_default()
            .add(kind, &activity, minutes);
    }
    let mut reviews: HashMap<CampaignId, u64> = HashMap::new();
    for a in t.associations.rows.values() {
        if a.decision == Decision::Review
            && let Some(c) = a.campaign_id
            && wanted(c)
        {
            *reviews.entry(c).or_default() += 1;
        }
    }
    let mut ids: Vec<CampaignId> = campaigns.keys().chain(reviews.keys()).copied().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = CampaignCounts::default();
    for id in ids {
        let counts = campaigns.remove(&id).map(Acc::finish).unwrap_or_default();
        out.campaigns
            .push((id, counts, reviews.get(&id).copied().unwrap_or(0)));
    }
    out.instances = instances
        .into_iter()
        .map(|(id, acc)| (id, acc.finish()))
        .collect();
    out.instances.sort_by_key(|(id, _)| *id);
    out
}
