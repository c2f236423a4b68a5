//! Association against the generated 10,000-campaign catalogue: building the `CampaignIndex`, associating 1M
//! activities through it, and the plain scorer over the whole catalogue for comparison.

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use kintell_ingest::association::CampaignIndex;
use kintell_ingest::domain::Tags;
use kintell_ingest::scoring::{ScoringPolicy, associate};
use kintell_ingest_benches::catalog::{activities, catalog, participants};
use std::hint::black_box;
use std::time::Duration;

fn bench_association(c: &mut Criterion) {
    let cat = catalog(100, 100, 11);
    let people = participants(12);
    let acts = activities(1_000_000, 100, 13);
    let policy = ScoringPolicy::default();
    let none = Tags::default();

    let mut g = c.benchmark_group("association");
    g.sampling_mode(SamplingMode::Flat);
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));

    g.throughput(Throughput::Elements(cat.campaigns.len() as u64));
    g.bench_function("build_index_10k_campaigns", |b| {
        b.iter(|| CampaignIndex::new(black_box(cat.clone())));
    });

    let index = CampaignIndex::new(cat.clone());
    g.throughput(Throughput::Elements(acts.len() as u64));
    g.bench_function("associate_1m_activities", |b| {
        b.iter(|| {
            let mut linked = 0usize;
            for a in &acts {
                let o = index.associate(black_box(&a.facts(&people, &none)), &policy);
                linked += usize::from(o.instance.is_some());
                black_box(o);
            }
            linked
        });
    });

    // The plain scorer filters all 10,000 campaigns per activity: the baseline the index replaces.
    let few = acts.get(..1_000).unwrap_or(&acts);
    g.throughput(Throughput::Elements(few.len() as u64));
    g.bench_function("plain_associate_1k_activities", |b| {
        b.iter(|| {
            for a in few {
                black_box(associate(&a.facts(&people, &none), &cat.campaigns, &policy));
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench_association);
criterion_main!(benches);
