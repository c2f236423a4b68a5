//! From the stored catalogue to the campaign index, and from an activity to its association record: what the
//! import pipeline and the backfill share.

use std::collections::HashMap;

use super::{CampaignIndex, CatalogSnapshot};
use crate::domain::{
    ActivityId, ActivityKind, Association, AssociationId, BatchId, CampaignId, GroupId, RunId, Tags,
};
use crate::ports::CatalogData;
use crate::scoring::{ActivityFacts, CampaignView, InstanceView, Outcome, ScoringPolicy};

impl CatalogSnapshot {
    /// The campaigns of a stored catalogue with their group's tags and their instances (instances without a
    /// campaign play no part in association). A campaign whose group is missing gets no tags.
    pub fn from_catalog(catalog: &CatalogData) -> Self {
        let tags: HashMap<GroupId, &Tags> =
            catalog.groups.iter().map(|g| (g.id, &g.tags)).collect();
        let mut instances: HashMap<CampaignId, Vec<InstanceView>> = HashMap::new();
        for i in &catalog.instances {
            if let Some(campaign) = i.campaign_id {
                instances.entry(campaign).or_default().push(InstanceView {
                    id: i.id,
                    status: i.status,
                    start_date: i.start_date,
                    end_date: i.end_date,
                    created_at: i.created_at,
                });
            }
        }
        CatalogSnapshot {
            campaigns: catalog
                .campaigns
                .iter()
                .map(|c| CampaignView {
                    id: c.id,
                    company: c.company_id,
                    status: c.status,
                    is_active: c.is_active,
                    program_type: c.program_type,
                    start_date: c.start_date,
                    end_date: c.end_date,
                    tags: tags
                        .get(&c.beneficiary_group_id)
                        .map(|t| (*t).clone())
                        .unwrap_or_default(),
                    instances: instances.remove(&c.id).unwrap_or_default(),
                })
                .collect(),
        }
    }
}

/// Who decided an association: an import batch or a backfill run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecidedBy {
    /// An import.
    Batch(BatchId),
    /// A backfill run.
    Run(RunId),
}

impl DecidedBy {
    /// The batch, for an import.
    pub fn batch(self) -> Option<BatchId> {
        match self {
            DecidedBy::Batch(b) => Some(b),
            DecidedBy::Run(_) => None,
        }
    }

    /// The run, for a backfill.
    pub fn run(self) -> Option<RunId> {
        match self {
            DecidedBy::Run(r) => Some(r),
            DecidedBy::Batch(_) => None,
        }
    }
}

/// A campaign index with the policy it scores by: associates activities and builds their association records.
#[derive(Debug)]
pub struct Associator {
    index: CampaignIndex,
    policy: ScoringPolicy,
}

impl Associator {
    /// The index of `catalog`, scoring by `policy`.
    pub fn new(catalog: &CatalogData, policy: ScoringPolicy) -> Self {
        Associator {
            index: CampaignIndex::new(CatalogSnapshot::from_catalog(catalog)),
            policy,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &ScoringPolicy {
        &self.policy
    }

    /// The outcome for one activity.
    pub fn associate(&self, facts: &ActivityFacts<'_>) -> Outcome {
        self.index.associate(facts, &self.policy)
    }

    /// The association record of `outcome` for one activity, with `id` for a new row (the store keeps an existing
    /// row's id; ids are the caller's, as this module reads no clock).
    pub fn record(
        &self,
        id: AssociationId,
        kind: ActivityKind,
        activity: ActivityId,
        outcome: &Outcome,
        by: DecidedBy,
    ) -> Association {
        record(id, kind, activity, outcome, &self.policy.version, by)
    }

    /// The association of `outcome` for one activity, to be stored, under this associator's policy (what
    /// [`Self::record`] gives, without building the record's JSON documents).
    pub fn decided(
        &self,
        id: AssociationId,
        kind: ActivityKind,
        activity: ActivityId,
        outcome: Outcome,
        by: DecidedBy,
    ) -> DecidedAssociation {
        DecidedAssociation {
            id,
            activity_kind: kind,
            activity_id: activity,
            outcome,
            policy_version: self.policy.version.clone(),
            decided_by: by,
        }
    }
}

/// An association an import or a backfill decided, as it goes to the store: the fields of its record, with the
/// outcome as scoring returned it instead of the record's JSON documents of reasons and candidates.
///
/// A record's explanation weighs a few kilobytes as JSON values; a store writes it as text straight from the
/// outcome ([`Outcome::reasons_text`], [`Outcome::candidates_text`]), and [`Self::to_record`] gives the
/// [`Association`] it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecidedAssociation {
    /// Id (UUIDv7) for a new row; the store keeps an existing row's.
    pub id: AssociationId,
    /// Which table the activity is in.
    pub activity_kind: ActivityKind,
    /// The activity row.
    pub activity_id: ActivityId,
    /// The decision, with its campaign, instance, confidence, reasons and candidates.
    pub outcome: Outcome,
    /// Scoring policy version.
    pub policy_version: String,
    /// The batch or run that decided it.
    pub decided_by: DecidedBy,
}

impl DecidedAssociation {
    /// The record stored for it.
    pub fn to_record(&self) -> Association {
        record(
            self.id,
            self.activity_kind,
            self.activity_id,
            &self.outcome,
            &self.policy_version,
            self.decided_by,
        )
    }

    /// The batch that decided it, for an import.
    pub fn batch_id(&self) -> Option<BatchId> {
        self.decided_by.batch()
    }

    /// The run that decided it, for a backfill.
    pub fn run_id(&self) -> Option<RunId> {
        self.decided_by.run()
    }
}

/// The association record of `outcome` for one activity, under policy `version`, with `id` for a new row.
pub fn record(
    id: AssociationId,
    kind: ActivityKind,
    activity: ActivityId,
    outcome: &Outcome,
    version: &str,
    by: DecidedBy,
) -> Association {
    Association {
        id,
        activity_kind: kind,
        activity_id: activity,
        campaign_id: outcome.campaign,
        program_instance_id: outcome.instance,
        confidence: outcome.confidence,
        decision: outcome.decision,
        reasons: outcome.reasons_json(),
        policy_version: version.to_owned(),
        candidates: outcome.candidates_json(),
        batch_id: by.batch(),
        run_id: by.run(),
        decided_by: None,
        decided_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{
        BeneficiaryGroup, Campaign, CampaignStatus, CompanyId, Decision, GroupType, InstanceId,
        InstanceStatus, Key, Name, ProgramInstance, ProgramSlug, ProgramType, SessionType,
    };
    use chrono::{DateTime, NaiveDate, Utc};

    fn date(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").to_utc()
    }

    fn catalog() -> CatalogData {
        let group = BeneficiaryGroup {
            id: GroupId::stable("ua"),
            key: Key::parse("ua").expect("key"),
            name: Name::parse("Ukrainian refugees").expect("name"),
            group_type: GroupType::parse("refugees").expect("type"),
            tags: Tags::from_raw(["Refugees", "ukrainian"]),
            is_active: true,
        };
        let campaign = Campaign {
            id: CampaignId::stable("acme-2024"),
            key: Key::parse("acme-2024").expect("key"),
            name: Name::parse("Acme 2024").expect("name"),
            company_id: CompanyId::stable("acme"),
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
        let instance = |slug: &str, campaign: Option<CampaignId>| {
            let slug = ProgramSlug::parse(slug).expect("slug");
            ProgramInstance {
                id: InstanceId::stable(&slug),
                slug,
                program_name: Name::parse("Instance").expect("name"),
                program_type: ProgramType::MentorsUkraine,
                company_id: None,
                campaign_id: campaign,
                start_date: date("2024-01-01"),
                end_date: None,
                status: InstanceStatus::Active,
                external_system: None,
                created_at: at("2024-01-01T00:00:00Z"),
            }
        };
        CatalogData {
            companies: Vec::new(),
            groups: vec![group],
            instances: vec![
                instance("acme-all-year", Some(campaign.id)),
                instance("loose", None),
            ],
            campaigns: vec![campaign],
        }
    }

    #[test]
    fn the_snapshot_gives_each_campaign_its_group_tags_and_instances() {
        let snapshot = CatalogSnapshot::from_catalog(&catalog());
        assert_eq!(snapshot.campaigns.len(), 1);
        let c = &snapshot.campaigns[0];
        assert_eq!(c.tags, Tags::from_raw(["refugees", "ukrainian"]));
        let slug = ProgramSlug::parse("acme-all-year").expect("slug");
        assert_eq!(
            c.instances.iter().map(|i| i.id).collect::<Vec<_>>(),
            [InstanceId::stable(&slug)]
        );
    }

    #[test]
    fn the_associator_scores_and_records_with_its_policy_version() {
        let associator = Associator::new(&catalog(), ScoringPolicy::default());
        let tags = Tags::from_raw(["ukrainian", "refugees"]);
        let facts = ActivityFacts::session(
            SessionType::Mentorship,
            at("2024-05-01T10:00:00Z"),
            None,
            Some(CompanyId::stable("acme")),
            &tags,
        );
        let outcome = associator.associate(&facts);
        assert_eq!(outcome.decision, Decision::Auto);
        let id = AssociationId(uuid::Uuid::from_u128(1));
        let activity = ActivityId(uuid::Uuid::from_u128(2));
        let run = RunId(uuid::Uuid::from_u128(3));
        let a = associator.record(
            id,
            ActivityKind::KintellSession,
            activity,
            &outcome,
            DecidedBy::Run(run),
        );
        assert_eq!(
            (a.id, a.activity_id, a.run_id, a.batch_id),
            (id, activity, Some(run), None)
        );
        assert_eq!(a.policy_version, associator.policy().version);
        assert_eq!(
            (a.decision, a.campaign_id),
            (Decision::Auto, Some(CampaignId::stable("acme-2024")))
        );
        assert_eq!(a.reasons, outcome.reasons_json());
    }
}
