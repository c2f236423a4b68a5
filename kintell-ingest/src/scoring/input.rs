//! What scoring reads: the facts of one activity and plain views of the catalogue's campaigns and instances.

use crate::domain::{
    ActivityKind, CampaignId, CampaignStatus, CompanyId, InstanceId, InstanceStatus, ProgramType,
    SessionType, Tags,
};
use chrono::{DateTime, NaiveDate, Utc};

/// One activity as association sees it. Borrowing the participant's tags lets a pipeline share one tag set between
/// all the rows of a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityFacts<'a> {
    /// Session, match or completion.
    pub kind: ActivityKind,
    /// The programme kind a campaign's `program_type` must equal (when it has one).
    pub program: ProgramType,
    /// The activity time; its date in the policy's offset is the activity date.
    pub at: DateTime<Utc>,
    /// The company, see [`resolve_company`].
    pub company: Option<CompanyId>,
    /// The participant's (beneficiary's) tags, normalised.
    pub tags: &'a Tags,
}

impl<'a> ActivityFacts<'a> {
    /// A Kintell session: programme kind from its type, time `completed_at`, else `scheduled_at`.
    pub fn session(
        session_type: SessionType,
        scheduled_at: DateTime<Utc>,
        completed_at: Option<DateTime<Utc>>,
        company: Option<CompanyId>,
        tags: &'a Tags,
    ) -> Self {
        ActivityFacts {
            kind: ActivityKind::KintellSession,
            program: session_type.program_type(),
            at: completed_at.unwrap_or(scheduled_at),
            company,
            tags,
        }
    }

    /// A buddy match: programme kind `buddy`, time `matched_at`.
    pub fn buddy_match(
        matched_at: DateTime<Utc>,
        company: Option<CompanyId>,
        tags: &'a Tags,
    ) -> Self {
        ActivityFacts {
            kind: ActivityKind::BuddyMatch,
            program: ProgramType::Buddy,
            at: matched_at,
            company,
            tags,
        }
    }

    /// A course completion: programme kind `upskilling`, time `completed_at`.
    pub fn course_completion(
        completed_at: DateTime<Utc>,
        company: Option<CompanyId>,
        tags: &'a Tags,
    ) -> Self {
        ActivityFacts {
            kind: ActivityKind::CourseCompletion,
            program: ProgramType::Upskilling,
            at: completed_at,
            company,
            tags,
        }
    }
}

/// The activity's company: the volunteer's if set, otherwise the participant's (completions have no volunteer).
pub fn resolve_company(
    volunteer: Option<CompanyId>,
    participant: Option<CompanyId>,
) -> Option<CompanyId> {
    volunteer.or(participant)
}

/// A campaign with what scoring needs: its beneficiary group's tags and its programme instances.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CampaignView {
    /// Stable id; the last tie-break (smaller first).
    pub id: CampaignId,
    /// The owning company.
    pub company: CompanyId,
    /// `draft` campaigns are never candidates.
    pub status: CampaignStatus,
    /// Inactive campaigns are never candidates.
    pub is_active: bool,
    /// `None` accepts every programme kind.
    pub program_type: Option<ProgramType>,
    /// First day of the window, inclusive.
    pub start_date: NaiveDate,
    /// Last day of the window, inclusive.
    pub end_date: NaiveDate,
    /// The beneficiary group's tags, normalised; empty for an untargeted group.
    pub tags: Tags,
    /// The campaign's programme instances, whatever their programme type or status.
    pub instances: Vec<InstanceView>,
}

/// A programme instance of a campaign.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InstanceView {
    /// Stable id; the last tie-break (smaller first).
    pub id: InstanceId,
    /// Only `active` and `planned` instances can be chosen.
    pub status: InstanceStatus,
    /// First day, inclusive.
    pub start_date: NaiveDate,
    /// Last day, inclusive; `None` = open-ended.
    pub end_date: Option<NaiveDate>,
    /// When the catalogue first created it; a later one wins a tie.
    pub created_at: DateTime<Utc>,
}

impl CampaignView {
    /// Whether this campaign is a candidate for an activity of `program` and `company` on `date`: same company,
    /// active, not a draft, the date within the window (both ends inclusive), and a matching or absent programme
    /// type.
    pub fn is_candidate(&self, company: CompanyId, program: ProgramType, date: NaiveDate) -> bool {
        self.company == company
            && self.is_eligible()
            && self.start_date <= date
            && date <= self.end_date
            && self.program_type.is_none_or(|p| p == program)
    }

    /// The date-independent part of the filter: active and not a draft.
    pub(crate) fn is_eligible(&self) -> bool {
        self.is_active && self.status != CampaignStatus::Draft
    }
}

impl InstanceView {
    /// Whether the instance can carry an activity on `date`: status `active` or `planned`, and the date within its
    /// window (`end_date` `None` = open-ended).
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.is_selectable() && self.start_date <= date && self.end_date.is_none_or(|e| date <= e)
    }

    /// Status `active` or `planned`.
    pub(crate) fn is_selectable(&self) -> bool {
        matches!(
            self.status,
            InstanceStatus::Active | InstanceStatus::Planned
        )
    }

    /// The preference among covering instances: `active` first, then later start, later `created_at`, smaller id.
    /// `Less` means preferred.
    pub(crate) fn preference(&self, other: &Self) -> std::cmp::Ordering {
        let active = |i: &Self| i.status != InstanceStatus::Active;
        active(self)
            .cmp(&active(other))
            .then_with(|| other.start_date.cmp(&self.start_date))
            .then_with(|| other.created_at.cmp(&self.created_at))
            .then_with(|| self.id.cmp(&other.id))
    }
}

/// The instance of `instances` chosen for `date`, if any covers it.
pub(crate) fn choose_instance(
    instances: &[InstanceView],
    date: NaiveDate,
) -> Option<&InstanceView> {
    instances
        .iter()
        .filter(|i| i.covers(date))
        .min_by(|a, b| a.preference(b))
}
