//! Single-candidate scoring: `scoring::score` over (activity, candidate campaign) pairs from the generated
//! catalogue, each activity's candidates in a row as a pipeline meets them. `4096_pairs` spreads over the whole
//! catalogue (memory-bound); `64_pairs_hot` repeats a few pairs that stay in cache (the arithmetic alone).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kintell_ingest::domain::Tags;
use kintell_ingest::scoring::{ActivityFacts, CampaignView, ScoringPolicy, score};
use kintell_ingest_benches::catalog::{activities, catalog, participants};
use std::hint::black_box;

fn score_all(pairs: &[(ActivityFacts<'_>, &CampaignView)], policy: &ScoringPolicy) -> u32 {
    let mut sum = 0u32;
    for (facts, campaign) in pairs {
        if let Some(s) = score(black_box(facts), black_box(campaign), policy) {
            sum = sum.wrapping_add(s.total);
        }
    }
    sum
}

fn bench_score(c: &mut Criterion) {
    let cat = catalog(100, 100, 11);
    let people = participants(12);
    let acts = activities(20_000, 100, 13);
    let policy = ScoringPolicy::default();
    let none = Tags::default();
    // Only pairs that pass the filter, so each call does the whole scoring rather than exit early.
    let pairs: Vec<(ActivityFacts<'_>, &CampaignView)> = acts
        .iter()
        .map(|a| a.facts(&people, &none))
        .flat_map(|facts| {
            cat.campaigns
                .iter()
                .filter(move |c| score(&facts, c, &ScoringPolicy::default()).is_some())
                .map(move |c| (facts, c))
        })
        .take(4096)
        .collect();
    let hot = pairs.get(..64).unwrap_or(&pairs);

    let mut g = c.benchmark_group("scoring");
    for (name, set) in [
        ("score_4096_pairs", &pairs[..]),
        ("score_64_pairs_hot", hot),
    ] {
        g.throughput(Throughput::Elements(set.len() as u64));
        g.bench_function(name, |b| b.iter(|| score_all(set, &policy)));
    }
    g.finish();
}

criterion_group!(benches, bench_score);
criterion_main!(benches);
