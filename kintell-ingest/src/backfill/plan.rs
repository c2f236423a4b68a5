//! One page, decided in memory: each row's fresh association against the run's index, the statistics, and the
//! set-based writes the page's unit of work makes. No I/O; ids come from the caller.

use std::collections::HashMap;

use crate::association::{Associator, DecidedAssociation, DecidedBy};
use crate::domain::{
    ActivityId, AssociationId, AssociationState, Decision, Enrollment, EnrollmentRole, InstanceId,
    ProgramType, RunId, RunStats, SampleChange, Tally,
};
use crate::ports::BackfillRow;
use crate::scoring::{ActivityFacts, Outcome, ReasonCode, resolve_company};

/// What a page writes: associations to upsert, activities to link, people to enrol.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Writes {
    pub(crate) associations: Vec<DecidedAssociation>,
    pub(crate) links: Vec<(ActivityId, InstanceId)>,
    pub(crate) enrolments: Vec<Enrollment>,
}

/// What decides a page: the run's index, the programme type of each instance (for enrolments), the run.
pub(crate) struct Planner<'a> {
    pub(crate) associator: &'a Associator,
    pub(crate) instance_types: &'a HashMap<InstanceId, ProgramType>,
    pub(crate) run: RunId,
    pub(crate) dry_run: bool,
}

/// How a fresh outcome counts when it differs from what was stored.
fn tally(outcome: &Outcome) -> Tally {
    match outcome.decision {
        Decision::Auto => Tally::Auto,
        Decision::Review => Tally::Review,
        Decision::Ignored => Tally::Ignored,
        _ if outcome
            .reasons
            .iter()
            .any(|r| r.code == ReasonCode::NoCompany) =>
        {
            Tally::NoneNoCompany
        }
        _ => Tally::NoneNoCandidates,
    }
}

/// Whether an outcome came from scoring candidates (and so counts in the average and the histogram).
fn had_candidates(outcome: &Outcome) -> bool {
    matches!(
        outcome.decision,
        Decision::Auto | Decision::Review | Decision::Ignored
    )
}

impl Planner<'_> {
    /// Decides every row of a page, counting each in `stats` exactly once, and returns the writes (none for a dry
    /// run, whose changes go to the sample instead). A human or `explicit` decision is left alone and counts as
    /// unchanged; a row with no activity time counts as an error; a row whose decision, campaign and instance come
    /// out as stored counts as unchanged and is not rewritten.
    pub(crate) fn plan(
        &self,
        rows: &[BackfillRow],
        stats: &mut RunStats,
        mut new_id: impl FnMut() -> uuid::Uuid,
    ) -> Writes {
        let mut writes = Writes::default();
        for row in rows {
            let before = row.association;
            if before
                .decision
                .is_some_and(|d| d.stays_over(Decision::Auto))
            {
                stats.count(Tally::Unchanged);
                continue;
            }
            let Some(at) = row.at else {
                stats.count(Tally::Error);
                continue;
            };
            let facts = ActivityFacts {
                kind: row.kind,
                program: row.program,
                at,
                company: resolve_company(row.volunteer_company, row.participant_company),
                tags: &row.participant_tags,
            };
            let outcome = self.associator.associate(&facts);
            if had_candidates(&outcome) {
                stats.score(outcome.confidence.get());
            }
            let after = AssociationState {
                decision: Some(outcome.decision),
                campaign: outcome.campaign,
                instance: outcome.instance,
            };
            if after == before {
                stats.count(Tally::Unchanged);
                continue;
            }
            stats.count(tally(&outcome));
            if self.dry_run {
                stats.sample(SampleChange {
                    activity_kind: row.kind,
                    activity_id: row.id,
                    before,
                    after,
                });
                continue;
            }
            let id = AssociationId(new_id());
            if outcome.decision == Decision::Auto
                && let Some(instance) = outcome.instance
            {
                if row.program_instance_id != Some(instance) {
                    writes.links.push((row.id, instance));
                }
                if let Some(&program_type) = self.instance_types.get(&instance) {
                    let mut enrol = |user, role| Enrollment {
                        id: new_id(),
                        user_id: user,
                        program_instance_id: instance,
                        program_type,
                        role,
                        enrolled_at: at,
                    };
                    writes
                        .enrolments
                        .push(enrol(row.participant_id, EnrollmentRole::Participant));
                    if let Some(volunteer) = row.volunteer_id {
                        writes
                            .enrolments
                            .push(enrol(volunteer, EnrollmentRole::Volunteer));
                    }
                }
            }
            writes.associations.push(self.associator.decided(
                id,
                row.kind,
                row.id,
                outcome,
                DecidedBy::Run(self.run),
            ));
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        ActivityKind, BeneficiaryGroup, Campaign, CampaignId, CampaignStatus, CompanyId, GroupId,
        GroupType, InstanceStatus, Key, Name, ProgramInstance, ProgramSlug, Tags, UserId,
    };
    use crate::ports::CatalogData;
    use crate::scoring::ScoringPolicy;
    use chrono::{DateTime, NaiveDate, Utc};

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn acme() -> CompanyId {
        CompanyId::stable("acme")
    }

    fn slug() -> ProgramSlug {
        ProgramSlug::parse("acme-2024").expect("slug")
    }

    fn catalog() -> CatalogData {
        let group = BeneficiaryGroup {
            id: GroupId::stable("ua"),
            key: Key::parse("ua").expect("key"),
            name: Name::parse("UA").expect("name"),
            group_type: GroupType::parse("refugees").expect("type"),
            tags: Tags::from_raw(["refugees"]),
            is_active: true,
        };
        let campaign = Campaign {
            id: CampaignId::stable("acme"),
            key: Key::parse("acme").expect("key"),
            name: Name::parse("Acme").expect("name"),
            company_id: acme(),
            beneficiary_group_id: group.id,
            program_type: None,
            start_date: date("2024-01-01"),
            end_date: date("2024-12-31"),
            status: CampaignStatus::Active,
            is_active: true,
            target_volunteers: 0,
            target_beneficiaries: 0,
            max_sessions: None,
        };
        let instance = ProgramInstance {
            id: InstanceId::stable(&slug()),
            slug: slug(),
            program_name: Name::parse("Acme 2024").expect("name"),
            program_type: ProgramType::MentorsUkraine,
            company_id: Some(acme()),
            campaign_id: Some(campaign.id),
            start_date: date("2024-01-01"),
            end_date: None,
            status: InstanceStatus::Active,
            external_system: None,
            created_at: at("2024-01-01T00:00:00Z"),
        };
        CatalogData {
            companies: Vec::new(),
            groups: vec![group],
            campaigns: vec![campaign],
            instances: vec![instance],
        }
    }

    fn row(n: u128, company: Option<CompanyId>, stored: Option<Decision>) -> BackfillRow {
        BackfillRow {
            kind: ActivityKind::KintellSession,
            id: ActivityId(uuid::Uuid::from_u128(n)),
            program: ProgramType::MentorsUkraine,
            at: Some(at("2024-05-01T10:00:00Z")),
            participant_id: UserId(uuid::Uuid::from_u128(100)),
            participant_company: None,
            participant_tags: Tags::from_raw(["refugees"]),
            volunteer_id: Some(UserId(uuid::Uuid::from_u128(200))),
            volunteer_company: company,
            program_instance_id: None,
            association: AssociationState {
                decision: stored,
                ..AssociationState::default()
            },
        }
    }

    #[test]
    fn each_row_counts_once_and_only_changes_are_written() {
        let associator = Associator::new(&catalog(), ScoringPolicy::default());
        let types = HashMap::from([(InstanceId::stable(&slug()), ProgramType::MentorsUkraine)]);
        let planner = Planner {
            associator: &associator,
            instance_types: &types,
            run: RunId(uuid::Uuid::from_u128(9)),
            dry_run: false,
        };
        let mut no_time = row(4, Some(acme()), None);
        no_time.at = None;
        let mut already_auto = row(6, Some(acme()), Some(Decision::Auto));
        already_auto.association.campaign = Some(CampaignId::stable("acme"));
        already_auto.association.instance = Some(InstanceId::stable(&slug()));
        let rows = [
            row(1, Some(acme()), None),
            row(2, None, None),
            row(3, Some(acme()), Some(Decision::Accepted)),
            no_time,
            row(5, Some(CompanyId::stable("beta")), Some(Decision::None)),
            already_auto,
        ];
        let mut stats = RunStats::new(false);
        let mut n = 1000u128;
        let writes = planner.plan(&rows, &mut stats, || {
            n += 1;
            uuid::Uuid::from_u128(n)
        });
        assert_eq!(
            (
                stats.scanned,
                stats.auto,
                stats.none_no_company,
                stats.none_no_candidates,
                stats.unchanged,
                stats.errors
            ),
            (6, 1, 1, 0, 3, 1)
        );
        // Row 5 was `none` for want of candidates and stays so: unchanged. Rows 1 and 6 had candidates.
        assert_eq!(stats.scored(), 2);
        assert_eq!(stats.avg_confidence(), Some(100.0));
        let written: Vec<u128> = writes
            .associations
            .iter()
            .map(|a| a.activity_id.0.as_u128())
            .collect();
        assert_eq!(written, [1, 2]);
        assert_eq!(writes.links.len(), 1);
        assert_eq!(writes.enrolments.len(), 2);
        assert!(
            writes
                .associations
                .iter()
                .all(|a| a.run_id() == Some(planner.run))
        );
    }

    #[test]
    fn a_dry_run_writes_nothing_and_samples_the_changes() {
        let associator = Associator::new(&catalog(), ScoringPolicy::default());
        let types = HashMap::new();
        let planner = Planner {
            associator: &associator,
            instance_types: &types,
            run: RunId(uuid::Uuid::from_u128(9)),
            dry_run: true,
        };
        let rows: Vec<BackfillRow> = (1..=25).map(|n| row(n, Some(acme()), None)).collect();
        let mut stats = RunStats::new(true);
        let writes = planner.plan(&rows, &mut stats, uuid::Uuid::nil);
        assert_eq!(writes, Writes::default());
        assert_eq!(stats.auto, 25);
        let sample = stats.sample.as_deref().unwrap_or_default();
        assert_eq!(sample.len(), crate::domain::SAMPLE_LIMIT);
        assert_eq!(sample[0].before, AssociationState::default());
        assert_eq!(sample[0].after.decision, Some(Decision::Auto));
    }
}
