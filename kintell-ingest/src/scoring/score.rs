//! Scoring one candidate, ranking candidates, and turning the best into a decision with its reasons.

use super::detail::Detail;
use super::input::{ActivityFacts, CampaignView, InstanceView, choose_instance};
use super::outcome::{CandidateSummary, Outcome, Reason, ReasonCode, confidence};
use super::policy::{ScoringPolicy, Weights};
use crate::domain::{
    CampaignId, CampaignStatus, CompanyId, Confidence, InstanceId, InstanceStatus, ProgramType,
    Tag, Tags,
};
use chrono::{Datelike, NaiveDate};
use std::cmp::Ordering;

/// How the participant's tags meet the group's tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagMatch {
    /// The group has no tags (`tags_untargeted`).
    Untargeted,
    /// Every one of the group's `group` tags is the participant's (`tags_full`).
    Full {
        /// |G|.
        group: u32,
    },
    /// `matched` of the group's `group` tags, 0 < matched < group (`tags_partial`).
    Partial {
        /// |U ∩ G|.
        matched: u32,
        /// |G|.
        group: u32,
    },
    /// The group has tags and the participant shares none (`no_tag_evidence`).
    NoEvidence {
        /// |G|.
        group: u32,
    },
}

impl TagMatch {
    /// Classifies |U ∩ G| = `matched` against |G| = `group`.
    pub fn of(matched: u32, group: u32) -> Self {
        if group == 0 {
            TagMatch::Untargeted
        } else if matched >= group {
            TagMatch::Full { group }
        } else if matched == 0 {
            TagMatch::NoEvidence { group }
        } else {
            TagMatch::Partial { matched, group }
        }
    }

    /// The points under `weights`; a partial match earns `round_half_up(tags_partial × matched / group)`, in
    /// integer arithmetic.
    pub fn points(self, weights: &Weights) -> u32 {
        match self {
            TagMatch::Untargeted => u32::from(weights.tags_untargeted),
            TagMatch::Full { .. } => u32::from(weights.tags_full),
            TagMatch::Partial { matched, group } => {
                let (w, m, g) = (
                    u64::from(weights.tags_partial),
                    u64::from(matched),
                    u64::from(group),
                );
                // matched < group, so the quotient is below `w` and fits.
                u32::try_from((2 * w * m + g) / (2 * g)).unwrap_or(u32::MAX)
            }
            TagMatch::NoEvidence { .. } => 0,
        }
    }
}

/// |U ∩ G| of two normalised (sorted, deduplicated) tag sets, by merging.
pub(crate) fn count_shared(participant: &[Tag], group: &[Tag]) -> u32 {
    let (mut i, mut j, mut n) = (0, 0, 0u32);
    while let (Some(a), Some(b)) = (participant.get(i), group.get(j)) {
        match a.cmp(b) {
            Ordering::Less => i += 1,
            Ordering::Greater => j += 1,
            Ordering::Equal => {
                n += 1;
                i += 1;
                j += 1;
            }
        }
    }
    n
}

/// Saturating `u32` of a length: tag sets never approach 2³² entries, but input must not be able to wrap.
pub(crate) fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Points of a campaign status.
pub(crate) fn status_points(status: CampaignStatus, weights: &Weights) -> u32 {
    match status {
        CampaignStatus::Active => u32::from(weights.status_active),
        CampaignStatus::Recruiting => u32::from(weights.status_recruiting),
        _ => 0,
    }
}

/// The uncapped total of a candidate.
pub(crate) fn total(
    weights: &Weights,
    tags: TagMatch,
    status: CampaignStatus,
    has_instance: bool,
) -> u32 {
    u32::from(weights.company_match)
        + u32::from(weights.date_in_window)
        + tags.points(weights)
        + status_points(status, weights)
        + if has_instance {
            u32::from(weights.instance_on_date)
        } else {
            0
        }
}

/// Rank of a status in the tie-break: `active` first, then `recruiting`, `planned`, `paused`, `completed`, `closed`.
pub(crate) const fn status_rank(status: CampaignStatus) -> u8 {
    match status {
        CampaignStatus::Active => 0,
        CampaignStatus::Recruiting => 1,
        CampaignStatus::Planned => 2,
        CampaignStatus::Paused => 3,
        CampaignStatus::Completed => 4,
        CampaignStatus::Closed => 5,
        CampaignStatus::Draft => 6,
    }
}

/// The total order of candidates, best first: uncapped total (desc), status rank, later start date, smaller id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RankKey {
    pub(crate) total: u32,
    pub(crate) status_rank: u8,
    /// Start date as days from the common era (cheaper to carry than a date, same order).
    pub(crate) start: i32,
    pub(crate) id: CampaignId,
}

impl Ord for RankKey {
    /// `Less` = ranks first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .total
            .cmp(&self.total)
            .then_with(|| self.status_rank.cmp(&other.status_rank))
            .then_with(|| other.start.cmp(&self.start))
            .then_with(|| self.id.cmp(&other.id))
    }
}

impl PartialOrd for RankKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The score of one candidate campaign for one activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateScore<'a> {
    /// The campaign.
    pub campaign: &'a CampaignView,
    /// The activity date it was scored on.
    pub date: NaiveDate,
    /// How the tags met.
    pub tags: TagMatch,
    /// The instance that would be chosen on `date` (its existence earns `instance_on_date`).
    pub instance: Option<&'a InstanceView>,
    /// The uncapped total, which ranks the candidate.
    pub total: u32,
}

impl<'a> CandidateScore<'a> {
    /// Scores `campaign` on `date`, assuming it passed the filter.
    pub(crate) fn on(
        participant: &Tags,
        campaign: &'a CampaignView,
        date: NaiveDate,
        weights: &Weights,
    ) -> Self {
        let tags = TagMatch::of(
            count_shared(participant.as_slice(), campaign.tags.as_slice()),
            len32(campaign.tags.len()),
        );
        let instance = choose_instance(&campaign.instances, date);
        CandidateScore {
            campaign,
            date,
            tags,
            instance,
            total: total(weights, tags, campaign.status, instance.is_some()),
        }
    }

    /// `min(100, total)`.
    pub fn confidence(&self) -> Confidence {
        confidence(self.total)
    }

    /// The key of the total order.
    pub(crate) fn rank_key(&self) -> RankKey {
        RankKey {
            total: self.total,
            status_rank: status_rank(self.campaign.status),
            start: self.campaign.start_date.num_days_from_ce(),
            id: self.campaign.id,
        }
    }

    /// Orders candidates best first: uncapped total (desc), status rank, later start date, smaller campaign id.
    pub fn rank(&self, other: &Self) -> Ordering {
        self.rank_key().cmp(&other.rank_key())
    }

    fn summary(&self) -> CandidateSummary {
        CandidateSummary {
            campaign: self.campaign.id,
            total: self.total,
            confidence: self.confidence(),
        }
    }

    /// Every component whose condition holds as a reason (even at zero points under a custom policy, so that a
    /// 0-point partial match still shows its tags), in the specification's order, then `capped` when the total was
    /// cut. `participant` is the tag set it was scored with, for naming the matched tags.
    pub fn reasons(&self, participant: &Tags, policy: &ScoringPolicy) -> Vec<Reason> {
        reasons(
            &Plain {
                score: self,
                participant,
            },
            policy,
        )
    }
}

/// The instance facts a reason names.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InstanceFacts {
    pub(crate) id: InstanceId,
    pub(crate) status: InstanceStatus,
    pub(crate) start: NaiveDate,
    pub(crate) end: Option<NaiveDate>,
}

impl From<&InstanceView> for InstanceFacts {
    fn from(i: &InstanceView) -> Self {
        InstanceFacts {
            id: i.id,
            status: i.status,
            start: i.start_date,
            end: i.end_date,
        }
    }
}

/// What explaining a proposal needs. The plain scorer answers from the catalogue's views, the campaign index from
/// its own compact copy (so that explaining does not chase the views' pointers); both must render identically.
pub(crate) trait Proposal {
    fn campaign(&self) -> CampaignId;
    fn status(&self) -> CampaignStatus;
    fn window(&self) -> (NaiveDate, NaiveDate);
    fn date(&self) -> NaiveDate;
    fn tags(&self) -> TagMatch;
    fn total(&self) -> u32;
    fn instance(&self) -> Option<InstanceFacts>;
    /// Appends the group tags the participant shares, in tag order, comma-separated.
    fn shared_tags(&self, d: Detail) -> Detail;
    /// Appends all the group tags, in tag order, comma-separated.
    fn group_tags(&self, d: Detail) -> Detail;
}

/// A [`CandidateScore`] with the participant tags it was scored with.
struct Plain<'s, 'a> {
    score: &'s CandidateScore<'a>,
    participant: &'s Tags,
}

impl Proposal for Plain<'_, '_> {
    fn campaign(&self) -> CampaignId {
        self.score.campaign.id
    }
    fn status(&self) -> CampaignStatus {
        self.score.campaign.status
    }
    fn window(&self) -> (NaiveDate, NaiveDate) {
        (self.score.campaign.start_date, self.score.campaign.end_date)
    }
    fn date(&self) -> NaiveDate {
        self.score.date
    }
    fn tags(&self) -> TagMatch {
        self.score.tags
    }
    fn total(&self) -> u32 {
        self.score.total
    }
    fn instance(&self) -> Option<InstanceFacts> {
        self.score.instance.map(InstanceFacts::from)
    }
    fn shared_tags(&self, d: Detail) -> Detail {
        d.list(shared_tags(self.participant, &self.score.campaign.tags).map(Tag::as_str))
    }
    fn group_tags(&self, d: Detail) -> Detail {
        d.list(self.score.campaign.tags.as_slice().iter().map(Tag::as_str))
    }
}

/// The reasons of a proposal's components; see [`CandidateScore::reasons`].
fn reasons(p: &impl Proposal, policy: &ScoringPolicy) -> Vec<Reason> {
    let w = &policy.weights;
    let pts = |p: u32| i32::try_from(p).unwrap_or(i32::MAX);
    // Room for every component and every doubt, so pushing never reallocates.
    let mut out = Vec::with_capacity(9);
    out.push(Reason::new(
        ReasonCode::CompanyMatch,
        pts(u32::from(w.company_match)),
        "the campaign belongs to the activity's company",
    ));
    let (start, end) = p.window();
    out.push(Reason::new(
        ReasonCode::DateInWindow,
        pts(u32::from(w.date_in_window)),
        Detail::new(33)
            .date(p.date())
            .text(" within ")
            .date(start)
            .text("..=")
            .date(end)
            .done(),
    ));
    let tags = p.tags();
    let tag_points = pts(tags.points(w));
    match tags {
        TagMatch::Untargeted => out.push(Reason::new(
            ReasonCode::TagsUntargeted,
            tag_points,
            "the beneficiary group has no tags",
        )),
        TagMatch::Full { .. } => out.push(Reason::new(
            ReasonCode::TagsFull,
            tag_points,
            p.shared_tags(Detail::new(48).text("all group tags matched: "))
                .done(),
        )),
        TagMatch::Partial { matched, group } => out.push(Reason::new(
            ReasonCode::TagsPartial,
            tag_points,
            p.shared_tags(
                Detail::new(48)
                    .num(matched)
                    .text(" of ")
                    .num(group)
                    .text(" group tags matched: "),
            )
            .done(),
        )),
        TagMatch::NoEvidence { .. } => {}
    }
    match p.status() {
        CampaignStatus::Active => out.push(Reason::new(
            ReasonCode::StatusActive,
            pts(u32::from(w.status_active)),
            "campaign status active",
        )),
        CampaignStatus::Recruiting => out.push(Reason::new(
            ReasonCode::StatusRecruiting,
            pts(u32::from(w.status_recruiting)),
            "campaign status recruiting",
        )),
        _ => {}
    }
    if let Some(i) = p.instance() {
        let d = Detail::new(72)
            .text("instance ")
            .uuid(i.id.uuid())
            .text(" (")
            .text(i.status.as_str())
            .text(", ")
            .date(i.start)
            .text("..=");
        let d = match i.end {
            Some(e) => d.date(e),
            None => d.text("open"),
        };
        out.push(Reason::new(
            ReasonCode::InstanceOnDate,
            pts(u32::from(w.instance_on_date)),
            d.text(")").done(),
        ));
    }
    let (total, cap) = (p.total(), u32::from(Confidence::MAX));
    if total > cap {
        out.push(Reason::new(
            ReasonCode::Capped,
            -pts(total - cap),
            Detail::new(32)
                .text("uncapped total ")
                .num(total)
                .text(" cut to ")
                .num(cap)
                .done(),
        ));
    }
    out
}

/// The group tags the participant has, in tag order (both sets are sorted: a merge).
fn shared_tags<'t>(participant: &'t Tags, group: &'t Tags) -> impl Iterator<Item = &'t Tag> {
    let mut u = participant.as_slice().iter().peekable();
    group.as_slice().iter().filter(move |g| {
        while u.next_if(|t| t < g).is_some() {}
        u.peek().is_some_and(|t| t == g)
    })
}

/// Scores one campaign for one activity, or `None` when the campaign is not a candidate (see
/// [`CampaignView::is_candidate`]; an activity without a company has no candidates).
pub fn score<'a>(
    facts: &ActivityFacts<'_>,
    campaign: &'a CampaignView,
    policy: &ScoringPolicy,
) -> Option<CandidateScore<'a>> {
    let company = facts.company?;
    let date = policy.activity_date(facts.at);
    campaign
        .is_candidate(company, facts.program, date)
        .then(|| CandidateScore::on(facts.tags, campaign, date, &policy.weights))
}

/// Chooses among scored candidates (the output of [`score`] for every campaign that passed) and decides.
///
/// The result does not depend on the order of `candidates`. With no company the decision is `none`
/// (`no_company`); with no candidates, `none` (`no_candidates`).
pub fn choose(
    facts: &ActivityFacts<'_>,
    candidates: &[CandidateScore<'_>],
    policy: &ScoringPolicy,
) -> Outcome {
    let Some(company) = facts.company else {
        return no_company();
    };
    let mut ranked: Vec<&CandidateScore<'_>> = candidates.iter().collect();
    ranked.sort_by(|a, b| a.rank(b));
    let Some(best) = ranked.first() else {
        return no_candidates(company, facts.program, policy.activity_date(facts.at));
    };
    let tied: Vec<CampaignId> = ranked
        .iter()
        .take_while(|c| c.total == best.total)
        .map(|c| c.campaign.id)
        .collect();
    let top: Vec<CandidateSummary> = ranked.iter().take(3).map(|c| c.summary()).collect();
    conclude_plain(facts.tags, best, &tied, top, policy)
}

/// Associates an activity with the best of `campaigns` (any catalogue, filtered here): the plain reference
/// implementation of what [`crate::association::CampaignIndex`] does fast.
pub fn associate<'a, I>(facts: &ActivityFacts<'_>, campaigns: I, policy: &ScoringPolicy) -> Outcome
where
    I: IntoIterator<Item = &'a CampaignView>,
{
    let Some(company) = facts.company else {
        return no_company();
    };
    let date = policy.activity_date(facts.at);
    let scored: Vec<CandidateScore<'a>> = campaigns
        .into_iter()
        .filter(|c| c.is_candidate(company, facts.program, date))
        .map(|c| CandidateScore::on(facts.tags, c, date, &policy.weights))
        .collect();
    choose(facts, &scored, policy)
}

/// Decision `none`, reason `no_company`.
pub(crate) fn no_company() -> Outcome {
    Outcome::none(Reason::new(
        ReasonCode::NoCompany,
        0,
        "neither the volunteer nor the participant has a company",
    ))
}

/// Decision `none`, reason `no_candidates`.
pub(crate) fn no_candidates(company: CompanyId, program: ProgramType, date: NaiveDate) -> Outcome {
    Outcome::none(Reason::new(
        ReasonCode::NoCandidates,
        0,
        format!("no active campaign of company {company} for {program} covers {date}"),
    ))
}

/// The outcome for the proposal `best` (scored with the participant's tags `participant`), given the campaigns
/// tied with it (itself included, best first) and the top three summaries.
pub(crate) fn conclude_plain(
    participant: &Tags,
    best: &CandidateScore<'_>,
    tied: &[CampaignId],
    candidates: Vec<CandidateSummary>,
    policy: &ScoringPolicy,
) -> Outcome {
    conclude(
        &Plain {
            score: best,
            participant,
        },
        tied,
        candidates,
        policy,
    )
}

/// The outcome for the proposal `best`, given the campaigns tied with it (itself included, best first) and the top
/// three summaries.
pub(crate) fn conclude(
    best: &impl Proposal,
    tied: &[CampaignId],
    candidates: Vec<CandidateSummary>,
    policy: &ScoringPolicy,
) -> Outcome {
    let mut reasons = reasons(best, policy);
    let total = best.total();
    let ambiguous = tied.len() > 1;
    if ambiguous {
        let mut detail = Detail::new(40 + 38 * tied.len())
            .num(len32(tied.len()))
            .text(" campaigns tied at ")
            .num(total)
            .text(" points: ");
        for (i, id) in tied.iter().enumerate() {
            if i > 0 {
                detail = detail.text(", ");
            }
            detail = detail.uuid(id.uuid());
        }
        reasons.push(Reason::new(ReasonCode::Ambiguous, 0, detail.done()));
    }
    let instance = best.instance();
    if instance.is_none() {
        reasons.push(Reason::new(
            ReasonCode::NoInstance,
            0,
            Detail::new(52)
                .text("no active or planned instance covers ")
                .date(best.date())
                .done(),
        ));
    }
    let no_evidence = matches!(best.tags(), TagMatch::NoEvidence { .. });
    if no_evidence {
        reasons.push(Reason::new(
            ReasonCode::NoTagEvidence,
            0,
            best.group_tags(Detail::new(64).text("the participant has none of the group's tags: "))
                .done(),
        ));
    }
    let confidence = confidence(total);
    Outcome {
        decision: policy.decide(confidence, ambiguous || instance.is_none() || no_evidence),
        confidence,
        campaign: Some(best.campaign()),
        instance: instance.map(|i| i.id),
        reasons,
        candidates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_points_round_half_up() {
        let w = Weights::default();
        let p = |m, g| TagMatch::of(m, g).points(&w);
        assert_eq!(p(1, 2), 10);
        assert_eq!(p(1, 3), 7); // 6.67
        assert_eq!(p(2, 3), 13); // 13.33
        assert_eq!(p(1, 8), 3); // 2.5 → 3
        assert_eq!(p(3, 8), 8); // 7.5 → 8
        assert_eq!(p(1, 40), 1); // 0.5 → 1
        assert_eq!(p(1, 41), 0); // 0.49
        assert_eq!(p(0, 3), 0);
        assert_eq!(p(3, 3), 40);
        assert_eq!(p(0, 0), 10);
    }

    #[test]
    fn shared_tags_are_counted_once() {
        let u = Tags::from_raw(["A", "b", "c"]);
        let g = Tags::from_raw(["b", "B ", "a", "z"]);
        assert_eq!(count_shared(u.as_slice(), g.as_slice()), 2);
    }
}
