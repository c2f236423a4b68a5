//! Scoring alone: a custom `ScoringPolicy` against the default one, on hand-made campaigns and activities.
//!
//! ```text
//! cargo run -p kintell-ingest-examples --example custom_scoring
//! ```
//!
//! `kintell_ingest::scoring` is pure (no store, no clock, no I/O): describe the campaigns as `CampaignView`s and an
//! activity as `ActivityFacts`, `score` each campaign (a campaign that is not a candidate gives `None`), and
//! `choose` ranks the scored candidates and decides: `auto`, `review`, `ignored` or `none`, with the reasons that
//! make up the confidence and the top candidates.
//!
//! The custom policy here weighs the participant's tags more, the campaign status and the instance less, asks more
//! for `auto` and for `review`, and reads activity dates in UTC+2 — so a session late on New Year's Eve (UTC)
//! falls on 1 January and into the next year's campaign.

use std::io::Write;

use chrono::{DateTime, NaiveDate, Utc};
use kintell_ingest::domain::{
    CampaignId, CampaignStatus, CompanyId, Decision, InstanceId, InstanceStatus, ProgramSlug,
    ProgramType, SessionType, Tags, TimeZoneOffset,
};
use kintell_ingest::scoring::{
    ActivityFacts, CampaignView, CandidateScore, InstanceView, Outcome, ScoringPolicy, Thresholds,
    Weights, choose, score,
};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> std::process::ExitCode {
    kintell_ingest_examples::exit_code(run(&mut std::io::stdout().lock()).map(|_| ()))
}

/// One activity scored under both policies.
#[derive(Debug)]
pub struct Comparison {
    /// What the activity is.
    pub activity: &'static str,
    /// The outcome under `ScoringPolicy::default()`.
    pub default: Outcome,
    /// The outcome under the custom policy.
    pub custom: Outcome,
}

/// The custom policy: any field left out keeps its default (a policy can also be read from JSON with serde, as
/// the CLI's `--policy FILE` does).
pub fn custom_policy() -> Result<ScoringPolicy, Error> {
    let policy = ScoringPolicy {
        // Stored with every association, so decisions taken under this policy can be told apart.
        version: "example-tags-first".to_owned(),
        timezone: TimeZoneOffset::parse("+02:00")?,
        weights: Weights {
            tags_full: 60,
            tags_partial: 40,
            status_active: 5,
            instance_on_date: 5,
            ..Weights::default()
        },
        thresholds: Thresholds {
            auto: 95,
            review: 75,
        },
    };
    // What the store cannot hold (an empty or over-long version) is refused here rather than at the first write.
    policy.validate()?;
    Ok(policy)
}

/// Scores the example activities under both policies, printing the explanations to `out`.
pub fn run(out: &mut dyn Write) -> Result<Vec<Comparison>, Error> {
    let acme = CompanyId::stable("acme");
    let campaigns = catalogue(acme)?;
    let key_of = |id: CampaignId| {
        campaigns
            .iter()
            .find(|(_, c)| c.id == id)
            .map_or("?", |(key, _)| *key)
    };
    let views: Vec<CampaignView> = campaigns.iter().map(|(_, c)| c.clone()).collect();

    let tags = |list: &[&str]| Tags::from_raw(list.iter().copied());
    let olena = tags(&["refugees", "ukrainian"]);
    let dmytro = tags(&["Refugees"]); // tags are normalised: case and spaces do not matter
    let lea = tags(&[]);
    let activities: [(&'static str, &Tags, DateTime<Utc>); 4] = [
        (
            "Olena (both group tags), 10 June",
            &olena,
            at("2024-06-10T09:00:00Z")?,
        ),
        (
            "Dmytro (one of two group tags), 10 June",
            &dmytro,
            at("2024-06-10T09:00:00Z")?,
        ),
        ("Lea (no tags), 10 June", &lea, at("2024-06-10T09:00:00Z")?),
        (
            "Olena, 31 December 23:30 UTC",
            &olena,
            at("2024-12-31T23:30:00Z")?,
        ),
    ];

    let default = ScoringPolicy::default();
    let custom = custom_policy()?;
    let mut comparisons = Vec::new();
    for (what, participant_tags, when) in activities {
        // A mentoring session with a volunteer of Acme: the activity's company is the volunteer's.
        let facts = ActivityFacts::session(
            SessionType::Mentorship,
            when,
            None,
            Some(acme),
            participant_tags,
        );
        writeln!(out, "== {what}")?;
        let mut outcomes = Vec::new();
        for (name, policy) in [("default", &default), ("custom", &custom)] {
            // `score` filters and scores one campaign; `choose` ranks and decides.
            let scored: Vec<CandidateScore<'_>> = views
                .iter()
                .filter_map(|c| score(&facts, c, policy))
                .collect();
            let outcome = choose(&facts, &scored, policy);
            writeln!(
                out,
                "  {name} policy ({}), activity date {}: {} candidate(s) → {} at {}{}",
                policy.version,
                policy.activity_date(when),
                scored.len(),
                outcome.decision,
                outcome.confidence.get(),
                outcome
                    .campaign
                    .map_or_else(String::new, |id| format!(", campaign {}", key_of(id)))
            )?;
            for reason in &outcome.reasons {
                writeln!(
                    out,
                    "    {:>4}  {:<17} {}",
                    reason.points,
                    reason.code.as_str(),
                    reason.detail
                )?;
            }
            let ranking: Vec<String> = outcome
                .candidates
                .iter()
                .map(|c| format!("{} {}", key_of(c.campaign), c.total))
                .collect();
            if !ranking.is_empty() {
                writeln!(out, "    candidates: {}", ranking.join(", "))?;
            }
            outcomes.push(outcome);
        }
        let custom_outcome = outcomes.pop().ok_or("no custom outcome")?;
        let default_outcome = outcomes.pop().ok_or("no default outcome")?;
        if default_outcome.decision != custom_outcome.decision {
            writeln!(
                out,
                "  the policies disagree: {} under the default, {} under the custom one",
                default_outcome.decision, custom_outcome.decision
            )?;
        }
        comparisons.push(Comparison {
            activity: what,
            default: default_outcome,
            custom: custom_outcome,
        });
    }
    let auto = |pick: fn(&Comparison) -> &Outcome| {
        comparisons
            .iter()
            .filter(|c| pick(c).decision == Decision::Auto)
            .count()
    };
    writeln!(
        out,
        "linked without review: {} of {} under the default policy, {} under the custom one",
        auto(|c| &c.default),
        comparisons.len(),
        auto(|c| &c.custom)
    )?;
    Ok(comparisons)
}

/// Three campaigns: Acme's mentoring campaign of 2024 for Ukrainian refugees, Acme's untargeted campaign of 2025
/// still recruiting, and another company's campaign (never a candidate for Acme's activities).
fn catalogue(acme: CompanyId) -> Result<Vec<(&'static str, CampaignView)>, Error> {
    let instance = |slug: &str, status, start: NaiveDate, end| -> Result<InstanceView, Error> {
        Ok(InstanceView {
            id: InstanceId::stable(&ProgramSlug::parse(slug)?),
            status,
            start_date: start,
            end_date: end,
            created_at: at("2023-12-01T00:00:00Z")?,
        })
    };
    let (y2024, y2025) = (date("2024-01-01")?, date("2025-01-01")?);
    Ok(vec![
        (
            "acme-mentors-2024",
            CampaignView {
                id: CampaignId::stable("acme-mentors-2024"),
                company: acme,
                status: CampaignStatus::Active,
                is_active: true,
                program_type: Some(ProgramType::MentorsUkraine),
                start_date: y2024,
                end_date: date("2024-12-31")?,
                tags: Tags::from_raw(["refugees", "ukrainian"]),
                instances: vec![instance(
                    "acme-mentors-2024",
                    InstanceStatus::Active,
                    y2024,
                    Some(date("2024-12-31")?),
                )?],
            },
        ),
        (
            "acme-open-2025",
            CampaignView {
                id: CampaignId::stable("acme-open-2025"),
                company: acme,
                status: CampaignStatus::Recruiting,
                is_active: true,
                program_type: None, // every programme kind
                start_date: y2025,
                end_date: date("2025-12-31")?,
                tags: Tags::default(), // an untargeted group
                instances: vec![instance(
                    "acme-open-2025",
                    InstanceStatus::Planned,
                    y2025,
                    None,
                )?],
            },
        ),
        (
            "nordic-mentors-2024",
            CampaignView {
                id: CampaignId::stable("nordic-mentors-2024"),
                company: CompanyId::stable("nordic-bank"),
                status: CampaignStatus::Active,
                is_active: true,
                program_type: Some(ProgramType::MentorsUkraine),
                start_date: y2024,
                end_date: date("2024-12-31")?,
                tags: Tags::from_raw(["refugees"]),
                instances: Vec::new(),
            },
        ),
    ])
}

fn at(s: &str) -> Result<DateTime<Utc>, Error> {
    Ok(s.parse()?)
}

fn date(s: &str) -> Result<NaiveDate, Error> {
    Ok(s.parse()?)
}
