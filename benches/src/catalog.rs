//! A campaign catalogue and activities shaped like `../shared/bench/gen_catalog.py` and `gen_sessions.py`.
//!
//! 100 companies × 100 campaigns by default; 60 beneficiary groups with 0–6 of 15 tags; windows starting within
//! 700 days of 2024-01-01 and lasting 14–240 days; statuses and `is_active` distributed as there; 0–3 instances per
//! campaign. Activities: volunteers of company `v % companies`, participants with 0–4 tags, times over 700 days
//! from 2024-01-01.

use crate::rng::Rng;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use kintell_ingest::association::CatalogSnapshot;
use kintell_ingest::domain::{
    CampaignId, CampaignStatus, CompanyId, InstanceId, InstanceStatus, ProgramSlug, ProgramType,
    SessionType, Tags,
};
use kintell_ingest::scoring::{ActivityFacts, CampaignView, InstanceView};

/// The 15 tags of the generator.
pub const TAGS: [&str; 15] = [
    "refugees",
    "ukrainian",
    "syrian",
    "integration",
    "language_support",
    "employment",
    "women",
    "tech",
    "youth",
    "newcomers",
    "professionals",
    "norway",
    "berlin",
    "students",
    "seniors",
];

const STATUSES: [CampaignStatus; 9] = [
    CampaignStatus::Draft,
    CampaignStatus::Planned,
    CampaignStatus::Recruiting,
    CampaignStatus::Active,
    CampaignStatus::Active,
    CampaignStatus::Active,
    CampaignStatus::Paused,
    CampaignStatus::Completed,
    CampaignStatus::Closed,
];

const INSTANCE_STATUSES: [InstanceStatus; 5] = [
    InstanceStatus::Planned,
    InstanceStatus::Active,
    InstanceStatus::Active,
    InstanceStatus::Paused,
    InstanceStatus::Completed,
];

const VOLUNTEERS: u64 = 5_000;
const PARTICIPANTS: u64 = 20_000;
const GROUPS: u64 = 60;
const DAYS: i64 = 700;

fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The stable id of `company-{n}`.
pub fn company(n: u64) -> CompanyId {
    CompanyId::stable(&format!("company-{n}"))
}

/// A catalogue of `companies × per_company` campaigns.
pub fn catalog(companies: u64, per_company: u64, seed: u64) -> CatalogSnapshot {
    let mut rnd = Rng::new(seed);
    let created: DateTime<Utc> = day0().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let groups: Vec<Tags> = (0..GROUPS)
        .map(|_| {
            let k = rnd.below(7) as usize;
            Tags::from_raw(rnd.sample(&TAGS, k))
        })
        .collect();
    let mut campaigns = Vec::new();
    for c in 0..companies {
        for m in 0..per_company {
            let start = day0() + Duration::days(rnd.range(0, DAYS));
            let end = start + Duration::days(rnd.range(14, 240));
            let key = format!("campaign-{c}-{m}");
            let group = groups
                .get(rnd.below(GROUPS) as usize)
                .cloned()
                .unwrap_or_default();
            let program_type = if rnd.below(2) == 0 {
                ProgramType::MentorsUkraine
            } else {
                ProgramType::LanguageUkraine
            };
            let status = *rnd.choose(&STATUSES).unwrap_or(&CampaignStatus::Active);
            let is_active = rnd.unit() > 0.1;
            let n_instances = *rnd.choose(&[0, 1, 1, 2, 3]).unwrap_or(&0);
            let span = (end - start).num_days().max(1);
            let instances = (0..n_instances)
                .map(|i| {
                    let s = start + Duration::days(rnd.range(0, span));
                    let e = (rnd.unit() >= 0.1).then(|| s + Duration::days(rnd.range(7, 200)));
                    let slug = ProgramSlug::parse(&format!("{key}-i{i}"));
                    InstanceView {
                        id: slug.map_or(InstanceId(uuid_of(&key, i)), |s| InstanceId::stable(&s)),
                        status: *rnd
                            .choose(&INSTANCE_STATUSES)
                            .unwrap_or(&InstanceStatus::Active),
                        start_date: s,
                        end_date: e,
                        created_at: created,
                    }
                })
                .collect();
            campaigns.push(CampaignView {
                id: CampaignId::stable(&key),
                company: company(c),
                status,
                is_active,
                program_type: Some(program_type),
                start_date: start,
                end_date: end,
                tags: group,
                instances,
            });
        }
    }
    CatalogSnapshot { campaigns }
}

/// Fallback id for a slug that does not parse (never, for the keys generated here).
fn uuid_of(key: &str, i: u64) -> uuid::Uuid {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("{key}-i{i}").as_bytes())
}

/// The tags of each of the 20,000 participants: 0–4 of the 15, as `gen_catalog.py` draws them.
pub fn participants(seed: u64) -> Vec<Tags> {
    let mut rnd = Rng::new(seed);
    (0..PARTICIPANTS)
        .map(|_| {
            let k = *rnd.choose(&[0, 1, 2, 2, 3, 4]).unwrap_or(&0);
            Tags::from_raw(rnd.sample(&TAGS, k))
        })
        .collect()
}

/// One generated session: who, when, which kind.
#[derive(Debug, Clone, Copy)]
pub struct Activity {
    /// Index into [`participants`].
    pub participant: u32,
    /// The volunteer's company.
    pub company: CompanyId,
    /// Scheduled and completed at this time.
    pub at: DateTime<Utc>,
    /// Language or mentorship.
    pub session_type: SessionType,
}

impl Activity {
    /// The facts association reads, borrowing the participant's tags from `participants`.
    pub fn facts<'a>(&self, participants: &'a [Tags], none: &'a Tags) -> ActivityFacts<'a> {
        let tags = participants.get(self.participant as usize).unwrap_or(none);
        ActivityFacts::session(self.session_type, self.at, None, Some(self.company), tags)
    }
}

/// `n` sessions like `gen_sessions.py`'s: a random participant and volunteer (company `v % companies`), a time
/// to the minute over 700 days from 2024-01-01.
pub fn activities(n: usize, companies: u64, seed: u64) -> Vec<Activity> {
    let mut rnd = Rng::new(seed);
    let start = day0().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let company_ids: Vec<CompanyId> = (0..companies.max(1)).map(company).collect();
    (0..n)
        .map(|_| {
            let session_type = if rnd.below(2) == 0 {
                SessionType::Language
            } else {
                SessionType::Mentorship
            };
            let participant = u32::try_from(rnd.below(PARTICIPANTS)).unwrap_or(0);
            let volunteer = rnd.below(VOLUNTEERS);
            let company = company_ids
                .get((volunteer % companies.max(1)) as usize)
                .copied()
                .unwrap_or_else(|| company(0));
            let at = start + Duration::minutes(rnd.range(0, 60 * 24 * DAYS));
            Activity {
                participant,
                company,
                at,
                session_type,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_has_the_generators_shape() {
        let cat = catalog(10, 20, 11);
        assert_eq!(cat.campaigns.len(), 200);
        assert_eq!(cat, catalog(10, 20, 11), "deterministic");
        for c in &cat.campaigns {
            let span = (c.end_date - c.start_date).num_days();
            assert!((14..240).contains(&span));
            assert!(c.start_date >= day0() && c.start_date < day0() + Duration::days(DAYS));
            assert!(c.tags.len() <= 6);
            assert!(c.instances.len() <= 3);
        }
        let inactive = cat.campaigns.iter().filter(|c| !c.is_active).count();
        assert!(inactive > 0 && inactive < 60);
        let tags = participants(3);
        assert_eq!(tags.len(), 20_000);
        assert!(tags.iter().all(|t| t.len() <= 4));
        let acts = activities(1000, 10, 5);
        assert!(
            acts.iter()
                .all(|a| a.at >= day0().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        );
    }
}
