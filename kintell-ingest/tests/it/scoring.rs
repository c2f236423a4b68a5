//! Tests of the scoring area: one table per rule of `spec/association.md`, each case a small catalogue fixture
//! checked through the plain scorer and the campaign index alike, and property tests of both.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use expect_test::{Expect, expect};
use kintell_ingest::association::{CampaignIndex, CatalogSnapshot};
use kintell_ingest::domain::{
    ActivityKind, CampaignId, CampaignStatus, CompanyId, InstanceId, InstanceStatus, ProgramSlug,
    ProgramType, SessionType, Tags, TimeZoneOffset,
};
use kintell_ingest::scoring::{
    ActivityFacts, CampaignView, InstanceView, Outcome, ScoringPolicy, associate, choose,
    resolve_company, score,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------------------------
// Fixtures
//
//   policy timezone=+02:00 auto=90 review=50 tags_full=40 …      (optional; any weight or threshold by name)
//   activity mentors_ukraine 2024-03-05T10:00:00Z company=acme tags=refugees,ukrainian
//   campaign a 2024-01-01..2024-12-31 company=acme status=active type=mentors_ukraine tags=refugees inactive
//   instance a1 active 2024-01-01..open created=2024-01-02T00:00:00Z      (belongs to the campaign above)
//
// Defaults: company `acme` (`company=none` for none), campaign status `active`, no programme type, no tags,
// active; instance created 2024-01-01T00:00:00Z. Ids are the stable ids of the keys, and the rendering maps them
// back to keys.
// ---------------------------------------------------------------------------------------------------------------

struct Fixture {
    policy: ScoringPolicy,
    program: ProgramType,
    at: DateTime<Utc>,
    company: Option<CompanyId>,
    tags: Tags,
    campaigns: Vec<CampaignView>,
    names: Vec<(String, String)>,
}

impl Fixture {
    fn facts(&self) -> ActivityFacts<'_> {
        ActivityFacts {
            kind: match self.program {
                ProgramType::Buddy => ActivityKind::BuddyMatch,
                ProgramType::Upskilling => ActivityKind::CourseCompletion,
                _ => ActivityKind::KintellSession,
            },
            program: self.program,
            at: self.at,
            company: self.company,
            tags: &self.tags,
        }
    }
}

fn date(s: &str) -> NaiveDate {
    s.parse().expect("a date")
}

fn time(s: &str) -> DateTime<Utc> {
    s.parse().expect("an RFC 3339 time")
}

fn window(s: &str) -> (NaiveDate, Option<NaiveDate>) {
    let (a, b) = s.split_once("..").expect("a window start..end");
    (date(a), (b != "open").then(|| date(b)))
}

fn company(key: &str, names: &mut Vec<(String, String)>) -> Option<CompanyId> {
    (key != "none").then(|| {
        let id = CompanyId::stable(key);
        names.push((id.to_string(), key.to_owned()));
        id
    })
}

fn tags(list: &str) -> Tags {
    Tags::from_raw(list.split(','))
}

fn parse(fixture: &str) -> Fixture {
    let mut names = Vec::new();
    let mut f = Fixture {
        policy: ScoringPolicy::default(),
        program: ProgramType::MentorsUkraine,
        at: time("2024-06-01T12:00:00Z"),
        company: company("acme", &mut names),
        tags: Tags::default(),
        campaigns: Vec::new(),
        names: Vec::new(),
    };
    for line in fixture.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let head = words.next().expect("a keyword");
        let mut rest: Vec<&str> = words.collect();
        let mut options: Vec<(&str, &str)> = Vec::new();
        rest.retain(|w| match w.split_once('=') {
            Some(kv) => {
                options.push(kv);
                false
            }
            None => true,
        });
        match head {
            "policy" => {
                let w = &mut f.policy.weights;
                for (k, v) in options {
                    let n = || v.parse::<u16>().expect("a number");
                    match k {
                        "timezone" => {
                            f.policy.timezone = TimeZoneOffset::parse(v).expect("an offset")
                        }
                        "auto" => f.policy.thresholds.auto = v.parse().expect("a threshold"),
                        "review" => f.policy.thresholds.review = v.parse().expect("a threshold"),
                        "company_match" => w.company_match = n(),
                        "date_in_window" => w.date_in_window = n(),
                        "tags_full" => w.tags_full = n(),
                        "tags_partial" => w.tags_partial = n(),
                        "tags_untargeted" => w.tags_untargeted = n(),
                        "status_active" => w.status_active = n(),
                        "status_recruiting" => w.status_recruiting = n(),
                        "instance_on_date" => w.instance_on_date = n(),
                        _ => panic!("unknown policy option {k}"),
                    }
                }
            }
            "activity" => {
                f.program = ProgramType::parse(rest[0]).expect("a programme kind");
                f.at = time(rest[1]);
                for (k, v) in options {
                    match k {
                        "company" => f.company = company(v, &mut names),
                        "tags" => f.tags = tags(v),
                        _ => panic!("unknown activity option {k}"),
                    }
                }
            }
            "campaign" => {
                let key = rest[0];
                let (start, end) = window(rest[1]);
                let id = CampaignId::stable(key);
                names.push((id.to_string(), key.to_owned()));
                let mut c = CampaignView {
                    id,
                    company: CompanyId::stable("acme"),
                    status: CampaignStatus::Active,
                    is_active: !rest.contains(&"inactive"),
                    program_type: None,
                    start_date: start,
                    end_date: end.expect("campaigns end"),
                    tags: Tags::default(),
                    instances: Vec::new(),
                };
                for (k, v) in options {
                    match k {
                        "company" => c.company = company(v, &mut names).expect("a company"),
                        "status" => c.status = CampaignStatus::parse(v).expect("a status"),
                        "type" => c.program_type = Some(ProgramType::parse(v).expect("a type")),
                        "tags" => c.tags = tags(v),
                        _ => panic!("unknown campaign option {k}"),
                    }
                }
                f.campaigns.push(c);
            }
            "instance" => {
                let key = rest[0];
                let (start, end) = window(rest[2]);
                let id = InstanceId::stable(&ProgramSlug::parse(key).expect("a slug"));
                names.push((id.to_string(), key.to_owned()));
                let mut i = InstanceView {
                    id,
                    status: InstanceStatus::parse(rest[1]).expect("a status"),
                    start_date: start,
                    end_date: end,
                    created_at: time("2024-01-01T00:00:00Z"),
                };
                for (k, v) in options {
                    match k {
                        "created" => i.created_at = time(v),
                        _ => panic!("unknown instance option {k}"),
                    }
                }
                f.campaigns
                    .last_mut()
                    .expect("a campaign first")
                    .instances
                    .push(i);
            }
            _ => panic!("unknown fixture line {line:?}"),
        }
    }
    f.names = names;
    f
}

fn render(o: &Outcome, names: &[(String, String)]) -> String {
    let name = |id: Option<String>| id.unwrap_or_else(|| "-".to_owned());
    let mut s = format!(
        "{} {} campaign={} instance={}\n",
        o.decision,
        o.confidence,
        name(o.campaign.map(|c| c.to_string())),
        name(o.instance.map(|i| i.to_string())),
    );
    for r in &o.reasons {
        s.push_str(&format!("  {:+} {}: {}\n", r.points, r.code, r.detail));
    }
    let cands: Vec<String> = o
        .candidates
        .iter()
        .map(|c| format!("{} {}/{}", c.campaign, c.total, c.confidence))
        .collect();
    let cands = if cands.is_empty() {
        "-".to_owned()
    } else {
        cands.join(", ")
    };
    s.push_str(&format!("candidates: {cands}\n"));
    for (id, key) in names {
        s = s.replace(id, key);
    }
    s
}

/// Associates the fixture's activity through the plain scorer and the index, checks they agree and that the
/// reasons' points sum to the confidence, and compares the rendering.
fn check(fixture: &str, expect: Expect) {
    let f = parse(fixture);
    let facts = f.facts();
    let plain = associate(&facts, &f.campaigns, &f.policy);
    let index = CampaignIndex::new(CatalogSnapshot {
        campaigns: f.campaigns.clone(),
    });
    assert_eq!(
        index.associate(&facts, &f.policy),
        plain,
        "index and plain scorer differ"
    );
    let sum: i32 = plain.reasons.iter().map(|r| r.points).sum();
    assert_eq!(
        sum,
        i32::from(plain.confidence.get()),
        "reasons must sum to the confidence"
    );
    expect.assert_eq(&render(&plain, &f.names));
}

// ---------------------------------------------------------------------------------------------------------------
// Components
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn company_and_date_always_count_and_untargeted_groups_earn_ten() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign a 2024-01-01..2024-12-31 status=planned
        ",
        expect![[r#"
            review 70 campaign=a instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: a 70/70
        "#]],
    );
}

#[test]
fn full_tag_match_includes_superset_profiles() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=Refugees,ukrainian,women
        campaign a 2024-01-01..2024-12-31 tags=refugees,UKRAINIAN,refugees
        instance a1 active 2024-01-01..open
        ",
        expect![[r#"
            auto 100 campaign=a instance=a1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +40 tags_full: all group tags matched: refugees, ukrainian
              +10 status_active: campaign status active
              +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
              -20 capped: uncapped total 120 cut to 100
            candidates: a 120/100
        "#]],
    );
}

#[test]
fn partial_tag_match_rounds_half_up() {
    // 20 × 1/2 = 10; 20 × 2/3 = 13.3 → 13; 20 × 1/3 = 6.7 → 7; 20 × 1/8 = 2.5 → 3.
    for (participant, group, expect) in [
        (
            "refugees",
            "refugees,women",
            expect![[r#"
                auto 90 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_partial: 1 of 2 group tags matched: refugees
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 90/90
            "#]],
        ),
        (
            "refugees,women,x",
            "refugees,women,youth",
            expect![[r#"
                auto 93 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +13 tags_partial: 2 of 3 group tags matched: refugees, women
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 93/93
            "#]],
        ),
        (
            "youth",
            "refugees,women,youth",
            expect![[r#"
                auto 87 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +7 tags_partial: 1 of 3 group tags matched: youth
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 87/87
            "#]],
        ),
        (
            "t1",
            "t1,t2,t3,t4,t5,t6,t7,t8",
            expect![[r#"
                auto 83 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +3 tags_partial: 1 of 8 group tags matched: t1
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 83/83
            "#]],
        ),
    ] {
        check(
            &format!(
                "
                activity mentors_ukraine 2024-06-01T12:00:00Z tags={participant}
                campaign a 2024-01-01..2024-12-31 tags={group}
                instance a1 active 2024-01-01..open
                "
            ),
            expect,
        );
    }
}

#[test]
fn campaign_status_points() {
    for (status, expect) in [
        (
            "active",
            expect![[r#"
                auto 90 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 90/90
            "#]],
        ),
        (
            "recruiting",
            expect![[r#"
                auto 85 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +5 status_recruiting: campaign status recruiting
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 85/85
            "#]],
        ),
        (
            "paused",
            expect![[r#"
                auto 80 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 80/80
            "#]],
        ),
    ] {
        check(
            &format!(
                "
                activity mentors_ukraine 2024-06-01T12:00:00Z
                campaign a 2024-01-01..2024-12-31 status={status}
                instance a1 active 2024-01-01..open
                "
            ),
            expect,
        );
    }
}

#[test]
fn instance_on_date_needs_an_active_or_planned_instance_covering_the_date() {
    for (instances, expect) in [
        // Paused, completed and cancelled instances never count; neither do windows that miss the date.
        (
            "
            instance p paused 2024-01-01..open
            instance c completed 2024-01-01..2024-12-31
            instance x cancelled 2024-01-01..2024-12-31
            instance early active 2024-01-01..2024-05-31
            instance late planned 2024-06-02..open
            ",
            expect![[r#"
                review 80 campaign=a instance=-
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +0 no_instance: no active or planned instance covers 2024-06-01
                candidates: a 80/80
            "#]],
        ),
        // An open-ended instance covers every later date; a planned one counts too.
        (
            "instance open planned 2023-01-01..open",
            expect![[r#"
                auto 90 campaign=a instance=open
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance open (planned, 2023-01-01..=open)
                candidates: a 90/90
            "#]],
        ),
        // Instance windows are inclusive at both ends.
        (
            "instance edge active 2024-05-01..2024-06-01",
            expect![[r#"
                auto 90 campaign=a instance=edge
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance edge (active, 2024-05-01..=2024-06-01)
                candidates: a 90/90
            "#]],
        ),
    ] {
        check(
            &format!(
                "
                activity mentors_ukraine 2024-06-01T12:00:00Z
                campaign a 2024-01-01..2024-12-31
                {instances}
                "
            ),
            expect,
        );
    }
}

#[test]
fn instance_choice_prefers_active_then_later_start_then_later_creation_then_smaller_id() {
    let small = if slug_id("i1") < slug_id("i2") {
        "i1"
    } else {
        "i2"
    };
    for (instances, chosen) in [
        // active beats planned even when the planned one started later
        (
            "instance i1 planned 2024-05-01..open\ninstance i2 active 2024-01-01..open",
            "i2",
        ),
        // later start
        (
            "instance i1 active 2024-02-01..open\ninstance i2 active 2024-03-01..open",
            "i2",
        ),
        // later created_at
        (
            "instance i1 active 2024-01-01..open created=2024-02-01T00:00:00Z
             instance i2 active 2024-01-01..open created=2024-01-15T00:00:00Z",
            "i1",
        ),
        // smaller id
        (
            "instance i1 active 2024-01-01..open\ninstance i2 active 2024-01-01..open",
            small,
        ),
    ] {
        let f = parse(&format!(
            "activity mentors_ukraine 2024-06-01T12:00:00Z\ncampaign a 2024-01-01..2024-12-31\n{instances}"
        ));
        let o = associate(&f.facts(), &f.campaigns, &f.policy);
        assert_eq!(o.instance, Some(slug_id(chosen)), "{instances}");
        let mut reversed = f.campaigns.clone();
        reversed[0].instances.reverse();
        assert_eq!(
            associate(&f.facts(), &reversed, &f.policy),
            o,
            "instance order must not matter"
        );
    }
}

fn slug_id(slug: &str) -> InstanceId {
    InstanceId::stable(&ProgramSlug::parse(slug).expect("a slug"))
}

// ---------------------------------------------------------------------------------------------------------------
// Cap, ranking and tie-breaks
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn confidence_is_capped_but_ranking_uses_the_uncapped_total() {
    // Under a policy where a half match earns 30, both exceed 100: `full` (120) ranks above `partial` (110) although
    // both confidences are 100, and the totals differ, so there is no ambiguity.
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=refugees,women
        campaign partial 2024-01-01..2024-12-31 tags=refugees,youth
        instance p1 active 2024-01-01..open
        campaign full 2024-01-01..2024-12-31 tags=refugees,women
        instance f1 active 2024-01-01..open
        policy tags_partial=60
        ",
        expect![[r#"
            auto 100 campaign=full instance=f1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +40 tags_full: all group tags matched: refugees, women
              +10 status_active: campaign status active
              +10 instance_on_date: instance f1 (active, 2024-01-01..=open)
              -20 capped: uncapped total 120 cut to 100
            candidates: full 120/100, partial 110/100
        "#]],
    );
}

#[test]
fn equal_totals_are_ambiguous_and_broken_by_status_rank() {
    // `rec`: recruiting 5 + a quarter tag match 5; `plan`: planned 0 + untargeted 10. Both total 70: ambiguous, and
    // the status rank puts recruiting first.
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=t1
        campaign plan 2024-01-01..2024-12-31 status=planned
        campaign rec 2024-01-01..2024-12-31 status=recruiting tags=t1,t2,t3,t4
        ",
        expect![[r#"
            review 70 campaign=rec instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +5 tags_partial: 1 of 4 group tags matched: t1
              +5 status_recruiting: campaign status recruiting
              +0 ambiguous: 2 campaigns tied at 70 points: rec, plan
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: rec 70/70, plan 70/70
        "#]],
    );
}

#[test]
fn status_rank_orders_every_status() {
    // All score 60 + 10 (untargeted) under a policy without status points; the ranking follows the status order.
    check(
        "
        policy status_active=0 status_recruiting=0
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign closed 2024-01-01..2024-12-31 status=closed
        campaign completed 2024-01-01..2024-12-31 status=completed
        campaign paused 2024-01-01..2024-12-31 status=paused
        campaign planned 2024-01-01..2024-12-31 status=planned
        campaign recruiting 2024-01-01..2024-12-31 status=recruiting
        campaign active 2024-01-01..2024-12-31 status=active
        ",
        expect![[r#"
            review 70 campaign=active instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +0 status_active: campaign status active
              +0 ambiguous: 6 campaigns tied at 70 points: active, recruiting, planned, paused, completed, closed
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: active 70/70, recruiting 70/70, planned 70/70
        "#]],
    );
}

#[test]
fn equal_totals_and_statuses_prefer_the_later_start() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign old 2024-01-01..2024-12-31
        instance o1 active 2024-01-01..open
        campaign new 2024-05-01..2024-12-31
        instance n1 active 2024-01-01..open
        ",
        expect![[r#"
            review 90 campaign=new instance=n1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-05-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +10 instance_on_date: instance n1 (active, 2024-01-01..=open)
              +0 ambiguous: 2 campaigns tied at 90 points: new, old
            candidates: new 90/90, old 90/90
        "#]],
    );
}

#[test]
fn everything_else_equal_the_smaller_campaign_id_wins() {
    let (x, y) = (CampaignId::stable("x"), CampaignId::stable("y"));
    let f = parse(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign x 2024-01-01..2024-12-31
        campaign y 2024-01-01..2024-12-31
        ",
    );
    let o = associate(&f.facts(), &f.campaigns, &f.policy);
    assert_eq!(o.campaign, Some(x.min(y)));
    let mut reversed = f.campaigns.clone();
    reversed.reverse();
    assert_eq!(associate(&f.facts(), &reversed, &f.policy), o);
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign x 2024-01-01..2024-12-31
        campaign y 2024-01-01..2024-12-31
        ",
        expect![[r#"
            review 80 campaign=y instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +0 ambiguous: 2 campaigns tied at 80 points: y, x
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: y 80/80, x 80/80
        "#]],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Doubts: ambiguity, no instance, no tag evidence
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn ambiguity_names_every_tied_campaign_and_prevents_auto() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=refugees
        campaign a 2024-01-01..2024-12-31 tags=refugees
        instance a1 active 2024-01-01..open
        campaign b 2024-02-01..2024-12-31 tags=refugees
        instance b1 active 2024-01-01..open
        campaign c 2024-03-01..2024-12-31 tags=refugees
        instance c1 active 2024-01-01..open
        campaign d 2024-04-01..2024-12-31 tags=refugees
        instance d1 active 2024-01-01..open
        campaign lower 2024-01-01..2024-12-31
        ",
        expect![[r#"
            review 100 campaign=d instance=d1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-04-01..=2024-12-31
              +40 tags_full: all group tags matched: refugees
              +10 status_active: campaign status active
              +10 instance_on_date: instance d1 (active, 2024-01-01..=open)
              -20 capped: uncapped total 120 cut to 100
              +0 ambiguous: 4 campaigns tied at 120 points: d, c, b, a
            candidates: d 120/100, c 120/100, b 120/100
        "#]],
    );
}

#[test]
fn no_instance_prevents_auto_without_falling_back_to_the_runner_up() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=refugees
        campaign best 2024-01-01..2024-12-31 tags=refugees
        campaign runner 2024-01-01..2024-12-31
        instance r1 active 2024-01-01..open
        ",
        expect![[r#"
            review 100 campaign=best instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +40 tags_full: all group tags matched: refugees
              +10 status_active: campaign status active
              -10 capped: uncapped total 110 cut to 100
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: best 110/100, runner 90/90
        "#]],
    );
}

#[test]
fn no_tag_evidence_prevents_auto_for_a_targeted_group() {
    // 30 + 30 + 10 + 10 = 80 would be auto, but the group is targeted and the participant shares none of its tags.
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=women
        campaign a 2024-01-01..2024-12-31 tags=refugees,ukrainian
        instance a1 active 2024-01-01..open
        ",
        expect![[r#"
            review 80 campaign=a instance=a1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 status_active: campaign status active
              +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
              +0 no_tag_evidence: the participant has none of the group's tags: refugees, ukrainian
            candidates: a 80/80
        "#]],
    );
}

#[test]
fn doubts_are_recorded_even_when_the_confidence_already_excludes_auto() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign a 2024-01-01..2024-12-31 status=closed tags=refugees
        campaign b 2024-01-01..2024-12-31 status=closed tags=youth
        ",
        expect![[r#"
            review 60 campaign=a instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +0 ambiguous: 2 campaigns tied at 60 points: a, b
              +0 no_instance: no active or planned instance covers 2024-06-01
              +0 no_tag_evidence: the participant has none of the group's tags: refugees
            candidates: a 60/60, b 60/60
        "#]],
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Candidate filter
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn campaign_windows_are_inclusive() {
    let catalogue = "
        campaign a 2024-03-01..2024-03-31
        instance a1 active 2024-03-01..2024-03-31
    ";
    for (at, expect) in [
        (
            "2024-02-29T23:59:59Z",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_candidates: no active campaign of company acme for mentors_ukraine covers 2024-02-29
                candidates: -
            "#]],
        ),
        (
            "2024-03-01T00:00:00Z",
            expect![[r#"
                auto 90 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-03-01 within 2024-03-01..=2024-03-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-03-01..=2024-03-31)
                candidates: a 90/90
            "#]],
        ),
        (
            "2024-03-31T23:59:59Z",
            expect![[r#"
                auto 90 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-03-31 within 2024-03-01..=2024-03-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-03-01..=2024-03-31)
                candidates: a 90/90
            "#]],
        ),
        (
            "2024-04-01T00:00:00Z",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_candidates: no active campaign of company acme for mentors_ukraine covers 2024-04-01
                candidates: -
            "#]],
        ),
    ] {
        check(
            &format!("activity mentors_ukraine {at}\n{catalogue}"),
            expect,
        );
    }
}

#[test]
fn the_policy_offset_decides_the_activity_date() {
    // 23:30 UTC on the campaign's last day is already the next day at +02:00, and 00:30 UTC on its first day is
    // still the day before at -05:00.
    for (fixture, expect) in [
        (
            "activity mentors_ukraine 2024-12-31T23:30:00Z",
            expect![[r#"
                auto 90 campaign=a instance=a1
                  +30 company_match: the campaign belongs to the activity's company
                  +30 date_in_window: 2024-12-31 within 2024-01-01..=2024-12-31
                  +10 tags_untargeted: the beneficiary group has no tags
                  +10 status_active: campaign status active
                  +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
                candidates: a 90/90
            "#]],
        ),
        (
            "policy timezone=+02:00\nactivity mentors_ukraine 2024-12-31T23:30:00Z",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_candidates: no active campaign of company acme for mentors_ukraine covers 2025-01-01
                candidates: -
            "#]],
        ),
        (
            "policy timezone=-05:00\nactivity mentors_ukraine 2024-01-01T00:30:00Z",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_candidates: no active campaign of company acme for mentors_ukraine covers 2023-12-31
                candidates: -
            "#]],
        ),
    ] {
        check(
            &format!(
                "{fixture}\ncampaign a 2024-01-01..2024-12-31\ninstance a1 active 2024-01-01..open"
            ),
            expect,
        );
    }
}

#[test]
fn draft_inactive_and_other_companies_campaigns_are_never_candidates() {
    check(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z
        campaign draft 2024-01-01..2024-12-31 status=draft
        campaign off 2024-01-01..2024-12-31 inactive
        campaign other 2024-01-01..2024-12-31 company=globex
        campaign ok 2024-01-01..2024-12-31 status=completed
        ",
        expect![[r#"
            review 70 campaign=ok instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: ok 70/70
        "#]],
    );
}

#[test]
fn programme_type_must_be_absent_or_equal_to_the_activity_kind() {
    let catalogue = "
        campaign any 2024-01-01..2024-12-31 status=completed
        campaign mentors 2024-01-01..2024-12-31 type=mentors_ukraine
        campaign language 2024-01-01..2024-12-31 type=language_ukraine status=recruiting
        campaign kintell 2024-01-01..2024-12-31 type=kintell
    ";
    for (program, expect) in [
        (
            "mentors_ukraine",
            expect![[r#"
            review 80 campaign=mentors instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: mentors 80/80, any 70/70
        "#]],
        ),
        (
            "language_ukraine",
            expect![[r#"
            review 75 campaign=language instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +5 status_recruiting: campaign status recruiting
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: language 75/75, any 70/70
        "#]],
        ),
        (
            "buddy",
            expect![[r#"
            review 70 campaign=any instance=-
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +0 no_instance: no active or planned instance covers 2024-06-01
            candidates: any 70/70
        "#]],
        ),
    ] {
        check(
            &format!("activity {program} 2024-06-01T12:00:00Z\n{catalogue}"),
            expect,
        );
    }
}

#[test]
fn no_company_and_no_candidates_decide_none() {
    for (fixture, expect) in [
        (
            "activity mentors_ukraine 2024-06-01T12:00:00Z company=none\ncampaign a 2024-01-01..2024-12-31",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_company: neither the volunteer nor the participant has a company
                candidates: -
            "#]],
        ),
        (
            "activity mentors_ukraine 2024-06-01T12:00:00Z\ncampaign a 2025-01-01..2025-12-31",
            expect![[r#"
                none 0 campaign=- instance=-
                  +0 no_candidates: no active campaign of company acme for mentors_ukraine covers 2024-06-01
                candidates: -
            "#]],
        ),
        (
            "activity buddy 2024-06-01T12:00:00Z",
            expect![[r#"
            none 0 campaign=- instance=-
              +0 no_candidates: no active campaign of company acme for buddy covers 2024-06-01
            candidates: -
        "#]],
        ),
    ] {
        check(fixture, expect);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Decisions
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn thresholds_of_a_custom_policy_decide_review_and_ignored() {
    for (policy, expect) in [
        (
            "policy auto=95 review=85",
            expect![[r#"
            review 90 campaign=a instance=a1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
            candidates: a 90/90
        "#]],
        ),
        (
            "policy auto=95 review=91",
            expect![[r#"
            ignored 90 campaign=a instance=a1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
            candidates: a 90/90
        "#]],
        ),
        (
            "policy auto=90 review=40",
            expect![[r#"
            auto 90 campaign=a instance=a1
              +30 company_match: the campaign belongs to the activity's company
              +30 date_in_window: 2024-06-01 within 2024-01-01..=2024-12-31
              +10 tags_untargeted: the beneficiary group has no tags
              +10 status_active: campaign status active
              +10 instance_on_date: instance a1 (active, 2024-01-01..=open)
            candidates: a 90/90
        "#]],
        ),
    ] {
        check(
            &format!(
                "{policy}
                activity mentors_ukraine 2024-06-01T12:00:00Z
                campaign a 2024-01-01..2024-12-31
                instance a1 active 2024-01-01..open"
            ),
            expect,
        );
    }
}

#[test]
fn an_explicit_instance_skips_scoring() {
    let (instance, campaign) = (slug_id("mentors-ukraine-2024-q4"), CampaignId::stable("a"));
    let names = [
        (instance.to_string(), "mentors-ukraine-2024-q4".to_owned()),
        (campaign.to_string(), "a".to_owned()),
    ];
    expect![[r#"
        explicit 100 campaign=a instance=mentors-ukraine-2024-q4
          +100 explicit_instance: programme instance mentors-ukraine-2024-q4 named by the import
        candidates: -
    "#]]
    .assert_eq(&render(
        &Outcome::explicit(instance, Some(campaign)),
        &names,
    ));
    expect![[r#"
        explicit 100 campaign=- instance=mentors-ukraine-2024-q4
          +100 explicit_instance: programme instance mentors-ukraine-2024-q4 named by the import
        candidates: -
    "#]]
    .assert_eq(&render(&Outcome::explicit(instance, None), &names));
}

#[test]
fn choose_over_scored_candidates_agrees_with_associate() {
    let f = parse(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=refugees
        campaign a 2024-01-01..2024-12-31 tags=refugees
        campaign b 2024-01-01..2024-12-31 tags=refugees,women
        instance b1 planned 2024-01-01..open
        campaign c 2025-01-01..2025-12-31
        ",
    );
    let facts = f.facts();
    let scored: Vec<_> = f
        .campaigns
        .iter()
        .filter_map(|c| score(&facts, c, &f.policy))
        .collect();
    assert_eq!(scored.len(), 2, "c is outside its window");
    assert_eq!(
        choose(&facts, &scored, &f.policy),
        associate(&facts, &f.campaigns, &f.policy)
    );
}

#[test]
fn activity_time_and_company_by_kind() {
    let tags = Tags::default();
    let (sched, done) = (time("2024-01-01T10:00:00Z"), time("2024-01-02T10:00:00Z"));
    let s = ActivityFacts::session(SessionType::Language, sched, Some(done), None, &tags);
    assert_eq!(
        (s.kind, s.program, s.at),
        (
            ActivityKind::KintellSession,
            ProgramType::LanguageUkraine,
            done
        )
    );
    let s = ActivityFacts::session(SessionType::Mentorship, sched, None, None, &tags);
    assert_eq!((s.program, s.at), (ProgramType::MentorsUkraine, sched));
    let m = ActivityFacts::buddy_match(sched, None, &tags);
    assert_eq!(
        (m.kind, m.program),
        (ActivityKind::BuddyMatch, ProgramType::Buddy)
    );
    let c = ActivityFacts::course_completion(done, None, &tags);
    assert_eq!(
        (c.kind, c.program),
        (ActivityKind::CourseCompletion, ProgramType::Upskilling)
    );

    let (v, p) = (CompanyId::stable("v"), CompanyId::stable("p"));
    assert_eq!(resolve_company(Some(v), Some(p)), Some(v));
    assert_eq!(resolve_company(None, Some(p)), Some(p));
    assert_eq!(resolve_company(None, None), None);
}

#[test]
fn outcomes_serialise_to_the_stored_json() {
    let f = parse(
        "
        activity mentors_ukraine 2024-06-01T12:00:00Z tags=refugees
        campaign a 2024-01-01..2024-12-31 tags=refugees
        instance a1 active 2024-01-01..open
        ",
    );
    let o = associate(&f.facts(), &f.campaigns, &f.policy);
    let reasons = o.reasons_json();
    assert_eq!(
        reasons[2],
        serde_json::json!({"code": "tags_full", "points": 40, "detail": "all group tags matched: refugees"})
    );
    assert_eq!(reasons[5]["code"], "capped");
    assert_eq!(
        o.candidates_json(),
        serde_json::json!([{"campaign": CampaignId::stable("a"), "total": 120, "confidence": 100}])
    );
    let back: Outcome =
        serde_json::from_value(serde_json::to_value(&o).expect("serialises")).expect("parses");
    assert_eq!(back, o);
}

// ---------------------------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------------------------

/// Tags as they may arrive: mixed case, padding, one that no group has.
const TAG_POOL: [&str; 7] = [
    "refugees",
    "Ukrainian",
    " women",
    "tech ",
    "YOUTH",
    "berlin",
    "unknown",
];
const PROGRAMS: [ProgramType; 5] = [
    ProgramType::MentorsUkraine,
    ProgramType::LanguageUkraine,
    ProgramType::Buddy,
    ProgramType::Upskilling,
    ProgramType::Kintell,
];

fn day(n: i64) -> NaiveDate {
    date("2024-01-01") + Duration::days(n)
}

fn arb_tags(pool: usize) -> impl Strategy<Value = Tags> {
    proptest::sample::subsequence(TAG_POOL[..pool].to_vec(), 0..=pool).prop_map(Tags::from_raw)
}

fn arb_instance() -> impl Strategy<Value = (InstanceStatus, i64, Option<i64>, i64)> {
    (
        proptest::sample::select(InstanceStatus::ALL.to_vec()),
        0i64..40,
        proptest::option::weighted(0.8, 0i64..30),
        0i64..3,
    )
}

prop_compose! {
    fn arb_campaign()(
        company in 0u8..3,
        status in proptest::sample::select(CampaignStatus::ALL.to_vec()),
        is_active in proptest::bool::weighted(0.85),
        program_type in proptest::option::of(proptest::sample::select(PROGRAMS.to_vec())),
        // Few distinct starts and spans, so that equal totals and equal start dates are common.
        start in 0i64..8,
        span in proptest::sample::select(vec![0i64, 5, 10, 20, 40]),
        tags in arb_tags(6),
        instances in proptest::collection::vec(arb_instance(), 0..4),
    ) -> (u8, CampaignStatus, bool, Option<ProgramType>, i64, i64, Tags, Vec<(InstanceStatus, i64, Option<i64>, i64)>) {
        (company, status, is_active, program_type, start * 5, span, tags, instances)
    }
}

fn company_id(n: u8) -> CompanyId {
    CompanyId::stable(&format!("company-{n}"))
}

fn arb_catalogue() -> impl Strategy<Value = Vec<CampaignView>> {
    proptest::collection::vec(arb_campaign(), 0..14).prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(
                |(n, (company, status, is_active, program_type, start, span, tags, instances))| {
                    CampaignView {
                        id: CampaignId::stable(&format!("campaign-{n}")),
                        company: company_id(company),
                        status,
                        is_active,
                        program_type,
                        start_date: day(start),
                        end_date: day(start + span),
                        tags,
                        instances: instances
                            .into_iter()
                            .enumerate()
                            .map(|(k, (status, s, len, created))| InstanceView {
                                id: slug_id(&format!("campaign-{n}-i{k}")),
                                status,
                                start_date: day(s),
                                end_date: len.map(|l| day(s + l)),
                                created_at: time("2024-01-01T00:00:00Z") + Duration::days(created),
                            })
                            .collect(),
                    }
                },
            )
            .collect()
    })
}

/// The default policy, or any weights and thresholds, in one of a few offsets.
fn arb_policy() -> impl Strategy<Value = ScoringPolicy> {
    let offsets = vec!["+00:00", "+02:00", "-05:00", "+14:00", "-11:30"];
    (
        proptest::sample::select(offsets),
        proptest::option::of((proptest::collection::vec(0u16..60, 8), 0u8..=110, 0u8..=110)),
    )
        .prop_map(|(tz, custom)| {
            let mut p = ScoringPolicy::with_timezone(TimeZoneOffset::parse(tz).expect("an offset"));
            if let Some((w, auto, review)) = custom {
                let ws = &mut p.weights;
                let mut it = w.into_iter();
                let mut next = || it.next().unwrap_or(0);
                ws.company_match = next();
                ws.date_in_window = next();
                ws.tags_full = next();
                ws.tags_partial = next();
                ws.tags_untargeted = next();
                ws.status_active = next();
                ws.status_recruiting = next();
                ws.instance_on_date = next();
                p.thresholds.auto = auto;
                p.thresholds.review = review;
            }
            p
        })
}

/// An activity's program, time, company and tags.
fn arb_activity() -> impl Strategy<Value = (ProgramType, DateTime<Utc>, Option<CompanyId>, Tags)> {
    (
        proptest::sample::select(PROGRAMS.to_vec()),
        -2i64..80,
        0i64..86_400,
        proptest::option::weighted(0.9, 0u8..3),
        arb_tags(7),
    )
        .prop_map(|(program, d, secs, company, tags)| {
            let at = time("2024-01-01T00:00:00Z") + Duration::days(d) + Duration::seconds(secs);
            (program, at, company.map(company_id), tags)
        })
}

fn facts_of(a: &(ProgramType, DateTime<Utc>, Option<CompanyId>, Tags)) -> ActivityFacts<'_> {
    ActivityFacts {
        kind: ActivityKind::KintellSession,
        program: a.0,
        at: a.1,
        company: a.2,
        tags: &a.3,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn index_gives_the_plain_scorers_outcome(
        catalogue in arb_catalogue(), activity in arb_activity(), policy in arb_policy(),
    ) {
        let facts = facts_of(&activity);
        let plain = associate(&facts, &catalogue, &policy);
        let index = CampaignIndex::new(CatalogSnapshot { campaigns: catalogue });
        prop_assert_eq!(index.associate(&facts, &policy), plain);
    }

    #[test]
    fn outcomes_are_well_formed(
        catalogue in arb_catalogue(), activity in arb_activity(), policy in arb_policy(),
    ) {
        let o = associate(&facts_of(&activity), &catalogue, &policy);
        prop_assert!(o.confidence.get() <= 100);
        let sum: i32 = o.reasons.iter().map(|r| r.points).sum();
        prop_assert_eq!(sum, i32::from(o.confidence.get()));
        prop_assert!(o.candidates.len() <= 3);
        prop_assert!(o.candidates.windows(2).all(|w| w[0].total >= w[1].total));
        if o.decision == kintell_ingest::domain::Decision::None {
            prop_assert_eq!(o.confidence.get(), 0);
            prop_assert!(o.candidates.is_empty() && o.campaign.is_none() && o.instance.is_none());
        } else {
            prop_assert_eq!(o.campaign, o.candidates.first().map(|c| c.campaign));
            prop_assert_eq!(o.confidence, o.candidates[0].confidence);
        }
    }

    #[test]
    fn the_choice_does_not_depend_on_catalogue_order(
        catalogue in arb_catalogue().prop_shuffle().prop_flat_map(|c| {
            let n = c.len();
            (Just(c.clone()), Just(c).prop_shuffle(), proptest::collection::vec(any::<bool>(), n))
        }),
        activity in arb_activity(),
        policy in arb_policy(),
    ) {
        let (original, mut shuffled, flips) = catalogue;
        for (c, flip) in shuffled.iter_mut().zip(flips) {
            if flip {
                c.instances.reverse();
            }
        }
        let facts = facts_of(&activity);
        let a = associate(&facts, &original, &policy);
        prop_assert_eq!(&associate(&facts, &shuffled, &policy), &a);
        prop_assert_eq!(
            &CampaignIndex::new(CatalogSnapshot { campaigns: shuffled }).associate(&facts, &policy),
            &a
        );
    }

    #[test]
    fn same_input_same_output(
        catalogue in arb_catalogue(), activity in arb_activity(), policy in arb_policy(),
    ) {
        let facts = facts_of(&activity);
        prop_assert_eq!(associate(&facts, &catalogue, &policy), associate(&facts, &catalogue, &policy));
        let index = CampaignIndex::new(CatalogSnapshot { campaigns: catalogue.clone() });
        let again = CampaignIndex::new(CatalogSnapshot { campaigns: catalogue });
        prop_assert_eq!(index.associate(&facts, &policy), again.associate(&facts, &policy));
    }

    #[test]
    fn a_matching_tag_never_lowers_a_score(
        catalogue in arb_catalogue(), activity in arb_activity(),
    ) {
        let policy = ScoringPolicy::default();
        let facts = facts_of(&activity);
        for campaign in &catalogue {
            let Some(before) = score(&facts, campaign, &policy) else { continue };
            prop_assert!(before.confidence().get() <= 100);
            for tag in campaign.tags.as_slice() {
                let more = Tags::from_raw(activity.3.as_slice().iter().map(|t| t.as_str()).chain([tag.as_str()]));
                let after = score(&ActivityFacts { tags: &more, ..facts }, campaign, &policy)
                    .expect("still a candidate");
                prop_assert!(after.total >= before.total, "{} < {}", after.total, before.total);
            }
        }
    }

    #[test]
    fn score_is_some_exactly_for_candidates(
        catalogue in arb_catalogue(), activity in arb_activity(), policy in arb_policy(),
    ) {
        let facts = facts_of(&activity);
        let date = policy.activity_date(facts.at);
        for c in &catalogue {
            let candidate = facts.company.is_some_and(|co| c.is_candidate(co, facts.program, date));
            prop_assert_eq!(score(&facts, c, &policy).is_some(), candidate);
        }
    }
}

/// 80 distinct tags: more than the index keeps as bits, so its merged lists are exercised too.
fn many_tags() -> impl Strategy<Value = Tags> {
    proptest::collection::vec(0u8..80, 0..40)
        .prop_map(|v| Tags::from_raw(v.into_iter().map(|n| format!("tag-{n:02}"))))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn index_matches_with_more_tags_than_bits(
        catalogue in arb_catalogue(),
        groups in proptest::collection::vec(many_tags(), 14),
        participant in many_tags(),
        activity in arb_activity(),
    ) {
        let catalogue: Vec<CampaignView> = catalogue
            .into_iter()
            .zip(groups)
            .map(|(c, tags)| CampaignView { tags, company: company_id(0), ..c })
            .collect();
        let facts = ActivityFacts { tags: &participant, company: Some(company_id(0)), ..facts_of(&activity) };
        let plain = associate(&facts, &catalogue, &ScoringPolicy::default());
        let index = CampaignIndex::new(CatalogSnapshot { campaigns: catalogue });
        prop_assert!(index.tag_count() <= 80);
        prop_assert_eq!(index.associate(&facts, &ScoringPolicy::default()), plain);
    }
}
