//! Association scoring: the policy, candidate filter, per-candidate score with reasons, and the choice.
//!
//! Everything here is a pure function of its arguments (no clock, no I/O), following `spec/association.md`:
//! [`score`] scores one campaign for one activity, [`choose`] ranks scored candidates and decides, and
//! [`associate`] does both over any list of campaigns. [`crate::association::CampaignIndex`] gives the same results
//! fast over a whole catalogue.

mod detail;
mod input;
mod outcome;
mod policy;
mod score;

pub use input::{ActivityFacts, CampaignView, InstanceView, resolve_company};
pub use outcome::{CandidateSummary, Outcome, Reason, ReasonCode};
pub use policy::{PolicyError, ScoringPolicy, Thresholds, Weights};
pub use score::{CandidateScore, TagMatch, associate, choose, score};

pub(crate) use detail::Detail;
pub(crate) use outcome::confidence;
pub(crate) use score::{
    InstanceFacts, Proposal, RankKey, conclude, len32, no_candidates, no_company, status_rank,
    total,
};
